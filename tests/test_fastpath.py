"""The flat paths (Process._write_fast/_read_fast → memory.do_anonymous_page_fast, or
handle_mm_fault → do_wp_page outside a transaction) change exactly what the general path
(Process._access → _fault_in → handle_mm_fault → do_anonymous_page / do_wp_page,
mm/memory.c v2.6.26 and 6.12) changes, and record exactly the same trace events."""

import pytest

import vmlib
from vmlib import PAGE_SIZE
from vmlib.process import Process

PROFILES = [("2.6.25", "x86"), ("2.6.26", "x86"), ("2.6.27", "x86"), ("6.12", "x86")]


def _workload(k):
    p = k.spawn("writer")
    a = p.mmap(10 * PAGE_SIZE)
    b = p.mmap(2 * PAGE_SIZE, flags="shared")            # shmem: vm_ops, never the fast path
    p.write(a, b"first")                                 # sets anon_vma: general path
    for i in range(1, 8):
        p.write(a + i * PAGE_SIZE + 100, b"%d" % i)      # empty ptes: the fast fault
    p.write(a + 8 * PAGE_SIZE, b"start")                 # at a page's start (its own op text)
    p.write(a + 9 * PAGE_SIZE, b"0123456789abcdef")      # longer than the 8 bytes the text shows
    p.write(a + 9 * PAGE_SIZE + 2, b"z")                 # into that frame again
    p.write(a + 3 * PAGE_SIZE, b"again")                 # present, writable, dirty: no fault
    p.write(a + 5 * PAGE_SIZE + 4000, b"x" * 96)         # up to the page's end
    p.write(a + 6 * PAGE_SIZE + 4090, b"y" * 12)         # crosses a page: general path
    p.write(b, b"shared")
    r = p.mmap(4 * PAGE_SIZE, prot="r")                  # read-only anonymous
    p.read(r, 1)                                         # first fault: sets anon_vma
    p.read(r + PAGE_SIZE + 10, 20)                       # a read fault (a page before 6.12)
    p.read(r + 2 * PAGE_SIZE, 4096)
    p.read(r + PAGE_SIZE, 40)                            # present now: no fault
    p.read(a + 9 * PAGE_SIZE, 16)                        # present, written
    p.read(a + 6 * PAGE_SIZE + 4000, 200)                # crosses a page: general path
    c = p.fork("child")
    c.write(a + 2 * PAGE_SIZE, b"cow")                   # read-only pte after fork: COW, general
    c.write(a + 2 * PAGE_SIZE + 8, b"after")             # now present and writable
    p.write(a + 1 * PAGE_SIZE, b"P")                     # the parent's COW: copy (mapcount 2)
    c.write(a + 1 * PAGE_SIZE + 1, b"C")                 # the child's: reuse (mapcount 1 now)
    with k.override(do_wp_page_decision=lambda k, vma, page, pte: ("copy", "always copy (§6b)")):
        c.write(a + 9 * PAGE_SIZE, b"O")                 # a student's decision: the general path
    p.munmap(a + 4 * PAGE_SIZE, PAGE_SIZE)
    with k.quiet():
        p.write(a + 7 * PAGE_SIZE, b"quiet")
    return p, a


def _run(version, arch, fast: bool, monkeypatch, trace=True):
    if not fast:
        monkeypatch.setattr(Process, "_write_fast", lambda self, addr, data: False)
        monkeypatch.setattr(Process, "_read_fast", lambda self, addr, n: None)
    k = vmlib.Kernel(version=version, arch=arch, ram_pages=256, trace=trace)
    p, a = _workload(k)
    monkeypatch.undo()
    k.check()
    events = [(e.seq, e.kind, e.func, e.text, e.row, e.delta, e.depth) for e in k.trace.events]
    data = [p.read(a + i * PAGE_SIZE, 200) for i in (0, 1, 2, 3, 5, 8, 9)] + [p.read(a + 6 * PAGE_SIZE, 4096)]
    return events, k.snapshot(), data, dict(k.phys.memmap), k.phys.nr_free


@pytest.mark.parametrize("version,arch", PROFILES)
def test_fast_access_is_the_general_access(version, arch, monkeypatch):
    fast = _run(version, arch, True, monkeypatch)
    slow = _run(version, arch, False, monkeypatch)
    assert fast[0] == slow[0], "the trace events differ"
    assert fast[1] == slow[1] and fast[2] == slow[2] and fast[4] == slow[4]
    assert {pfn: repr(pg) for pfn, pg in fast[3].items()} == {pfn: repr(pg) for pfn, pg in slow[3].items()}


def test_fast_write_untraced(monkeypatch):
    fast = _run("2.6.26", "x86", True, monkeypatch, trace=False)
    slow = _run("2.6.26", "x86", False, monkeypatch, trace=False)
    assert fast[0] == slow[0] == []
    assert fast[1:3] == slow[1:3]


def test_fast_write_out_of_memory_changes_nothing():
    """No free page: the fast path declines, the general one fails and undoes everything."""
    k = vmlib.Kernel(ram_pages=16)
    p = k.spawn()
    a = p.mmap(64 * PAGE_SIZE)
    i = 0
    with pytest.raises(vmlib.KernelError):
        for i in range(64):
            p.write(a + i * PAGE_SIZE, b"x")
    before, n = k.snapshot(), len(k.trace)
    with pytest.raises(vmlib.KernelError):
        p.write(a + i * PAGE_SIZE, b"x")
    assert k.snapshot() == before
    assert [e.kind for e in k.trace.events[n:]] == ["op", "error"]
    k.check()


@pytest.mark.parametrize("spacing", [1, 2, 3, 5, 7])
def test_state_at_every_step_across_records(spacing, monkeypatch):
    """Checkpoints every `spacing` events land inside the fast fault's compact records too:
    state_at(i) at every step equals stepping one event at a time, forwards and backwards."""
    from vmlib.trace import Trace
    monkeypatch.setattr(Trace, "FIRST_SPACING", spacing)
    monkeypatch.setattr(Trace, "MAX_CHECKPOINTS", 4)
    k = vmlib.Kernel(ram_pages=256)
    _workload(k)
    t = k.trace
    snap = t.state_at(-1)
    states = []
    for i in range(len(t)):
        t.step(snap, i, True)
        states.append(snap.copy())
    assert states[-1] == k.snapshot()
    for i in [*range(len(t) - 1, -1, -1), *range(len(t))]:     # backwards, then forwards again
        assert t.state_at(i) == states[i], f"state_at({i}) differs"
    for i in range(len(t) - 1, 0, -1):
        t.step(snap, i, False)
        assert snap == states[i - 1], f"stepping back over event {i}"


def test_bulk_pauses_the_collector_and_the_next_kernel_unfreezes():
    """Kernel.bulk() pauses the collector and freezes what it built; a kernel dropped after
    that is still collected once the next Kernel() unfreezes (no leak)."""
    import gc
    import weakref
    k = vmlib.Kernel(ram_pages=64)
    p = k.spawn()
    a = p.mmap(4 * PAGE_SIZE)
    assert gc.isenabled()
    with k.bulk():
        assert not gc.isenabled()
        for i in range(4):
            p.write(a + i * PAGE_SIZE, b"x")
    assert gc.isenabled() and gc.get_freeze_count() > 0
    assert p.read(a + 3 * PAGE_SIZE, 1) == b"x"
    gone = weakref.ref(k)
    del k, p
    vmlib.Kernel()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None, "the kernel used in bulk() was not collected after it was dropped"
