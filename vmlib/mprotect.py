"""mm/mprotect.c: change the protection of a range, vma by vma and pte by pte (kernel-facts §16a).

Follows sys_mprotect(), mprotect_fixup() and change_pte_range() of v2.6.26 (v2.6.25 and v2.6.27
do the same for what is modelled here) and of v6.12, with pte_modify() per arch.

Faithfulness ledger
- exact: the range must be mapped without a hole (-ENOMEM) and each vma must allow the new
  rights by its VM_MAY* bits (-EACCES); vm_flags take the new VM_READ/WRITE/EXEC, vm_page_prot
  is recomputed from them (a driver's own changes to it are lost, as in the kernel; the model
  has no cache bits for x86's pgprot_modify to carry over), and a
  writenotify vma keeps read-only ptes; every present pte is rewritten with pte_modify, which
  keeps the pfn, accessed and dirty, and keeps the special bit exactly where the arch puts it
  in _PAGE_CHG_MASK (profile PTE_CHG_MASK_SPECIAL); 2.6 makes a dirty pte of a writenotify vma
  writable at once (dirty_accountable); 6.12 makes a pte writable at once where
  can_change_pte_writable allows it (an exclusive anonymous page in a private vma, a dirty pte
  in a shared one). PFNMAP and MIXEDMAP vmas are treated like any other: the pfns stay.
- simplified: the whole range is checked before anything changes, so a refused call changes
  nothing (the kernel fixes the vmas before the one it refuses and returns the error after);
  vmas are split but never merged again (vma_merge is left out, as for mmap).
- left out: VM_ACCOUNT commit charging, PROT_GROWSDOWN/UP, READ_IMPLIES_EXEC, the L1TF
  PROT_NONE pfn check of 6.12 (arch_has_pfn_modify_check), mseal, NUMA hinting, uffd-wp,
  soft-dirty, hugetlb.
"""

from __future__ import annotations

import errno

from vmlib import pgtable
from vmlib.errors import KernelError
from vmlib.flags import PAGE_SHIFT, VM_EXEC, VM_READ, VM_SHARED, VM_WRITE, flag_names
from vmlib.mm import split_vma, vm_get_page_prot
from vmlib.pte import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, _PAGE_SPECIAL, Pte
from vmlib.trace import Run, seen

VM_RWX = VM_READ | VM_WRITE | VM_EXEC


def pte_modify(k, pte: Pte, newprot: int) -> Pte:
    """The pte with new protection bits: pfn, accessed and dirty kept, and the special bit kept
    where the arch's _PAGE_CHG_MASK has it (x86 from 2.6.27, s390, powerpc; kernel-facts §16a)."""
    keep = _PAGE_ACCESSED | _PAGE_DIRTY
    if k.profile.PTE_CHG_MASK_SPECIAL:
        keep |= _PAGE_SPECIAL
    return Pte(pte.pfn, (pte.bits & keep) | newprot)


def vma_wants_writenotify(vma) -> bool:
    """A shared writable vma whose driver wants to see the first write to each page (dirty
    accounting): its ptes start read-only (mm/mmap.c vma_wants_writenotify)."""
    f = vma.vm_flags
    return bool(f & VM_SHARED and f & VM_WRITE and vma.vm_ops is not None and vma.vm_ops.writenotify)


def vmas_in_range(mm, start: int, end: int, fn: str) -> list:
    """The vmas covering [start, end) in order; KernelError(-ENOMEM) if part of it is unmapped."""
    out, at = [], start
    while at < end:
        vma = mm.vma_at(at)
        if vma is None:
            raise KernelError(errno.ENOMEM, f"{fn}: [{at:#x}, ...) inside [{start:#x}, {end:#x}) is "
                              f"not mapped → -ENOMEM")
        out.append(vma)
        at = vma.vm_end
    return out


def isolate(k, mm, vma, lo: int, hi: int):
    """Split vma so that [lo, hi) is a vma of its own (split_vma twice); return that vma."""
    if vma.vm_start == lo and vma.vm_end == hi:
        return vma
    pieces = [split_vma(vma, lo, hi)]
    if vma.vm_start < lo:
        pieces.append(split_vma(vma, vma.vm_start, lo))
    if vma.vm_end > hi:
        pieces.append(split_vma(vma, hi, vma.vm_end))
    k._set_vmas(mm, sorted([v for v in mm.vmas if v is not vma] + pieces, key=lambda v: v.vm_start))
    return pieces[0]


def sys_mprotect(k, mm, start: int, end: int, vm_prot: int) -> None:
    """mprotect(start, end - start, prot): check the whole range, then mprotect_fixup each vma.
    KernelError (-ENOMEM for a hole, -EACCES past VM_MAY*) before anything changes."""
    vmas = vmas_in_range(mm, start, end, "sys_mprotect")
    for vma in vmas:
        newflags = vm_prot | (vma.vm_flags & ~VM_RWX)
        missing = newflags & ~(newflags >> 4) & VM_RWX          # VM_MAY* sit 4 bits above VM_*
        if missing:
            lacks = flag_names(missing << 4)
            k.decide("sys_mprotect", f"vma {vma.vm_start:#x}-{vma.vm_end:#x} lacks {lacks} → -EACCES",
                     "§16a row 1", seen(vma, flags=missing << 4))
            raise KernelError(errno.EACCES, f"mprotect: the vma {vma.vm_start:#x}-{vma.vm_end:#x} lacks "
                              f"{lacks} (e.g. a shared mapping of a file opened read-only), so it may "
                              f"not become {flag_names(vm_prot) if vm_prot else 'PROT_NONE'} → -EACCES")
    for vma in vmas:
        lo, hi = max(start, vma.vm_start), min(end, vma.vm_end)
        mprotect_fixup(k, mm, mm.vma_at(lo), lo, hi, vm_prot | (vma.vm_flags & ~VM_RWX))


