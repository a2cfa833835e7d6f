"""Test drivers and small helpers shared by the core tests.

Each driver is a plain vmlib.Driver built only on the public API (DESIGN.md §3):
RemapDriver (PFNMAP by remap_pfn_range in mmap), PfnFaultDriver (shared PFNMAP filled by
vm_insert_pfn from fault), MixedDriver (VM_MIXEDMAP filled by vm_insert_mixed from fault),
PageDriver (fault returns vmf.page) and InsertPageDriver (vm_insert_page from fault).
"""

from __future__ import annotations

import errno

import pytest

import vmlib
from vmlib import PAGE_SIZE, VM_FAULT_NOPAGE, VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_IO, VM_MIXEDMAP, VM_PFNMAP

PROFILE_IDS = [f"{v}/{a}" for v, a in vmlib.PROFILES]
_PTE_RW = 0x002


def kernel(profile: str, ram_pages: int = 256, **kw) -> vmlib.Kernel:
    """A Kernel for a profile id such as '2.6.26/x86'."""
    version, arch = profile.split("/")
    return vmlib.Kernel(version=version, arch=arch, ram_pages=ram_pages, **kw)


def profiles(*ids: str):
    """pytest parametrize over the given profile ids (all six when none are given)."""
    return pytest.mark.parametrize("profile", list(ids) or PROFILE_IDS)


def rows(k: vmlib.Kernel, since: int = 0) -> list[str]:
    """The kernel-facts rows of the decision events recorded since event `since`."""
    return [e.row for e in k.trace.events[since:] if e.kind == "decision"]


def mark(k: vmlib.Kernel) -> int:
    return len(k.trace.events)


class RemapDriver(vmlib.Driver):
    """mmap remaps the whole vma to pfns (pfn0, pfn0+1, ...), or to `pfns` one page at a time."""

    name = "remapdev"

    def __init__(self, pfn0: int = 0, pfns: list[int] | None = None):
        self.pfn0 = pfn0
        self.pfns = pfns

    def mmap(self, k, vma) -> int:
        if self.pfns is None:
            return k.remap_pfn_range(vma, vma.vm_start, self.pfn0, vma.vm_end - vma.vm_start,
                                     vma.vm_page_prot)
        for i, pfn in enumerate(self.pfns[:vma.npages]):
            err = k.remap_pfn_range(vma, vma.vm_start + i * PAGE_SIZE, pfn, PAGE_SIZE)
            if err:
                return err
        return 0


class FlagsDriver(vmlib.Driver):
    """mmap only sets vm_flags (no fault handler); tests call the insert APIs directly."""

    def __init__(self, flags):
        self.flags = flags

    def mmap(self, k, vma):
        vma.vm_flags |= self.flags
        return 0


class _OnDemandDriver(vmlib.Driver):
    """Fills ptes from fault with pfns[pgoff]; subclasses name the vma flag and the insert call.

    readonly_prot: clear the write bit of vm_page_prot in mmap (as dirty accounting does),
    so a shared writable mapping takes a write-protect fault on the first write.
    """

    vm_flag = 0

    def __init__(self, pfns: list[int], readonly_prot: bool = False):
        self.pfns = pfns
        self.readonly_prot = readonly_prot

    def mmap(self, k, vma) -> int:
        vma.vm_flags |= self.vm_flag
        if self.readonly_prot:
            vma.vm_page_prot &= ~_PTE_RW
        return 0

    def fault(self, k, vma, vmf) -> int:
        if vmf.pgoff >= len(self.pfns):
            return VM_FAULT_SIGBUS
        pfn = self.pfns[vmf.pgoff]
        if k.profile.MODERN:
            return self.vmf_insert(k, vma, vmf.address, pfn)
        err = self.insert(k, vma, vmf.address, pfn)
        return VM_FAULT_OOM if err == -errno.ENOMEM else VM_FAULT_NOPAGE


class PfnFaultDriver(_OnDemandDriver):
    """A PFNMAP whose ptes are filled by vm_insert_pfn (vmf_insert_pfn on 6.12) from fault."""

    name = "pfnfault"
    vm_flag = VM_PFNMAP | VM_IO

    def insert(self, k, vma, addr, pfn):
        return k.vm_insert_pfn(vma, addr, pfn)

    def vmf_insert(self, k, vma, addr, pfn):
        return k.vmf_insert_pfn(vma, addr, pfn)


class MixedDriver(_OnDemandDriver):
    """A VM_MIXEDMAP whose fault maps pfns[pgoff] with vm_insert_mixed (RAM or device pfns)."""

    name = "mixeddev"
    vm_flag = VM_MIXEDMAP

    def insert(self, k, vma, addr, pfn):
        return k.vm_insert_mixed(vma, addr, pfn)

    def vmf_insert(self, k, vma, addr, pfn):
        return k.vmf_insert_mixed(vma, addr, pfn)


class PageDriver(vmlib.Driver):
    """fault hands out the driver's own RAM pages through vmf.page (one reference each)."""

    name = "pagedev"

    def __init__(self, k, npages: int, readonly_prot: bool = False):
        self.pages = [k.alloc_page() for _ in range(npages)]
        self.readonly_prot = readonly_prot

    def mmap(self, k, vma) -> int:
        if self.readonly_prot:
            vma.vm_page_prot &= ~_PTE_RW
        return 0

    def fault(self, k, vma, vmf) -> int:
        if vmf.pgoff >= len(self.pages):
            return VM_FAULT_SIGBUS
        k.get_page(self.pages[vmf.pgoff])
        vmf.page = self.pages[vmf.pgoff]
        return 0


class InsertPageDriver(vmlib.Driver):
    """fault maps the driver's own RAM pages with vm_insert_page."""

    name = "insertpagedev"

    def __init__(self, k, npages: int):
        self.pages = [k.alloc_page() for _ in range(npages)]

    def fault(self, k, vma, vmf) -> int:
        if vmf.pgoff >= len(self.pages):
            return VM_FAULT_SIGBUS
        err = k.vm_insert_page(vma, vmf.address, self.pages[vmf.pgoff])
        return VM_FAULT_OOM if err == -errno.ENOMEM else VM_FAULT_NOPAGE
