"""/dev/mem: mmap offset = pfn * PAGE_SIZE; the whole vma is remapped at mmap time.

Follows drivers/char/mem.c mmap_mem(), v2.6.26: remap_pfn_range over the vma, with the
offset as the first pfn; -EAGAIN if the remap fails. Unlike the kernel (which trusts
range_is_allowed and the memory map) the model refuses ranges where no memory answers.
"""

from __future__ import annotations

import errno

from vmlib.errors import KernelError
from vmlib.mm import Driver


class DevMem(Driver):
    name = "/dev/mem"

    def mmap(self, k, vma) -> int:
        pfn, n = vma.vm_pgoff, vma.npages
        ram = all(k.pfn_valid(p) for p in (pfn, pfn + n - 1))
        dev = k.phys.device_of(pfn)
        if not ram and not (dev is not None and pfn + n <= dev.end_pfn):
            raise KernelError(errno.EINVAL, f"mmap_mem: pfns {pfn}..{pfn + n - 1} are not all RAM "
                              f"and not inside one device (past a device's end?)")
        if k.remap_pfn_range(vma, vma.vm_start, pfn, n << 12, vma.vm_page_prot):
            return -errno.EAGAIN
        return 0
