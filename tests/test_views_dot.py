"""DOT builders of vmlib.views: structure (nodes, edges, labels, special marking, collapsed runs),
never exact SVG bytes; plus one real `dot` render of each kind of graph."""

import re

import pytest

import vmlib
from vmlib.drivers import DevMem
from vmlib.views import Diff, fork_graph, memmap_break_even, memmap_cost, phys_graph, process_graph, vma_graph
from vmlib.views.dot import ORANGE, VERMILLION

PAGE = vmlib.PAGE_SIZE
NODE = re.compile(r"^  (\w+) \[", re.MULTILINE)
EDGE = re.compile(r"^  (\w+)(?::\w+)*(?::\w)? -> (\w+)(?::\w+)?(?: \[(.*)\])?;$", re.MULTILINE)


def nodes(src: str) -> dict:
    """node id -> its full line."""
    return {m.group(1): src[m.start():src.index("\n", m.start())] for m in NODE.finditer(src)}


def edges(src: str) -> list[tuple[str, str, str]]:
    return [(a, b, attrs or "") for a, b, attrs in EDGE.findall(src)]


def frame_nodes(src: str) -> dict:
    return {n: line for n, line in nodes(src).items() if re.match(r"[fcr]\d", n)}


@pytest.fixture
def forked():
    """P1 writes 8 anon pages, forks P2, P2 writes page 0 (COW)."""
    k = vmlib.Kernel(ram_pages=128)
    t = k.tracer.reset()
    p = k.spawn("parent")
    a = p.mmap(8 * PAGE)
    for i in range(8):
        p.write(a + i * PAGE, b"x")
    c = p.fork()
    c.write(a, b"y")
    return k, t, p, c, a


def test_fork_graph_draws_shared_frames_once_with_an_edge_from_each_process(forked):
    k, _t, p, c, a = forked
    src = fork_graph(k).source
    frames = frame_nodes(src)
    shared = p.follow_pte(a + PAGE).pfn
    (chain,) = [n for n, line in frames.items() if f"pfn {shared}" in line]
    assert "7 frames" in frames[chain], "the 7 shared pages collapse into one frame node"
    sources = {a_.split("_")[0] for a_, b, _ in edges(src) if b == chain}
    assert sources == {f"pt{p.pid}", f"pt{c.pid}"}, "both processes point at the one shared node"
    page = k.pfn_to_page(shared)
    assert f"ref {k.page_count(page)} map {k.page_mapcount(page)} each" in frames[chain]
    cow = c.follow_pte(a).pfn
    assert f"f{cow}" in frames and f"f{p.follow_pte(a).pfn}" in frames
    assert src.count(f"  f{cow} [") == 1


def test_process_graph_has_the_levels_and_only_populated_paths(forked):
    k, _t, p, _c, a = forked
    src = process_graph(k, p.pid).source
    ns = nodes(src)
    assert {f"mm{p.pid}", f"pgd{p.pid}"} <= set(ns)
    assert sum(n.startswith("pud") for n in ns) == 1 and sum(n.startswith("pmd") for n in ns) == 1
    assert sum(n.startswith("pt") for n in ns) == 1
    assert f"for {a:#x}" in src and "pte table</B> @pfn" in src, "the pte table names its frame and range"
    pgd_pfn = k.snapshot().tables[(p.pid, 4, 0)]
    assert f"<B>pgd</B> @pfn {pgd_pfn}" in src
    assert "rss: anon 8 file 0" in src
    assert "legend" in ns
    assert not any(n.startswith("mm") and n != f"mm{p.pid}" for n in ns), "only the asked process"


def test_long_runs_collapse_and_short_ones_do_not():
    k = vmlib.Kernel(ram_pages=2048)
    p = k.spawn()
    a = p.mmap(1000 * PAGE)
    for i in range(1000):
        p.write(a + i * PAGE, b"x")
    b = p.mmap(2 * PAGE, addr=0x80000000)
    p.write(b, b"x")
    p.write(b + PAGE, b"x")
    src = process_graph(k, p.pid).source
    assert len(frame_nodes(src)) < 20, "1000 similar ptes must not become 1000 frames"
    counts = [int(n) for n in re.findall(r"×(\d+)", src)]
    assert sum(counts) >= 990
    assert f"{b:#x} → pfn {p.follow_pte(b).pfn}" in src, "two ptes stay individual rows"
    assert process_graph(k, p.pid, collapse=10**6).source.count("→ pfn") == 1002


