"""The picture model (vmlib.views.picture) and what Steps.frames gives a browser stepper:
one step per operation, headlines in words with the deciding row, what each step examined."""

import ast
import re
from pathlib import Path

import pytest

import vmlib
from vmlib.drivers import XipFs
from vmlib.views.layout import Layout, Union
from vmlib.views.picture import op_spans, step_models
from vmlib.views.widgets import Steps

PAGE = vmlib.PAGE_SIZE
VIEWS = Path(vmlib.__file__).parent / "views"
MARK = re.compile(r'<rect class="(?:[^"]* )?(?:hot|seen)[^"]*" x="[-\d.]+" y="[-\d.]+"')


def fork_cow():
    """Lesson 04's story: write, fork, the child writes (copy), the parent writes (reuse),
    both read (ptes present: nothing changes), the child exits."""
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=64)
    t = k.tracer.reset()
    parent = k.spawn("parent")
    a = parent.mmap(PAGE, prot="rw", flags="private")
    parent.write(a, b"P")
    child = parent.fork()
    child.write(a, b"C")
    parent.write(a, b"Q")
    parent.read(a, 1)
    child.read(a, 1)
    child.exit()
    return t, a


def gup_fast_special():
    """Lesson 07's story: get_user_pages_fast over an anon page and two XIP pages on RAM
    (2.6.27 x86: pte_special), which the lockless walk refuses (kernel-facts §9b)."""
    k = vmlib.Kernel("2.6.27", "x86", ram_pages=64)
    f = XipFs(k, backing="ram").create("table.db", b"D" * 2 * PAGE)
    p = k.spawn("db2")
    buf = p.mmap(PAGE, prot="rw", addr=0x40000000)
    p.write(buf, b"x")
    xip = p.mmap(2 * PAGE, prot="r", flags="shared", file=f, addr=0x40001000)
    p.read(xip, 1)
    p.read(xip + PAGE, 1)
    t = k.tracer.reset()
    p.get_user_pages_fast(buf, 3, write=False)
    return t, buf


def marks_in(svg: str) -> int:
    """Highlights drawn in the picture, the legend's two swatches left out."""
    legend = svg.index("legend:")
    return len([m for m in MARK.finditer(svg) if m.start() < legend])


def test_a_step_is_one_operation_and_bookkeeping_folds_into_it():
    t, _a = fork_cow()
    models = step_models(t)
    assert len(models) == len(t.ops())
    assert [m.op["kind"] for m in models] == ["spawn", "mmap", "write", "fork", "write", "write", "read", "read",
                                              "exit"]
    for m in models:
        words = " ".join([m.headline, *m.events])
        assert not re.search(r"None|=True|=False", words), f"raw Python in what a student reads: {words}"
        assert "b'" not in m.headline, "written data is shown as text, not as a bytes repr"
        assert not any("_rss: 0 → 0" in e or "vmas: 0 → 0" in e for e in m.events)


def test_headlines_say_what_the_kernel_decided_with_the_row():
    t, a = fork_cow()
    by_kind = {}
    for m in step_models(t):
        by_kind.setdefault(m.op["kind"], []).append(m)
    child_write, parent_write = by_kind["write"][1:]
    assert child_write.op["decision"] == "copy" and child_write.row == "§6b v2.6.26 row 3"
    assert "mapcount 2" in child_write.headline and "do_wp_page" in child_write.headline
    assert parent_write.op["decision"] == "reuse" and "mapcount == 1" in parent_write.headline
    assert child_write.op["before"]["page"]["mapcount"] == 2, "mapped by parent and child"
    assert child_write.op["after"]["pte"]["pfn"] != child_write.op["before"]["pte"]["pfn"]
    read = by_kind["read"][0]
    assert "present" in read.headline and not read.row, "a read that finds its pte: no fault, no row"
    assert (read.op["pid"], a) in read.examined.ptes, "...but it still points at the pte it found"


