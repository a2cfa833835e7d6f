"""vmlib.views: page-table graphs, fault-stepping widgets and plots.

One direction through the views:

    trace ──► picture (vmlib.views.picture)          what each step IS: one operation (op_spans),
                                                     its headline, row, events in words, the Diff
                                                     it made and what its deciding code examined;
                                                     the page-table rows and their frames
                                                     (Union of the states shown, table_rows)
          ──► a renderer                             how it LOOKS; renderers read the picture
              layout.py   our own SVG on one fixed     model and never each other; both draw
                          layout per trace (no Graphviz), the same rows
                          changed and examined marked
              dot.py      DOT text (vma and physical-memory graphs; .source of the others),
                          turned into SVG by render.py (pygraphviz or `dot`)
          ──► users       graphs.py (Graph objects, process_graph ...), widgets.py (Steps and
                          Steps.frames for a browser stepper, FaultStepper, Compare,
                          Playground, show_steps for slides) use the model and a renderer.

The only part of vmlib that imports graphviz, pygraphviz, ipywidgets and IPython, each lazily:
`from vmlib.views import process_graph` loads none of them.
"""

from __future__ import annotations

import importlib

from vmlib.memmap import memmap_break_even, memmap_cost

_LAZY = {
    "Graph": "graphs", "process_graph": "graphs", "vma_graph": "graphs", "phys_graph": "graphs",
    "fork_graph": "graphs", "graph_for": "graphs", "Diff": "dot",
    "FaultStepper": "widgets", "Compare": "widgets", "Playground": "widgets", "show_steps": "widgets",
    "Steps": "widgets", "MemmapCost": "plots", "memmap_svg": "plots",
    "Practice": "practice", "Stepper": "stepper",
}

__all__ = [
    "Compare",
    "Diff",
    "FaultStepper",
    "Graph",
    "MemmapCost",
    "Playground",
    "Practice",
    "Stepper",
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
