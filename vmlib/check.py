"""k.check(): the invariants every state must satisfy; InvariantError names the broken rule."""

from __future__ import annotations

from collections import Counter

from vmlib import memory, pgtable
from vmlib.errors import InvariantError, VmError
from vmlib.flags import PAGE_SHIFT, VM_PFNMAP, is_cow_mapping


def _ptes_of(mm, vma):
    """(addr, pte) once for every present pte inside vma, runs expanded up to RUN_EXPAND pages.

    An explicit entry inside a run (a COWed page, or an empty entry masking the run) stands for
    that address: the run's own pte there is not counted again."""
    explicit = pgtable.explicit_ptes(mm, vma.vm_start, vma.vm_end)
    for addr, pte in explicit:
        if pte is not None:
            yield addr, pte
    taken = {addr for addr, _ in explicit}
    for r in mm.runs:
        lo, hi = max(r.start, vma.vm_start), min(r.end, vma.vm_end)
        if lo >= hi:
            continue
        n = (hi - lo) >> PAGE_SHIFT
        idx = range(n) if n <= memory.RUN_EXPAND else (0, n - 1)
        for i in idx:
            addr = lo + (i << PAGE_SHIFT)
            if addr not in taken:
                yield addr, pgtable.run_pte((r,), addr)


def _check_tables(k, pid, mm, fail) -> set:
    """Every page-table page of mm is live, covers part of some vma, and no empty entry is left
    outside a linear run (free_pgtables frees what munmap and exit leave unused). Returns the
    pfns of mm's tables."""
    pfns = set()
    for level, base, table in pgtable.all_tables(mm):
        pfns.add(table.pfn)
        if not table.page.pgtable or table.page._count != 1:
            raise fail(f"process {pid}: {pgtable.LEVEL_NAMES[level]} table page {table.pfn} "
                       f"is not a live page-table page")
        if level < 4:
            end = base + (1 << (pgtable.SHIFT[level] + 9))
            if not any(v.vm_start < end and base < v.vm_end for v in mm.vmas):
                raise fail(f"process {pid}: {pgtable.LEVEL_NAMES[level]} table page {table.pfn} "
                           f"for {base:#x}-{end:#x} is leaked: no vma lies in its range")
    for addr, pte in pgtable.explicit_ptes(mm, 0, 1 << 48):
        if pte is None and not pgtable.in_run(mm, addr):
            raise fail(f"process {pid}: an empty pte entry at {addr:#x} masks no linear run "
                       f"(left behind by a zap; it keeps its page-table page allocated)")
    if mm.run_tables != pgtable.run_only_tables(mm):
        raise fail(f"process {pid}: {mm.run_tables} page-table pages reserved for linear runs, "
                   f"but the runs need {pgtable.run_only_tables(mm)}")
    return pfns


def check(k) -> None:
    """Raise InvariantError for the first broken rule (see the rules below)."""
    fail = InvariantError
    mapped = Counter()
    tables: set = set()
    reserved = 0
    with k.quiet():
        for pid, proc in k.procs.items():
            mm = proc.mm
            rss = Counter()
            covered = 0
            for vma in mm.vmas:
                cow = is_cow_mapping(vma.vm_flags)
                for addr, pte in _ptes_of(mm, vma):
                    covered += 1
                    if pte.special and not k.profile.HAVE_PTE_SPECIAL:
                        raise fail(f"special pte at {addr:#x} in process {pid}, but {k.profile.name} "
                                   f"has no pte_special bit")
                    if k.pfn_valid(pte.pfn) and k.phys.page(pte.pfn)._count <= 0:
                        raise fail(f"pte at {addr:#x} in process {pid} points to freed frame {pte.pfn}")
                    if not k.phys.exists(pte.pfn):
                        raise fail(f"pte at {addr:#x} in process {pid} points to pfn {pte.pfn}, where "
                                   f"there is no memory")
                    try:
                        page = memory.vm_normal_page(k, vma, addr, pte)
                    except VmError as e:
                        raise fail(f"vm_normal_page fails on the pte at {addr:#x} in process {pid}: {e}")
                    if page is None:
                        if (vma.vm_flags & VM_PFNMAP and cow
                                and pte.pfn != vma.linear_pgoff(addr)):
                            raise fail(f"raw pte at {addr:#x} in process {pid}'s private VM_PFNMAP "
                                       f"breaks the linear rule: pfn {pte.pfn} != vm_pgoff + off "
                                       f"{vma.linear_pgoff(addr)}")
                        continue
                    mapped[page.pfn] += 1
                    rss["anon" if page.anon else "file"] += 1
            for kind in ("anon", "file"):
                if mm.rss[kind] != rss[kind]:
                    raise fail(f"process {pid}: {kind}_rss is {mm.rss[kind]} but {rss[kind]} ptes map "
                               f"{kind} pages")
            for addr, pte in pgtable.explicit_ptes(mm, 0, 1 << 48):
                if pte is not None and mm.vma_at(addr) is None:
                    raise fail(f"process {pid}: pte at {addr:#x} lies outside every vma")
            for r in mm.runs:
                if mm.vma_at(r.start) is None or mm.vma_at(r.end - 1) is None:
                    raise fail(f"process {pid}: linear run {r.start:#x}-{r.end:#x} lies outside vmas")
            tables |= _check_tables(k, pid, mm, fail)
            reserved += mm.run_tables
        for pfn, page in k.phys.memmap.items():
            mc = page._mapcount + 1
            if page._count < 0:
                raise fail(f"page {pfn}: refcount {page._count} is negative")
            if mc != mapped[pfn]:
                raise fail(f"page {pfn}: mapcount {mc} but {mapped[pfn]} ptes map it (as "
                           f"vm_normal_page sees them)")
            if page._count == 0:
                continue
            held = k.held.get(pfn, 0)
            base = 0 if page.owner in ("anon", "kernel") else 1
            if page.owner == "pagecache" and page.mapping is None:
                base = 0
            if page._count != mc + held + base:
                who = f"{page.owner} page" if page.owner else "page"
                raise fail(f"page {pfn}: refcount {page._count} != mapcount {mc} + {held} reference(s) "
                           f"held by callers (gup, alloc_page) + {base} for its owner ({who}): "
                           f"a reference was {'leaked' if page._count > mc + held + base else 'dropped twice'}")
        for pfn, page in k.phys.memmap.items():
            if page.pgtable and page._count > 0 and pfn not in tables:
                raise fail(f"page {pfn} is a page-table page that no process's page tables use: "
                           f"it was leaked (never freed by free_pgtables)")
        zero = k.phys.frames.get(k.zero_pfn)
        if zero is not None and any(zero):
            raise fail(f"the zero page (pfn {k.zero_pfn}) holds non-zero bytes: a write reached the "
                       f"page every process shares for reads of untouched memory (a writable pte "
                       f"on it; vm_mixed_zeropage_allowed in mm/memory.c @ v6.12 exists to stop this)")
        if reserved != k.phys.reserved_pgtables:
            raise fail(f"allocator: {k.phys.reserved_pgtables} page-table pages reserved for linear "
                       f"runs, but the live processes account for {reserved}")
        used = sum(1 for pfn, p in k.phys.memmap.items() if p._count > 0 and pfn < k.phys.ram_pages)
        if used + k.phys.nr_free != k.phys.ram_pages:
            raise fail(f"allocator: {used} pages in use + {k.phys.nr_free} free != "
                       f"{k.phys.ram_pages} RAM pages")


__all__ = ["check"]
