"""The kernel object: owns physical memory, processes, the tracer and the exercise seam.

Every state change goes through a few primitives here (_set_pte, _get_page, _put_page,
_map, _unmap, _rss, ...). Each records an undo step, so that an operation that raises
leaves every state exactly as it was, and a trace delta, so that the stepper can show any
step forwards and backwards.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import types
from operator import attrgetter

from vmlib import gup, memory, pgtable
from vmlib.errors import BadPageMap, BadPageState, KernelError, MissingFeature
from vmlib.page import DeviceMemory, Page, PhysMem
from vmlib.page import page_info as _page_info
from vmlib.pgtable import PageTable
from vmlib.profiles import make_profile
from vmlib.trace import NOTHING_SEEN, PageInfo, Seen, Snapshot, Tracer

OVERRIDABLE = ("vm_normal_page", "is_cow_mapping", "do_wp_page_decision", "insert_mixed_decision",
               "gup_fast_pte_ok", "remap_pfn_range_check", "copy_one_pte_decision", "zap_pte_decision",
               "do_fault_decision")


_FROZE = False      # Kernel.bulk() froze the objects alive at its end


def _tune_gc() -> None:
    """Collect the young generation every 10,000 new objects instead of 700, and the old one
    ten times less often, unless the user has set thresholds of their own. A simulated kernel
    keeps millions of small objects alive (pages, ptes, trace deltas); with the defaults the
    collector rescans them all every 25 % of growth and takes about half of the time.
    Unfreeze what Kernel.bulk() froze, so that kernels dropped since can be collected."""
    global _FROZE
    if gc.get_threshold() == (700, 10, 10):
        gc.set_threshold(10_000, 10, 100)
    if _FROZE:
        gc.unfreeze()
        _FROZE = False


class Kernel:
    """A simulated kernel of one version on one arch. See DESIGN.md §3 for the API."""

    def __init__(self, version: str = "2.6.26", arch: str = "x86", ram_pages: int = 1024,
                 trace: bool = True, sizeof_struct_page: int | None = None):
        if not isinstance(ram_pages, int) or isinstance(ram_pages, bool):
            raise TypeError(f"ram_pages must be an int, got {type(ram_pages).__name__}")
        if ram_pages < 16:
            raise ValueError(f"ram_pages must be at least 16 (the zero page, page tables and a few "
                             f"frames need room), got {ram_pages}")
        self.profile = make_profile(version, arch, sizeof_struct_page)
        self.phys = PhysMem(ram_pages)
        self.tracer = Tracer(self, enabled=trace)
        self.ops = types.SimpleNamespace(**{name: getattr(gup if name == "gup_fast_pte_ok" else memory,
                                                          name) for name in OVERRIDABLE})
        self.procs: dict[int, object] = {}
        self.held: dict[int, int] = {}      # pfn -> references held by callers (gup, alloc_page)
        self._next_pid = 1
        self._undo: list | None = None
        self.xip_sparse_page = None
        self.warnings: list[str] = []
        zero = self.phys.take_free_pfn()
        self.zero_page = self.phys.page(zero)
        self.zero_page._count = 1
        self.zero_page.reserved = True
        self.zero_page.owner = "ZERO_PAGE"
        self.tracer.reset()
        _tune_gc()

    @contextlib.contextmanager
    def bulk(self):
        """For a block of many operations (say a loop of a million faults): pause the garbage
        collector while it runs, then freeze what is alive (gc.freeze) so that the collector
        never rescans the pages, ptes and trace deltas the block made. The model makes no
        garbage cycles, so nothing is lost; without this the collector takes a large share of
        the time. The next Kernel() unfreezes them (so a kernel dropped later is collected);
        so does gc.unfreeze()."""
        global _FROZE
        was = gc.isenabled()
        gc.disable()
        try:
            yield self
        finally:
            gc.freeze()
            _FROZE = True
            if was:
                gc.enable()

    # -- facts ------------------------------------------------------------------------------

    version = property(lambda self: self.profile.version)
    arch = property(lambda self: self.profile.arch)
    zero_pfn = property(lambda self: self.zero_page.pfn)

    def __repr__(self):
        return f"<Kernel {self.profile.name}, {self.phys.ram_pages} RAM pages>"

    def pfn_valid(self, pfn: int) -> bool:
        """True iff pfn has a struct page (it is RAM)."""
        return self.phys.pfn_valid(pfn)

    def pfn_to_page(self, pfn: int) -> Page:
        """The struct page of pfn; BadPageMap if there is none (device memory, or no memory)."""
        if not isinstance(pfn, int):
            raise TypeError(f"pfn_to_page: pfn must be an int, got {type(pfn).__name__}")
        if not self.phys.pfn_valid(pfn):
            where = self.phys.device_of(pfn)
            what = f"device memory {where.name!r}" if where else "no memory at all"
            raise BadPageMap(f"pfn_to_page: pfn {pfn} has no struct page (pfn_valid is false: "
                             f"{what}); only RAM pfns 0..{self.phys.ram_pages - 1} have one")
        return self.phys.page(pfn)

    def page_count(self, page: Page) -> int:
        return page._count

    def page_mapcount(self, page: Page) -> int:
        return page._mapcount + 1

    def is_zero_pfn(self, pfn: int) -> bool:
        return pfn == self.zero_page.pfn

    def memmap_bytes(self) -> int:
        """What the memmap costs: struct pages x sizeof(struct page) of the profile. Every RAM
        frame has one; device memory costs nothing unless it was given a memmap
        (add_shared_memory)."""
        return self.phys.memmap_pages() * self.profile.sizeof_struct_page

    def nr_free_pages(self) -> int:
        return self.phys.nr_free - self.phys.reserved_pgtables

    @property
    def trace(self):
        """The trace recorded since the kernel was made (or since tracer.reset())."""
        return self.tracer.trace

    def trace_info(self) -> dict:
        return {"profile": self.profile, "ram_pages": self.phys.ram_pages,
                "zero_pfn": self.zero_page.pfn,
                "devices": [(d.name, d.start_pfn, d.npages) for d in self.phys.devices],
                "memmapped": [d.name for d in self.phys.memmapped]}

    # -- physical memory --------------------------------------------------------------------

    def add_device_memory(self, start_pfn: int, npages: int, name: str = "device") -> DeviceMemory:
        """Add memory with no struct page at pfns [start_pfn, start_pfn + npages)."""
        for v, what in ((start_pfn, "start_pfn"), (npages, "npages")):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"add_device_memory: {what} must be an int")
        if npages <= 0:
            raise ValueError(f"add_device_memory: npages must be positive, got {npages}")
        if start_pfn < self.phys.ram_pages:
            raise ValueError(f"add_device_memory: pfns {start_pfn}.. overlap RAM (pfns 0.."
                             f"{self.phys.ram_pages - 1}); start above {self.phys.ram_pages - 1}")
        for d in self.phys.devices:
            if start_pfn < d.end_pfn and d.start_pfn < start_pfn + npages:
                raise ValueError(f"add_device_memory: pfns {start_pfn}..{start_pfn + npages - 1} "
                                 f"overlap {d!r}")
        dev = DeviceMemory(self.phys, start_pfn, npages, name)
        self.phys.devices.append(dev)
        self.tracer.trace.info = self.trace_info()
        return dev

    def add_shared_memory(self, dev: DeviceMemory) -> None:
        """Give device memory a memmap: one struct page per pfn, refcount 1 and PageReserved.

        Follows arch/s390/mm/vmem.c add_shared_memory(), v2.6.25, which initialised struct
        pages for a DCSS segment when it was loaded. XIP in 2.6.25 maps memory only through
        struct pages (get_xip_page), so XipFs on device memory calls this on 2.6.25: the pfns
        become pfn_valid, memmap_bytes() grows by npages x sizeof(struct page), and the blocks
        are mapped as ordinary refcounted pages (kernel-facts §11a, §12).
        """
        if not isinstance(dev, DeviceMemory) or dev not in self.phys.devices:
            raise TypeError(f"add_shared_memory: expected a DeviceMemory from this kernel's "
                            f"add_device_memory(), got {dev!r}")
        if dev.has_memmap:
            raise ValueError(f"add_shared_memory: {dev.name!r} has a memmap already")
        for proc in self.procs.values():
            for addr, pte in pgtable.explicit_ptes(proc.mm, 0, 1 << 48):
                if pte is not None and dev.start_pfn <= pte.pfn < dev.end_pfn:
                    raise ValueError(f"add_shared_memory: {proc.name} maps pfn {pte.pfn} of "
                                     f"{dev.name!r} at {addr:#x} already; a driver makes the memmap "
                                     f"when it loads the segment, before anything maps it")
            for r in proc.mm.runs:
                last = r.pfn0 + ((r.end - r.start) >> pgtable.SHIFT[1]) - 1
                if r.pfn0 < dev.end_pfn and dev.start_pfn <= last:
                    raise ValueError(f"add_shared_memory: {proc.name} maps {dev.name!r} already "
                                     f"(a linear run at {r.start:#x}); make the memmap first")
        with self._transaction():
            self._log(setattr, dev, "has_memmap", False)
            dev.has_memmap = True
            self._log(self.phys.memmapped.remove, dev)
            self.phys.memmapped.append(dev)
            for pfn in range(dev.start_pfn, dev.end_pfn):
                page = self.phys.page(pfn)
                self._log(self._restore_page, page, self._page_fields(page))
                page._count = 1                   # init_page_count
                page.reserved = True              # SetPageReserved
                page.owner = "memmap of " + dev.name
                self._page_delta(page, None)
        self.tracer.trace.info = self.trace_info()

    def alloc_page(self) -> Page:
        """A kernel-owned RAM page: page_count 1, page_mapcount 0."""
        with self._transaction():
            page = self._alloc_page("kernel")
            if page is None:
                raise KernelError(errno.ENOMEM, "alloc_page: out of memory")
            self._hold(page, +1)
        return page

    def put_page(self, page: Page) -> None:
        """Drop one reference; the page is freed when the count reaches 0."""
        if not isinstance(page, Page):
            raise TypeError(f"put_page: expected a Page, got {type(page).__name__}")
        with self._transaction():
            self._put_page(page, "put_page")
            if self.held.get(page.pfn):
                self._hold(page, -1)

    def unpin_user_page(self, page: Page) -> None:
        """Release a page pinned by Process.pin_user_pages (6.12 FOLL_PIN: -1024 references).

        MissingFeature before 6.12; ValueError for a page that is not pinned (state unchanged)."""
        if not isinstance(page, Page):
            raise TypeError(f"unpin_user_page: expected a Page, got {type(page).__name__}")
        with self._transaction(), self.call("unpin_user_page", f"page {page.pfn}"):
            gup.unpin_user_page(self, page)

    def get_page(self, page: Page) -> None:
        """Take one more reference on a page."""
        with self._transaction():
            self._get_page(page, "get_page")
            self._hold(page, +1)

    def _hold(self, page: Page, delta: int) -> None:
        """Count references held outside the kernel (gup callers, alloc_page users)."""
        self._set_dict(self.held, page.pfn, self.held.get(page.pfn, 0) + delta or None)

    # -- the exercise seam ------------------------------------------------------------------

    @contextlib.contextmanager
    def override(self, **fns):
        """Replace kernel decision functions (e.g. vm_normal_page) while the block runs.

        Each replacement has the model function's signature, e.g.
        vm_normal_page(k, vma, addr, pte) -> Page | None.
        """
        for name, fn in fns.items():
            if name not in OVERRIDABLE:
                raise ValueError(f"override: {name!r} cannot be overridden; choose from "
                                 f"{', '.join(OVERRIDABLE)}")
            if not callable(fn):
                raise TypeError(f"override: {name} must be a function, got {type(fn).__name__}")
        saved = {name: getattr(self.ops, name) for name in fns}
        for name, fn in fns.items():
            setattr(self.ops, name, fn)
        try:
            yield self
        finally:
            for name, fn in saved.items():
                setattr(self.ops, name, fn)

    # -- the kernel API (DESIGN.md §3) ------------------------------------------------------

    def vm_normal_page(self, vma, addr: int, pte):
        return self.ops.vm_normal_page(self, vma, addr, pte)

    def is_cow_mapping(self, vm_flags: int) -> bool:
        return self.ops.is_cow_mapping(vm_flags)

    def remap_pfn_range(self, vma, addr: int, pfn: int, size: int, prot: int | None = None) -> int:
        with self._transaction():
            return memory.remap_pfn_range(self, vma, addr, pfn, size,
                                          vma.vm_page_prot if prot is None else prot)

    def vm_insert_page(self, vma, addr: int, page: Page) -> int:
        with self._transaction():
            return memory.vm_insert_page(self, vma, addr, page)

    def vm_insert_pfn(self, vma, addr: int, pfn: int) -> int:
        with self._transaction():
            return memory.vm_insert_pfn(self, vma, addr, pfn)

    def vm_insert_mixed(self, vma, addr: int, pfn: int) -> int:
        if not self.profile.HAVE_VM_MIXEDMAP:
            raise MissingFeature("vm_insert_mixed: does not exist in 2.6.25; the VM_MIXEDMAP series "
                                 "added it in 2.6.26 (choose version='2.6.26' or later)")
        with self._transaction():
            return memory.vm_insert_mixed(self, vma, addr, pfn)

    def vmf_insert_pfn(self, vma, addr: int, pfn: int) -> int:
        """6.12's vmf_insert_pfn: VM_FAULT_NOPAGE or an error code (VM_FAULT_SIGBUS, ...)."""
        with self._transaction():
            return memory.vmf_insert(self, vma, addr, pfn, mixed=False)

    def vmf_insert_mixed(self, vma, addr: int, pfn: int) -> int:
        """6.12's vmf_insert_mixed: VM_FAULT_NOPAGE or an error code."""
        with self._transaction():
            return memory.vmf_insert(self, vma, addr, pfn, mixed=True)

    def open(self, driver, mode: str = "rw"):
        """Open a driver (a /dev node or a file) and return the File."""
        from vmlib.mm import Driver, File
        if not isinstance(driver, Driver):
            raise TypeError(f"open: expected a vmlib.Driver, got {type(driver).__name__}")
        if mode not in ("r", "w", "rw"):
            raise ValueError(f"open: mode must be 'r', 'w' or 'rw', got {mode!r}")
        return File(self, driver, mode)

    def spawn(self, name: str | None = None):
        """A new process with an empty mm."""
        from vmlib.process import Process
        if name is not None and not isinstance(name, str):
            raise TypeError(f"spawn: name must be a string, got {type(name).__name__}")
        self.tracer.emit("op", "kernel", f"spawn({name!r})" if name else "spawn()")
        with self._transaction():
            return Process._create(self, name)

    def check(self) -> None:
        """Raise InvariantError naming the first broken rule; return None when all hold."""
        from vmlib.check import check
        check(self)

    def snapshot(self) -> Snapshot:
        """The visible state now (what views draw)."""
        snap = Snapshot()
        for pid, proc in self.procs.items():
            mm = proc.mm
            snap.mms[pid] = proc.name
            snap.vmas[pid] = mm.vma_infos()
            if mm.runs:
                snap.runs[pid] = mm.runs
            for addr, pte in pgtable.explicit_ptes(mm, 0, 1 << 48):
                if pte is not None or pgtable.in_run(mm, addr):
                    snap.ptes[(pid, addr)] = pte
            for kind, n in mm.rss.items():
                snap.rss[(pid, kind)] = n
            for level, base, table in pgtable.all_tables(mm):
                snap.tables[(pid, level, base)] = table.pfn
        for pfn, page in self.phys.memmap.items():
            info = _page_info(page)
            if info is not None:
                snap.pages[pfn] = info
        return snap

    # -- transactions -----------------------------------------------------------------------

    def _transaction(self):
        """Run a block atomically: if it raises, undo every change and drop its trace events."""
        return _NESTED if self._undo is not None else _Transaction(self)

    def _log(self, fn, *args) -> None:
        if self._undo is not None:
            self._undo.append((fn, args))

    # -- primitives: every state change goes through one of these ---------------------------

    def _page_delta(self, page: Page, old: PageInfo | None) -> None:
        if self.tracer.enabled:
            self.tracer.state("page", ("page", page.pfn, old, _page_info(page)))

    def _set_page_field(self, page: Page, name: str, value) -> None:
        old = _page_info(page) if self.tracer.enabled else None
        self._log(setattr, page, name, getattr(page, name))
        setattr(page, name, value)
        self._page_delta(page, old)

    def _get_page(self, page: Page, why: str) -> None:
        if page._count <= 0:
            raise BadPageState(f"{why}: get_page on pfn {page.pfn} whose refcount is {page._count} "
                               f"(a free page cannot gain references)")
        if self._undo is not None:
            self._undo.append((setattr, (page, "_count", page._count)))
        if self.tracer.enabled:
            old = _page_info(page)
            page._count += 1
            self.tracer.state("page", ("page", page.pfn, old, _page_info(page)))
        else:
            page._count += 1

    def _put_page(self, page: Page, why: str) -> None:
        old = _page_info(page) if self.tracer.enabled else None
        if page.reserved and page is self.zero_page and page._count <= 1:
            raise BadPageState(f"{why}: put_page would free the ZERO_PAGE (pfn {page.pfn})")
        if page._count <= 0:
            raise BadPageState(f"{why}: put_page on pfn {page.pfn} whose refcount is already "
                               f"{page._count} (refcount underflow: a reference was dropped twice)")
        self._log(setattr, page, "_count", page._count)
        page._count -= 1
        if page._count == 0:
            self._free_page(page, why)
        self._page_delta(page, old)

    def _map(self, page: Page, delta: int, why: str) -> None:
        new = page._mapcount + delta
        if new < -1:
            raise BadPageState(f"{why}: mapcount of pfn {page.pfn} would go negative "
                               f"(page_remove_rmap on a page no pte maps)")
        if self._undo is not None:
            self._undo.append((setattr, (page, "_mapcount", page._mapcount)))
        if self.tracer.enabled:
            old = _page_info(page)
            page._mapcount = new
            self.tracer.state("page", ("page", page.pfn, old, _page_info(page)))
        else:
            page._mapcount = new

    def _rss(self, mm, kind: str, delta: int) -> None:
        old = mm.rss[kind]
        if self._undo is not None:
            self._undo.append((mm.rss.__setitem__, (kind, old)))
        mm.rss[kind] = old + delta
        if self.tracer.enabled:
            self.tracer.state("rss", ("rss", mm.rss_keys[kind], old, old + delta))

    def _alloc_page(self, owner: str, anon: bool = False, mapped: bool = False) -> Page | None:
        """Take a free RAM frame: refcount 1, mapcount 1 if `mapped` else 0, PageAnon if `anon`
        (and PageAnonExclusive on 6.12). None when RAM is exhausted."""
        pfn = self.phys.take_free_pfn()
        if pfn is None:
            return None
        self._log(self.phys.untake_pfn, pfn)
        page = self.phys.page(pfn)
        self._log(self._restore_page, page, self._page_fields(page))
        page._count = 1
        page._mapcount = 0 if mapped else -1
        page.anon = anon
        page.exclusive = anon and self.profile.MODERN
        page.reserved = page.pgtable = page.dirty = False
        page.mapping = page.index = None
        page.owner = owner
        self.phys.frames.pop(pfn, None)
        self._page_delta(page, None)
        return page

    def _free_page(self, page: Page, why: str) -> None:
        if page._mapcount != -1:
            raise BadPageState(f"{why}: freeing pfn {page.pfn} while it is still mapped "
                               f"(mapcount {page._mapcount + 1})")
        self._log(self._restore_page, page, self._page_fields(page))
        old_frame = self.phys.frames.get(page.pfn)
        self._log(self._restore_frame, page.pfn, old_frame)
        self.phys.return_pfn(page.pfn)
        self._log(self.phys.retake_pfn, page.pfn)
        page.anon = page.exclusive = page.pgtable = page.dirty = False
        page.mapping = page.index = page.owner = None

    _page_fields = staticmethod(attrgetter(*Page.__slots__))

    @staticmethod
    def _restore_page(page: Page, fields: tuple) -> None:
        for f, v in zip(Page.__slots__, fields):
            setattr(page, f, v)

    def _restore_frame(self, pfn: int, buf) -> None:
        if buf is None:
            self.phys.frames.pop(pfn, None)
        else:
            self.phys.frames[pfn] = buf

    def _write_user(self, pfn: int, off: int, data: bytes) -> None:
        """Store bytes in a RAM or device frame (user writes, copies)."""
        old = self.phys.write_frame(pfn, off, data)
        self._log(self.phys.write_frame, pfn, off, old)

    def _copy_frame(self, dst: int, src: int) -> None:
        self._log(self._restore_frame, dst, self.phys.frames.get(dst))
        self.phys.copy_frame(dst, src)

    def _alloc_pgtable(self, level: int) -> PageTable | None:
        page = self._alloc_page("pgtable")
        if page is None:
            return None
        self._set_page_field(page, "pgtable", True)
        return PageTable(level, page)

    def pte_alloc(self, mm, addr: int) -> bool:
        """pud_alloc/pmd_alloc/pte_alloc: build the tables down to addr's pte table.
        False when RAM is exhausted (the callers return -ENOMEM or VM_FAULT_OOM)."""
        table = mm.pgd
        for level in (4, 3, 2):
            idx = (addr >> pgtable.SHIFT[level]) & 511
            nxt = table.entries.get(idx)
            if nxt is None:
                nxt = self._alloc_pgtable(level - 1)
                if nxt is None:
                    return False
                self._log(table.entries.pop, idx)
                table.entries[idx] = nxt
                self._table_delta(mm, level - 1, addr, None, nxt.pfn)
                self._update_run_tables(mm)
            table = nxt
        return True

    def _table_delta(self, mm, level: int, addr: int, old, new) -> None:
        """Trace a page-table page appearing or going: ("table", (pid, level, base), old, new)."""
        if self.tracer.enabled:
            base = addr & ~((1 << (pgtable.SHIFT[level] + 9)) - 1) if level < 4 else 0
            self.tracer.state("pgtable", ("table", (mm.id, level, base), old, new))

    def _set_pte(self, mm, addr: int, pte, why: str = "set_pte_at") -> None:
        """set_pte_at / pte_clear: the only place a pte table is written (pte None = clear)."""
        table = pgtable.pte_table(mm.pgd, addr)
        if table is None:
            if pte is None and not mm.runs:
                return
            if not self.pte_alloc(mm, addr):
                raise KernelError(errno.ENOMEM, f"{why}: out of memory for a page-table page")
            table = pgtable.pte_table(mm.pgd, addr)
        idx = (addr >> 12) & 511
        entries = table.entries
        undo = self._undo
        if idx in entries:
            old = entries[idx]
            if undo is not None:
                undo.append((entries.__setitem__, (idx, old)))
        else:
            if undo is not None:
                undo.append((entries.pop, (idx,)))
            old = pgtable.run_pte(mm.runs, addr) if mm.runs else None
        if pte is None and not (mm.runs and pgtable.in_run(mm, addr)):
            table.entries.pop(idx, None)
        else:
            table.entries[idx] = pte
        if self.tracer.enabled:
            self.tracer.state(why, ("pte", (mm.id, addr), old, pte))

    def _free_empty_tables(self, mm) -> None:
        """Free page-table pages that map nothing any more (after a zap)."""
        def prune(table: PageTable, base: int) -> None:
            for idx, child in list(table.entries.items()):
                child_base = base | (idx << pgtable.SHIFT[table.level])
                if child.level > 1:
                    prune(child, child_base)
                if child.entries:
                    continue
                self._log(table.entries.__setitem__, idx, child)
                del table.entries[idx]
                self._table_delta(mm, child.level, child_base, child.pfn, None)
                self._put_page(child.page, "free_pgtables")
        prune(mm.pgd, 0)
        self._update_run_tables(mm)

    def _set_runs(self, mm, runs: tuple) -> None:
        old = mm.runs
        self._log(setattr, mm, "runs", old)
        mm.runs = runs
        if self.tracer.enabled:
            self.tracer.state("runs", ("runs", mm.id, old, runs))
        self._update_run_tables(mm)

    def _update_run_tables(self, mm) -> None:
        if not mm.runs and not mm.run_tables:
            return
        n = pgtable.run_only_tables(mm) if not mm.dead else 0
        if n != mm.run_tables:
            self._log(setattr, mm, "run_tables", mm.run_tables)
            self._log(setattr, self.phys, "reserved_pgtables", self.phys.reserved_pgtables)
            self.phys.reserved_pgtables += n - mm.run_tables
            mm.run_tables = n

    def _set_vma_attr(self, vma, name: str, value) -> None:
        mm = vma.vm_mm
        old_infos = mm.vma_infos()
        self._log(self._restore_vma_attr, vma, name, vma.__dict__[name])
        self._restore_vma_attr(vma, name, value)
        self._vmas_changed(mm, old_infos)

    @staticmethod
    def _restore_vma_attr(vma, name: str, value) -> None:
        vma._restore(name, value)
        vma.vm_mm._reindex()

    def _insert_vma(self, mm, vma) -> None:
        """Add one new vma that overlaps none (mmap): _set_vmas without rebuilding the list."""
        old_infos = mm.vma_infos() if self.tracer.enabled else None
        self._log(setattr, mm, "vmas", mm.vmas)
        self._set_live(vma, True)
        mm._insert(vma)
        self._vmas_changed(mm, old_infos)

    def _set_vmas(self, mm, vmas: list) -> None:
        old = mm.vmas
        old_infos = mm.vma_infos() if self.tracer.enabled else None
        self._log(setattr, mm, "vmas", old)
        new_set, old_set = set(vmas), set(old)
        for v in sorted(new_set - old_set, key=vmas.index):   # new pieces first, so a split
            if not v.live:                                  # vma's file never looks unmapped
                self._set_live(v, True)                     # (shmem would drop its pages)
        for v in sorted(old_set - new_set, key=old.index):
            self._set_live(v, False)
        mm.vmas = vmas
        self._vmas_changed(mm, old_infos)

    def _set_live(self, vma, live: bool) -> None:
        self._log(vma.__dict__.__setitem__, "live", vma.live)
        vma.__dict__["live"] = live
        f = vma.vm_file
        if f is not None:
            if live and vma not in f.i_mmap:
                self._log(f.i_mmap.remove, vma)
                f.i_mmap.append(vma)
            elif not live and vma in f.i_mmap:
                i = f.i_mmap.index(vma)
                self._log(f.i_mmap.insert, i, vma)
                f.i_mmap.remove(vma)
                if not f.i_mmap and getattr(f.driver, "anonymous", False):
                    f.driver.release(self)

    def _vmas_changed(self, mm, old_infos: tuple) -> None:
        if self.tracer.enabled:
            self.tracer.state("vmas", ("vmas", mm.id, old_infos, mm.vma_infos()))

    def _set_dict(self, d: dict, key, value) -> None:
        """d[key] = value (value None deletes), journaled."""
        if key in d:
            self._log(d.__setitem__, key, d[key])
        else:
            self._log(d.pop, key, None)
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value

    # -- trace helpers ----------------------------------------------------------------------

    def decide(self, func: str, text: str, row: str = "", seen: Seen = NOTHING_SEEN) -> None:
        """Record which branch a kernel function took, the kernel-facts row behind it and what
        it examined (a trace.Seen, e.g. trace.seen(vma, addr, pfn))."""
        if self.tracer.enabled and not self.tracer._quiet:
            self.tracer.emit("decision", func, text, row, None, seen)

    def warn(self, func: str, text: str) -> None:
        """WARN_ON: record and go on."""
        self.warnings.append(f"{func}: {text}")
        self.tracer.emit("warn", func, text)

    def call(self, func: str, text: str = ""):
        """Bracket a kernel function so nested events are indented under it."""
        if not self.tracer.enabled:
            return _NESTED
        self.tracer.emit("call", func, text)
        return _Call(self.tracer)

    @contextlib.contextmanager
    def quiet(self):
        """Suppress call/decision events (state changes are still recorded)."""
        self.tracer._quiet += 1
        try:
            yield
        finally:
            self.tracer._quiet -= 1


