"""Widgets of vmlib.views driven from Python: FaultStepper, Compare, Playground, show_steps, MemmapCost."""

import html
import random

import pytest

import vmlib
from vmlib.views import Compare, FaultStepper, MemmapCost, Playground, memmap_break_even, show_steps

PAGE = vmlib.PAGE_SIZE


def cow_trace(version="2.6.26", arch="x86"):
    k = vmlib.Kernel(version, arch, ram_pages=128)
    t = k.tracer.reset()
    p = k.spawn("parent")
    a = p.mmap(4 * PAGE)
    p.write(a, b"x")
    p.write(a + PAGE, b"x")
    c = p.fork()
    c.write(a, b"y")
    return k, t


def scenario(k):
    p = k.spawn("parent")
    a = p.mmap(2 * PAGE)
    p.write(a, b"x")
    c = p.fork()
    c.write(a, b"y")


def test_forward_and_back_change_step_event_and_graph():
    _k, t = cow_trace()
    s = FaultStepper(t, ops_only=True)
    ops = t.ops()
    assert len(s.steps) == len(ops) and s.step == 0
    seen = [(s.panel.event.value, s.panel.graph.value)]
    for i in range(1, len(ops)):
        assert s.forward() == i and s.slider.value == i + 1, "the slider counts from 1, like the caption"
        assert html.escape(s.steps.model(i).headline, quote=False) in s.panel.event.value
        assert f'data-step="{i}"' in s.panel.graph.value
        seen.append((s.panel.event.value, s.panel.graph.value))
    assert len({e for e, _ in seen}) == len(seen) and len({g for _, g in seen}) == len(seen)
    assert s.forward() == len(ops) - 1, "forward at the end stays on the last step"
    assert s.back() == len(ops) - 2
    assert (s.panel.event.value, s.panel.graph.value) == seen[-2]
    assert s.first() == 0 and s.last() == len(ops) - 1
    s.slider.value = 2
    assert s.step == 1 and s.panel.event.value == seen[1][0]


def test_each_step_is_drawn_once():
    """Setting the slider after a button step must not draw the step a second time."""
    _k, t = cow_trace()
    s = FaultStepper(t, ops_only=True)
    n = s.renders
    s.forward()
    s.back()
    s.last()
    assert s.renders == n + 3
    s.slider.value = 2
    assert s.renders == n + 4 and s.step == 1


def test_counts_that_moved_are_listed():
    _k, t = cow_trace()
    s = FaultStepper(t, ops_only=True)
    s.last()                                  # the child's COW write
    counts = s.panel.counts.value
    assert "ref 2→1, map 2→1" in counts and "allocated (ref 1 map 1)" in counts


def test_counts_do_not_list_an_rss_that_did_not_move():
    """A new process's counters appear as 0: 'anon_rss 0→0' is no change and is not listed."""
    _k, t = cow_trace()
    s = FaultStepper(t, ops_only=True)
    fork = next(i for i, op in enumerate(t.ops()) if "fork" in str(t.events[op]))
    s.goto(fork)
    counts = s.panel.counts.value
    assert "0→0" not in counts
    assert not any(f"{kind}_rss: {n}→{n}" in counts for kind in ("anon", "file") for n in range(9))


def nonzero(rss: dict) -> dict:
    """rss without zero counters (a counter stepped back to 0 and one never set read the same)."""
    return {k: v for k, v in rss.items() if v}


def test_incremental_stepping_matches_replay_from_scratch():
    _k, t = cow_trace()
    s = FaultStepper(t)
    rng = random.Random(7)
    for _ in range(60):
        i = s.goto(rng.randrange(-3, len(t) + 3))
        want = t.state_at(s.steps.spans[i][1])
        got = s.steps._snap
        assert (got.ptes, got.pages, got.vmas, got.mms) == (want.ptes, want.pages, want.vmas, want.mms)
        assert nonzero(got.rss) == nonzero(want.rss)


def test_every_event_mode_shows_the_current_event():
    _k, t = cow_trace()
    s = FaultStepper(t, ops_only=False)
    assert len(s.steps) == len(t)
    for i in (3, 4, 5):
        s.goto(i)
        assert f"<b>{html.escape(str(t.events[i]), quote=False)}</b>" in s.panel.event.value


def test_bad_input_is_a_clear_message():
    k = vmlib.Kernel()
    empty = k.tracer.reset()
    with pytest.raises(ValueError, match="the trace has no events"):
        FaultStepper(empty)
    _k, t = cow_trace()
    with pytest.raises(ValueError, match="unknown theme 'neon'"):
        FaultStepper(t, theme="neon")
    with pytest.raises(ValueError, match="unknown graph kind 'tree'"):
        FaultStepper(t, graph="tree")
    with pytest.raises(TypeError, match="expected a vmlib Trace"):
        FaultStepper([1, 2])


