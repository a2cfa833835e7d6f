"""Graph objects (DOT text + SVG + notebook display) and the public graph builders.

Process and fork graphs are drawn by vmlib.views.layout (fixed layout, our own SVG: no
Graphviz needed, sized to the column, themed by JupyterLab); `.source` is still their DOT text,
for anyone who wants Graphviz's picture. vma and physical-memory graphs are drawn by Graphviz.
"""

from __future__ import annotations

from vmlib.views import dot as D

# A box that scrolls a picture kept at its natural size; inline-size containment keeps the
# picture's width from widening the box (and the flex output areas around it) past the column.
SCROLL = "overflow-x:auto;contain:inline-size"


class Graph:
    """A graph: `.source` is the DOT text, `.svg()` the SVG; shows itself in a notebook.

    `source` may be given as a function (built on first use); `picture`, when given, is the
    SVG the notebook shows instead of Graphviz's rendering of the DOT text."""

    def __init__(self, source, kind: str, caption: str = "", picture=None):
        self._source = source
        self.kind = kind
        self.caption = caption
        self._picture = picture

    @property
    def source(self) -> str:
        if callable(self._source):
            self._source = self._source()
        return self._source

    def svg(self) -> str:
        """The SVG: the fixed-layout picture when there is one, else Graphviz's rendering."""
        if self._picture is not None:
            if callable(self._picture):
                self._picture = self._picture()
            return self._picture
        from vmlib.views.render import svg
        return svg(self.source)

    def inline_svg(self) -> str:
        """SVG without XML prolog, scaled to its column, ready to put inside HTML."""
        if self._picture is not None:
            return self.svg()
        from vmlib.views.render import inline_svg
        return inline_svg(self.source)

    def html(self) -> str:
        """HTML showing the graph, or a short note saying what to install when nothing can draw it."""
        from vmlib.views.render import NoRenderer, no_renderer_html
        try:
            from vmlib.facts import link_svg  # a row a legend cites links into the fact sheet
            return (f'<div class="vmlib-graph-static" style="color:var(--jp-content-font-color1,#111);'
                    f'{SCROLL}">'
                    f"{link_svg(self.inline_svg())}</div>")
        except NoRenderer as e:
            from vmlib.views.browserdot import browser_graph_html  # JupyterLite: Graphviz in the page
            return browser_graph_html(self.source) or no_renderer_html(e)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.html(), "text/plain": repr(self)}

    def __repr__(self):
        cap = f": {self.caption}" if self.caption else ""
        return f"<vmlib {self.kind} graph{cap} ({self.source.count(' -> ')} edges; .source is DOT)>"


def _mm_graph(snap, info, pids, theme, diff, title, collapse, kind) -> Graph:
    from vmlib.views.layout import Layout, Union, themed
    D.theme_ink(theme)

    def picture():
        lay = Layout(Union.of_step(snap, diff, info), collapse, pids=pids)     # the rows DOT draws too
        return themed(lay.svg(snap, info, diff, title or D.default_title(info, pids, snap)), theme)
    return Graph(lambda: D.mm_graph(snap, info, pids, diff, title, theme, collapse), kind, title, picture)


def process_graph(k_or_snapshot, pid: int, trace_info=None, theme: str = "auto", diff=None, title: str = "",
                  collapse: int = 4) -> Graph:
    """mm -> pgd -> pud -> pmd -> pte table -> frame for one process (only populated paths)."""
    snap, info = D.inputs(k_or_snapshot, trace_info)
    pids = D.check_pids(snap, pid)
    return _mm_graph(snap, info, pids, theme, diff, title, collapse, "process")


def fork_graph(k_or_snapshot, pids=None, trace_info=None, theme: str = "auto", diff=None, title: str = "",
               collapse: int = 4) -> Graph:
    """Several processes (all live ones by default) with each shared frame drawn once."""
    snap, info = D.inputs(k_or_snapshot, trace_info)
    pids = D.check_pids(snap, pids)
    return _mm_graph(snap, info, pids, theme, diff, title, collapse, "fork")


def vma_graph(k_or_snapshot, pid=None, trace_info=None, theme: str = "auto", diff=None, title: str = "",
              collapse: int = 4) -> Graph:
    """The vma layout of one process (or all for pid=None), with the PFNMAP linear rule per pte."""
    snap, info = D.inputs(k_or_snapshot, trace_info)
    pids = D.check_pids(snap, pid)
    return Graph(D.vma_dot(snap, info, pids, diff, title, theme, collapse), "vma", title)


def phys_graph(k_or_snapshot, trace_info=None, theme: str = "auto", diff=None, title: str = "") -> Graph:
    """Physical memory: RAM with its memmap versus device memory without one."""
    snap, info = D.inputs(k_or_snapshot, trace_info)
    if "ram_pages" not in info:
        raise ValueError("phys_graph needs trace_info (ram_pages, devices, profile): pass a Kernel, "
                         "a Trace, or trace_info=k.trace_info() with a Snapshot")
    return Graph(D.phys_dot(snap, info, diff, title, theme), "phys", title)


GRAPHS = {"fork": fork_graph, "process": process_graph, "vma": vma_graph, "phys": phys_graph}


def graph_for(kind, snap, info, diff=None, title: str = "", theme: str = "auto") -> Graph:
    """A graph of kind 'fork' | 'process' | 'vma' | 'phys' (or a callable(snap, info, diff, title, theme))."""
    if callable(kind):
        return kind(snap, info, diff, title, theme)
    if kind not in GRAPHS:
        raise ValueError(f"unknown graph kind {kind!r}: use one of {', '.join(map(repr, GRAPHS))} or a callable")
    if kind == "phys":
        return phys_graph(snap, info, theme, diff, title)
    if kind == "fork" or not snap.mms:
        return fork_graph(snap, None, info, theme, diff, title)
    pid = min(snap.mms)
    return GRAPHS[kind](snap, pid, info, theme, diff, title)