def test_every_step_highlights_something_and_keeps_the_picture_size():
    for t, _a in (fork_cow(), gup_fast_special()):
        s = Steps(t)
        frames = s.frames()
        assert len(frames) <= 2 * max(1, len(t.ops()))
        assert len({re.search(r'viewBox="[^"]*"', f["svg"])[0] for f in frames}) == 1
        assert len({re.search(r'<svg[^>]*>', f["svg"])[0] for f in frames}) == 1, "same width, height, style"
        for i, f in enumerate(frames):
            assert marks_in(f["svg"]) >= 1, f"step {i + 1} highlights nothing: {f['headline']}"
            assert f["marks"]["changed"] or f["marks"]["examined"]
            assert set(f) == {"svg", "headline", "row", "events", "marks", "op"}


def test_gup_fast_marks_the_special_pte_it_refused():
    t, buf = gup_fast_special()
    (m,) = step_models(t)
    assert m.op["decision"] == "fallback" and m.row.startswith("§9b")
    assert m.examined.key == {(m.op["pid"], buf + PAGE)}, "the refused pte is the deciding one"
    assert "-EFAULT" in m.headline, "the slow path's refusal is said too"
    (f,) = Steps(t).frames()
    row = re.search(rf'<g data-vm="pte:{m.op["pid"]}:{buf + PAGE:#x}">(.*?)</g>', f["svg"])[1]
    assert 'class="seen"' in row and 'data-key="1"' in row
    assert f"pte:{m.op['pid']}:{buf + PAGE:#x}" in f["marks"]["examined"]
    assert not f["marks"]["changed"] or all(not x.startswith("pte:") for x in f["marks"]["changed"]), \
        "the walk changes no pte: what it looked at is what shows why"


def test_a_sigbus_step_points_at_the_vma_and_changes_nothing():
    class Empty(vmlib.Driver):
        name = "empty"

        def mmap(self, k, vma):
            return 0

        def fault(self, k, vma, vmf):
            return vmlib.VM_FAULT_SIGBUS

    k = vmlib.Kernel("2.6.26", "x86", ram_pages=64)
    p = k.spawn("user")
    a = p.mmap(PAGE, prot="r", flags="shared", file=k.open(Empty(), mode="rw"))
    t = k.tracer.reset()
    with pytest.raises(vmlib.BusError):
        p.read(a, 1)
    (f,) = Steps(t).frames()
    assert f["op"]["decision"] == "sigbus" and "SIGBUS" in f["headline"]
    assert f"vma:{p.pid}:{a:#x}" in f["marks"]["examined"] and marks_in(f["svg"]) >= 1


def test_a_story_that_starts_with_spawn_opens_on_a_marked_process():
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=64)
    t = k.tracer.reset()
    p = k.spawn("app")
    p.mmap(4 * PAGE)
    frames = Steps(t).frames()
    assert frames[0]["op"]["kind"] == "spawn" and "app" in frames[0]["headline"]
    assert 'data-vm="mm:1"' in frames[0]["svg"] and marks_in(frames[0]["svg"]) >= 1
    assert f'data-vm="vma:{p.pid}:0x40000000"' in frames[1]["svg"], "the new vma is drawn"


def test_a_kernel_function_called_directly_is_its_own_step():
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=64)
    nvram = k.add_device_memory(start_pfn=1000, npages=16, name="nvram")
    fs = XipFs(k, backing=nvram)
    f = fs.create("db", b"A" * 2 * PAGE)
    p = k.spawn("app")
    a = p.mmap(2 * PAGE, prot="r", flags="shared", file=f)
    t = k.tracer.reset()
    fs.move_to_pagecache(f, 1)
    p.read(a + PAGE, 1)
    spans = op_spans(t)
    assert len(spans) == 2
    first = step_models(t)[0]
    assert first.op["kind"] == "move_to_pagecache" and (p.pid, a + PAGE) in first.examined.ptes