class _Nested:
    """A context that does nothing (a nested transaction, or tracing off)."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NESTED = _Nested()


class _Call:
    __slots__ = ("tracer",)

    def __init__(self, tracer):
        self.tracer = tracer
        tracer.depth += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.tracer.depth -= 1
        return False


class _Transaction:
    """Undo log of one top-level operation; on an exception every change is undone.

    The garbage collector is paused while the operation runs: a fork or exit of a large mm is
    bulk work that creates many objects and no garbage cycles, and a collection in the middle
    of it would scan every live object again. It resumes (if it was on) when the operation ends."""

    __slots__ = ("depth", "gc", "k", "mark")

    def __init__(self, k: Kernel):
        self.k = k

    def __enter__(self):
        self.gc = gc.isenabled()
        if self.gc:
            gc.disable()
        k = self.k
        k._undo = []
        self.mark = len(k.tracer.trace.events)
        self.depth = k.tracer.depth
        return self

    def __exit__(self, typ, e, tb):
        if self.gc:
            gc.enable()
        k = self.k
        undo, k._undo = k._undo, None
        if typ is None:
            return False
        for fn, args in reversed(undo):
            fn(*args)
        k.tracer.depth = self.depth
        looked = k.tracer.trace.last_seen(self.mark)
        k.tracer.trace._truncate(self.mark)
        k.tracer.emit("error", typ.__name__, f"{e} (operation undone, state unchanged)", "", None, looked)
        return False


__all__ = ["Kernel"]
