"""mm/mremap.c: grow, shrink or move a mapping (kernel-facts §16c).

Follows do_mremap() and move_vma() of v2.6.26 (v2.6.25 and v2.6.27 are the same for what is
modelled here) and the mremap system call, mremap_to(), vma_to_resize() and move_vma() of v6.12.

Faithfulness ledger
- exact: shrinking unmaps the tail (do_munmap); growing a VM_PFNMAP or VM_DONTEXPAND vma is
  -EFAULT, as is a range that is not inside one vma; a vma that ends at addr + old_len grows
  in place when the addresses above are free; otherwise, with may_move, it moves to a free
  area (or to new_addr, MREMAP_FIXED, after unmapping what was there): the new vma gets
  vm_pgoff advanced by the offset of addr in the old one, so the linear rule of a PFNMAP still
  holds, and move_page_tables moves every pte as it is (no reference, mapcount or rss changes);
  without may_move it is -ENOMEM. 6.12 looks the vma up first, so even a shrink of an address
  that no vma contains is -EFAULT (2.6 just unmaps nothing and returns the address).
- simplified: a refused call changes nothing (the kernel may already have unmapped the
  MREMAP_FIXED target or the tail); argument errors the kernel reports as -EINVAL (misaligned
  addresses, a zero new length, new_addr without may_move, overlapping ranges) are ValueError.
- left out: old_len 0 (duplicating a shared mapping), MREMAP_DONTUNMAP, VM_LOCKED and
  VM_ACCOUNT limits, hugetlb, vma merging, the driver's ->mremap hook.
"""

from __future__ import annotations

import errno

from vmlib import pgtable
from vmlib.errors import KernelError
from vmlib.flags import PAGE_SHIFT, VM_DONTEXPAND, VM_PFNMAP, flag_names
from vmlib.mm import VmArea
from vmlib.trace import NOTHING_SEEN, Run, Seen, seen


def _efault(k, why: str, row: str, fn: str, looked: Seen = NOTHING_SEEN):
    k.decide(fn, f"{why} → -EFAULT", row, looked)
    return KernelError(errno.EFAULT, f"mremap: {why} → -EFAULT (kernel-facts {row})")


def do_mremap(proc, addr: int, old_len: int, new_len: int, may_move: bool, new_addr) -> int:
    """The mremap system call of the kernel's version; returns the (new) address."""
    k, mm = proc.kernel, proc.mm
    modern = k.profile.MODERN
    fn = "mremap" if modern else "do_mremap"
    fixed = new_addr is not None
    vma = None
    if modern:
        vma = mm.vma_at(addr)
        if vma is None:
            raise _efault(k, f"no vma contains {addr:#x} (vma_lookup)", "§16c row 4", fn)
    if fixed:
        proc._do_munmap(new_addr, new_len)
        k.decide(fn, f"MREMAP_FIXED: [{new_addr:#x}, {new_addr + new_len:#x}) unmapped first", "§16c row 3")
    if old_len >= new_len:
        if old_len > new_len:
            proc._do_munmap(addr + new_len, old_len - new_len)
            k.decide(fn, f"shrink: the tail [{addr + new_len:#x}, {addr + old_len:#x}) unmapped",
                     "§16c row 1")
        if not fixed or new_addr == addr:
            return addr
        old_len = new_len
    vma = mm.vma_at(addr)
    if vma is None:
        raise _efault(k, f"no vma contains {addr:#x}", "§16c row 2", fn)
    if old_len > vma.vm_end - addr:
        raise _efault(k, f"[{addr:#x}, {addr + old_len:#x}) runs past the end of its vma", "§16c row 2", fn,
                      seen(vma, bounds=True))
    if new_len > old_len and vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        what = flag_names(vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP))
        raise _efault(k, f"growing a vma with {what}", "§16c row 2",
                      "vma_to_resize" if modern else fn, seen(vma, flags=VM_DONTEXPAND | VM_PFNMAP))
    if old_len == vma.vm_end - addr and not (fixed and new_addr != addr) and new_len > old_len:
        nxt = mm.find_vma(vma.vm_end)
        limit = nxt.vm_start if nxt is not None else _task_size()
        if limit - addr >= new_len:
            vma.vm_end = addr + new_len
            k.decide(fn, f"grown in place to {addr + new_len:#x} (the addresses above are free)",
                     "§16c row 3", seen(vma, bounds=True))
            return addr
    if not may_move:
        k.decide(fn, "cannot grow in place and MREMAP_MAYMOVE is not given → -ENOMEM", "§16c row 3",
                 seen(vma, bounds=True))
        raise KernelError(errno.ENOMEM, f"mremap: [{addr:#x}, {addr + new_len:#x}) cannot grow in place "
                          f"(another vma is in the way) and may_move=False → -ENOMEM")
    if not fixed:
        new_addr = proc._get_unmapped_area(new_len)
    return move_vma(k, vma, addr, old_len, new_len, new_addr, proc)


