"""A hypothesis state machine over mmap/read/write/fork/munmap/exit/gup/put_page and
mprotect/madvise(MADV_DONTNEED)/mremap, per profile.

Mappings: anonymous, /dev/mem (short, and longer than RUN_MIN pages so that remap_pfn_range
records a linear run), remapped PFNMAP, an on-demand PFNMAP (FbDev), MIXEDMAP, XipFs on device
memory (on 2.6.25 the segment is given a memmap). After every step k.check() must hold, and
at the end, once every process has exited and every held reference is dropped, every RAM frame
is free again except the ones their owners keep (the zero page, driver RAM, XIP's sparse page).

Every read must match a plain reference model:
each virtual page of each process either views a backing cell (device page, XipFs file page,
driver RAM page, shared-anonymous page) or holds private bytes (anonymous memory, or a
private page after its first write). Fork copies private bytes and keeps backing views;
shared mappings write the backing cell; a private write never reaches the backing.
"""

import errno

import pytest
from helpers_drivers import PROFILE_IDS, MixedDriver, RemapDriver
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import vmlib
from vmlib import PAGE_SIZE
from vmlib.drivers import DevMem, FbDev, XipFs
from vmlib.memory import RUN_MIN

DEVMEM, PFNMAP, MIXED, XIP = 1000, 1016, 1032, 2000      # device pfn ranges (16 pages each)
LONG, LONG_PAGES = 3000, RUN_MIN + 8                     # a /dev/mem mapping kept as a linear run
XIP_PAGES = 4
KINDS = ("anon", "devmem", "xip", "pfnmap", "mixed", "long", "fb")


