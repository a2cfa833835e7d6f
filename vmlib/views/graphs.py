"""Graph objects (DOT text + SVG + notebook display) and the public graph builders."""

from __future__ import annotations

from vmlib.views import dot as D


class Graph:
    """A graph: `.source` is the DOT text, `.svg()` the rendered SVG; shows itself in a notebook."""

    def __init__(self, source: str, kind: str, caption: str = ""):
        self.source = source
        self.kind = kind
        self.caption = caption

    def svg(self) -> str:
        from vmlib.views.render import svg
        return svg(self.source)

    def inline_svg(self) -> str:
        """SVG without XML prolog, ready to put inside HTML."""
        from vmlib.views.render import inline_svg
        return inline_svg(self.source)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"image/svg+xml": self.svg(), "text/plain": repr(self)}

    def __repr__(self):
        cap = f": {self.caption}" if self.caption else ""
        return f"<vmlib {self.kind} graph{cap} ({self.source.count(' -> ')} edges; .source is DOT)>"


def process_graph(k_or_snapshot, pid: int, trace_info=None, theme: str = "auto", diff=None, title: str = "",
                  collapse: int = 4) -> Graph:
    """mm -> pgd -> pud -> pmd -> pte table -> frame for one process (only populated paths)."""
    snap, info = D.inputs(k_or_snapshot, trace_info)
    pids = D.check_pids(snap, pid)
    return Graph(D.mm_graph(snap, info, pids, diff, title, theme, collapse), "process", title)


def fork_graph(k_or_snapshot, pids=None, trace_info=None, theme: str = "auto", diff=None, title: str = "",
               collapse: int = 4) -> Graph:
    """Several processes (all live ones by default) with each shared frame drawn once."""
    snap, info = D.inputs(k_or_snapshot, trace_info)
    pids = D.check_pids(snap, pids)
    return Graph(D.mm_graph(snap, info, pids, diff, title, theme, collapse), "fork", title)


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