def test_compare_keeps_both_sides_on_the_same_operation():
    cmp = Compare(scenario, left={"version": "2.6.26", "arch": "x86"}, right={"version": "2.6.26", "arch": "s390"})
    assert len(cmp.left) == len(cmp.right) == cmp.n
    for _ in range(cmp.n + 1):
        cmp.forward()
        assert cmp.left.step == cmp.right.step == cmp.step
    cmp.back()
    assert cmp.left.step == cmp.right.step == cmp.step == cmp.n - 2
    cmp.slider.value = 1
    assert cmp.left.step == cmp.right.step == 0
    left, right = (p.title.value for p in cmp.panels)
    assert "2.6.26/x86" in left and "2.6.26/s390" in right


def test_compare_with_traces_of_different_lengths_and_a_failing_side():
    def sc(k):
        p = k.spawn()
        p.mmap(PAGE)
        if k.profile.version == "2.6.25":
            raise vmlib.MissingFeature("vm_insert_mixed: not in 2.6.25")
        p.mmap(PAGE)
    cmp = Compare(sc, left={"version": "2.6.25", "arch": "x86"}, right={"version": "2.6.26", "arch": "x86"})
    assert len(cmp.left) == 2 and len(cmp.right) == 3      # spawn is an operation too
    cmp.last()
    assert cmp.step == 2 and cmp.left.step == 1 and cmp.right.step == 2
    assert "only 2 operations" in cmp.panels[0].note.value and "MissingFeature" in cmp.panels[0].note.value
    _k, t = cow_trace()
    cmp = Compare(None, left=t, right=t)
    cmp.forward()
    assert cmp.left.step == cmp.right.step == 1
    with pytest.raises(ValueError, match="recorded no events"):
        Compare(lambda k: None)


def test_playground_operations_and_errors_show_in_the_widget():
    k = vmlib.Kernel(ram_pages=64)
    pg = Playground(k)
    pg.buttons["read"].click()
    assert "vmlib-error" in pg.message.value and "no process selected" in pg.message.value
    pg.buttons["spawn"].click()
    assert "spawn: P1" in pg.message.value and "&lt;Process" not in pg.message.value, "a process by name"
    pg.buttons["mmap"].click()
    assert pg.addr.value.startswith("0x") and "mapped at" in pg.message.value
    pg.buttons["write"].click()
    assert "vmlib-ok" in pg.message.value and "do_anonymous_page" in pg.event_log.value
    assert "<svg" in pg.graph_view.value and "Δ" in pg.graph_view.value
    assert "word-break:normal" in pg.event_log.value, "log lines break between words"
    before = k.snapshot()
    pg.addr.value = "0x7000"
    pg.buttons["write"].click()
    assert "write failed" in pg.message.value and "Segfault" in pg.message.value
    assert pg.event_log.value == "", "the last operation's log does not stay under an error"
    assert k.snapshot().pages == before.pages, "a failed operation changes nothing"
    pg.addr.value = "zzz"
    pg.buttons["read"].click()
    assert "is not a number" in pg.message.value
    pg.addr.value = hex(k.procs[pg.proc.value].vmas[0].vm_start)
    pg.nbytes.value = 1
    pg.buttons["gup"].click()
    assert "got 1 page(s)" in pg.message.value and len(pg.pinned) == 1
    pfn = pg.pinned[0].pfn
    assert k.snapshot().pages[pfn].count == 2
    pg.buttons["put gup pages"].click()
    assert not pg.pinned and k.snapshot().pages[pfn].count == 1
    pg.buttons["fork"].click()
    assert len(k.procs) == 2 and len(pg.proc.options) == 2
    assert "fork: P2" in pg.message.value
    assert all(w.style.description_width == "initial" for w in (pg.flags, pg.prot, pg.offset, pg.pages)), \
        "labels such as 'flags' are not cut"


def test_show_steps_emits_one_output_per_step(monkeypatch):
    import IPython.display
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj._repr_mimebundle_()))
    _k, t = cow_trace()
    show_steps(t, ops_only=True)
    assert len(shown) == len(t.ops())
    for i, bundle in enumerate(shown):
        assert bundle["text/plain"].startswith(f"step {i + 1}/{len(shown)}: ")
        assert "<svg" in bundle["text/html"]
        assert f"step {i + 1}/{len(shown)}" in bundle["text/html"], "caption inside the SVG"


