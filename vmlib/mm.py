"""vm_area_struct, mm_struct, files, drivers and the page cache.

Faithfulness ledger
- exact: a vma is [vm_start, vm_end) with vm_flags, vm_pgoff (in pages), vm_page_prot, vm_file
  and vm_ops; find_vma returns the first vma ending above the address (it may not contain it);
  vm_page_prot follows x86's protection_map: a private mapping never gets the write bit (COW
  happens on the write fault), a shared writable one does.
- simplified: vmas kept in a sorted list instead of a maple/rb tree; anon_vma is a flag saying
  that the vma has (or had) anonymous pages; i_mmap is a plain list of vmas per file.
- left out: vma merging, stack growth, NUMA policy, rmap trees. (mprotect, madvise and
  mremap live in vmlib/mprotect.py, madvise.py and mremap.py; they split vmas with split_vma.)
"""

from __future__ import annotations

import bisect
from itertools import compress, count
from operator import attrgetter, sub

from vmlib.flags import PAGE_SHIFT, VM_EXEC, VM_READ, VM_SHARED, VM_WRITE, flag_names
from vmlib.pte import _PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER
from vmlib.trace import VmaInfo


def vm_get_page_prot(vm_flags: int) -> int:
    """The pte bits a new mapping of this vma gets (x86 protection_map)."""
    if not vm_flags & (VM_READ | VM_WRITE | VM_EXEC):
        return 0                       # PROT_NONE: no present bit
    prot = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED
    if vm_flags & VM_WRITE and vm_flags & VM_SHARED:
        prot |= _PAGE_RW
    return prot


_INFO_FIELDS = frozenset(("vm_start", "vm_end", "vm_flags", "vm_pgoff", "name"))
_get_info, _get_start, _get_end = attrgetter("_info"), attrgetter("vm_start"), attrgetter("vm_end")


class VmArea:
    """struct vm_area_struct. Attribute changes on a live vma are journaled by its kernel."""

    _TRACKED = ("vm_start", "vm_end", "vm_flags", "vm_pgoff", "vm_page_prot", "anon_vma")

    def __init__(self, mm, start: int, end: int, vm_flags: int, pgoff: int = 0,
                 vm_file=None, name: str = ""):
        d = self.__dict__
        d["vm_mm"] = mm
        d["vm_start"] = start
        d["vm_end"] = end
        d["vm_flags"] = vm_flags
        d["vm_pgoff"] = pgoff
        d["vm_page_prot"] = vm_get_page_prot(vm_flags)
        d["vm_file"] = vm_file
        d["vm_ops"] = vm_file.driver if vm_file is not None else None
        d["anon_vma"] = False
        d["name"] = name
        d["live"] = False
        d["vm_private_data"] = None
        d["_info"] = VmaInfo(start, end, vm_flags, pgoff, name)

    def __setattr__(self, name, value):
        if self.live and name in self._TRACKED:
            self.vm_mm.kernel._set_vma_attr(self, name, value)
        else:
            self._restore(name, value)

    def _restore(self, name: str, value) -> None:
        """Set an attribute without journaling it (and refresh the cached VmaInfo)."""
        d = self.__dict__
        d[name] = value
        if name in _INFO_FIELDS:
            d["_info"] = VmaInfo(self.vm_start, self.vm_end, self.vm_flags, self.vm_pgoff, self.name)

    def info(self) -> VmaInfo:
        """What the views see of this vma (kept up to date as its attributes change)."""
        return self._info

    def __repr__(self):
        return (f"<vma {self.vm_start:#x}-{self.vm_end:#x} {flag_names(self.vm_flags)} "
                f"pgoff={self.vm_pgoff:#x} {self.name}>")

    @property
    def npages(self) -> int:
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    def linear_pgoff(self, addr: int) -> int:
        """vm_pgoff + page offset of addr in the vma: the 'linear rule' pfn / file page."""
        return self.vm_pgoff + ((addr - self.vm_start) >> PAGE_SHIFT)


def split_vma(v: VmArea, start: int, end: int) -> VmArea:
    """A new vma for [start, end) of v, vm_pgoff moved along (split_vma: both pieces keep the
    linear rule's pgoff). The caller puts it into the mm's list."""
    pgoff = v.vm_pgoff + ((start - v.vm_start) >> PAGE_SHIFT)
    n = VmArea(v.vm_mm, start, end, v.vm_flags, pgoff, v.vm_file, v.name)
    n.__dict__["vm_page_prot"] = v.vm_page_prot
    n.__dict__["anon_vma"] = v.anon_vma
    n.__dict__["vm_private_data"] = v.vm_private_data
    return n


