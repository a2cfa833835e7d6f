"""A framebuffer-like driver: a shared VM_PFNMAP filled on demand with raw pfns.

From 2.6.27 it fills ptes with vm_insert_pfn from ->fault. Up to 2.6.26 __do_fault refused
VM_PFNMAP vmas (a BUG_ON), so on those kernels the same driver uses the legacy ->nopfn hook,
whose ptes are never marked special.

Its memory is either RAM the driver allocated (which must not be refcounted through the
mapping: the driver owns it) or device memory without struct pages. Private mappings are
refused: vm_insert_pfn cannot go into a COW PFNMAP (kernel-facts §5a).
"""

from __future__ import annotations

import errno

from vmlib.errors import KernelError
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


class FbDev(Driver):
    name = "fb0"

    def __init__(self, k, npages: int, backing="ram"):
        if not isinstance(npages, int) or npages <= 0:
            raise ValueError(f"FbDev: npages must be a positive int, got {npages!r}")
        if backing == "ram":
            self.pfns = [k.alloc_page().pfn for _ in range(npages)]
        else:
            if npages > backing.npages:
                raise ValueError(f"FbDev: {npages} pages do not fit in {backing!r}")
            self.pfns = list(range(backing.start_pfn, backing.start_pfn + npages))
        self.backing = backing
        if k.profile.version in ("2.6.25", "2.6.26"):
            self.fault = None                 # up to 2.6.26: ->nopfn, not ->fault

    def nopfn(self, k, vma, address: int) -> int:
        pgoff = vma.linear_pgoff(address)
        if pgoff >= len(self.pfns):
            return NOPFN_SIGBUS
        return self.pfns[pgoff]

    def mmap(self, k, vma) -> int:
        if not vma.vm_flags & VM_SHARED:
            return -errno.EINVAL          # a private mapping would be a COW PFNMAP
        if self.fault is None and k.profile.HAVE_PTE_SPECIAL:
            raise KernelError(errno.EINVAL,
                              f"fbdev: on {k.profile.name} this driver would fill ptes through ->nopfn, "
                              "whose ptes are not marked special, while vm_normal_page on this arch "
                              "trusts only the special bit: the driver's pages would be refcounted "
                              "through the mapping. No 2.6.26 driver combined the two; ->fault with "
                              "vm_insert_pfn replaced ->nopfn in 2.6.27")
        vma.vm_flags |= VM_PFNMAP | VM_IO | (0 if k.profile.MODERN else VM_RESERVED)
        return 0

    def fault(self, k, vma, vmf) -> int:
        if vmf.pgoff >= len(self.pfns):
            return VM_FAULT_SIGBUS
        err = k.vm_insert_pfn(vma, vmf.address, self.pfns[vmf.pgoff])
        if err == -errno.ENOMEM:
            return VM_FAULT_OOM
        return VM_FAULT_NOPAGE
