"""PacketRing: the rings of a packet socket, kernel pages a process maps to read and write frames (ps10_ring).

The device of the second driver assignment, after net/packet/af_packet.c. A packet socket owns
up to two rings, RX (frames the kernel delivers) and TX (frames the process hands to the
kernel); v2.6.26 and v2.6.27 have one ring, which the course calls RX, v6.12 both (§14d row 4). A ring is a
list of blocks (`pg_vec`), each block `pages_per_block` pages of kernel RAM that the socket
allocated and holds one reference on (their pfns need not be contiguous here). One mmap maps them
all, at mmap time, in this order: the RX ring's blocks, then the TX ring's, the pages of each block
in order (kernel-facts §14d rows 1, 4).

The reference driver, RingMmap, is packet_mmap in our words (§14d rows 1, 2, 4):
- the mapping must start at offset 0 of the socket (vm_pgoff 0) and cover exactly the rings'
  pages, else -EINVAL; a socket with no ring refuses every mmap with -EINVAL;
- every page goes in with vm_insert_page: a normal, refcounted pte, so get_user_pages can pin a
  ring page (a zero-copy send from the ring) and the page outlives the socket while it is mapped;
  on 6.12 vm_insert_page makes the vma VM_MIXEDMAP (§5b), on 2.6.26 it marks it VM_INSERTPAGE so
  that fork copies its ptes (§7);
- nothing is mapped on demand: there is no ->fault.
"""

from __future__ import annotations

import errno

from vmlib.drivers.nvram import pattern
from vmlib.flags import PAGE_SIZE
from vmlib.mm import Driver


class PacketRing:
    """The socket's rings: `rx` and `tx` are lists of blocks, each block a list of RAM pfns."""

    kind = "ring"

    def __init__(self, data: dict):
        if not isinstance(data, dict) or set(data) != {"rx", "tx"}:
            raise ValueError(f"PacketRing: data is {{'rx': [[pfn, ...], ...], 'tx': [...]}}, got {data!r}")
        for name in ("rx", "tx"):
            blocks = data[name]
            ok = isinstance(blocks, (list, tuple)) and all(
                isinstance(b, (list, tuple)) and b and all(type(p) is int and p >= 0 for p in b) for b in blocks)
            if not ok:
                raise ValueError(f"PacketRing: {name} is a list of blocks, each a non-empty list of pfns, "
                                 f"got {blocks!r}")
        self.rx = [list(b) for b in data["rx"]]
        self.tx = [list(b) for b in data["tx"]]

    @property
    def npages(self) -> int:
        """Pages of both rings: what one mmap of the socket must cover."""
        return sum(len(b) for b in self.rx + self.tx)

    def as_data(self) -> dict:
        return {"rx": [list(b) for b in self.rx], "tx": [list(b) for b in self.tx]}

    def __repr__(self):
        def shape(blocks):
            return f"{len(blocks)} x {len(blocks[0])}" if blocks else "none"
        return f"<PacketRing rx {shape(self.rx)}, tx {shape(self.tx)} (blocks x pages)>"

    @classmethod
    def setup(cls, k, rx: tuple[int, int], tx: tuple[int, int] = (0, 0), order: list[int] | None = None) -> PacketRing:
        """Allocate the rings in kernel k, as PACKET_RX_RING / PACKET_TX_RING do: `rx` and `tx` are
        (blocks, pages per block); `order` permutes the allocation of the blocks, so that their pfns do
        not follow the mapping's order. Page i of the mapping (RX blocks, then TX) holds nvram.pattern(i)."""
        shapes = [("rx", *rx), ("tx", *tx)]
        if any(type(n) is not int or n < 0 for _, *nm in shapes for n in nm):
            raise ValueError(f"PacketRing.setup: rx and tx are (blocks, pages per block), got {rx!r}, {tx!r}")
        slots = [(name, b) for name, nblocks, _ in shapes for b in range(nblocks)]
        if order is not None and sorted(order) != list(range(len(slots))):
            raise ValueError(f"PacketRing.setup: order is a permutation of 0..{len(slots) - 1}, got {order!r}")
        blocks: dict = {}
        for s in [slots[i] for i in (order or range(len(slots)))]:
            npg = rx[1] if s[0] == "rx" else tx[1]
            blocks[s] = [k.alloc_page().pfn for _ in range(npg)]       # the socket's own references
        data = {name: [blocks[(name, b)] for b in range(nblocks)] for name, nblocks, _ in shapes}
        ring = cls(data)
        with k._transaction():
            for i, pfn in enumerate(p for b in ring.rx + ring.tx for p in b):
                k._write_user(pfn, 0, pattern(i))
        return ring


class RingMmap(Driver):
    """The reference: packet_mmap in our words (see the module docstring)."""

    name = "packet"

    def __init__(self, ring: PacketRing):
        self.ring = ring

    def mmap(self, k, vma) -> int:
        if vma.vm_pgoff:
            return -errno.EINVAL
        if self.ring.npages == 0 or vma.vm_end - vma.vm_start != self.ring.npages * PAGE_SIZE:
            return -errno.EINVAL
        addr = vma.vm_start
        for block in self.ring.rx + self.ring.tx:
            for pfn in block:
                err = k.vm_insert_page(vma, addr, k.pfn_to_page(pfn))
                if err:
                    return err
                addr += PAGE_SIZE
        return 0
