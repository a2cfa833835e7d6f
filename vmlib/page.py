"""Physical memory: struct page, the memmap, the page allocator, device memory, frame contents.

Faithfulness ledger
- exact: RAM pfns 0..ram_pages-1 each have a struct page (pfn_valid true); device memory added
  with add_device_memory has none (pfn_valid false), as for s390 DCSS in 2.6.26 (§11a), until
  a driver gives it a memmap (Kernel.add_shared_memory, as s390 did for DCSS in 2.6.25);
  `_count` is the refcount and `_mapcount` is kept -1-based as in the kernel; the zero page is
  a reserved RAM page; memmap cost = struct pages (RAM and memmapped device pfns) x sizeof(struct page) of
  the profile (§12).
- simplified: struct pages are created lazily and a frame stores only the bytes up to the
  last one written (the rest reads as zero), so untouched memory costs nothing; the allocator hands out the lowest free pfn (deterministic).
  Page-table pages are RAM frames too; those that only back a linear run are counted, not built.
- left out: zones, buddy orders, compound pages/folios, LRU lists, swap, highmem.
"""

from __future__ import annotations

import heapq

from vmlib.flags import PAGE_SIZE
from vmlib.trace import PageInfo


class Page:
    """struct page of one RAM frame."""

    __slots__ = (
        "_count",
        "_mapcount",
        "anon",
        "dirty",
        "exclusive",
        "index",
        "mapping",
        "owner",
        "pfn",
        "pgtable",
        "reserved",
    )

    def __init__(self, pfn: int):
        self.pfn = pfn
        self._count = 0
        self._mapcount = -1       # -1 means "not mapped", as in the kernel
        self.anon = False
        self.reserved = False
        self.mapping = None       # the PageCache (file) this page belongs to, if any
        self.index = None         # offset in the file, in pages
        self.exclusive = False    # PageAnonExclusive (6.12 only)
        self.pgtable = False      # used as a page-table page
        self.dirty = False
        self.owner = None         # who holds the allocation reference: "kernel", "pagecache", ...

    def __repr__(self):
        kind = "anon" if self.anon else ("pgtable" if self.pgtable else
                                          ("file" if self.mapping is not None else "kernel"))
        return f"Page(pfn={self.pfn}, count={self._count}, mapcount={self._mapcount + 1}, {kind})"


_INFOS: dict = {}     # interned PageInfo of pages outside the page cache (few distinct values)


def page_info(page: Page) -> PageInfo | None:
    """What the trace records of a struct page; None for a free page. Equal values are shared
    (a million anonymous pages have a handful of distinct PageInfos)."""
    if page._count == 0 and page._mapcount == -1 and not page.reserved:
        return None
    if page.mapping is not None:
        return PageInfo(page._count, page._mapcount + 1, page.anon, page.reserved, page.mapping.name,
                        page.index, page.exclusive, page.pgtable)
    key = (page._count, page._mapcount, page.anon, page.reserved, page.index, page.exclusive,
           page.pgtable)
    info = _INFOS.get(key)
    if info is None:
        info = PageInfo(page._count, page._mapcount + 1, page.anon, page.reserved, None, page.index,
                        page.exclusive, page.pgtable)
        if len(_INFOS) < 100_000:
            _INFOS[key] = info
    return info


class DeviceMemory:
    """A range of physical memory with no struct page (pfn_valid is false for all of it)."""

    def __init__(self, phys, start_pfn: int, npages: int, name: str):
        self.phys = phys
        self.start_pfn = start_pfn
        self.npages = npages
        self.name = name
        self.has_memmap = False    # True once a driver made struct pages for it (2.6.25 DCSS)

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.npages

    @property
    def size(self) -> int:
        return self.npages * PAGE_SIZE

    def _check(self, offset: int, n: int) -> None:
        if not isinstance(offset, int) or not isinstance(n, int):
            raise TypeError("device offsets and lengths are ints (bytes)")
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ValueError(f"{self.name}: bytes {offset}..{offset + n} are past the device's end "
                             f"({self.size} bytes, pfns {self.start_pfn}..{self.end_pfn - 1})")

    def write(self, offset: int, data: bytes) -> None:
        """Store `data` at byte `offset` of the device."""
        self._check(offset, len(data))
        self.phys.write_bytes(self.start_pfn * PAGE_SIZE + offset, bytes(data))

    def read(self, offset: int, n: int) -> bytes:
        """`n` bytes from byte `offset` of the device."""
        self._check(offset, n)
        return self.phys.read_bytes(self.start_pfn * PAGE_SIZE + offset, n)

    def __repr__(self):
        pages = "with a memmap" if self.has_memmap else "no struct page"
        return f"DeviceMemory({self.name!r}, pfns {self.start_pfn}..{self.end_pfn - 1}, {pages})"