def test_presentation_frames_fill_the_column_and_the_notebook_ones_keep_their_size():
    t, _a = fork_cow()
    s = Steps(t)
    nb, pres = s.frames(), s.frames(presentation=True)
    assert len(nb) == len(pres) and [f["headline"] for f in nb] == [f["headline"] for f in pres]
    assert 'style="max-width:none;height:auto"' in nb[0]["svg"]
    assert re.search(r'style="width:100%;min-width:\d+px;height:auto"', pres[0]["svg"])
    width = lambda f: float(re.search(r'viewBox="0 0 ([\d.]+)', f["svg"])[1])
    assert width(pres[0]) * 16 / 12 <= 968, "16 px text when drawn across a 968 px column"
    assert ">pgd<" not in pres[2]["svg"] and "pgd[0]" in pres[2]["svg"], "the walk is said in the table's head"
    assert s.step == 0, "frames() leaves the navigator where it was"


def test_an_svg_title_says_the_operation_not_its_outcome():
    t, _a = fork_cow()
    for f in Steps(t).frames():
        title = re.search(r"<title>(.*?)</title>", f["svg"])[1]
        if f["op"].get("decision") in ("copy", "reuse"):
            assert f["op"]["decision"] not in title and "writes" in title


def test_layout_rejects_an_unknown_fit():
    t, _a = fork_cow()
    with pytest.raises(ValueError, match="fit must be 'natural' or 'column'"):
        Layout(Union.of([(t, op_spans(t))]), fit="wide")


def test_no_renderer_imports_another():
    """One direction: picture <- layout (SVG), picture <- dot (DOT); widgets and graphs on top."""
    def imports(name):
        tree = ast.parse((VIEWS / f"{name}.py").read_text())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
                out |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
        return {m.rsplit(".", 1)[-1] for m in out if m.startswith("vmlib.views")}
    assert not {"dot", "render", "graphs", "widgets"} & imports("layout")
    assert not {"layout", "render", "graphs", "widgets"} & imports("dot")
    assert not {"layout", "dot", "render", "graphs", "widgets"} & imports("picture")


def test_the_lessons_own_put_page_is_its_own_step_not_part_of_the_exit():
    """Lesson 02: get_user_pages, fork, the child exits, then the lesson drops its gup reference."""
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=64)
    p = k.spawn("parent")
    a = p.mmap(PAGE)
    p.write(a, b"A")
    t = k.tracer.reset()
    (page,) = p.get_user_pages(a, 1)
    c = p.fork()
    c.exit()
    k.put_page(page)
    models = step_models(t)
    assert [m.op["kind"] for m in models] == ["get_user_pages", "fork", "exit", "put_page"]
    exit_step = Steps(t)
    exit_step.goto(2)
    assert exit_step.diff().pages[page.pfn].count == 3 and page.pfn in exit_step.diff().prune(exit_step._snap).pages
    assert exit_step._snap.pages[page.pfn].count == 2, "the exit drops the child's reference only"
    assert models[3].examined.frames == {page.pfn} and "put_page" in models[3].headline


def test_same_size_gives_every_frame_the_largest_box():
    from vmlib.views.widgets import same_size
    frames = [{"svg": '<svg width="100pt" height="50pt" viewBox="0.00 0.00 100.00 50.00"><g/></svg>'},
              {"svg": '<svg width="80pt" height="70pt" viewBox="0.00 0.00 80.00 70.00"><g/></svg>'}]
    out = same_size(frames)
    tags = {re.search(r"<svg[^>]*>", f["svg"])[0] for f in out}
    assert tags == {'<svg width="100pt" height="70pt" viewBox="0.00 0.00 100.00 70.00">'}, "units kept"


