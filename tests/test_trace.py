"""The trace replays the state: state_at(i) forwards and backwards equals k.snapshot() at the
same points, and an operation that raised leaves no state deltas behind."""

import pytest
from helpers_drivers import MixedDriver, profiles

import vmlib
from vmlib import PAGE_SIZE
from vmlib.drivers import DevMem, XipFs

DEV = 1000


def scenario(k):
    """Yield after each user operation (so the caller can take k.snapshot())."""
    dev = k.add_device_memory(DEV, 8, "nvram")
    p = k.spawn("P")
    yield
    a = p.mmap(2 * PAGE_SIZE)
    yield
    p.write(a, b"anon")
    yield
    d = p.mmap(PAGE_SIZE, flags="private", file=k.open(DevMem()), offset=DEV * PAGE_SIZE)
    yield
    p.write(d, b"cow")
    yield
    x = XipFs(k, backing=dev)             # 2.6.25: the device is given a memmap (page deltas)
    f = x.create("f", b"xip", size=2 * PAGE_SIZE)
    m = p.mmap(2 * PAGE_SIZE, flags="shared", file=f)
    yield
    p.read(m + PAGE_SIZE, 1)
    yield
    if k.profile.HAVE_VM_MIXEDMAP:
        r = p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([k.alloc_page().pfn])))
        p.read(r, 1)
        yield
    c = p.fork()
    yield
    c.write(a, b"kid")
    yield
    pages = p.get_user_pages(a, 1)
    yield
    p.munmap(a, PAGE_SIZE)
    yield
    k.put_page(pages[0])
    yield
    c.exit()
    yield


@profiles()
def test_state_at_forwards_and_backwards_equals_snapshot(profile):
    """state_at(i) after each op event equals the live snapshot taken then; stepping back from
    the end with trace.step reaches every earlier state and finally the base."""
    version, arch = profile.split("/")
    k = vmlib.Kernel(version=version, arch=arch, ram_pages=128)
    trace = k.tracer.reset()
    points = [(len(trace.events) - 1, k.snapshot())]
    for _ in scenario(k):
        points.append((len(trace.events) - 1, k.snapshot()))
    assert len(trace.ops()) >= 8
    for i, snap in points:
        assert trace.state_at(i) == snap, f"forward replay differs at event {i}"
    snap = trace.state_at(len(trace.events) - 1)
    for j in range(len(trace.events) - 1, -1, -1):
        trace.step(snap, j, forward=False)
        for i, want in points:
            if i == j - 1:
                assert snap == want, f"backward replay differs at event {i}"
    assert snap == trace.base
    with pytest.raises(IndexError, match="out of range"):
        trace.state_at(len(trace.events))


@profiles("2.6.26/x86", "6.12/x86")
def test_rolled_back_operation_leaves_no_state_deltas(profile):
    """A write that faults half way (SIGSEGV on the second page) is undone: its events are
    replaced by one error event without a delta; replay still matches the live state."""
    version, arch = profile.split("/")
    k = vmlib.Kernel(version=version, arch=arch, ram_pages=64)
    p = k.spawn()
    a = p.mmap(PAGE_SIZE)
    trace = k.tracer.reset()
    before = k.snapshot()
    with pytest.raises(vmlib.Segfault):
        p.write(a + PAGE_SIZE - 2, b"four")       # first page faults in, second has no vma
    assert k.snapshot() == before
    assert [e.delta for e in trace.events] == [None] * len(trace.events)
    assert [e.kind for e in trace.events][-1] == "error"
    assert "undone" in trace.events[-1].text
    assert trace.state_at(len(trace.events) - 1) == before
    p.write(a, b"ok")
    assert trace.state_at(len(trace.events) - 1) == k.snapshot()


@profiles()
def test_decisions_show_their_row_once(profile):
    """A decision's kernel-facts row is printed once, as its row: the COW decision of
    do_wp_page and fork's vma_needs_copy do not repeat it inside the text."""
    version, arch = profile.split("/")
    k = vmlib.Kernel(version=version, arch=arch, ram_pages=64)
    p = k.spawn()
    a = p.mmap(PAGE_SIZE)
    p.write(a, b"x")
    c = p.fork()
    c.write(a, b"y")
    found = [e for e in k.trace.events if e.kind == "decision"
             and e.func in ("do_wp_page", "copy_page_range")]
    assert {e.func for e in found} == {"do_wp_page", "copy_page_range"}
    for e in found:
        assert e.row.startswith("§") and "§" not in e.text, str(e)
        assert str(e).count(e.row) == 1, str(e)