class PhysMem:
    """RAM with its (lazy) memmap, device ranges, and the bytes of every frame."""

    def __init__(self, ram_pages: int):
        self.ram_pages = ram_pages
        self.memmap: dict[int, Page] = {}
        self.frames: dict[int, bytearray] = {}
        self.devices: list[DeviceMemory] = []
        self._next = 0                 # lowest never-allocated pfn
        self._free: list[int] = []     # freed pfns, a min-heap
        self.nr_free = ram_pages
        self.reserved_pgtables = 0     # page-table pages counted for linear runs, not built
        self.memmapped: list[DeviceMemory] = []   # device ranges that were given struct pages

    def pfn_valid(self, pfn: int) -> bool:
        if 0 <= pfn < self.ram_pages:
            return True
        return any(d.start_pfn <= pfn < d.end_pfn for d in self.memmapped)

    def memmap_pages(self) -> int:
        """How many struct pages exist: one per RAM frame and per memmapped device frame."""
        return self.ram_pages + sum(d.npages for d in self.memmapped)

    def page(self, pfn: int) -> Page:
        """The struct page of a RAM pfn (created on first use)."""
        page = self.memmap.get(pfn)
        if page is None:
            page = self.memmap[pfn] = Page(pfn)
        return page

    def device_of(self, pfn: int) -> DeviceMemory | None:
        for dev in self.devices:
            if dev.start_pfn <= pfn < dev.end_pfn:
                return dev
        return None

    def exists(self, pfn: int) -> bool:
        """True if pfn is RAM or device memory (something answers at that address)."""
        return self.pfn_valid(pfn) or self.device_of(pfn) is not None

    def take_free_pfn(self) -> int | None:
        """Remove and return the lowest free RAM pfn, or None when RAM is exhausted."""
        if self.nr_free - self.reserved_pgtables <= 0:
            return None
        self.nr_free -= 1
        if self._free:
            return heapq.heappop(self._free)
        self._next += 1
        return self._next - 1

    def return_pfn(self, pfn: int) -> None:
        heapq.heappush(self._free, pfn)
        self.nr_free += 1
        self.frames.pop(pfn, None)

    def untake_pfn(self, pfn: int) -> None:
        """Undo take_free_pfn exactly (used when an operation is rolled back)."""
        self.nr_free += 1
        if pfn == self._next - 1 and (not self._free or self._free[0] > pfn):
            self._next -= 1
        else:
            heapq.heappush(self._free, pfn)

    def retake_pfn(self, pfn: int) -> None:
        """Undo return_pfn exactly."""
        self._free.remove(pfn)
        heapq.heapify(self._free)
        self.nr_free -= 1

    # -- frame contents -------------------------------------------------------------------

    def read_frame(self, pfn: int, off: int, n: int) -> bytes:
        buf = self.frames.get(pfn)
        if buf is None:
            return bytes(n)
        got = bytes(buf[off:off + n])
        return got if len(got) == n else got + bytes(n - len(got))

    def write_frame(self, pfn: int, off: int, data: bytes) -> bytes:
        """Write into a frame and return the bytes that were there (for undo).

        A frame stores only the bytes up to the last one ever written; the rest reads as zero.
        It may be an immutable bytes object (a first write at offset 0 stores the data as it is),
        turned into a bytearray when written again."""
        end = off + len(data)
        buf = self.frames.get(pfn)
        if type(buf) is bytes:
            buf = self.frames[pfn] = bytearray(buf)
        if buf is None:
            buf = self.frames[pfn] = bytearray(end)
            old = bytes(len(data))
        else:
            if len(buf) < end:
                buf.extend(bytes(end - len(buf)))
            old = bytes(buf[off:end])
        buf[off:end] = data
        return old

    def copy_frame(self, dst: int, src: int) -> None:
        buf = self.frames.get(src)
        if buf is None:
            self.frames.pop(dst, None)
        else:
            self.frames[dst] = bytearray(buf)

    def read_bytes(self, phys: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            pfn, off = divmod(phys, PAGE_SIZE)
            k = min(n, PAGE_SIZE - off)
            out += self.read_frame(pfn, off, k)
            phys += k
            n -= k
        return bytes(out)

    def write_bytes(self, phys: int, data: bytes) -> None:
        while data:
            pfn, off = divmod(phys, PAGE_SIZE)
            k = min(len(data), PAGE_SIZE - off)
            self.write_frame(pfn, off, data[:k])
            phys += k
            data = data[k:]