def test_special_ptes_are_marked_on_s390_and_not_on_x86():
    def build(arch):
        k = vmlib.Kernel("2.6.26", arch, ram_pages=64)
        k.add_device_memory(1000, 8, "nvram")
        p = k.spawn()
        mem = k.open(DevMem(), "rw")
        a = p.mmap(4 * PAGE, flags="shared", file=mem, offset=1000 * PAGE)
        return k, p, a
    k, p, a = build("s390")
    assert p.follow_pte(a).special
    src = process_graph(k, p.pid).source
    assert f'<TD PORT="r0" BGCOLOR="{ORANGE}"><B>S</B></TD>' in src
    (dev,) = [line for line in frame_nodes(src).values() if "pfn 1000" in line]
    assert "4 frames" in dev and "no struct page" in dev and "dashed" in dev
    to_dev = [attrs for _a, b, attrs in edges(src) if dev.startswith(f"  {b} [")]
    assert to_dev and all("style=dashed" in attrs for attrs in to_dev)
    k, p, a = build("x86")
    src = process_graph(k, p.pid).source
    assert "<B>S</B>" not in src
    assert "no struct page" in process_graph(k, p.pid, collapse=5).source.split("  f1000 [")[1]


def test_big_linear_run_is_one_row_and_cut_where_a_pte_was_cowed():
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=64)
    k.add_device_memory(10000, 1000, "nvram")
    p = k.spawn()
    mem = k.open(DevMem(), "rw")
    a = p.mmap(1000 * PAGE, flags="private", file=mem, offset=10000 * PAGE)
    src = process_graph(k, p.pid).source
    assert "×1000" in src and "r10000_1000" in frame_nodes(src)
    p.write(a + 500 * PAGE, b"z")
    src = process_graph(k, p.pid).source
    assert "×500" in src and "×499" in src
    vsrc = vma_graph(k, p.pid).source
    assert "COWed (anon page)" in vsrc and "raw (linear rule holds)" in vsrc
    assert "pf io" in vsrc and "vm_pgoff" in vsrc and "<TD>10000</TD>" in vsrc


def test_vma_graph_checks_the_linear_rule_per_pte():
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=64)
    k.add_device_memory(1000, 8, "nvram")
    p = k.spawn()
    mem = k.open(DevMem(), "rw")
    a = p.mmap(4 * PAGE, flags="private", file=mem, offset=1000 * PAGE)
    p.write(a + PAGE, b"z")
    src = vma_graph(k, p.pid).source
    rows = re.findall(r"<TR><TD ALIGN=\"LEFT\"[^>]*>(.*?)</TD><TD>(\d+)</TD><TD>(\d+)</TD><TD[^>]*>(.*?)</TD></TR>", src)
    verdicts = {int(off): v for _, off, _pfn, v in rows}
    assert verdicts == {0: "raw (linear rule holds)", 1: "COWed (anon page)", 2: "raw (linear rule holds)",
                        3: "raw (linear rule holds)"}
    assert "linear rule pfn == vm_pgoff (1000) + off" in src


def test_phys_graph_shows_memmap_cost_and_device_without_struct_pages():
    k = vmlib.Kernel("2.6.26", "x86", ram_pages=100)
    k.add_device_memory(1000, 100, "nvram")
    src = phys_graph(k).source
    assert f"= {k.memmap_bytes():,} B" in src
    ns = nodes(src)
    assert "no struct page" in ns["dev0"] and "memmap cost 0 B" in ns["dev0"]
    assert src.count('WIDTH="10" HEIGHT="10"') == 100, "one cell per RAM frame"


def test_phys_graph_counts_a_memmap_given_to_device_memory():
    """2.6.25 XIP on device memory: the segment's struct pages appear in the memmap cost."""
    from vmlib.drivers import XipFs
    k = vmlib.Kernel("2.6.25", "s390", ram_pages=100)
    dcss = k.add_device_memory(1000, 16, "dcss")
    xip = XipFs(k, backing=dcss)
    src = phys_graph(k).source
    assert k.memmap_bytes() == 116 * 56 and f"= {k.memmap_bytes():,} B" in src
    assert "116 struct pages" in src
    ns = nodes(src)
    assert "given struct pages" in ns["dev0"] and f"memmap cost {16 * 56:,} B" in ns["dev0"]
    p = k.spawn()
    a = p.mmap(PAGE, prot="r", flags="shared", file=xip.create("f", b"ELF"))
    p.read(a, 1)
    assert "struct page made by its driver" in process_graph(k, p.pid).source


