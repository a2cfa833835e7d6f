"""mm/madvise.c, MADV_DONTNEED: drop the ptes of a range (kernel-facts §16b).

Follows sys_madvise() and madvise_dontneed() of v2.6.26 (v2.6.25 and v2.6.27 refuse the same
flags) and madvise_dontneed_free() / madvise_dontneed_free_valid_vma() of v6.12.

Faithfulness ledger
- exact: which vmas are refused with -EINVAL (2.6: VM_LOCKED, VM_HUGETLB or VM_PFNMAP; 6.12:
  VM_PFNMAP or VM_LOCKED; VM_IO alone is not refused by either); an unmapped part of the range
  is -ENOMEM; the zap is zap_page_range (§8): a pte that vm_normal_page calls normal drops its
  reference, mapcount and rss, a special or raw pte is only cleared. So a VM_MIXEDMAP vma is
  zapped and refaults from its driver; a private mapping loses its COWed copies and reads the
  file (or zeroes) again.
- simplified: the whole range is checked before anything changes, so a refused call changes
  nothing; the kernel zaps the vmas before a refused one and skips holes, returning the error
  at the end.
- left out: the other advice values, hugetlb alignment, userfaultfd, mseal.
"""

from __future__ import annotations

import errno

from vmlib import memory
from vmlib.errors import KernelError
from vmlib.flags import VM_HUGETLB, VM_LOCKED, VM_PFNMAP, flag_names
from vmlib.mprotect import vmas_in_range
from vmlib.trace import seen


def dontneed_forbidden(k) -> int:
    """The vm_flags that make MADV_DONTNEED refuse a vma with -EINVAL, per version."""
    if k.profile.MODERN:
        return VM_PFNMAP | VM_LOCKED          # hugetlb is allowed on 6.12 (huge-page aligned)
    return VM_LOCKED | VM_HUGETLB | VM_PFNMAP


def sys_madvise_dontneed(k, mm, start: int, end: int) -> None:
    """madvise(start, end - start, MADV_DONTNEED): refuse (-EINVAL, -ENOMEM) before anything
    changes, then zap each vma's part of the range."""
    fn = "madvise_dontneed"
    vmas = vmas_in_range(mm, start, end, "sys_madvise")
    row = "§16b row 2" if k.profile.MODERN else "§16b row 1"
    for vma in vmas:
        bad = vma.vm_flags & dontneed_forbidden(k)
        if bad:
            k.decide(fn, f"vma {vma.vm_start:#x}-{vma.vm_end:#x} has {flag_names(bad)} → -EINVAL", row,
                     seen(vma, flags=dontneed_forbidden(k)))
            raise KernelError(errno.EINVAL, f"madvise(MADV_DONTNEED): the vma {vma.vm_start:#x}-"
                              f"{vma.vm_end:#x} has {flag_names(bad)}, which {k.version} refuses "
                              f"→ -EINVAL (kernel-facts {row})")
    for vma in vmas:
        lo, hi = max(start, vma.vm_start), min(end, vma.vm_end)
        with k.call(fn, f"{lo:#x}-{hi:#x}"):
            k.decide(fn, f"{flag_names(vma.vm_flags)}: allowed → zap_page_range; normal pages lose "
                     f"their reference, special ptes are only cleared", row, seen(vma, flags=dontneed_forbidden(k)))
            memory.zap_page_range(k, vma, lo, hi)
