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


def _cow_of_a_private_devmem(profile):
    version, arch = profile.split("/")
    k = vmlib.Kernel(version=version, arch=arch, ram_pages=64)
    k.add_device_memory(DEV, 4, "nvram")
    p = k.spawn("P")
    d = p.mmap(PAGE_SIZE, flags="private", file=k.open(DevMem()), offset=DEV * PAGE_SIZE)
    p.read(d, 1)
    trace = k.tracer.reset()
    p.write(d, b"cow")
    return k, p, d, trace


@profiles("2.6.26/x86", "2.6.27/x86")
def test_a_decision_says_what_it_examined_as_data(profile):
    """mm/memory.c:vm_normal_page @ v2.6.26 without pte special asks the vma (§1a row 3: its
    VM_PFNMAP flag and vm_pgoff); with the bit (x86 from v2.6.27, §1b row 2) only the pte. A
    decision event carries that in `examined` (a trace.Seen), set where the model decides."""
    from vmlib.flags import VM_PFNMAP
    from vmlib.trace import Seen
    _k, p, d, trace = _cow_of_a_private_devmem(profile)
    (e,) = [e for e in trace.events if e.kind == "decision" and e.func == "vm_normal_page"]
    pte = ((p.pid, d),)
    if profile.startswith("2.6.26"):
        assert e.row == "§1a row 3" and e.examined == Seen(pte, ((p.pid, d),), (DEV,), VM_PFNMAP)
    else:
        assert e.row == "§1b row 2" and e.examined == Seen(pte, (), (DEV,), 0), "vma flags not consulted"
    copy = [e for e in trace.events if e.kind == "decision" and e.func == "do_wp_page"]
    assert copy and all(c.examined.ptes == pte and DEV in c.examined.pfns for c in copy)


@profiles("2.6.26/x86", "6.12/x86")
def test_an_undone_operation_s_error_carries_what_its_last_decision_examined(profile):
    """get_user_pages refuses a VM_PFNMAP vma before it looks at any pte (§9b row 8): the
    operation is undone and its error event keeps the vma and the flags that decided."""
    from vmlib.flags import VM_IO, VM_PFNMAP
    _k, p, d, _ = _cow_of_a_private_devmem(profile)
    trace = p.kernel.tracer.reset()
    with pytest.raises(vmlib.KernelError):
        p.get_user_pages(d, 1)
    err = trace.events[-1]
    assert err.kind == "error" and err.examined.vmas == ((p.pid, d),) and not err.examined.ptes
    assert err.examined.flags == VM_IO | VM_PFNMAP


@profiles("2.6.26/x86", "2.6.27/x86", "6.12/x86")
def test_the_views_read_what_was_examined_not_the_words(profile):
    """With every address and number blotted out of the decisions' and errors' words (their
    Seen kept), the steps mark the same ptes, vmas and frames, and predict asks the same
    questions with the same answers (the refused pte of a fast walk, a forked page's counts)."""
    import re

    from vmlib.trace import Said
    from vmlib.views import predict
    from vmlib.views.picture import op_spans, step_models
    version, arch = profile.split("/")
    k = vmlib.Kernel(version=version, arch=arch, ram_pages=128)
    trace = k.tracer.reset()
    for _ in scenario(k):
        pass
    p = k.spawn("Q")
    b = p.mmap(2 * PAGE_SIZE, flags="shared", file=k.open(DevMem()), offset=DEV * PAGE_SIZE)
    p.read(b, 1)
    a = p.mmap(2 * PAGE_SIZE)
    p.write(a, b"x")
    if k.profile.HAVE_GUP_FAST:                # a normal pte, then a special one: the walk stops there
        x = 0x50000000
        p.mmap(PAGE_SIZE, addr=x)
        p.write(x, b"g")
        p.mmap(PAGE_SIZE, flags="shared", file=k.open(MixedDriver([DEV + 3])), addr=x + PAGE_SIZE)
        p.read(x + PAGE_SIZE, 1)
        assert len(p.get_user_pages_fast(x, 2)) == 1

    def seen_by_step():
        return [(m.examined.ptes, m.examined.vmas, m.examined.frames, m.examined.key) for m in step_models(trace)]

    def answers():
        return [(q["kind"], q["step"], [c["label"] for c in q["choices"] if c["right"]])
                for q in predict.questions(trace, op_spans(trace), lead_in=True)]

    before, asked = seen_by_step(), answers()
    assert any(ptes or vmas or frames for ptes, vmas, frames, _ in before)
    for i, e in enumerate(trace.events):
        if e.kind in ("decision", "error"):
            trace._rows[3 * i + 1] = Said(re.sub(r"0x[0-9a-f]+|\d+", "?", e.text), e.examined)
    assert seen_by_step() == before
    assert answers() == asked
    assert {"fork", *(["gup"] if k.profile.HAVE_GUP_FAST else [])} <= {kind for kind, _, _ in asked}