def test_memmap_cost_widget_break_even_follows_the_sliders():
    m = MemmapCost()
    assert m.break_even == memmap_break_even(64) and "Break-even: 64 guests" in m.text.value
    assert "holds here" in m.text.value
    m.struct_page.value = 32
    assert m.break_even == 128 and "does not hold" in m.text.value
    m.page_size.value = 8192
    assert m.break_even == 256
    assert "break-even at 256 guests" in m.svg and m.svg in m.plot.value
    for mark in ('id="memmap-image"', 'id="memmap-memmap"', 'id="memmap-point"'):
        assert m.svg.count(mark) == 1, f"the plot needs one {mark}: image, memmap and the chosen point"
    assert "currentColor" in m.svg and "#ffffff" not in m.svg.lower(), "text in the theme's colour, no white"
    assert m.figure.axes[0].get_xscale() == "log", "m.figure is the matplotlib Figure shown"
    svg = m.svg
    m.guests.value = 300
    assert m.svg != svg, "moving a slider redraws the plot"
    bundle = m._repr_mimebundle_()
    html = (bundle[0] if isinstance(bundle, tuple) else bundle)["text/html"]
    assert "<svg" in html and "Break-even" in html, "slides and exports get the plot as static HTML"


def test_playground_munmap_and_exit_and_their_errors():
    k = vmlib.Kernel(ram_pages=64)
    pg = Playground(k)
    pg.buttons["spawn"].click()
    pg.buttons["mmap"].click()
    start = int(pg.addr.value, 16)
    pg.buttons["write"].click()
    pg.addr.value = hex(start + 0x123)
    pg.buttons["munmap"].click()
    assert "vmlib-error" in pg.message.value and "page-aligned" in pg.message.value
    pg.addr.value = "0x7000"
    before = k.snapshot()
    pg.buttons["munmap"].click()                   # do_munmap, v2.6.26: nothing mapped → 0
    assert "vmlib-ok" in pg.message.value and "nothing is mapped" in pg.message.value
    assert k.snapshot() == before
    pg.addr.value = hex(start)
    pg.pages.value = 1
    pg.buttons["munmap"].click()
    assert "vmlib-ok" in pg.message.value
    assert k.procs[pg.proc.value].find_vma(start).vm_start > start, "the first page is gone"
    k.check()
    pid = pg.proc.value
    pg.buttons["exit"].click()
    assert pid not in k.procs and "vmlib-ok" in pg.message.value
    pg.buttons["read"].click()
    assert "vmlib-error" in pg.message.value
    k.check()


def test_presentation_mode_draws_the_picture_at_the_column_width_and_keeps_the_step():
    _k, t = cow_trace()
    s = FaultStepper(t)
    s.forward()
    assert "max-width:none" in s.panel.graph.value, "notebook form: natural size, 12 px text"
    s.present.value = True                              # the toggle button
    assert s.step == 1 and "width:100%" in s.panel.graph.value and ">pgd<" not in s.panel.graph.value
    s.presentation_mode(False)
    assert not s.present.value and "max-width:none" in s.panel.graph.value


def test_the_picture_comes_before_the_text_that_changes_length():
    _k, t = cow_trace()
    s = FaultStepper(t)
    kids = s.panel.box.children
    assert kids.index(s.panel.graph) < kids.index(s.panel.event) < kids.index(s.panel.counts)


def test_compare_sides_wrap_next_to_each_other():
    cmp = Compare(scenario)
    body = cmp.children[1]
    assert body.layout.flex_flow == "row wrap" and len(body.children) == 2
    assert ">pgd<" not in cmp.panels[0].graph.value, "narrow sides: no pgd/pud/pmd boxes"


def test_playground_log_reads_in_words_without_python_values():
    k = vmlib.Kernel(ram_pages=64)
    k.tracer.reset()
    pg = Playground(k)
    pg.do_spawn()
    pg.do_mmap()
    pg.do_write()
    log = html.unescape(pg.event_log.value)
    assert "do_anonymous_page" in log and "None" not in log and "_rss: 0 → 0" not in log


def test_playground_in_a_static_export_shows_its_picture_and_says_it_needs_a_kernel(monkeypatch):
    """A slide deck has no kernel: the Playground's output carries HTML with the kernel's picture as the
    lesson left it and a note on where to play; only a static export (STATIC_ENV) asks for it."""
    from vmlib.views.practice_static import STATIC_ENV

    k = vmlib.Kernel(ram_pages=64)
    pg = Playground(k)
    pg.buttons["spawn"].click()

    def bundle() -> dict:
        b = pg._repr_mimebundle_()
        return b[0] if isinstance(b, tuple) else b
    monkeypatch.delenv(STATIC_ENV, raising=False)
    assert "text/html" not in bundle()
    monkeypatch.setenv(STATIC_ENV, "1")
    html = bundle()["text/html"]
    assert "needs a running Python kernel" in html and "JupyterLab" in html
    assert "<svg" in html and "P1" in html, html[:300]
