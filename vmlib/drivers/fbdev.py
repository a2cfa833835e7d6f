"""FbDev: a device whose shared VM_PFNMAP mapping is filled on demand, pfn by pfn.

Despite the name (kept because the lessons use it) this is not how the real framebuffer maps:
v2.6.26 fb_mmap (drivers/video/fbmem.c) remaps the whole framebuffer at mmap time with
io_remap_pfn_range and accepts MAP_PRIVATE, like DevMem here. FbDev follows instead the
drivers of 2008 that filled a VM_PFNMAP at fault time: mspec (drivers/char/mspec.c, SGI
uncached memory) and spufs (Cell SPU local store). Like them it refuses private mappings
(-EINVAL): vm_insert_pfn BUGs on a COW PFNMAP, because a raw pfn inserted anywhere would break
the linear rule vm_normal_page relies on (kernel-facts §5a).

How it fills a pte, by version (§5a):
- 2.6.25: __do_fault BUGs on a VM_PFNMAP vma, so the driver hands out pfns through ->nopfn;
  do_no_pfn installs them with a plain pfn_pte.
- 2.6.26 on: ->fault calls vm_insert_pfn and returns VM_FAULT_NOPAGE (42172d751b allowed
  ->fault on PFNMAP in 2.6.26); the pte is special where the arch has the bit (s390 in 2.6.26).
  2.6.26 still had ->nopfn, and mspec and spufs kept using it until 2.6.27 converted them and
  removed the hook; this driver takes the ->fault route wherever the kernel allows it.
- 6.12: the same through vmf_insert_pfn.

Its memory is either RAM the driver allocated (which must not be refcounted through the
mapping: the driver owns it) or device memory without struct pages.
"""

from __future__ import annotations

import errno

from vmlib.flags import (
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_IO,
    VM_PFNMAP,
    VM_RESERVED,
    VM_SHARED,
)
from vmlib.memory import NOPFN_SIGBUS
from vmlib.mm import Driver
from vmlib.trace import seen


class FbDev(Driver):
    """`FbDev(k, npages)` on driver-owned RAM, or `FbDev(k, npages, backing=dev)` on device memory."""

    name = "fb0"

    def __init__(self, k, npages: int, backing="ram"):
        if not isinstance(npages, int) or isinstance(npages, bool) or npages <= 0:
            raise ValueError(f"FbDev: npages must be a positive int, got {npages!r}")
        if backing != "ram" and not hasattr(backing, "start_pfn"):
            raise TypeError(f"FbDev: backing is 'ram' or a DeviceMemory from k.add_device_memory(), "
                            f"got {backing!r}")
        if backing != "ram" and npages > backing.npages:
            raise ValueError(f"FbDev: {npages} pages do not fit in {backing!r}")
        if backing == "ram":
            self.pfns = [k.alloc_page().pfn for _ in range(npages)]
        else:
            self.pfns = list(range(backing.start_pfn, backing.start_pfn + npages))
        self.backing = backing
        if not k.profile.PFNMAP_FAULT:
            self.fault = None                 # 2.6.25: ->nopfn, since __do_fault BUGs on PFNMAP

    def nopfn(self, k, vma, address: int) -> int:
        """->nopfn (2.6.25 only here): the pfn for address, or NOPFN_SIGBUS past the end."""
        pgoff = vma.linear_pgoff(address)
        if pgoff >= len(self.pfns):
            return NOPFN_SIGBUS
        return self.pfns[pgoff]

    def mmap(self, k, vma) -> int:
        """Refuse private mappings as mspec_mmap and spufs do; mark the vma VM_PFNMAP|VM_IO."""
        if not vma.vm_flags & VM_SHARED:
            k.decide("fbdev_mmap", "private mapping refused with -EINVAL (as mspec and spufs do): "
                     "vm_insert_pfn cannot go into a COW PFNMAP", "§5a", seen(vma, flags=VM_SHARED))
            return -errno.EINVAL
        vma.vm_flags |= VM_PFNMAP | VM_IO | (0 if k.profile.MODERN else VM_RESERVED)
        return 0

    def fault(self, k, vma, vmf) -> int:
        """->fault (2.6.26 on): vm_insert_pfn of pfns[pgoff], then VM_FAULT_NOPAGE."""
        if vmf.pgoff >= len(self.pfns):
            return VM_FAULT_SIGBUS
        if k.profile.MODERN:
            return k.vmf_insert_pfn(vma, vmf.address, self.pfns[vmf.pgoff])
        err = k.vm_insert_pfn(vma, vmf.address, self.pfns[vmf.pgoff])
        if err == -errno.ENOMEM:
            return VM_FAULT_OOM
        return VM_FAULT_NOPAGE