def _dot_rows(src: str) -> dict:
    """pid -> the first address of every pte row the DOT draws."""
    out: dict = {}
    for pid, line in re.findall(r"^  pt(\d+)_\S+ \[(.*)$", src, re.MULTILINE):
        out.setdefault(int(pid), []).extend(
            int(a, 16) for a in re.findall(r'<TD[^>]*ALIGN="LEFT"[^>]*>(?:<B>Δ</B> )?(?:<S>)?(0x[0-9a-f]+)', line))
    return {p: sorted(a) for p, a in out.items()}


def _svg_rows(svg: str) -> dict:
    """pid -> the first address of every pte row the SVG draws (empty entries left out, as DOT does)."""
    out: dict = {}
    for pid, addr, body in re.findall(r'<g data-vm="pte:(\d+):(0x[0-9a-f]+)">(.*?)</g>', svg):
        if "(empty)" not in body:
            out.setdefault(int(pid), []).append(int(addr, 16))
    return {p: sorted(a) for p, a in out.items()}


def test_dot_and_svg_draw_the_rows_of_one_model():
    """Item 7 of issue 19: one row model (picture.table_rows) that both renderers read, so a
    graph's DOT (.source) and its SVG draw the same pte rows at every step, with the step's
    changes (a Diff) on rows of their own; a group of ptes is never marked changed for one of them."""
    from vmlib.views import fork_graph
    from vmlib.views.picture import Diff
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=128)
    t = k.tracer.reset()
    p = k.spawn("parent")
    a = p.mmap(8 * PAGE)
    for i in range(8):
        p.write(a + i * PAGE, b"x")
    c = p.fork()
    c.write(a + 3 * PAGE, b"y")
    c.munmap(a, 2 * PAGE)
    s = Steps(t, ops_only=False)
    compared = 0
    for i in range(0, len(s), 3):
        s.goto(i)
        g = fork_graph(s._snap, None, t.info, diff=s.diff())
        dot_rows, svg_rows = _dot_rows(g.source), _svg_rows(g.svg())
        assert dot_rows == svg_rows, f"event {i}: DOT rows {dot_rows} != SVG rows {svg_rows}"
        compared += bool(dot_rows)
    assert compared > 10
    n0 = len(t)
    c.write(a + 4 * PAGE, b"z")
    diff = Diff.from_deltas(e.delta for e in t.events[n0:] if e.delta)
    g = fork_graph(k, diff=diff)
    changed = re.findall(r"<B>Δ</B> (0x[0-9a-f]+)(–0x[0-9a-f]+ ×\d+)?", g.source)
    assert (f"{a + 4 * PAGE:#x}", "") in changed, "the written pte is a row of its own, marked"
    assert all(not group for _addr, group in changed), f"a group marked changed for one of its ptes: {changed}"
    assert re.search(rf'>Δ {a + 4 * PAGE:#x} → pfn \d+<', g.svg()), "the SVG marks the same row"


def test_every_ps9_broken_kernel_steps_by_operation_with_a_mark_on_every_step():
    """ps9's stepper (FaultStepper(k.trace, ops_only=True) after task.play(k)) for each of its broken
    kernels, not only the one a test user draws (the browser test walks that one): at most 2 steps
    per operation, something highlighted in every step's picture, every frame the same size."""
    from vmlib.grading.ps9 import MUTATIONS, Task
    for m in MUTATIONS:
        task = Task(m, "views-test")
        k = task.kernel()
        task.play(k, quiet=True)
        frames = Steps(k.trace, True).frames()
        ops = len(k.trace.ops())
        assert len(frames) <= 2 * max(1, ops), f"{m.id}: {len(frames)} steps for {ops} operations"
        unmarked = [i + 1 for i, f in enumerate(frames) if not marks_in(f["svg"])]
        assert not unmarked, f"{m.id}: nothing highlighted at steps {unmarked} of {len(frames)}"
        assert len({re.search(r"<svg[^>]*>", f["svg"])[0] for f in frames}) == 1, f"{m.id}: frames differ in size"
