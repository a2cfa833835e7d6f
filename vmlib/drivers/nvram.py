"""Nvram: a card whose blocks live in device memory or in a RAM cache, with holes (ps8_driver).

The device of the driver assignment. Block i of the card is one page, and it is either
- in device memory: a pfn of the card (`k.add_device_memory`), with no struct page;
- in the RAM cache: a RAM page the driver allocated and holds (one reference, its own);
- a hole: never written, no backing at all.
The device blocks sit at scattered pfns (block i is not at start + i), so no single linear
remap covers the card. Each block holds a known pattern (`pattern(i)`), so that a reader can
tell which memory a process really sees.

The two reference drivers map the card block by block at fault time:
- NvramPfnmap (VM_PFNMAP): vm_insert_pfn for device and cache blocks alike (nothing is
  refcounted through the mapping); a private mapping is refused with -EINVAL, as mspec and spufs
  do (kernel-facts §14c rows 1 and 4), because vm_insert_pfn BUGs on a COW PFNMAP (§5a row 2)
  and a scattered layout cannot keep the linear rule of a COW PFNMAP (§4 row 'COW vma');
- NvramMixed (VM_MIXEDMAP): vm_insert_mixed for every block (§5a row 3, §5b row 2): a cache
  page is refcounted where the arch has no pte_special, raw where it has; private mappings work,
  COW goes through do_wp_page (§6a row 10).
Holes give SIGBUS in both (the fault handler returns VM_FAULT_SIGBUS).
Both need ->fault on a VM_PFNMAP/VM_MIXEDMAP vma: 2.6.26 and later (§5a rows 7-8).
"""

from __future__ import annotations

import errno
import random

from vmlib.flags import (
    PAGE_SIZE,
    VM_FAULT_NOPAGE,
    VM_FAULT_OOM,
    VM_FAULT_SIGBUS,
    VM_IO,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_RESERVED,
)
from vmlib.mm import Driver

DEVICE, CACHE = "device", "cache"
LAYOUT_CODES = {"D": DEVICE, "C": CACHE, ".": None}


def pattern(i: int) -> bytes:
    """The bytes block i holds when the card is attached: its letter, then its number."""
    return bytes([0x41 + i % 26, 0x30 + i % 10]) * (PAGE_SIZE // 2)


class Nvram:
    """The card's layout: `blocks[i]` is ("device", pfn), ("cache", pfn) or None (a hole)."""

    def __init__(self, blocks: list):
        if not isinstance(blocks, (list, tuple)):
            raise TypeError(f"Nvram: blocks is a list, got {type(blocks).__name__}")
        self.blocks = []
        for b in blocks:
            ok = b is None or (isinstance(b, (list, tuple)) and len(b) == 2 and b[0] in (DEVICE, CACHE)
                               and type(b[1]) is int)
            if not ok:
                raise ValueError(f"Nvram: a block is None, ('device', pfn) or ('cache', pfn), got {b!r}")
            self.blocks.append(None if b is None else (b[0], b[1]))

    @property
    def nblocks(self) -> int:
        return len(self.blocks)

    def where(self, i: int) -> str | None:
        """"device", "cache", or None for a hole (and for i past the end of the card)."""
        b = self.blocks[i] if isinstance(i, int) and 0 <= i < len(self.blocks) else None
        return None if b is None else b[0]

    def pfn(self, i: int) -> int | None:
        """The pfn holding block i (device memory or the cache's RAM page), None for a hole."""
        b = self.blocks[i] if isinstance(i, int) and 0 <= i < len(self.blocks) else None
        return None if b is None else b[1]

    def as_data(self) -> list:
        return [None if b is None else list(b) for b in self.blocks]

    def __repr__(self):
        return "<Nvram " + "".join("." if b is None else b[0][0].upper() for b in self.blocks) + ">"

    @classmethod
    def attach(cls, k, layout: str, start_pfn: int = 0x10000, seed: int = 0) -> Nvram:
        """Build the card in kernel k: `layout` has one letter per block, D (device), C (cache)
        or . (hole); device blocks go to scattered pfns of a new device range at start_pfn."""
        if not isinstance(layout, str) or not layout or set(layout) - set(LAYOUT_CODES):
            raise ValueError(f"Nvram.attach: layout is a string of D, C and . (e.g. 'DC.D'), got {layout!r}")
        ndev = layout.count("D")
        dev = k.add_device_memory(start_pfn, max(ndev, 1) + 1, "nvram") if ndev else None
        slots = list(range(max(ndev, 1) + 1))
        random.Random(seed).shuffle(slots)
        if ndev > 1 and slots[:ndev] == sorted(slots[:ndev]):
            slots[:ndev] = slots[:ndev][::-1]          # never linear
        blocks = []
        for i, code in enumerate(layout):
            kind = LAYOUT_CODES[code]
            if kind == DEVICE:
                pfn = start_pfn + slots.pop(0)
                dev.write((pfn - start_pfn) * PAGE_SIZE, pattern(i))
            elif kind == CACHE:
                page = k.alloc_page()                  # the card's own reference
                pfn = page.pfn
                with k._transaction():
                    k._write_user(pfn, 0, pattern(i))
            blocks.append(None if kind is None else (kind, pfn))
        return cls(blocks)


class NvramPfnmap(Driver):
    """The card as a VM_PFNMAP: shared mappings only, filled block by block with vm_insert_pfn."""

    name = "nvram"

    def __init__(self, nv: Nvram):
        self.nv = nv

    def mmap(self, k, vma) -> int:
        if k.is_cow_mapping(vma.vm_flags):
            return -errno.EINVAL
        vma.vm_flags |= VM_PFNMAP | VM_IO | (0 if k.profile.MODERN else VM_RESERVED)
        return 0

    def fault(self, k, vma, vmf) -> int:
        pfn = self.nv.pfn(vmf.pgoff)
        if pfn is None:
            return VM_FAULT_SIGBUS
        err = k.vm_insert_pfn(vma, vmf.address, pfn)
        return VM_FAULT_OOM if err == -errno.ENOMEM else VM_FAULT_NOPAGE


class NvramMixed(Driver):
    """The card as a VM_MIXEDMAP: any mapping, filled block by block with vm_insert_mixed."""

    name = "nvram"

    def __init__(self, nv: Nvram):
        self.nv = nv

    def mmap(self, k, vma) -> int:
        vma.vm_flags |= VM_MIXEDMAP
        return 0

    def fault(self, k, vma, vmf) -> int:
        pfn = self.nv.pfn(vmf.pgoff)
        if pfn is None:
            return VM_FAULT_SIGBUS
        err = k.vm_insert_mixed(vma, vmf.address, pfn)
        return VM_FAULT_OOM if err == -errno.ENOMEM else VM_FAULT_NOPAGE