def test_step_diff_highlights_new_rows_counts_and_removed_edges(forked):
    k, t, p, c, a = forked
    n0 = len(t)
    c.write(a + PAGE, b"y")
    diff = Diff.from_deltas(e.delta for e in t.events[n0:] if e.delta)
    src = fork_graph(k, diff=diff).source
    new = c.follow_pte(a + PAGE).pfn
    old = p.follow_pte(a + PAGE).pfn
    assert f'COLOR="{VERMILLION}" BORDER="3"' in src and f"was pfn {old}" in src
    assert any(b == f"f{new}" and VERMILLION in attrs for _a, b, attrs in edges(src))
    assert "ref 2→1 map 2→1" in frame_nodes(src)[f"f{old}"]
    n1 = len(t)
    c.munmap(a, 8 * PAGE)
    diff = Diff.from_deltas(e.delta for e in t.events[n1:] if e.delta)
    src = fork_graph(k, diff=diff).source
    removed = [e for e in edges(src) if 'label="removed"' in e[2]]
    assert all("dashed" in e[2] for e in removed)
    # the rows the SVG draws (one picture model): the 6 ptes still shared with the parent until now
    # are one removed row whose edge goes to the parent's node of those 6 frames, drawn once
    assert sum(int(n) for n in re.findall(r"<S>[^<]*×(\d+)</S> removed", src)) + \
        len(re.findall(r"<S>0x[0-9a-f]+</S> removed", src)) == 8, "all 8 unmapped ptes are shown removed"
    shared = {b for _a, b, _x in removed} & {b for a_, b, _x in edges(src) if a_.startswith(f"pt{p.pid}_")}
    assert len(shared) == 1 and "6 frames" in frame_nodes(src)[shared.pop()]
    assert not fork_graph(k).source.count("removed"), "no diff, no ghost rows"


def test_bad_input_gives_clear_messages(forked):
    k, _t, p, c, _a = forked
    c.exit()
    with pytest.raises(ValueError, match=r"process 2 .*exited.*live processes: 1 \(parent\)"):
        process_graph(k, c.pid)
    with pytest.raises(ValueError, match="unknown theme 'sepia'.*'light'"):
        process_graph(k, p.pid, theme="sepia")
    with pytest.raises(TypeError, match="expected a vmlib.Kernel, a Trace or a Snapshot"):
        fork_graph("kernel")
    with pytest.raises(ValueError, match="trace_info"):
        phys_graph(k.snapshot())


def test_themes_change_colours_not_structure(forked):
    k = forked[0]
    light, dark, auto = (fork_graph(k, theme=t).source for t in ("light", "dark", "auto"))
    assert 'bgcolor="transparent"' in auto and 'bgcolor="#FFFFFF"' in light and 'bgcolor="#1E1E1E"' in dark
    assert nodes(light).keys() == nodes(dark).keys() == nodes(auto).keys()


def test_memmap_arithmetic_matches_kernel_facts_table():
    assert [memmap_break_even(s) for s in (64, 56, 40, 32)] == [64, 74, 103, 128]
    assert memmap_cost(100, 1 << 30, 64) == 1600 << 20
    assert memmap_cost(1, 4097, 64) == 128, "a partial page needs a whole struct page"
    with pytest.raises(ValueError, match="sizeof_struct_page must be at least 1"):
        memmap_break_even(0)


@pytest.mark.dot
def test_every_kind_of_graph_renders_to_svg(forked):
    k, t, p, _c, _a = forked
    for g in (process_graph(k, p.pid), fork_graph(k), vma_graph(k, p.pid), phys_graph(k), fork_graph(t)):
        svg = g.svg()
        assert "<svg" in svg and "</svg>" in svg
        assert "legend" in svg
        bundle = g._repr_mimebundle_()
        from vmlib.facts import link_svg  # rows a legend cites are links into the fact sheet
        assert link_svg(g.inline_svg()) in bundle["text/html"] and "vmlib" in bundle["text/plain"]
        assert g.inline_svg().lstrip().startswith("<svg") and "max-width:none" in g.inline_svg(), \
            "drawn at its natural size: text is not shrunk in a narrow column"
        assert "overflow-x:auto" in g.html(), "a narrow column scrolls the picture instead"


def test_a_process_is_named_once_when_its_name_is_the_default():
    """Processes spawned without a name are "P2", not "P2 P2"; a given name follows the pid."""
    from vmlib.views.dot import proc_label
    k = vmlib.Kernel(ram_pages=32)
    anonymous, named = k.spawn(), k.spawn("child")
    assert proc_label(anonymous.pid, anonymous.name) == f"P{anonymous.pid}"
    assert proc_label(named.pid, named.name) == f"P{named.pid} child"


def test_vma_graph_explains_its_smaps_letters_and_draws_no_empty_legend():
    k = vmlib.Kernel(ram_pages=64)
    p = k.spawn()
    a = p.mmap(2 * PAGE)
    p.write(a, b"x")
    src = vma_graph(k, p.pid).source
    assert "rd wr mr mw me" in src, "the vma row shows its smaps letters"
    for code, words in (("rd", "readable"), ("mw", "may be made writable"), ("me", "may be made executable")):
        assert f"{code} = {words}" in src, f"the legend explains {code}"
    assert "ms = " not in src and "pf = " not in src, "only the letters this graph shows"
    assert "kernel-facts §13d" in src
    empty = k.spawn()
    assert "legend" not in vma_graph(k, empty.pid).source, "nothing to explain: no legend box at all"
