"""vmlib.views: page-table graphs, fault-stepping widgets and plots.

The only part of vmlib that imports graphviz, pygraphviz, ipywidgets and IPython, each lazily:
`from vmlib.views import process_graph` loads none of them. Page-table graphs and steppers go
trace -> layout (once) -> per-step SVG through vmlib.views.layout, with no Graphviz; vma and
physical-memory graphs are DOT text rendered by pygraphviz or `dot` (vmlib.views.render).
"""

from __future__ import annotations

import importlib

from vmlib.memmap import memmap_break_even, memmap_cost

_LAZY = {
    "Graph": "graphs", "process_graph": "graphs", "vma_graph": "graphs", "phys_graph": "graphs",
    "fork_graph": "graphs", "graph_for": "graphs", "Diff": "dot",
    "FaultStepper": "widgets", "Compare": "widgets", "Playground": "widgets", "show_steps": "widgets",
    "Steps": "widgets", "MemmapCost": "plots", "memmap_svg": "plots",
    "Practice": "practice",
}

__all__ = [
    "Compare",
    "Diff",
    "FaultStepper",
    "Graph",
    "MemmapCost",
    "Playground",
    "Practice",
    "Steps",
    "fork_graph",
    "graph_for",
    "memmap_break_even",
    "memmap_cost",
    "memmap_svg",
    "phys_graph",
    "process_graph",
    "show_steps",
    "vma_graph",
]


COURSE_EXTRA = ("ipywidgets", "IPython", "graphviz", "matplotlib", "anywidget")   # what `course` installs


def __getattr__(name: str):
    if name in _LAZY:
        try:
            module = importlib.import_module(f"vmlib.views.{_LAZY[name]}")
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] not in COURSE_EXTRA:
                raise
            raise ModuleNotFoundError(
                f"vmlib.views.{name} needs {e.name}, which comes with the course extra: "
                f"pip install 'vmlib[course]' (or ./setup.sh lab in a checkout)", name=e.name) from e
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vmlib.views' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