def mprotect_fixup(k, mm, vma, lo: int, hi: int, newflags: int) -> None:
    """Give [lo, hi) of vma the flags newflags: split, set vm_flags and vm_page_prot, rewrite
    the ptes (change_protection)."""
    fn = "mprotect_fixup"
    with k.call(fn, f"{lo:#x}-{hi:#x} → {flag_names(newflags & VM_RWX) if newflags & VM_RWX else 'PROT_NONE'}"):
        if newflags == vma.vm_flags:
            k.decide(fn, "vm_flags unchanged → nothing to do", "§16a row 1", seen(vma, flags=VM_RWX))
            return
        vma = isolate(k, mm, vma, lo, hi)
        vma.vm_flags = newflags
        prot = vm_get_page_prot(newflags)
        wants_notify = vma_wants_writenotify(vma)
        if wants_notify:
            prot &= ~_PAGE_RW
        vma.vm_page_prot = prot
        k.decide(fn, f"vm_flags := {flag_names(newflags)}; vm_page_prot recomputed"
                 f"{' without the write bit (writenotify)' if wants_notify else ''}", "§16a row 2")
        if k.profile.MODERN:
            upgrade = bool(newflags & VM_WRITE) and (wants_notify if newflags & VM_SHARED else True)
            change_protection(k, vma, lo, hi, prot, dirty_accountable=False, try_writable=upgrade)
        else:
            change_protection(k, vma, lo, hi, prot, dirty_accountable=wants_notify, try_writable=False)


def can_change_pte_writable(k, vma, addr: int, pte: Pte) -> bool:
    """6.12: may mprotect make this pte writable without a write fault? (kernel-facts §16a row 5)"""
    if not vma.vm_flags & VM_WRITE or not pte.bits & _PAGE_PRESENT:
        return False
    if not vma.vm_flags & VM_SHARED:
        page = k.ops.vm_normal_page(k, vma, addr, pte)
        return page is not None and page.anon and page.exclusive
    return pte.dirty


def change_protection(k, vma, lo: int, hi: int, newprot: int, dirty_accountable: bool,
                      try_writable: bool) -> None:
    """change_pte_range over [lo, hi): pte_modify every present pte, then the write upgrades."""
    mm = vma.vm_mm
    fn = "change_pte_range"
    for addr, pte in pgtable.explicit_ptes(mm, lo, hi):
        if pte is None:
            continue
        new = _new_pte(k, vma, addr, pte, newprot, dirty_accountable, try_writable)
        if new != pte:
            k._set_pte(mm, addr, new, fn)
    runs = [r for r in mm.runs if r.start < hi and lo < r.end]
    if runs:
        _change_runs(k, vma, runs, lo, hi, newprot, dirty_accountable, try_writable)


def _new_pte(k, vma, addr: int, pte: Pte, newprot: int, dirty_accountable: bool,
             try_writable: bool) -> Pte:
    fn = "change_pte_range"
    new = pte_modify(k, pte, newprot)
    if pte.special and not new.special:
        k.decide(fn, f"{addr:#x}: pte_modify dropped the special bit (it is not in _PAGE_CHG_MASK): "
                 f"pfn {pte.pfn} now looks like a normal page", "§16a row 3", seen(vma, addr, pte.pfn))
    elif pte.special:
        k.decide(fn, f"{addr:#x}: pte_modify keeps pfn {pte.pfn} and the special bit (_PAGE_CHG_MASK)",
                 "§16a row 3", seen(vma, addr, pte.pfn))
    if dirty_accountable and new.dirty and not new.write:
        new = Pte(new.pfn, new.bits | _PAGE_RW)
        k.decide(fn, f"{addr:#x}: dirty pte of a writenotify vma → writable at once "
                 f"(dirty_accountable)", "§16a row 4", seen(vma, addr, pte.pfn))
    if try_writable and not new.write and can_change_pte_writable(k, vma, addr, new):
        new = Pte(new.pfn, new.bits | _PAGE_RW)
        why = "dirty pte in a shared vma" if vma.vm_flags & VM_SHARED else "PageAnonExclusive page"
        k.decide(fn, f"{addr:#x}: can_change_pte_writable ({why}) → writable without a fault",
                 "§16a row 5", seen(vma, addr, pte.pfn, flags=VM_WRITE | VM_SHARED))
    return new


def _change_runs(k, vma, runs, lo: int, hi: int, newprot: int, dirty_accountable: bool,
                 try_writable: bool) -> None:
    """The linear runs of remap_pfn_range inside [lo, hi) get the new bits. Every pte of a run
    is a raw pfn with the same bits, so the per-pte rules give the same answer for each and
    are asked once, at the run's first address."""
    mm = vma.vm_mm
    out = [r for r in mm.runs if r not in runs]
    for r in runs:
        a, b = max(r.start, lo), min(r.end, hi)
        if r.start < a:
            out.append(Run(r.start, a, r.pfn0, r.bits))
        if b < r.end:
            out.append(Run(b, r.end, r.pfn0 + ((b - r.start) >> PAGE_SHIFT), r.bits))
        pfn = r.pfn0 + ((a - r.start) >> PAGE_SHIFT)
        new = _new_pte(k, vma, a, Pte(pfn, r.bits), newprot, dirty_accountable, try_writable)
        out.append(Run(a, b, pfn, new.bits))
        k.decide("change_pte_range", f"linear run [{a:#x}, {b:#x}): every pte rewritten by pte_modify "
                 f"({Pte(0, r.bits).flags_str()} → {new.flags_str()})", "§16a row 3", seen(vma, a, pfn))
    k._set_runs(mm, tuple(sorted(out)))