def make_machine(profile: str):
    version, arch = profile.split("/")

    class Machine(RuleBasedStateMachine):
        """One kernel, up to four processes, and the reference model."""

        def __init__(self):
            super().__init__()
            k = self.k = vmlib.Kernel(version=version, arch=arch, ram_pages=400, trace=False)
            self.dev = k.add_device_memory(DEVMEM, 48, "nvram")
            self.ldev = k.add_device_memory(LONG, LONG_PAGES + 8, "longdev")
            self.xdev = k.add_device_memory(XIP, 16, "xipdev")
            self.xip = XipFs(k, backing=self.xdev)        # 2.6.25: the segment gets a memmap
            init = bytes(range(1, 256)) * 17
            self.xfile = self.xip.create("f", init[:XIP_PAGES * PAGE_SIZE - 5000],
                                         size=XIP_PAGES * PAGE_SIZE)
            self.ram = [k.alloc_page(), k.alloc_page()]
            self.mixed_pfns = [self.ram[0].pfn, MIXED, self.ram[1].pfn, MIXED + 1]
            self.mixed = MixedDriver(self.mixed_pfns) if k.profile.HAVE_VM_MIXEDMAP else None
            self.fb = FbDev(k, 3)                         # ->nopfn on 2.6.25, ->fault later
            self.kept = 1 + len(self.ram) + len(self.fb.pfns)   # zero page + driver RAM
            # the model: cells of backing memory, and per process page -> [shared, cell, private]
            self.cells: dict = {}
            for i in range(XIP_PAGES):
                self.cells[("xip", i)] = bytearray(self.xip.read(self.xfile, i * PAGE_SIZE, PAGE_SIZE))
            self.space: dict = {}       # pid -> {page addr: [shared, cell key | None, bytearray | None, prot]}
            self.procs: dict = {}
            self.held: list = []
            self.nshm = 0
            p = k.spawn()
            self.procs[p.pid] = p
            self.space[p.pid] = {}

        # -- model helpers --------------------------------------------------------------

        def cell(self, key) -> bytearray:
            if key not in self.cells:
                self.cells[key] = bytearray(PAGE_SIZE)
            return self.cells[key]

        def view(self, entry) -> bytes:
            _shared, key, priv, _prot = entry
            if priv is not None:
                return bytes(priv)
            return bytes(self.cell(key)) if key is not None else bytes(PAGE_SIZE)

        def model_write(self, entry, off, data):
            if entry[0]:
                self.cell(entry[1])[off:off + len(data)] = data
            else:
                if entry[2] is None:
                    entry[2] = bytearray(self.view(entry))
                entry[2][off:off + len(data)] = data

        def pick(self, data, pid=None):
            pid = pid if pid is not None else data.draw(st.sampled_from(sorted(self.procs)))
            pages = sorted(self.space[pid])
            if not pages:
                return pid, None
            return pid, data.draw(st.sampled_from(pages))

        # -- rules ------------------------------------------------------------------------

        @precondition(lambda self: len(self.procs) < 4)
        @rule()
        def spawn(self):
            p = self.k.spawn()
            self.procs[p.pid] = p
            self.space[p.pid] = {}

        @rule(data=st.data(), kind=st.sampled_from(KINDS), shared=st.booleans(),
              npages=st.integers(1, 4), writable=st.sampled_from([True, True, True, False]))
        def mmap(self, data, kind, shared, npages, writable):
            k = self.k
            pid = data.draw(st.sampled_from(sorted(self.procs)))
            p = self.procs[pid]
            prot = "rw" if writable else "r"
            flags = "shared" if shared else "private"
            keys: list = [None] * npages
            if kind == "anon":
                a = p.mmap(npages * PAGE_SIZE, prot=prot, flags=flags)
                if shared:
                    self.nshm += 1
                    keys = [("shm", self.nshm, i) for i in range(npages)]
            elif kind == "devmem":
                first = data.draw(st.integers(0, 16 - npages))
                a = p.mmap(npages * PAGE_SIZE, prot=prot, flags=flags, file=k.open(DevMem()),
                           offset=(DEVMEM + first) * PAGE_SIZE)
                keys = [("dev", DEVMEM + first + i) for i in range(npages)]
            elif kind == "xip":
                npages = min(npages, XIP_PAGES)
                first = data.draw(st.integers(0, XIP_PAGES - npages))
                f = self.xip.open("f", "rw")
                a = p.mmap(npages * PAGE_SIZE, prot=prot, flags=flags, file=f,
                           offset=first * PAGE_SIZE)
                keys = [("xip", first + i) for i in range(npages)]
            elif kind == "pfnmap":
                if shared:         # shared PFNMAP may be non-linear
                    pfns = data.draw(st.permutations(range(PFNMAP, PFNMAP + 8)))[:npages]
                    drv = RemapDriver(pfns=list(pfns))
                else:
                    pfns = [PFNMAP + 8 + i for i in range(npages)]
                    drv = RemapDriver(pfn0=pfns[0])
                a = p.mmap(npages * PAGE_SIZE, prot=prot, flags=flags, file=k.open(drv))
                keys = [("dev", pfn) for pfn in pfns]
            elif kind == "long":
                first = data.draw(st.integers(0, 8))
                a = p.mmap(LONG_PAGES * PAGE_SIZE, prot=prot, flags=flags, file=k.open(DevMem()),
                           offset=(LONG + first) * PAGE_SIZE)
                npages = LONG_PAGES
                keys = [("long", LONG + first + i) for i in range(npages)]
            elif kind == "fb":
                npages = min(npages, len(self.fb.pfns))
                if not shared:                  # as mspec/spufs: no private on-demand PFNMAP
                    before = k.snapshot()
                    with pytest.raises(vmlib.KernelError, match="refused"):
                        p.mmap(npages * PAGE_SIZE, prot=prot, flags=flags, file=k.open(self.fb))
                    assert k.snapshot() == before
                    return
                a = p.mmap(npages * PAGE_SIZE, prot=prot, flags=flags, file=k.open(self.fb))
                keys = [("ram", pfn) for pfn in self.fb.pfns[:npages]]
            else:
                if self.mixed is None:
                    return                                   # 2.6.25: no VM_MIXEDMAP
                npages = min(npages, len(self.mixed_pfns))
                a = p.mmap(npages * PAGE_SIZE, prot=prot, flags=flags, file=k.open(self.mixed))
                keys = [self.mixed_key(i) for i in range(npages)]
            for i in range(npages):
                self.space[pid][a + i * PAGE_SIZE] = [shared, keys[i], None, prot]

        def mixed_key(self, i):
            pfn = self.mixed_pfns[i]
            return ("ram", pfn) if self.k.pfn_valid(pfn) else ("dev", pfn)

        @rule(data=st.data())
        def read(self, data):
            pid, addr = self.pick(data)
            if addr is None:
                return
            off = data.draw(st.integers(0, PAGE_SIZE - 1))
            n = data.draw(st.sampled_from([PAGE_SIZE - off, min(16, PAGE_SIZE - off)]))
            if self.space[pid][addr][3] == "none":
                before = self.k.snapshot()
                with pytest.raises(vmlib.Segfault, match="not readable"):
                    self.procs[pid].read(addr + off, n)
                assert self.k.snapshot() == before
                return
            got = self.procs[pid].read(addr + off, n)
            want = self.view(self.space[pid][addr])[off:off + n]
            assert got == want, f"P{pid} read {addr + off:#x} (+{n}): differs from the model"
            whole = self.procs[pid].read(addr, PAGE_SIZE)
            assert whole == self.view(self.space[pid][addr]), f"P{pid} page {addr:#x} differs"

        @rule(data=st.data(), payload=st.binary(min_size=1, max_size=16))
        def write(self, data, payload):
            pid, addr = self.pick(data)
            if addr is None:
                return
            off = data.draw(st.integers(0, PAGE_SIZE - len(payload)))
            entry = self.space[pid][addr]
            p = self.procs[pid]
            if entry[3] in ("r", "none"):
                before = self.k.snapshot()
                with pytest.raises(vmlib.Segfault, match="not writable"):
                    p.write(addr + off, payload)
                assert self.k.snapshot() == before
                return
            p.write(addr + off, payload)
            self.model_write(entry, off, payload)
            self.compare_everywhere(addr)

        def compare_everywhere(self, addr):
            """Every process mapping addr reads exactly its model page (a write shows through
            only where the mapping is shared)."""
            for pid, space in self.space.items():
                if addr in space and space[addr][3] != "none":
                    got = self.procs[pid].read(addr, PAGE_SIZE)
                    assert got == self.view(space[addr]), f"P{pid} page {addr:#x} differs"

        @initialize(data=st.data())
        def first_mapping(self, data):
            """Every run starts with two written anonymous private pages in the first process."""
            [pid] = self.procs
            a = self.procs[pid].mmap(2 * PAGE_SIZE)
            for i in range(2):
                self.space[pid][a + i * PAGE_SIZE] = [False, None, None, "rw"]
                self.procs[pid].write(a + i * PAGE_SIZE + 100, b"first")
                self.model_write(self.space[pid][a + i * PAGE_SIZE], 100, b"first")

        @rule(data=st.data())
        def fork(self, data):
            if len(self.procs) >= 4:
                return
            pid = data.draw(st.sampled_from(sorted(self.procs)))
            c = self.procs[pid].fork()
            self.procs[c.pid] = c
            self.space[c.pid] = {a: [e[0], e[1], None if e[2] is None else bytearray(e[2]), e[3]]
                                 for a, e in self.space[pid].items()}

        @rule(data=st.data(), n=st.integers(1, 3))
        def munmap(self, data, n):
            pid, addr = self.pick(data)
            if addr is None:
                return
            self.procs[pid].munmap(addr, n * PAGE_SIZE)
            for i in range(n):
                self.space[pid].pop(addr + i * PAGE_SIZE, None)

        def refused(self, call, errnos):
            """call() raises KernelError with one of errnos and changes nothing."""
            before = self.k.snapshot(), self.k.nr_free_pages(), dict(self.k.held)
            with pytest.raises(vmlib.KernelError) as e:
                call()
            assert e.value.errno in errnos, e.value
            assert (self.k.snapshot(), self.k.nr_free_pages(), dict(self.k.held)) == before

        @rule(data=st.data(), n=st.integers(1, 3), prot=st.sampled_from(["r", "rw", "none"]))
        def mprotect(self, data, n, prot):
            """kernel-facts §16a: the data stays; only the access rights change."""
            pid, addr = self.pick(data)
            if addr is None:
                return
            pages = [addr + i * PAGE_SIZE for i in range(n)]
            space, p = self.space[pid], self.procs[pid]
            if any(a not in space for a in pages):
                self.refused(lambda: p.mprotect(addr, n * PAGE_SIZE, prot=prot), (errno.ENOMEM,))
                return
            assert p.mprotect(addr, n * PAGE_SIZE, prot=prot) == 0
            for a in pages:
                space[a][3] = prot

        @rule(data=st.data(), n=st.integers(1, 3))
        def madvise_dontneed(self, data, n):
            """kernel-facts §16b: -EINVAL on VM_PFNMAP; elsewhere private pages read their backing
            (or zeroes) again and shared ones keep their data."""
            pid, addr = self.pick(data)
            if addr is None:
                return
            pages = [addr + i * PAGE_SIZE for i in range(n)]
            space, p = self.space[pid], self.procs[pid]
            if any(a not in space for a in pages):
                self.refused(lambda: p.madvise(addr, n * PAGE_SIZE, "dontneed"), (errno.ENOMEM,))
                return
            if any(p.find_vma(a).vm_flags & vmlib.VM_PFNMAP for a in pages):
                self.refused(lambda: p.madvise(addr, n * PAGE_SIZE, "dontneed"), (errno.EINVAL,))
                return
            assert p.madvise(addr, n * PAGE_SIZE, "dontneed") == 0
            for a in pages:
                if not space[a][0]:
                    space[a][2] = None

        @rule(data=st.data(), n=st.integers(1, 3), mode=st.sampled_from(["shrink", "move", "grow"]),
              may_move=st.booleans())
        def mremap(self, data, n, mode, may_move):
            """kernel-facts §16c: a shrink unmaps the tail, a move carries every page (and its
            data) to the new address, growth is -EFAULT for VM_PFNMAP/VM_DONTEXPAND and gives
            anonymous memory zeroed pages."""
            pid, addr = self.pick(data)
            if addr is None:
                return
            space, p = self.space[pid], self.procs[pid]
            vma = p.find_vma(addr)
            n = min(n, (vma.vm_end - addr) // PAGE_SIZE)
            old = [addr + i * PAGE_SIZE for i in range(n)]
            if mode == "shrink":
                if n < 2:
                    return
                assert p.mremap(addr, n * PAGE_SIZE, (n - 1) * PAGE_SIZE) == addr
                space.pop(old[-1])
                return
            if mode == "move":
                self.nmoves = getattr(self, "nmoves", 0) + 1
                target = 0x7000_0000 + self.nmoves * 16 * PAGE_SIZE
                assert p.mremap(addr, n * PAGE_SIZE, n * PAGE_SIZE, may_move=True, new_addr=target) == target
                for i, a in enumerate(old):
                    space[target + i * PAGE_SIZE] = space.pop(a)
                return
            if vma.vm_flags & (vmlib.VM_PFNMAP | vmlib.VM_DONTEXPAND):
                self.refused(lambda: p.mremap(addr, n * PAGE_SIZE, (n + 1) * PAGE_SIZE, may_move=True),
                             (errno.EFAULT,))
                return
            entry = space[addr]
            if entry[0] or entry[1] is not None or vma.vm_ops is not None:
                return                       # only private anonymous memory: the new page is zeroes
            grow = lambda: p.mremap(addr, n * PAGE_SIZE, (n + 1) * PAGE_SIZE, may_move=may_move)
            in_place = addr + n * PAGE_SIZE == vma.vm_end and not p.mm.overlaps(vma.vm_end, vma.vm_end + PAGE_SIZE)
            if not in_place and not may_move:
                self.refused(grow, (errno.ENOMEM,))
                return
            new = grow()
            assert (new == addr) == in_place
            moved = [space.pop(a) for a in old]
            for i, e in enumerate(moved + [[False, None, None, entry[3]]]):
                space[new + i * PAGE_SIZE] = e

        @precondition(lambda self: len(self.procs) > 1)
        @rule(data=st.data())
        def exit(self, data):
            pid = data.draw(st.sampled_from(sorted(self.procs)))
            self.procs.pop(pid).exit()
            del self.space[pid]

        @rule(data=st.data(), n=st.integers(1, 3), write=st.booleans(), fast=st.booleans())
        def gup(self, data, n, write, fast):
            pid, addr = self.pick(data)
            if addr is None:
                return
            p = self.procs[pid]
            fn = p.get_user_pages_fast if fast else p.get_user_pages
            before = self.k.snapshot()
            try:
                pages = fn(addr, n, write=write)
            except vmlib.KernelError:
                assert self.k.snapshot() == before
                return
            assert 1 <= len(pages) <= n
            self.held += pages
            if write:                  # a write gup breaks COW like a write fault would
                for i in range(len(pages)):
                    entry = self.space[pid].get(addr + i * PAGE_SIZE)
                    if entry is not None and not entry[0] and entry[2] is None:
                        entry[2] = bytearray(self.view(entry))

        @precondition(lambda self: self.held)
        @rule(data=st.data())
        def put_page(self, data):
            i = data.draw(st.integers(0, len(self.held) - 1))
            self.k.put_page(self.held.pop(i))

        @rule(data=st.data())
        def backing_unchanged_by_private_writes(self, data):
            """Device memory, the XipFs file and driver RAM hold exactly the model's bytes."""
            key = data.draw(st.sampled_from(sorted(self.cells, key=repr) or [("xip", 0)]))
            kind = key[0]
            if kind == "dev":
                got = self.dev.read((key[1] - DEVMEM) * PAGE_SIZE, PAGE_SIZE)
            elif kind == "long":
                got = self.ldev.read((key[1] - LONG) * PAGE_SIZE, PAGE_SIZE)
            elif kind == "xip":
                got = self.xip.read(self.xfile, key[1] * PAGE_SIZE, PAGE_SIZE)
            elif kind == "ram":
                got = self.k.phys.read_frame(key[1], 0, PAGE_SIZE)
            else:
                return                                  # shmem pages live only while mapped
            assert got == bytes(self.cell(key)), f"backing {key} differs from the model"

        @invariant()
        def kernel_invariants(self):
            self.k.check()

        def teardown(self):
            """Every process exits and every held reference is dropped: then every RAM frame is
            free again except the zero page, the drivers' own RAM and XIP's sparse page."""
            k = self.k
            for pid in sorted(self.procs):
                self.procs.pop(pid).exit()
                k.check()
            while self.held:
                k.put_page(self.held.pop())
            k.check()
            kept = self.kept + (k.xip_sparse_page is not None)
            left = {pfn: p.owner for pfn, p in k.phys.memmap.items()
                    if p._count > 0 and pfn < k.phys.ram_pages}
            assert len(left) == kept, f"RAM frames still in use after every process exited: {left}"
            assert k.nr_free_pages() == k.phys.ram_pages - kept and k.phys.reserved_pgtables == 0

    Machine.__name__ = f"Machine_{profile.replace('/', '_').replace('.', '_')}"
    return Machine


@pytest.mark.parametrize("profile", PROFILE_IDS)
def test_state_machine(profile):
    """Random mmap/read/write/fork/munmap/exit/gup/put_page/mprotect/madvise/mremap against the
    reference model."""
    machine = make_machine(profile)
    machine.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
    machine.TestCase("runTest").runTest()
