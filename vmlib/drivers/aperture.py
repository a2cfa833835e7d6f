"""Aperture: a device with an MMIO aperture and RAM shadow pages, two ways to map it (ps11_aperture).

The device of the third driver assignment. Its **aperture** is `npages` pages of device memory at
consecutive pfns (`k.add_device_memory`, no struct page), like a PCI BAR. Some of its pages are
**shadowed**: the device keeps a RAM copy of them (pages it allocated and holds one reference
on), which is what a process must see while the device owns the aperture page.

User space picks a mode by the mmap offset:
- **direct** (page offsets 0 .. npages-1): the aperture itself, page for page;
- **shadow** (page offsets SHADOW_PGOFF .. SHADOW_PGOFF + npages - 1): page i is the shadow RAM
  page of aperture page i where there is one, the aperture page i where there is none.
A mapping past the end of a mode's pages is refused with -EINVAL.

The reference, ApertureDriver, chooses per mode:
- direct: one `remap_pfn_range` of the whole vma at mmap time, a VM_PFNMAP (kernel-facts §4).
  The aperture is linear, so even a private (COW) mapping keeps the linear rule that lets
  vm_normal_page tell the device's raw pfns from COWed pages (§1a rows 3-5, §4 row 'COW vma');
- shadow: VM_MIXEDMAP, each page at fault time with `vm_insert_mixed` (§5a row 3, §5b row 2): a
  vma that holds pfns with and without a struct page side by side, and whose pfns are not
  linear, needs MIXEDMAP for private mappings (vm_insert_pfn BUGs on a COW PFNMAP, §5a row 2).
"""

from __future__ import annotations

import errno

from vmlib.flags import PAGE_SHIFT, PAGE_SIZE, VM_FAULT_NOPAGE, VM_FAULT_OOM, VM_MIXEDMAP
from vmlib.mm import Driver

SHADOW_PGOFF = 0x100          # the shadow mode's first page offset (mmap offset SHADOW_PGOFF * PAGE_SIZE)


def aperture_bytes(i: int) -> bytes:
    """What aperture page i holds: 'A' and its letter."""
    return bytes([0x41, 0x61 + i % 26]) * (PAGE_SIZE // 2)


def shadow_bytes(i: int) -> bytes:
    """What the shadow of page i holds: 'S' and its letter."""
    return bytes([0x53, 0x61 + i % 26]) * (PAGE_SIZE // 2)


class Aperture:
    """The device as data: the aperture's first pfn and size, and {page: shadow pfn}."""

    kind = "aperture"

    def __init__(self, data: dict):
        ok = (isinstance(data, dict) and set(data) == {"base_pfn", "npages", "shadow"}
              and type(data["base_pfn"]) is int and type(data["npages"]) is int and data["npages"] > 0
              and isinstance(data["shadow"], dict))
        if ok:
            shadow = {int(i): p for i, p in data["shadow"].items() if str(i).isdigit() and type(p) is int}
            ok = len(shadow) == len(data["shadow"]) and all(0 <= i < data["npages"] for i in shadow)
        if not ok:
            raise ValueError(f"Aperture: data is {{'base_pfn': pfn, 'npages': n, 'shadow': {{page: pfn}}}}, "
                             f"got {data!r}")
        self.base_pfn, self.npages, self.shadow = data["base_pfn"], data["npages"], shadow

    def aperture_pfn(self, i: int) -> int:
        """The device pfn of aperture page i."""
        return self.base_pfn + i

    def shadow_pfn(self, i: int) -> int | None:
        """The RAM pfn of the shadow of page i, None if page i has no shadow."""
        return self.shadow.get(i)

    def as_data(self) -> dict:
        return {"base_pfn": self.base_pfn, "npages": self.npages, "shadow": {str(i): p for i, p in self.shadow.items()}}

    def __repr__(self):
        marks = "".join("S" if i in self.shadow else "." for i in range(self.npages))
        return f"<Aperture {self.npages} pages at pfn {self.base_pfn:#x}, shadowed {marks}>"

    @classmethod
    def attach(cls, k, npages: int, shadowed, base_pfn: int = 0x10000) -> Aperture:
        """Add the aperture (device memory at base_pfn) to kernel k and allocate the shadows of the
        pages in `shadowed`; each page holds aperture_bytes(i), each shadow shadow_bytes(i)."""
        shadowed = sorted(set(shadowed))
        if type(npages) is not int or npages <= 0 or any(type(i) is not int or not 0 <= i < npages for i in shadowed):
            raise ValueError(f"Aperture.attach: npages > 0 and shadowed pages among 0..npages-1, got {npages!r}, "
                             f"{shadowed!r}")
        dev = k.add_device_memory(base_pfn, npages, "aperture")
        for i in range(npages):
            dev.write(i * PAGE_SIZE, aperture_bytes(i))
        shadow = {}
        for i in shadowed:
            page = k.alloc_page()                 # the device's own reference
            with k._transaction():
                k._write_user(page.pfn, 0, shadow_bytes(i))
            shadow[i] = page.pfn
        return cls({"base_pfn": base_pfn, "npages": npages, "shadow": shadow})


class ApertureDriver(Driver):
    """The reference: direct mode as one VM_PFNMAP remap, shadow mode as a VM_MIXEDMAP filled on demand."""

    name = "aperture"

    def __init__(self, ap: Aperture):
        self.ap = ap

    def mmap(self, k, vma) -> int:
        npages = (vma.vm_end - vma.vm_start) >> PAGE_SHIFT
        if vma.vm_pgoff >= SHADOW_PGOFF:
            if vma.vm_pgoff - SHADOW_PGOFF + npages > self.ap.npages:
                return -errno.EINVAL
            vma.vm_flags |= VM_MIXEDMAP
            return 0
        if vma.vm_pgoff + npages > self.ap.npages:
            return -errno.EINVAL
        return k.remap_pfn_range(vma, vma.vm_start, self.ap.aperture_pfn(vma.vm_pgoff), npages * PAGE_SIZE,
                                 vma.vm_page_prot)

    def fault(self, k, vma, vmf) -> int:
        if vmf.pgoff < SHADOW_PGOFF:               # direct mappings are mapped whole at mmap time
            pfn = self.ap.aperture_pfn(vmf.pgoff)
        else:
            i = vmf.pgoff - SHADOW_PGOFF
            pfn = self.ap.shadow_pfn(i) or self.ap.aperture_pfn(i)
        err = k.vm_insert_mixed(vma, vmf.address, pfn)
        return VM_FAULT_OOM if err == -errno.ENOMEM else VM_FAULT_NOPAGE