def _task_size() -> int:
    """TASK_SIZE (imported late: vmlib.process imports this module)."""
    from vmlib.process import TASK_SIZE
    return TASK_SIZE


def move_vma(k, vma, old_addr: int, old_len: int, new_len: int, new_addr: int, proc) -> int:
    """A new vma at new_addr with vm_pgoff advanced along the old one, the ptes moved there
    (move_page_tables), then the old range unmapped; returns new_addr."""
    mm = vma.vm_mm
    with k.call("move_vma", f"{old_addr:#x} → {new_addr:#x}"):
        pgoff = vma.vm_pgoff + ((old_addr - vma.vm_start) >> PAGE_SHIFT)
        new = VmArea(mm, new_addr, new_addr + new_len, vma.vm_flags, pgoff, vma.vm_file, vma.name)
        new.__dict__["vm_page_prot"] = vma.vm_page_prot
        new.__dict__["anon_vma"] = vma.anon_vma
        new.__dict__["vm_private_data"] = vma.vm_private_data
        k._insert_vma(mm, new)
        k.decide("copy_vma", f"new vma {new_addr:#x}-{new_addr + new_len:#x}, vm_pgoff {pgoff:#x} "
                 f"(the old vm_pgoff + the offset of {old_addr:#x}: the linear rule moves with it)",
                 "§16c row 5", seen(vma, bounds=True))
        move_page_tables(k, mm, old_addr, new_addr, old_len)
        proc._do_munmap(old_addr, old_len)
        return new_addr


def move_page_tables(k, mm, old_addr: int, new_addr: int, length: int) -> None:
    """Move every pte of [old_addr, old_addr + length) to the same offset from new_addr, as it
    is: pfn, bits and special bit unchanged, no count touched (move_ptes)."""
    end = old_addr + length
    delta = new_addr - old_addr
    with k.call("move_page_tables", f"{length >> PAGE_SHIFT} pages"):
        runs = [r for r in mm.runs if r.start < end and old_addr < r.end]
        if runs:
            moved = []
            for r in runs:
                lo, hi = max(r.start, old_addr), min(r.end, end)
                moved.append(Run(lo + delta, hi + delta, r.pfn0 + ((lo - r.start) >> PAGE_SHIFT), r.bits))
            k._set_runs(mm, tuple(sorted(pgtable.trim_runs(mm.runs, old_addr, end) + tuple(moved))))
        n = 0
        for addr, pte in pgtable.explicit_ptes(mm, old_addr, end):
            k._set_pte(mm, addr + delta, pte, "move_ptes")
            k._set_pte(mm, addr, None, "move_ptes")
            n += pte is not None
        k._free_empty_tables(mm)
        k.decide("move_page_tables", f"{n} pte(s){' and linear runs' if runs else ''} moved by "
                 f"{delta:+#x}: same pfns and bits, no refcount, mapcount or rss change", "§16c row 5")