class MmStruct:
    """struct mm_struct: the vma list, the page tables, the rss counters.

    `vmas` is a sorted list that is replaced, never changed in place; assigning it (or calling
    _reindex after a vma's bounds change) refreshes the list of vm_end values that find_vma
    bisects and the cached tuple of VmaInfo the trace records."""

    def __init__(self, kernel, mm_id: int, pgd, name: str):
        self.kernel = kernel
        self.id = mm_id
        self.name = name
        self.pgd = pgd
        self._vmas: list[VmArea] = []
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._infos: tuple | None = ()
        self.runs: tuple = ()
        self.rss = {"anon": 0, "file": 0}
        self.rss_keys = {kind: (mm_id, kind) for kind in self.rss}   # shared by the trace's rss deltas
        self.run_tables = 0          # page-table pages reserved for runs only
        self.dead = False

    @property
    def vmas(self) -> list[VmArea]:
        return self._vmas

    @vmas.setter
    def vmas(self, vmas: list[VmArea]) -> None:
        self._vmas = vmas
        self._reindex()

    def _reindex(self) -> None:
        """Refresh what is derived from the vma list (after it or a vma's bounds changed)."""
        self._starts = list(map(_get_start, self._vmas))
        self._ends = list(map(_get_end, self._vmas))
        self._infos = None

    def _insert(self, vma: VmArea) -> None:
        """Put a vma that overlaps none into the list (a new list; derived data updated in
        O(n) memmoves instead of a rebuild)."""
        start = vma.vm_start
        i = bisect.bisect_right(self._ends, start)
        self._vmas = self._vmas[:i] + [vma] + self._vmas[i:]
        self._starts.insert(i, start)
        self._ends.insert(i, vma.vm_end)
        if self._infos is not None:
            self._infos = self._infos[:i] + (vma._info,) + self._infos[i:]

    def find_vma(self, addr: int) -> VmArea | None:
        """First vma with vm_end > addr (the kernel's find_vma), or None. O(log n)."""
        i = bisect.bisect_right(self._ends, addr)
        vmas = self._vmas
        return vmas[i] if i < len(vmas) else None

    def first_gap(self, low: int, length: int) -> int:
        """The lowest address >= low where `length` bytes fit between the vmas (first fit)."""
        starts, ends = self._starts, self._ends
        i = bisect.bisect_right(ends, low)          # vmas wholly below low do not matter
        if i == len(starts) or starts[i] >= low + length:
            return low
        # the gap after vma j (j >= i) is [ends[j], starts[j + 1]); ends[j] >= low for j >= i
        gaps = map(sub, starts[i + 1:], ends[i:])
        j = next(compress(count(i), map(length.__le__, gaps)), len(ends) - 1)
        return ends[j]

    def overlaps(self, start: int, end: int) -> bool:
        """True if some vma intersects [start, end)."""
        vma = self.find_vma(start)
        return vma is not None and vma.vm_start < end

    def vma_at(self, addr: int) -> VmArea | None:
        """The vma containing addr, or None."""
        vma = self.find_vma(addr)
        return vma if vma is not None and vma.vm_start <= addr else None

    def vma_infos(self) -> tuple:
        infos = self._infos
        if infos is None:
            infos = self._infos = tuple(map(_get_info, self._vmas))
        return infos


class Vmf:
    """struct vm_fault as a driver's fault handler sees it."""

    __slots__ = ("address", "page", "pgoff", "write")

    def __init__(self, address: int, pgoff: int, write: bool):
        self.address = address
        self.pgoff = pgoff
        self.write = write
        self.page = None

    @property
    def virtual_address(self) -> int:
        return self.address

    def __repr__(self):
        return f"Vmf(address={self.address:#x}, pgoff={self.pgoff}, write={self.write})"


class Driver:
    """A device or filesystem: file_operations.mmap and vm_operations.fault.

    Subclass and override `mmap` (return 0 or -errno; may call k.remap_pfn_range or set
    vma.vm_flags) and, if the driver fills ptes on demand, `fault` (return VM_FAULT_* bits,
    either after inserting a pte itself and returning VM_FAULT_NOPAGE, or after setting
    vmf.page to a page it holds a reference on and returning 0).
    """

    name = "driver"

    def mmap(self, k, vma) -> int:
        return 0

    fault = None                     # a Driver without fault(): see handle_mm_fault
    writenotify = False              # True: shared writable mappings start with read-only ptes, so
                                     # the first write goes through do_wp_page (dirty accounting)
    nopfn = None                     # 2.6.25/2.6.26 only: nopfn(k, vma, address) -> pfn, or
                                     # memory.NOPFN_SIGBUS / NOPFN_OOM

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


class File:
    """An open file: a driver, the mode it was opened with, and the vmas that map it."""

    def __init__(self, kernel, driver: Driver, mode: str):
        self.kernel = kernel
        self.driver = driver
        self.mode = mode
        self.readable = "r" in mode
        self.writable = "w" in mode
        self.i_mmap: list[VmArea] = []   # every vma mapping this file (address_space.i_mmap)
        self.private = None              # driver's per-file data (XipFs inode, ...)

    def __repr__(self):
        return f"<File {self.driver.name} mode={self.mode}>"


class PageCache:
    """An address_space's pages: file page index -> Page (the cache holds one reference)."""

    def __init__(self, name: str):
        self.name = name
        self.pages: dict = {}

    def __repr__(self):
        return f"<PageCache {self.name}: {len(self.pages)} pages>"
