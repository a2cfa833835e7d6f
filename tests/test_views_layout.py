"""vmlib.views.layout: one layout per trace. Nodes keep their place and the picture its size
across steps, a step runs no Graphviz, graphs fit a 960 px column with text >= 11 px, Compare's
sides share one layout, and without any renderer the lessons still get their pictures."""

import re

import pytest

import vmlib
from vmlib.drivers import DevMem
from vmlib.views import Compare, FaultStepper, fork_graph, process_graph, render, vma_graph
from vmlib.views.layout import CSS, WIDTH, Layout, Union
from vmlib.views.picture import op_spans

PAGE = vmlib.PAGE_SIZE
NODE = re.compile(r'<g data-node="(\w+)"[^>]*><rect class="[^"]*" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" '
                  r'height="([\d.]+)"')
VIEWBOX = re.compile(r'viewBox="0 0 (\d+) (\d+)"')


def boxes(svg: str) -> dict:
    """node id -> (x, y, w, h) of its outline."""
    return {m[1]: tuple(float(v) for v in m.groups()[1:]) for m in NODE.finditer(svg)}


def viewbox(svg: str) -> tuple[int, int]:
    w, h = VIEWBOX.search(svg).groups()
    return int(w), int(h)


def cow_trace(pages=4):
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=128)
    t = k.tracer.reset()
    p = k.spawn("parent")
    a = p.mmap(pages * PAGE)
    for i in range(pages):
        p.write(a + i * PAGE, b"x")
    c = p.fork()
    c.write(a, b"y")
    c.munmap(a, pages * PAGE)
    return k, t


def test_nodes_never_move_and_the_picture_keeps_its_size():
    _k, t = cow_trace()
    s = FaultStepper(t, ops_only=False)               # every event is a step
    pictures = [s.graph().svg() for _ in range(len(s)) if s.forward() is not None]
    assert len({viewbox(p) for p in pictures}) == 1, "the picture never changes size"
    places: dict = {}
    for p in pictures:
        for node, box in boxes(p).items():
            places.setdefault(node, set()).add(box)
    assert all(len(b) == 1 for b in places.values()), {n: b for n, b in places.items() if len(b) > 1}
    common = set.intersection(*(set(boxes(p)) for p in pictures[-20:]))
    assert {"mm1", "pgd1", "mm2"} <= common
    assert len([p for p in pictures if {"mm1", "mm2"} <= set(boxes(p))]) >= 5


def test_a_step_runs_no_graphviz(monkeypatch):
    _k, t = cow_trace()
    s = FaultStepper(t, ops_only=True)

    def refuse(_source):
        raise AssertionError("a step must not render DOT")
    monkeypatch.setattr(render, "svg", refuse)
    for _ in range(len(s)):
        s.forward()
        assert "<svg" in s.panel.graph.value and f"step {s.step + 1}/" in s.panel.graph.value


def test_the_layout_is_built_once_per_trace():
    _k, t = cow_trace()
    s = FaultStepper(t, ops_only=True)
    lay = s.steps.layout
    s.last()
    s.first()
    assert s.steps.layout is lay


def test_graphs_fit_a_960_px_column_with_text_of_at_least_12_px():
    sizes = [int(px) for px in re.findall(r"font-size:(\d+)px", CSS)]
    assert sizes and min(sizes) >= 12
    _k, t = cow_trace(64)
    s = FaultStepper(t, ops_only=True)
    assert viewbox(s.graph().svg())[0] <= WIDTH
    k = vmlib.Kernel(ram_pages=2600)
    p = k.spawn()
    a = p.mmap(2000 * PAGE)
    for i in range(0, 2000, 2):
        p.write(a + i * PAGE, b"x")
    svg = process_graph(k, p.pid).svg()
    assert viewbox(svg)[0] <= WIDTH
    assert 'style="max-width:none;height:auto"' in svg, "never shrunk: a narrower column scrolls it"
    assert svg.count('class="sep" x1') < 20, "1000 scattered ptes collapse into a few rows"
    assert "×256" in svg and "→ pfn" in svg


def test_each_frame_is_drawn_once_and_shared_frames_get_an_edge_from_each_process():
    k2 = vmlib.Kernel(ram_pages=128)
    p = k2.spawn("parent")
    a = p.mmap(8 * PAGE)
    for i in range(8):
        p.write(a + i * PAGE, b"x")
    p.fork().write(a, b"y")
    svg = fork_graph(k2).svg()
    nodes = re.findall(r'data-node="([fgr][\w]*)"', svg)
    assert len(nodes) == len(set(nodes)), "no frame twice"
    shared = p.follow_pte(a + PAGE).pfn
    (group,) = [n for n in nodes if n.startswith(f"g{shared}_")]
    assert "ref 2 map 2 each" in svg and f"pfn {shared}..{shared + 6} ×7" in svg
    assert svg.count("→ pfn") == 4 and group


def test_compare_sides_share_one_layout():
    def scenario(k):
        p = k.spawn()
        a = p.mmap(2 * PAGE)
        p.read(a, 1)
        p.write(a + PAGE, b"x")
    cmp = Compare(scenario, left={"version": "2.6.26", "arch": "x86"}, right={"version": "6.12", "arch": "x86"})
    assert cmp.left.layout is cmp.right.layout
    for _ in range(cmp.n):
        left, right = (p.graph.value for p in cmp.panels)
        assert viewbox(left) == viewbox(right)
        lb, rb = boxes(left), boxes(right)
        assert all(lb[n] == rb[n] for n in set(lb) & set(rb))
        cmp.forward()


