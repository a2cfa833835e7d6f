"""get_user_pages and the lockless get_user_pages_fast (kernel-facts §9).

Follows mm/memory.c get_user_pages()/follow_page(), v2.6.26; arch/x86/mm/gup.c
get_user_pages_fast(), v2.6.27; mm/gup.c __get_user_pages()/gup_fast_pte_range(), v6.12.

Faithfulness ledger
- exact: the slow path refuses VM_IO/VM_PFNMAP vmas and unwritable or unreadable ones with
  -EFAULT; follow_page faults in missing or read-only ptes and retries; a pte that
  vm_normal_page calls special gives -EFAULT (2.6.26) or -EEXIST (6.12); FOLL_ANON (a read of
  an anonymous-like vma before 6.12) hands out the ZERO_PAGE without mapping it: where no page
  table exists (2.6.25), or also where the pte is none (2.6.26 and 2.6.27, 89f5b7da2a). There
  is no get_user_pages_fast before 2.6.27: on those profiles the call stands for what callers
  did, down_read(mmap_sem) and get_user_pages, and the trace says so. The fast path, where the
  profile has one, walks ptes without the vma and stops at the first pte that is absent,
  read-only for a write, or special; the rest go to the slow path; pages already taken are
  kept, and a failing slow path returns the partial list. FOLL_PIN adds GUP_PIN_COUNTING_BIAS
  (1024) on 6.12.
- simplified: no FOLL_FORCE, no hugetlb, no long-term pin unsharing, no interrupts to disable.
"""

from __future__ import annotations

import errno

