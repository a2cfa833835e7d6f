"""Kernel rings a program maps: a packet socket's receive ring and an io_uring's SQ ring.

PacketRing (AF_PACKET, TPACKET_V2, PACKET_RX_RING):

Follows net/packet/af_packet.c of v6.12: packet_set_ring() gives the ring one zeroed kernel
allocation per block (with 4 KiB blocks, one ordinary page each, owned by the socket), and
packet_mmap() maps the whole ring at mmap time: it wants page offset 0 and exactly the ring's
size (anything else is -EINVAL), then hands every page, in order, to vm_insert_page. There is
no fault handler: every pte exists from mmap on. On 6.12 the first vm_insert_page turns the
vma into a VM_MIXEDMAP (mm/memory.c vm_insert_page), so fork copies its ptes
(vma_needs_copy) and the child maps the same pages, each gaining a reference and a mapcount.

Faithfulness ledger
- exact: the pgoff / size checks and the order of insertion of packet_mmap; the pages are
  kernel-owned, not anonymous, refcount 1 before any mapping.
- left out: the ring's frame headers and packet delivery (no packet ever reaches this ring,
  as none reaches the live runner's socket, which binds to no protocol); the TX ring; blocks
  larger than a page; the vmalloc fallback of alloc_one_pg_vec_page.
"""

from __future__ import annotations

import errno

from vmlib.flags import PAGE_SHIFT, VM_DONTEXPAND
from vmlib.mm import Driver

MAX_BLOCKS = 64


class PacketRing(Driver):
    """A TPACKET_V2 RX ring of `nblocks` 4 KiB blocks; mmap it MAP_SHARED to see the ring.

    Follows net/packet/af_packet.c packet_mmap of v6.12: every page inserted with vm_insert_page
    at mmap time, which makes the vma VM_MIXEDMAP (kernel-facts §14d rows 1-2)."""

    name = "packet"

    def __init__(self, k, nblocks: int = 4):
        if not isinstance(nblocks, int) or not 1 <= nblocks <= MAX_BLOCKS:
            raise ValueError(f"PacketRing: nblocks must be an int in 1..{MAX_BLOCKS}, got {nblocks!r}")
        self.pages = [k.alloc_page() for _ in range(nblocks)]

    def mmap(self, k, vma) -> int:
        """packet_mmap: pgoff 0 and the ring's exact size, then vm_insert_page page by page."""
        if vma.vm_pgoff != 0 or vma.npages != len(self.pages):
            return -errno.EINVAL
        for i, page in enumerate(self.pages):
            err = k.vm_insert_page(vma, vma.vm_start + (i << PAGE_SHIFT), page)
            if err:
                return err
        return 0


class IoUringRing(Driver):
    """An io_uring instance's submission-queue ring (IORING_OFF_SQ_RING) of `npages` pages.

    Follows io_uring/memmap.c of v6.12: io_uring_setup allocates the rings as zeroed kernel
    pages; io_uring_mmap at offset IORING_OFF_SQ_RING sets VM_DONTEXPAND and maps the pages
    with vm_insert_pages, which, like vm_insert_page, makes the vma VM_MIXEDMAP and maps each
    page refcounted. The model inserts them one by one with vm_insert_page (the same checks and
    the same ptes). Left out: the CQ ring and SQE offsets, the ring contents, compound
    allocations of multi-page rings. (kernel-facts §14d rows 2-3)
    """

    name = "io_uring"

    def __init__(self, k, npages: int = 1):
        if not isinstance(npages, int) or not 1 <= npages <= MAX_BLOCKS:
            raise ValueError(f"IoUringRing: npages must be an int in 1..{MAX_BLOCKS}, got {npages!r}")
        self.pages = [k.alloc_page() for _ in range(npages)]

    def mmap(self, k, vma) -> int:
        """io_uring_mmap at offset 0: VM_DONTEXPAND, then min(ring, vma) pages inserted."""
        if vma.vm_pgoff != 0:
            return -errno.EINVAL           # other offsets (CQ ring, SQEs) are not modelled
        vma.vm_flags |= VM_DONTEXPAND
        for i, page in enumerate(self.pages[:vma.npages]):
            err = k.vm_insert_page(vma, vma.vm_start + (i << PAGE_SHIFT), page)
            if err:
                return err
        return 0