def test_a_stacked_layout_puts_each_mm_above_its_tables_and_is_narrower():
    """Compare's sides (stack=True): each mm box above its page tables, so a side is narrow enough to
    stand beside the other at 12 px text in a 968 px column; nothing overlaps."""
    _k, t = cow_trace()
    u = Union.of([(t, op_spans(t))])
    wide, tall = Layout(u, levels=False), Layout(u, levels=False, stack=True)
    assert tall.width < wide.width - 100 and 2 * tall.width + 12 <= 968, (wide.width, tall.width)
    for pid in tall.pids:
        mm = tall.boxes[f"mm{pid}"]
        tables = [b for n, b in tall.boxes.items() if n.startswith(f"pt{pid}_")]
        assert tables and all(b.y >= mm.y + mm.h for b in tables), "the tables start below their mm box"
    boxes = [b for n, b in tall.boxes.items() if not n.startswith(("pgd", "pud", "pmd"))]   # not drawn here
    overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                if a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h]
    assert not overlaps, overlaps


def test_legend_lists_only_what_the_graph_can_show():
    k, _t = cow_trace()
    svg = fork_graph(k).svg()
    assert "anon page" in svg and "device memory" not in svg and "special pte" not in svg
    k = vmlib.Kernel("2.6.26", "s390", ram_pages=64)
    k.add_device_memory(1000, 8, "nvram")
    p = k.spawn()
    p.mmap(4 * PAGE, flags="shared", file=k.open(DevMem(), "rw"), offset=1000 * PAGE)
    svg = fork_graph(k).svg()
    assert "device memory" in svg and "special pte" in svg and "anon page" not in svg
    assert "pfn 1000..1003 ×4 nvram" in svg and "no struct page" in svg


def test_themes_set_the_colours_and_auto_inherits_jupyterlab():
    k, _t = cow_trace()
    auto, dark = fork_graph(k).svg(), fork_graph(k, theme="dark").svg()
    assert "var(--jp-content-font-color1" in auto and "--jp-layout-color0:#111" not in auto
    assert "--jp-layout-color0:#111" in dark and boxes(auto) == boxes(dark)


def test_without_any_renderer_mm_graphs_draw_and_others_say_what_to_install(monkeypatch):
    monkeypatch.setattr(render, "have_pygraphviz", lambda: False)
    monkeypatch.setattr(render, "have_dot", lambda: False)
    render.cache_clear()
    k, t = cow_trace()
    assert "<svg" in fork_graph(k).html()
    note = vma_graph(k, 1).html()
    assert "No picture" in note and "pip install pygraphviz" in note and "<svg" not in note
    with pytest.raises(render.NoRenderer, match="pip install pygraphviz"):
        vma_graph(k, 1).svg()
    s = FaultStepper(t, ops_only=True, graph="vma")
    assert "No picture" in s.panel.graph.value
    render.cache_clear()


def test_union_sees_every_step():
    _k, t = cow_trace()
    s = FaultStepper(t, ops_only=True)
    u = Union.of([(t, s.steps.spans)])
    assert set(u.mms) == {1, 2} and u.kinds == {"anon"}
    assert all(line[0][0] <= line[-1][0] for line in u.ptes.values())
    assert Layout(u).width <= WIDTH


def test_a_linear_run_that_appears_or_goes_is_marked_as_changed():
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=64)
    k.add_device_memory(1000, 8, "nvram")
    t = k.tracer.reset()
    p = k.spawn()
    a = p.mmap(8 * PAGE, flags="shared", file=k.open(DevMem(), "rw"), offset=1000 * PAGE)
    p.munmap(a, 8 * PAGE)
    s = FaultStepper(t, ops_only=True)
    s.goto(1)
    assert "Δ 0x" in s.panel.graph.value and "pfn 1000..1007" in s.panel.graph.value
    s.last()
    assert "→ none<" in s.panel.graph.value and "class=\"ln hot dash\"" in s.panel.graph.value


def test_a_device_frame_with_a_memmap_says_so_in_both_renderings():
    """2.6.25 XIP on device memory (XipFs calls add_shared_memory, kernel-facts §11a row 13):
    the frame has a struct page made by its driver; the fixed-layout SVG and the DOT label
    both say so (they once printed 'file None' in the layout)."""
    from vmlib.drivers import XipFs
    k = vmlib.Kernel(version="2.6.25", arch="x86", ram_pages=64)
    dev = k.add_device_memory(1000, 8, "nvram")
    fs = XipFs(k, backing=dev)
    f = fs.create("data", size=2 * PAGE)
    fs.write(f, 0, b"f")
    p = k.spawn("P")
    a = p.mmap(2 * PAGE, "r", "shared", file=f)
    p.read(a, 1)
    g = process_graph(k, p.pid)
    for text in (g.svg(), g.source):
        assert "device nvram, struct page made by its driver" in text
        assert "file None" not in text
        assert "device memory: no struct page" not in text     # the legends too