from vmlib import pgtable
from vmlib.errors import KernelError, MissingFeature
from vmlib.flags import (
    PAGE_SHIFT,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_IO,
    VM_LOCKED,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from vmlib.memory import handle_mm_fault
from vmlib.trace import seen

GUP_PIN_COUNTING_BIAS = 1024


def gup_fast_pte_ok(k, pte, write: bool) -> bool:
    """May the lockless walk take a reference on the page behind this pte? (§9b)"""
    return pte is not None and pte.present and (pte.write or not write) and not pte.special


def _grab(k, page, pin: bool, why: str) -> None:
    """FOLL_GET: +1 reference; FOLL_PIN: +GUP_PIN_COUNTING_BIAS (never on the zero page)."""
    n = 1
    if pin:
        if k.is_zero_pfn(page.pfn):
            return
        n = GUP_PIN_COUNTING_BIAS
    for _ in range(n):
        k._get_page(page, why)
    k._hold(page, n)


def foll_anon(k, vma, write: bool) -> bool:
    """Does get_user_pages pass FOLL_ANON for this vma? (mm/memory.c get_user_pages, v2.6.25;
    use_zero_page(), v2.6.26/v2.6.27, which also excludes VM_SHARED, 672ca28e30). A read of a
    vma without a ->fault handler (nor, on 2.6.26, a ->nopfn one) that is not VM_LOCKED;
    6.12 has no FOLL_ANON (kernel-facts §9b rows 11 and 14)."""
    if k.profile.MODERN or write:
        return False
    ops = vma.vm_ops
    if ops is not None and (ops.fault is not None or k.profile.USE_ZERO_PAGE and k.profile.HAVE_NOPFN
                            and getattr(ops, "nopfn", None) is not None):
        return False
    excluded = VM_LOCKED | (VM_SHARED if k.profile.USE_ZERO_PAGE else 0)
    return not vma.vm_flags & excluded


def follow_page(k, vma, addr: int, write: bool, pin: bool):
    """The page at addr with a reference taken, None if a fault is needed, or -errno.

    Follows mm/memory.c follow_page(), v2.6.25 / v2.6.26 / v2.6.27, and mm/gup.c
    follow_page_pte(), v6.12 (kernel-facts §9b)."""
    pte = pgtable.lookup(vma.vm_mm, addr)
    modern = k.profile.MODERN
    if pte is None:
        no_table = pgtable.pte_table(vma.vm_mm.pgd, addr) is None       # pte table absent
        if foll_anon(k, vma, write) and (no_table or k.profile.FOLL_ANON_PTE_NONE):
            where = "no page table" if no_table else "none pte"
            k.decide("follow_page", f"{addr:#x}: {where}, read with FOLL_ANON → the ZERO_PAGE with a "
                     f"reference, not mapped; nothing is faulted in", "§9b zero pfn (2.6.26)",
                     seen(vma, addr, flags=VM_LOCKED | VM_SHARED))
            _grab(k, k.zero_page, pin, "follow_page")
            return k.zero_page
        return None
    if write and not pte.write:
        return None
    page = k.ops.vm_normal_page(k, vma, addr, pte)
    if page is None:
        if modern and k.is_zero_pfn(pte.pfn):
            k.decide("follow_page_pte", f"{addr:#x}: zero page" +
                     (" (FOLL_PIN does not pin it)" if pin else " (+1 ref)"), "§9b zero pfn",
                     seen(vma, addr, pte.pfn))
            _grab(k, k.zero_page, pin, "follow_page_pte")
            return k.zero_page
        err = -errno.EEXIST if modern else -errno.EFAULT
        k.decide("follow_page", f"{addr:#x}: vm_normal_page says special (pfn {pte.pfn}) → "
                 f"{'-EEXIST' if modern else '-EFAULT'}", "§9b VM_MIXEDMAP special", seen(vma, addr, pte.pfn))
        return err
    _grab(k, page, pin, "follow_page")
    k.decide("follow_page", f"{addr:#x}: page {page.pfn} " + ("pinned (+1024)" if pin else "+1 ref"),
             "§9b normal page", seen(vma, addr, page.pfn))
    return page


def get_user_pages(k, mm, start: int, nr: int, write: bool, pin: bool = False) -> list:
    """The slow path: pages of [start, start + nr pages) with a reference each (§9b)."""
    pages: list = []
    with k.call("get_user_pages", f"{start:#x}, {nr} pages, {'write' if write else 'read'}"):
        for i in range(nr):
            addr = start + (i << PAGE_SHIFT)
            vma = mm.find_vma(addr)
            err = 0
            if vma is None or addr < vma.vm_start:
                err = -errno.EFAULT
                k.decide("get_user_pages", f"{addr:#x}: no vma → -EFAULT", "§9b")
            elif vma.vm_flags & (VM_IO | VM_PFNMAP):
                err = -errno.EFAULT
                k.decide("get_user_pages", f"{addr:#x}: vma has VM_IO or VM_PFNMAP → -EFAULT",
                         "§9b VM_IO/VM_PFNMAP", seen(vma, flags=VM_IO | VM_PFNMAP))
            elif not vma.vm_flags & (VM_WRITE if write else VM_READ):
                err = -errno.EFAULT
                k.decide("get_user_pages", f"{addr:#x}: vma not {'writable' if write else 'readable'} "
                         "→ -EFAULT", "§9b", seen(vma, flags=VM_WRITE if write else VM_READ))
            else:
                for _attempt in range(4):
                    got = follow_page(k, vma, addr, write, pin)
                    if got is not None:
                        break
                    code = handle_mm_fault(k, vma, addr, write)
                    if code & VM_FAULT_OOM:
                        got = -errno.ENOMEM
                        break
                    if code & VM_FAULT_SIGBUS:
                        got = -errno.EFAULT
                        break
                if isinstance(got, int):
                    err = got
                else:
                    pages.append(got)
            if err:
                if pages:
                    k.decide("get_user_pages", f"stopped at {addr:#x}: returns the {len(pages)} pages "
                             "already taken", "§9b", seen(vma, addr) if vma is not None and addr >= vma.vm_start else seen())
                    return pages
                raise KernelError(err, f"get_user_pages: page at {addr:#x} cannot be taken")
    return pages


def get_user_pages_fast(k, mm, start: int, nr: int, write: bool) -> list:
    """Lockless walk where the profile has one; falls back to get_user_pages (§9)."""
    prof = k.profile
    if not prof.HAVE_GUP_FAST_API:
        with k.call("down_read(mmap_sem); get_user_pages",
                    f"{start:#x}, {nr} pages, {'write' if write else 'read'}"):
            k.decide("get_user_pages_fast", f"{prof.version} has no get_user_pages_fast (it arrived "
                     "in 2.6.27): a caller took down_read(&mm->mmap_sem) and called get_user_pages, "
                     "which is what runs here", "§9c")
            return get_user_pages(k, mm, start, nr, write)
    with k.call("get_user_pages_fast", f"{start:#x}, {nr} pages, {'write' if write else 'read'}"):
        if not prof.HAVE_GUP_FAST:
            why = ("the generic get_user_pages_fast (912985dce4) is get_user_pages under mmap_sem"
                   if not prof.MODERN else "without pte_special the pte-level fast walk takes nothing")
            k.decide("get_user_pages_fast", f"no lockless walk on {prof.name}: {why}", "§9c")
            return get_user_pages(k, mm, start, nr, write)
        pages: list = []
        for i in range(nr):
            addr = start + (i << PAGE_SHIFT)
            pte = pgtable.lookup(mm, addr)
            if not k.ops.gup_fast_pte_ok(k, pte, write):
                why = ("no pte" if pte is None else "pte is special: no vma to ask, so no struct "
                       "page may be touched" if pte.special else "pte is read-only for a write")
                k.decide("gup_pte_range", f"{addr:#x}: {why} → fall back to the slow path for "
                         f"{nr - i} page(s)", "§9b fast path", seen(mm=mm, addr=addr, pfn=pte.pfn if pte else None))
                try:
                    rest = get_user_pages(k, mm, addr, nr - i, write)
                except KernelError:
                    if pages:
                        return pages
                    raise
                return pages + rest
            if not k.pfn_valid(pte.pfn):
                k.decide("gup_pte_range", f"{addr:#x}: normal pte to pfn {pte.pfn} without a struct "
                         "page: the lockless walk would touch a struct page that does not exist",
                         "§9a", seen(mm=mm, addr=addr, pfn=pte.pfn))
            page = k.pfn_to_page(pte.pfn)
            k._get_page(page, "gup_pte_range")
            k._hold(page, 1)
            k.decide("gup_pte_range", f"{addr:#x}: page {page.pfn} +1 ref, no lock taken",
                     "§9b fast path", seen(mm=mm, addr=addr, pfn=page.pfn))
            pages.append(page)
        return pages


def pin_user_pages(k, mm, start: int, nr: int, write: bool) -> list:
    """FOLL_PIN (6.12 only): each page gains GUP_PIN_COUNTING_BIAS references."""
    if not k.profile.MODERN:
        raise MissingFeature("pin_user_pages: there is no FOLL_PIN in 2.6.x (v6.12 has it); choose version='6.12'")
    return get_user_pages(k, mm, start, nr, write, pin=True)


def unpin_user_page(k, page) -> None:
    """Release one FOLL_PIN: GUP_PIN_COUNTING_BIAS references; the zero page is never pinned.

    Follows mm/gup.c unpin_user_page()/gup_put_folio(), v6.12 (small folios only)."""
    if not k.profile.MODERN:
        raise MissingFeature("unpin_user_page: there is no FOLL_PIN in 2.6.x (v6.12 has it); choose version='6.12' "
                             "(before it, a get_user_pages reference is released with k.put_page)")
    if k.is_zero_pfn(page.pfn):
        k.decide("unpin_user_page", "the zero page: never pinned, nothing to release", "§9b", seen(pfn=page.pfn))
        return
    if k.held.get(page.pfn, 0) < GUP_PIN_COUNTING_BIAS:
        raise ValueError(f"unpin_user_page: page {page.pfn} is not pinned (callers hold "
                         f"{k.held.get(page.pfn, 0)} reference(s), a pin is {GUP_PIN_COUNTING_BIAS}); "
                         f"release a get_user_pages reference with k.put_page")
    for _ in range(GUP_PIN_COUNTING_BIAS):
        k._put_page(page, "unpin_user_page")
    k._hold(page, -GUP_PIN_COUNTING_BIAS)
    k.decide("unpin_user_page", f"page {page.pfn}: -{GUP_PIN_COUNTING_BIAS} references "
             f"(refcount {page._count})", "§9b", seen(pfn=page.pfn))
