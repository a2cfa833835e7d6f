"""The teaching facade: a user process with mmap, read, write, fork, munmap, exit, gup,
mprotect, madvise(MADV_DONTNEED) and mremap.

These are the system calls and memory accesses a user program makes; each runs the kernel
paths of vmlib.memory and vmlib.gup atomically (an operation that raises changes nothing).
"""

from __future__ import annotations

import errno
from bisect import bisect_right

from vmlib import gup, madvise, memory, mprotect, mremap, pgtable
from vmlib.errors import KernelError, Segfault
from vmlib.flags import (
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_DONTCOPY,
    VM_EXEC,
    VM_FAULT_ERROR,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from vmlib.mm import File, MmStruct, VmArea
from vmlib.mm import split_vma as _split
from vmlib.pte import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW
from vmlib.trace import lazy_text, new_seen, seen

TASK_UNMAPPED_BASE = 0x40000000
TASK_SIZE = 0x7FFFFFFFF000
_YOUNG = _PAGE_PRESENT | _PAGE_ACCESSED
_WRITTEN = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY
_PROT = {"r": VM_READ, "w": VM_WRITE, "x": VM_EXEC}


def _parse_prot(prot, fn: str = "mmap") -> int:
    if not isinstance(prot, str):
        raise TypeError(f"{fn}: prot is a string such as 'r', 'rw' or 'rwx', got {prot!r}")
    if prot in ("", "none", "-"):
        return 0
    if any(c not in _PROT for c in prot) or len(set(prot)) != len(prot):
        raise ValueError(f"{fn}: unknown prot {prot!r}: use letters from 'rwx' (e.g. 'r', 'rw') "
                         f"or 'none'")
    vm = 0
    for c in prot:
        vm |= _PROT[c]
    return vm


def _check_len(length, fn: str, what: str = "length") -> int:
    if not isinstance(length, int) or isinstance(length, bool):
        raise TypeError(f"{fn}: {what} must be an int (bytes), got {type(length).__name__}")
    if length <= 0:
        why = ""
        if length == 0:
            why = (" (a zero length is -EINVAL in the kernel, kernel-facts §2 row 9 and §8 row 6)"
                   if fn in ("mmap", "munmap") else " (the kernel returns -EINVAL)")
        raise ValueError(f"{fn}: {what} must be positive, got {length}{why}")
    return (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def _check_aligned(addr, fn: str, what: str = "address") -> None:
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise TypeError(f"{fn}: {what} must be an int, got {type(addr).__name__}")
    if addr < 0 or addr % PAGE_SIZE:
        raise ValueError(f"{fn}: {what} {addr:#x} is not page-aligned (a multiple of {PAGE_SIZE:#x})")


class Process:
    """A user process: its pid, name and mm. Create with Kernel.spawn() or fork()."""

    def __init__(self, kernel, pid: int, name: str, mm: MmStruct):
        self.kernel = kernel
        self.pid = pid
        self.name = name
        self.mm = mm
        self.alive = True

    def __repr__(self):
        state = "" if self.alive else " exited"
        return f"<Process {self.pid} {self.name}{state}>"

    @classmethod
    def _create(cls, k, name: str | None):
        pid = k._next_pid
        k._log(setattr, k, "_next_pid", pid)
        k._next_pid = pid + 1
        pgd = k._alloc_pgtable(4)
        if pgd is None:
            raise KernelError(errno.ENOMEM, "fork: out of memory for a pgd")
        name = name or f"P{pid}"
        proc = cls(k, pid, name, MmStruct(k, pid, pgd, name))
        k._set_dict(k.procs, pid, proc)
        k.tracer.emit("state", "mm_alloc", f"process {pid} ({name})", "", ("mm", pid, None, name))
        k.tracer.emit("state", "mm_alloc", "", "", ("vmas", pid, None, ()))
        for kind in ("anon", "file"):
            k.tracer.emit("state", "mm_alloc", "", "", ("rss", (pid, kind), None, 0))
        k._table_delta(proc.mm, 4, 0, None, pgd.pfn)
        return proc

    def _op(self, text) -> None:
        """Record a user-level operation (text may be a function, called only when tracing)."""
        if not self.alive:
            raise ValueError(f"process {self.pid} ({self.name}) has exited: it can do nothing more")
        if self.kernel.tracer.enabled:
            self.kernel.tracer.emit("op", self.name, text() if callable(text) else text)

    # -- mmap / munmap ------------------------------------------------------------------------

    def mmap(self, length: int, prot: str = "rw", flags: str = "private", file: File | None = None,
             offset: int = 0, addr: int | None = None) -> int:
        """Map `length` bytes; return the start address. KernelError (and no vma) on failure."""
        k = self.kernel
        length = _check_len(length, "mmap")
        vm_prot = _parse_prot(prot)
        if flags not in ("private", "shared"):
            raise ValueError(f"mmap: unknown flags {flags!r}: use 'private' or 'shared' "
                             f"(addr= gives MAP_FIXED)")
        _check_aligned(offset, "mmap", "offset")
        if addr is not None:
            _check_aligned(addr, "mmap", "addr")
            if addr + length > TASK_SIZE or addr == 0:
                raise ValueError(f"mmap: [{addr:#x}, {addr + length:#x}) is outside user space "
                                 f"(0x1000..{TASK_SIZE:#x})")
        if file is not None and not isinstance(file, File):
            raise TypeError(f"mmap: file must come from Kernel.open(), got {type(file).__name__}")
        if file is not None and file.kernel is not k:
            raise ValueError("mmap: that file was opened on another Kernel object")
        self._op(f"mmap({length:#x}, {prot or 'none'}, {flags}"
                 f"{', ' + file.driver.name if file else ''}{f', offset={offset:#x}' if offset else ''})")
        with k._transaction():
            return self._do_mmap(length, vm_prot, flags, file, offset, addr)

    def _do_mmap(self, length, vm_flags, flags, file, offset, addr) -> int:
        k, mm = self.kernel, self.mm
        vm_flags |= VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
        shared = flags == "shared"
        with k.call("do_mmap_pgoff", ""):
            if file is not None:
                if not file.readable:
                    raise KernelError(errno.EACCES, "do_mmap_pgoff: the file was not opened for reading")
                if shared:
                    if vm_flags & VM_WRITE and not file.writable:
                        raise KernelError(errno.EACCES, "do_mmap_pgoff: MAP_SHARED with PROT_WRITE "
                                          "needs a file opened for writing")
                    vm_flags |= VM_SHARED | VM_MAYSHARE
                    if not file.writable:
                        vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
                        k.decide("do_mmap_pgoff", "MAP_SHARED of a read-only file: VM_SHARED and "
                                 "VM_MAYWRITE cleared, VM_MAYSHARE kept (not COW)", "§2")
            elif shared:
                from vmlib.drivers.shmem import Shmem
                file = k.open(Shmem(length), "rw")
                vm_flags |= VM_SHARED | VM_MAYSHARE
            if addr is None:
                addr = self._get_unmapped_area(length)
            else:
                if mm.overlaps(addr, addr + length):
                    self._do_munmap(addr, length)
            pgoff = offset >> PAGE_SHIFT
            if file is None:
                pgoff = addr >> PAGE_SHIFT          # anonymous private: pgoff = addr >> PAGE_SHIFT
            name = file.driver.name if file is not None else "anon"
            vma = VmArea(mm, addr, addr + length, vm_flags, pgoff, file, name)
            k.decide("do_mmap_pgoff", f"vma {addr:#x}-{addr + length:#x} vm_flags "
                     f"{_flag_text(vma.vm_flags)}, COW={k.ops.is_cow_mapping(vma.vm_flags)}", "§2")
            if file is not None:
                err = file.driver.mmap(k, vma)
                if not isinstance(err, int):
                    raise TypeError(f"{type(file.driver).__name__}.mmap must return 0 or -errno, got "
                                    f"{err!r}")
                if err:
                    raise KernelError(err, f"mmap: {file.driver.name}->mmap refused the mapping")
                if file.driver.writenotify and vma.vm_flags & VM_SHARED and vma.vm_flags & VM_WRITE:
                    vma.__dict__["vm_page_prot"] = vma.vm_page_prot & ~_PAGE_RW
                    k.decide("mmap_region", "vma_wants_writenotify: shared writable, but ptes start "
                             "read-only so the first write faults (dirty accounting)", "§6b v2.6.26 row 1",
                             seen(vma, flags=VM_SHARED | VM_WRITE))
            k._insert_vma(mm, vma)
            return addr

    def _get_unmapped_area(self, length: int) -> int:
        addr = self.mm.first_gap(TASK_UNMAPPED_BASE, length)
        if addr + length > TASK_SIZE:
            raise KernelError(errno.ENOMEM, f"get_unmapped_area: no room for {length:#x} bytes")
        return addr

    def munmap(self, addr: int, length: int) -> int:
        """Unmap [addr, addr+length): split vmas at the edges, zap, free page tables; return 0.

        Follows mm/mmap.c do_munmap(), v2.6.26: a misaligned address or a zero length is
        -EINVAL (here ValueError); a range where nothing is mapped returns 0 and changes nothing."""
        _check_aligned(addr, "munmap")
        length = _check_len(length, "munmap")
        if addr + length > TASK_SIZE:
            raise ValueError(f"munmap: [{addr:#x}, {addr + length:#x}) goes past the end of user "
                             f"space ({TASK_SIZE:#x}; do_munmap returns -EINVAL, kernel-facts §8 row 6)")
        self._op(f"munmap({addr:#x}, {length:#x})")
        if not self.mm.overlaps(addr, addr + length):
            self.kernel.decide("do_munmap", f"no vma overlaps [{addr:#x}, {addr + length:#x}) → "
                               f"returns 0, nothing changes", "§8 row 6")
            return 0
        with self.kernel._transaction():
            self._do_munmap(addr, length)
        return 0

    def _do_munmap(self, start: int, length: int) -> None:
        k, mm = self.kernel, self.mm
        end = start + length
        with k.call("do_munmap", f"{start:#x}-{end:#x}"):
            vmas = []
            for v in mm.vmas:
                if v.vm_end <= start or v.vm_start >= end:
                    vmas.append(v)
                    continue
                if v.vm_start < start:
                    vmas.append(_split(v, v.vm_start, start))
                if v.vm_end > end:
                    vmas.append(_split(v, end, v.vm_end))
                memory.zap_page_range(k, v, max(v.vm_start, start), min(v.vm_end, end))
            k._set_vmas(mm, sorted(vmas, key=lambda v: v.vm_start))
            k._free_empty_tables(mm)

    # -- mprotect / madvise / mremap (kernel-facts §16) -----------------------------------

    def mprotect(self, addr: int, length: int, prot: str = "r") -> int:
        """Change the protection of [addr, addr+length) to prot ('r', 'rw', 'none', ...); return 0.

        Follows mm/mprotect.c sys_mprotect() of the kernel's version (vmlib.mprotect). A length
        of 0 returns 0 and changes nothing, as the kernel does; KernelError -ENOMEM when part of
        the range is unmapped, -EACCES when a vma may not get those rights (VM_MAY*); nothing
        changes then."""
        _check_aligned(addr, "mprotect")
        vm_prot = _parse_prot(prot, "mprotect")
        if type(length) is int and length == 0:
            self._op(f"mprotect({addr:#x}, 0, {prot or 'none'})")
            return 0
        length = _check_len(length, "mprotect")
        self._check_user_range(addr, length, "mprotect")
        self._op(f"mprotect({addr:#x}, {length:#x}, {prot or 'none'})")
        with self.kernel._transaction(), self.kernel.call("sys_mprotect", f"{addr:#x}-{addr + length:#x}"):
            mprotect.sys_mprotect(self.kernel, self.mm, addr, addr + length, vm_prot)
        return 0

    def madvise(self, addr: int, length: int, advice: str = "dontneed") -> int:
        """madvise(addr, length, MADV_DONTNEED): zap the range's ptes; return 0.

        Follows mm/madvise.c of the kernel's version (vmlib.madvise): KernelError -EINVAL for a
        VM_PFNMAP vma (and the other flags the version refuses), -ENOMEM for an unmapped part;
        nothing changes then. Only "dontneed" is modelled."""
        _check_aligned(addr, "madvise")
        if not isinstance(advice, str):
            raise TypeError(f"madvise: advice is a string such as 'dontneed', got {advice!r}")
        if advice.lower() not in ("dontneed", "madv_dontneed"):
            raise ValueError(f"madvise: advice {advice!r} is not modelled: use 'dontneed' (MADV_DONTNEED)")
        if type(length) is int and length == 0:
            self._op(f"madvise({addr:#x}, 0, MADV_DONTNEED)")
            return 0
        length = _check_len(length, "madvise")
        self._check_user_range(addr, length, "madvise")
        self._op(f"madvise({addr:#x}, {length:#x}, MADV_DONTNEED)")
        with self.kernel._transaction(), self.kernel.call("sys_madvise", f"{addr:#x}-{addr + length:#x}"):
            madvise.sys_madvise_dontneed(self.kernel, self.mm, addr, addr + length)
        return 0

    def mremap(self, addr: int, old_len: int, new_len: int, may_move: bool = False,
               new_addr: int | None = None) -> int:
        """Resize [addr, addr+old_len) to new_len bytes; return its (possibly new) address.

        Follows mm/mremap.c of the kernel's version (vmlib.mremap). may_move=True is
        MREMAP_MAYMOVE; new_addr= (with may_move) is MREMAP_FIXED. KernelError -EFAULT for a
        growing VM_PFNMAP or VM_DONTEXPAND vma or a range not inside one vma, -ENOMEM when it
        cannot grow in place and may not move; nothing changes then."""
        _check_aligned(addr, "mremap")
        if type(old_len) is int and old_len == 0:
            raise ValueError("mremap: old_len 0 (duplicating a shared mapping) is not modelled; "
                             "give the length of the mapping to resize")
        old_len = _check_len(old_len, "mremap", "old_len")
        new_len = _check_len(new_len, "mremap", "new_len")
        if not isinstance(may_move, bool):
            raise TypeError(f"mremap: may_move must be True or False, got {may_move!r}")
        self._check_user_range(addr, old_len, "mremap")
        if new_addr is not None:
            _check_aligned(new_addr, "mremap", "new_addr")
            if not may_move:
                raise ValueError("mremap: new_addr (MREMAP_FIXED) needs may_move=True "
                                 "(the kernel returns -EINVAL)")
            if new_addr == 0:
                raise ValueError("mremap: new_addr 0 is outside user space (0x1000..)")
            self._check_user_range(new_addr, new_len, "mremap")
            if addr < new_addr + new_len and new_addr < addr + old_len:
                raise ValueError(f"mremap: the new range [{new_addr:#x}, {new_addr + new_len:#x}) overlaps "
                                 f"the old one (the kernel returns -EINVAL)")
        self._op(f"mremap({addr:#x}, {old_len:#x}, {new_len:#x}"
                 f"{', MREMAP_MAYMOVE' if may_move else ''}"
                 f"{f', MREMAP_FIXED {new_addr:#x}' if new_addr is not None else ''})")
        with self.kernel._transaction(), self.kernel.call("sys_mremap", f"{addr:#x}"):
            return mremap.do_mremap(self, addr, old_len, new_len, may_move, new_addr)

    def _check_user_range(self, addr: int, length: int, fn: str) -> None:
        if addr + length > TASK_SIZE:
            raise ValueError(f"{fn}: [{addr:#x}, {addr + length:#x}) goes past the end of user space "
                             f"({TASK_SIZE:#x})")

    # -- memory access --------------------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        """Read n bytes at addr, faulting pages in as the CPU would."""
        if (type(addr) is int and type(n) is int and 0 < n <= PAGE_SIZE - (addr & 4095)
                and self.alive and self.kernel._undo is None):
            got = self._read_fast(addr, n)
            if got is not None:
                return got
        self._check_access(addr, n, "read")
        self._op(lambda: _read_text(addr, n))
        with self.kernel._transaction():
            return bytes(self._access(addr, n, None))

    def write(self, addr: int, data: bytes) -> None:
        """Write data at addr, faulting (and copying on write) as the CPU would."""
        if (type(data) is bytes and type(addr) is int and 0 < len(data) <= PAGE_SIZE - (addr & 4095)
                and self.alive and self.kernel._undo is None and self._write_fast(addr, data)):
            return
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write: data must be bytes, got {type(data).__name__}")
        self._check_access(addr, len(data), "write")
        self._op(lambda: _write_text(addr, data))
        with self.kernel._transaction():
            self._access(addr, len(data), bytes(data))

    def _pte_slot(self, page_addr: int, want: int):
        """(vma, pte table entries, index) for a fast access to page_addr, or None: the vma
        must allow `want` (VM_READ or VM_WRITE), the mm have no linear runs and the pte table
        exist. Looks up and changes nothing."""
        mm = self.mm
        i = bisect_right(mm._ends, page_addr)                  # mm.find_vma
        vmas = mm._vmas
        if i == len(vmas):
            return None
        vma = vmas[i]
        if vma.vm_start > page_addr or not vma.vm_flags & want or mm.runs:
            return None
        t = mm.pgd.entries.get((page_addr >> 39) & 511)         # pgtable.pte_table
        if t is not None:
            t = t.entries.get((page_addr >> 30) & 511)
            if t is not None:
                t = t.entries.get((page_addr >> 21) & 511)
        if t is None:
            return None
        return vma, t.entries, (page_addr >> 12) & 511

    def _fast_fault_ok(self, vma) -> bool:
        """Whether an empty pte of vma can take memory.do_anonymous_page_fast."""
        k = self.kernel
        return (vma.vm_ops is None and vma.anon_vma and not k.tracer._quiet
                and vma.vm_page_prot & _YOUNG == _YOUNG and not vma.vm_page_prot >> 12
                and k.phys.nr_free - k.phys.reserved_pgtables > 0)

    def _cow_fast_ok(self, vma) -> bool:
        """Whether a write to a present read-only pte of vma can run do_wp_page outside a
        transaction: an anonymous vma, the kernel's own decision functions (a student's may
        raise half-way), and a free page for the copy, so that nothing in it can fail."""
        k = self.kernel
        ops = k.ops
        return (vma.vm_ops is None and ops.vm_normal_page is memory.vm_normal_page
                and ops.do_wp_page_decision is memory.do_wp_page_decision
                and ops.is_cow_mapping is memory.is_cow_mapping
                and k.phys.nr_free - k.phys.reserved_pgtables > 0)

    def _read_fast(self, addr: int, n: int) -> bytes | None:
        """read() inside one page, flattened like _write_fast: a present, young pte (no fault),
        or an empty pte of an anonymous vma on a kernel whose read fault allocates a page
        (before 6.12, §6a anonymous read). None, having changed nothing, for anything else."""
        k = self.kernel
        page_addr = addr & ~4095
        slot = self._pte_slot(page_addr, VM_READ)
        if slot is None:
            return None
        vma, entries, idx = slot
        pte = entries.get(idx)
        tracer = k.tracer
        if pte is None:
            if k.profile.MODERN or not self._fast_fault_ok(vma):
                return None
            memory.do_anonymous_page_fast(k, vma, page_addr, entries, idx, self.name,
                                          (addr - page_addr, n) if tracer.enabled else None, write=False)
            return bytes(n)
        if pte[1] & _YOUNG != _YOUNG:
            return None
        if tracer.enabled:
            tracer.emit("op", self.name, (_READ_TEXT, addr, n))
        return k.phys.read_frame(pte[0], addr - page_addr, n)

    def _write_fast(self, addr: int, data: bytes) -> bool:
        """write() of bytes inside one page, flattened for the common cases: the pte is present,
        writable, young and dirty (no fault); it is empty in an anonymous vma that has its
        anon_vma and its page table (memory.do_anonymous_page_fast); or it is present and
        read-only in an anonymous vma (COW: handle_mm_fault → do_wp_page, with no transaction
        around it, see _cow_fast_ok). Same state and trace events as the general path. Anything
        else, or anything that could fail half-way (no free page, a table to allocate, linear
        runs, a student's decision function), returns False having changed nothing."""
        k = self.kernel
        page_addr = addr & ~4095
        slot = self._pte_slot(page_addr, VM_WRITE)
        if slot is None:
            return False
        vma, entries, idx = slot
        pte = entries.get(idx)
        tracer = k.tracer
        if pte is None:
            if not self._fast_fault_ok(vma):
                return False
            pte = memory.do_anonymous_page_fast(k, vma, page_addr, entries, idx, self.name,
                                                (addr - page_addr, data[:9]) if tracer.enabled else None)
        elif pte[1] & _WRITTEN == _WRITTEN:
            if tracer.enabled:
                tracer.emit("op", self.name, (_WRITE_TEXT, addr, data[:9]))
        elif pte[1] & (_PAGE_PRESENT | _PAGE_RW) == _PAGE_PRESENT and self._cow_fast_ok(vma):
            if tracer.enabled:                      # _fault_in's loop, once round, flattened
                tracer.emit("op", self.name, (_WRITE_TEXT, addr, data[:9]))
                if not tracer._quiet:
                    k.decide("fault", (_WP_FAULT_TEXT, page_addr, self.mm.id), "§6b")
            memory.handle_mm_fault(k, vma, page_addr, True)          # do_wp_page: cannot fail here
            pte = entries[idx]
            if pte[1] & _WRITTEN != _WRITTEN:
                pte = memory.pte_mkyoung(memory.pte_mkdirty(pte))     # the MMU sets A and D
                k._set_pte(self.mm, page_addr, pte, "mmu: accessed/dirty bit")
        else:
            return False
        frames = k.phys.frames
        off = addr - page_addr
        if off == 0 and pte[0] not in frames:
            frames[pte[0]] = data                   # bytes are immutable: kept as they are
        else:
            k.phys.write_frame(pte[0], off, data)
        return True

    def _check_access(self, addr, n, what: str) -> None:
        if not isinstance(addr, int) or isinstance(addr, bool):
            raise TypeError(f"{what}: address must be an int, got {type(addr).__name__}")
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"{what}: length must be a positive int, got {n!r}")

    def _access(self, addr: int, n: int, data: bytes | None) -> bytearray:
        k = self.kernel
        out = bytearray()
        pos = 0
        while pos < n:
            a = addr + pos
            page_addr = a & ~(PAGE_SIZE - 1)
            off = a - page_addr
            chunk = min(n - pos, PAGE_SIZE - off)
            pte = self._fault_in(page_addr, data is not None)
            if data is None:
                out += k.phys.read_frame(pte.pfn, off, chunk)
            else:
                k._write_user(pte.pfn, off, data[pos:pos + chunk])
            pos += chunk
        return out

    def _fault_in(self, addr: int, write: bool):
        """The pte for addr after whatever faults the access takes (SIGSEGV/SIGBUS raised)."""
        k, mm = self.kernel, self.mm
        vma = mm.vma_at(addr)
        what = "write" if write else "read"
        if vma is None:
            raise Segfault(f"{what} at {addr:#x}: no vma there (SIGSEGV, SEGV_MAPERR)")
        if not vma.vm_flags & (VM_WRITE if write else VM_READ):
            raise Segfault(f"{what} at {addr:#x}: the vma {vma.vm_start:#x}-{vma.vm_end:#x} is not "
                           f"{'writable' if write else 'readable'} (SIGSEGV, SEGV_ACCERR)")
        for tries in range(4):
            pte = pgtable.lookup(mm, addr)
            if pte is not None and (pte.write or not write):
                if not pte.young or (write and not pte.dirty):     # the MMU sets A (and D)
                    pte = memory.pte_mkyoung(memory.pte_mkdirty(pte) if write else pte)
                    k._set_pte(mm, addr, pte, "mmu: accessed/dirty bit")
                return pte
            if pte is not None and k.tracer.on:
                if tries and vma.vm_flags & VM_SHARED:    # write notification: ptes start read-only
                    k.decide("fault", f"{what} to the read-only pte the fault left at {addr:#x}: the "
                             "shared vma wants write notification (vm_page_prot has no write bit), "
                             "so the retried write faults again and do_wp_page makes it writable",
                             "§6b row 7" if k.profile.MODERN else "§6b row 1", seen(vma, addr, flags=VM_SHARED))
                elif tries:     # a private vma's vm_page_prot has no write bit (§6a row 10): retried
                    k.decide("fault", f"{what} to the read-only pte the fault left at {addr:#x}: "
                             "the retried write faults again", "§6a row 10", seen(vma, addr))
                else:
                    k.decide("fault", f"{what} to a read-only pte at {addr:#x}: a write-protection "
                             "fault, handled by do_wp_page", "§6b", seen(vma, addr))
            code = memory.handle_mm_fault(k, vma, addr, write)
            if code & VM_FAULT_ERROR:
                memory.fault_error(code, addr, f"{what} by {self.name}")
        raise KernelError(errno.EFAULT, f"{what} at {addr:#x}: the fault handler made no progress")

    # -- fork / exit ----------------------------------------------------------------------

    def fork(self, name: str | None = None) -> Process:
        """A child with a copy of this mm: vmas duplicated, ptes copied where fork copies them."""
        self._op("fork()")
        k = self.kernel
        with k._transaction():
            child = Process._create(k, name)
            with k.call("dup_mmap", f"{self.name} → {child.name}"):
                vmas = []
                for v in self.mm.vmas:
                    if v.vm_flags & VM_DONTCOPY:
                        continue
                    c = VmArea(child.mm, v.vm_start, v.vm_end, v.vm_flags, v.vm_pgoff, v.vm_file, v.name)
                    c.__dict__["vm_page_prot"] = v.vm_page_prot
                    c.__dict__["anon_vma"] = v.anon_vma
                    c.__dict__["vm_private_data"] = v.vm_private_data
                    vmas.append(c)
                    k._set_vmas(child.mm, list(vmas))
                    memory.copy_page_range(k, c, v)
            return child

    def exit(self) -> None:
        """exit_mmap: zap every vma, free the page tables, forget the process."""
        self._op("exit()")
        k, mm = self.kernel, self.mm
        with k._transaction(), k.call("exit_mmap", self.name):
            for v in list(mm.vmas):
                memory.zap_page_range(k, v, v.vm_start, v.vm_end)
            k._set_vmas(mm, [])
            k._free_empty_tables(mm)
            k._table_delta(mm, 4, 0, mm.pgd.pfn, None)
            k._put_page(mm.pgd.page, "pgd_free")
            k._log(setattr, mm, "dead", False)
            mm.dead = True
            k._update_run_tables(mm)
            k._set_dict(k.procs, self.pid, None)
            k._log(setattr, self, "alive", True)
            self.alive = False
            k.tracer.emit("state", "exit_mmap", "", "", ("vmas", self.pid, (), None))
            for kind, n in mm.rss.items():
                k.tracer.emit("state", "exit_mmap", "", "", ("rss", (self.pid, kind), n, None))
            k.tracer.emit("state", "exit_mmap", f"process {self.pid} is gone", "",
                          ("mm", self.pid, self.name, None))

    # -- inspection and gup ---------------------------------------------------------------

    def find_vma(self, addr: int):
        """The kernel's find_vma: the first vma with vm_end > addr (None if there is none)."""
        return self.mm.find_vma(addr)

    def follow_pte(self, addr: int):
        """The present pte mapping addr, or None. Faults nothing in."""
        if not isinstance(addr, int):
            raise TypeError(f"follow_pte: address must be an int, got {type(addr).__name__}")
        return pgtable.lookup(self.mm, addr & ~(PAGE_SIZE - 1))

    @property
    def vmas(self) -> list:
        return list(self.mm.vmas)

    @property
    def rss(self) -> dict:
        return dict(self.mm.rss)

    def get_user_pages(self, addr: int, nr: int, write: bool = False) -> list:
        """Pages of nr pages from addr, each with a reference (release with k.put_page)."""
        self._check_gup(addr, nr, "get_user_pages")
        self._op(f"get_user_pages({addr:#x}, {nr}, write={write})")
        with self.kernel._transaction():
            return gup.get_user_pages(self.kernel, self.mm, addr, nr, bool(write))

    def get_user_pages_fast(self, addr: int, nr: int, write: bool = False) -> list:
        """Like get_user_pages; may return fewer pages; the trace says where it fell back.

        2.6.25 and 2.6.26 have no get_user_pages_fast (2.6.27 added it): there this runs what
        callers did instead, down_read(mmap_sem) + get_user_pages, and the trace says so."""
        self._check_gup(addr, nr, "get_user_pages_fast")
        self._op(f"get_user_pages_fast({addr:#x}, {nr}, write={write})")
        with self.kernel._transaction():
            return gup.get_user_pages_fast(self.kernel, self.mm, addr, nr, bool(write))

    def pin_user_pages(self, addr: int, nr: int, write: bool = False) -> list:
        """FOLL_PIN (6.12): each page gains 1024 references; release with k.unpin_user_page."""
        self._check_gup(addr, nr, "pin_user_pages")
        self._op(f"pin_user_pages({addr:#x}, {nr}, write={write})")
        with self.kernel._transaction():
            return gup.pin_user_pages(self.kernel, self.mm, addr, nr, bool(write))

    def _check_gup(self, addr, nr, fn: str) -> None:
        _check_aligned(addr, fn)
        if not isinstance(nr, int) or nr <= 0:
            raise ValueError(f"{fn}: nr must be a positive number of pages, got {nr!r}")


_write_text, _read_text = memory.write_op_text, memory.read_op_text
_WRITE_TEXT, _READ_TEXT = lazy_text(_write_text), lazy_text(_read_text)
_WP_FAULT_TEXT = lazy_text("write to a read-only pte at {:#x}: a write-protection fault, handled by do_wp_page".format,
                           lambda addr, mm_id: new_seen((((mm_id, addr),), (), (), 0)))


def _flag_text(flags: int) -> str:
    from vmlib.flags import flag_names
    return flag_names(flags)
