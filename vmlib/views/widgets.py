"""Widgets: FaultStepper, Compare, Playground; show_steps for static (slide) output.

Widgets hold no simulation logic. `Steps` is the plain-Python navigator they share: its only
state is which step is shown, and it moves one Snapshot across the trace's deltas
(trace.step) instead of replaying from the start. Fork and process graphs are drawn on one
layout of the whole trace (Steps.layout; Compare shares one between its sides), so nodes keep
their places and a step runs no Graphviz.
"""

from __future__ import annotations

import html
import inspect

import ipywidgets as W

from vmlib.errors import VmError
from vmlib.facts import link_html, link_svg
from vmlib.trace import Snapshot
from vmlib.views.dot import Diff, proc_label, theme_ink
from vmlib.views.graphs import graph_for

PRE = ("margin:2px 0;font-size:12px;white-space:pre-wrap;word-break:normal;overflow-wrap:normal;"
       "max-height:14em;overflow-y:auto")     # wraps between words only ("fast path", not "fas t path")
JUMP = 2000     # farther than this, rebuild the snapshot from a checkpoint instead of stepping


def _esc(text) -> str:
    return html.escape(str(text), quote=False)


class Steps:
    """Navigate a trace step by step (every event, or one top-level operation per step)."""

    def __init__(self, trace, ops_only: bool = False, graph="fork", theme: str = "auto"):
        if not hasattr(trace, "events") or not hasattr(trace, "state_at"):
            raise TypeError(f"expected a vmlib Trace (k.trace or k.tracer.reset()), got {type(trace).__name__}")
        if len(trace) == 0:
            raise ValueError("the trace has no events, so there is nothing to step through: record some first, "
                             "e.g. t = k.tracer.reset(); p = k.spawn(); p.mmap(...); then FaultStepper(t)")
        theme_ink(theme)
        if not callable(graph):
            graph_for(graph, Snapshot(), {}, theme=theme)       # unknown kinds fail here, clearly
        self.trace, self.ops_only, self.graph, self.theme = trace, ops_only, graph, theme
        self.spans = self._spans(trace, ops_only)
        self.step = 0
        self._at = self.spans[0][1]
        self._snap = trace.state_at(self._at)
        self._layout = None

    @property
    def layout(self):
        """The fixed layout of every state of the trace (fork and process graphs), or None."""
        if self._layout is None and self.graph in ("fork", "process"):
            from vmlib.views.layout import Layout, Union
            u = Union.of([(self.trace, self.spans)])
            pids = None if self.graph == "fork" or not u.mms else [min(u.mms)]
            self._layout = Layout(u, pids=pids)
        return self._layout

    def share_layout(self, other: Steps) -> None:
        """Draw this trace and `other` on one layout (Compare: both sides line up)."""
        from vmlib.views.layout import Layout, Union
        if self.graph in ("fork", "process") and other.graph == self.graph:
            u = Union.of([(self.trace, self.spans), (other.trace, other.spans)])
            pids = None if self.graph == "fork" or not u.mms else [min(u.mms)]
            self._layout = other._layout = Layout(u, pids=pids)

    @staticmethod
    def _spans(trace, ops_only: bool) -> list[tuple[int, int]]:
        """(first, last) event index of every step."""
        n = len(trace)
        if not ops_only:
            return [(i, i) for i in range(n)]
        starts = trace.ops()[1:]
        starts = [0, *starts]            # events before the first operation (spawn) join its step
        return [(s, e - 1) for s, e in zip(starts, [*starts[1:], n])]

    def __len__(self):
        return len(self.spans)

    def goto(self, i: int) -> int:
        """Show step i (clamped to the trace); returns the step shown."""
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"step must be an int, got {type(i).__name__}")
        i = max(0, min(i, len(self.spans) - 1))
        target = self.spans[i][1]
        if abs(target - self._at) > JUMP:
            self._snap = self.trace.state_at(target)
        elif target > self._at:
            for j in range(self._at + 1, target + 1):
                self.trace.step(self._snap, j, True)
        else:
            for j in range(self._at, target, -1):
                self.trace.step(self._snap, j, False)
        self._at, self.step = target, i
        return i

    def events(self, i: int | None = None) -> list:
        first, last = self.spans[self.step if i is None else i]
        return self.trace.events[first:last + 1]

    def diff(self) -> Diff:
        """What the step changed (its deltas, read without making its Events)."""
        first, last = self.spans[self.step]
        deltas = map(self.trace.delta, range(first, last + 1))
        return Diff.from_deltas(d for d in deltas if d is not None)

    def headline(self) -> str:
        """The step's event: the operation (ops_only) or the single event, with its row."""
        first, last = self.spans[self.step]
        ev = self.trace.events
        head = next((e for e in map(ev.__getitem__, range(first, last + 1)) if e.kind == "op"), ev[first])
        return str(head).strip()

    def caption(self) -> str:
        return f"step {self.step + 1}/{len(self)}: {self.headline()}"

    def graph_now(self):
        """The Graph of the current step with what it changed highlighted (fork and process
        graphs are drawn on the trace's one layout: nodes stay where they are)."""
        lay = self.layout
        if lay is None:
            return graph_for(self.graph, self._snap, self.trace.info, self.diff(), self.caption(), self.theme)
        from vmlib.views.dot import mm_graph
        from vmlib.views.graphs import Graph
        from vmlib.views.layout import themed
        snap, info, diff, caption = self._snap.copy(), self.trace.info, self.diff(), self.caption()
        pids = [p for p in lay.pids if p in snap.mms]
        return Graph(lambda: mm_graph(snap, info, pids, diff, caption, self.theme), self.graph, caption,
                     themed(lay.svg(snap, info, diff, caption), self.theme))

    def counts(self) -> list[str]:
        """Counts that moved in this step: refcounts, mapcounts, rss."""
        d = self.diff().prune(self._snap)
        out = []
        for pfn, old in sorted(d.pages.items()):
            new = self._snap.pages.get(pfn)
            if old is None and new.pgtable:
                out.append(f"page {pfn}: allocated as a page table")
            elif old is None:
                out.append(f"page {pfn}: allocated (ref {new.count} map {new.mapcount})")
            elif new is None:
                out.append(f"page {pfn}: freed (was ref {old.count} map {old.mapcount})")
            elif (old.count, old.mapcount) != (new.count, new.mapcount):
                out.append(f"page {pfn}: ref {old.count}→{new.count}, map {old.mapcount}→{new.mapcount}")
        for (pid, kind), old in sorted(d.rss.items()):
            new = self._snap.rss.get((pid, kind), 0)
            if (old or 0) != new:                  # a process appearing or going shows 0 → 0
                out.append(f"P{pid} {kind}_rss: {old or 0}→{new}")
        return out

    def event_html(self) -> str:
        """The step's events as HTML (decisions carry their kernel-facts row)."""
        if self.ops_only:
            shown, current = self.events(), None
        else:
            lo = max(0, self._at - 3)
            shown, current = self.trace.events[lo:self._at + 4], self._at
        lines = []
        for e in shown:
            text = link_html(_esc(str(e)))   # each [§...] row links to the fact sheet
            if e.seq == current or (current is None and e.kind == "op"):
                text = f"<b>{text}</b>"
            if e.kind in ("warn", "error"):
                text = f'<span style="border-left:4px solid #D55E00;padding-left:4px">⚠ {text}</span>'
            lines.append(text)
        return (f'<div class="vmlib-event" data-step="{self.step}"><b>{_esc(self.caption())}</b>'
                f'<pre style="{PRE}">{"<br>".join(lines)}</pre></div>')

    def all_steps(self):
        """Yield (caption, Graph) for every step, from the first; leaves the navigator on the last."""
        for i in range(len(self)):
            self.goto(i)
            yield self.caption(), self.graph_now()


class StepOutput:
    """One static output: the step's picture with its caption (text/plain carries the caption)."""

    def __init__(self, caption: str, graph):
        self.caption, self.graph = caption, graph

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": f'<div class="vmlib-step-picture">{link_svg(self.graph.html())}</div>', "text/plain": self.caption}


def show_steps(trace, ops_only: bool = True, graph="fork", theme: str = "auto") -> None:
    """Display one SVG output per step (caption inside it): a steps cell becomes slide fragments."""
    from IPython.display import display
    for caption, g in Steps(trace, ops_only, graph, theme).all_steps():
        display(StepOutput(caption, g))


def _slider(name: str, n: int, interval: int, on_value):
    """(slider, play) counting 1..n like the caption; on_value(v) runs when the user moves it."""
    slider = W.IntSlider(value=1, min=1, max=max(n, 1), description=name, continuous_update=False,
                         layout=W.Layout(width="380px"))
    play = W.Play(value=1, min=1, max=max(n, 1), interval=interval, description="play")
    W.jslink((play, "value"), (slider, "value"))
    slider.observe(lambda ch: on_value(ch["new"]), names="value")
    return slider, play


def _buttons(nav) -> list:
    return [_button("« first", "first", nav.first), _button("‹ back", "back", nav.back),
            _button("forward ›", "forward", nav.forward), _button("last »", "last", nav.last)]


def _button(desc: str, tip: str, fn) -> W.Button:
    b = W.Button(description=desc, tooltip=tip, layout=W.Layout(width="auto"))
    b.on_click(lambda _b: fn())
    return b


class _Panel:
    """The display of one Steps: event text, graph and changed counts (HTML widgets)."""

    def __init__(self, steps: Steps, title: str = ""):
        self.steps = steps
        self.title = W.HTML(f"<b>{_esc(title)}</b>" if title else "")
        self.event = W.HTML()
        self.graph = W.HTML()
        self.counts = W.HTML()
        self.note = W.HTML()
        self.box = W.VBox([self.title, self.event, self.counts, self.note, self.graph])

    def show(self) -> None:
        s = self.steps
        self.event.value = s.event_html()
        counts = s.counts()
        self.counts.value = ('<div class="vmlib-counts">' + ("changed: " + "; ".join(map(_esc, counts))
                                                               if counts else "no counts changed") + "</div>")
        self.graph.value = (f'<div class="vmlib-graph" data-step="{s.step}" style="max-width:100%">'
                            f'{s.graph_now().html()}</div>')


class _Navigation:
    """first / back / forward / last / goto for a widget with _show(i), step and len()."""

    def goto(self, i: int) -> int:
        self._show(i)
        return self.step

    def forward(self) -> int:
        return self.goto(self.step + 1)

    def back(self) -> int:
        return self.goto(self.step - 1)

    def first(self) -> int:
        return self.goto(0)

    def last(self) -> int:
        return self.goto(len(self) - 1)

    def _slid(self, value: int) -> None:
        """The slider (counting from 1) moved: show that step unless it is shown already."""
        if value - 1 != self.step:
            self._show(value - 1)


class FaultStepper(_Navigation, W.VBox):
    """Step a trace forwards and backwards: buttons, play, slider, event, graph with its diff."""

    def __init__(self, trace, ops_only: bool = False, graph="fork", theme: str = "auto"):
        self.steps = Steps(trace, ops_only, graph, theme)
        self.panel = _Panel(self.steps)
        n = len(self.steps)
        self.slider, self.play = _slider("step", n, 900, self._slid)
        self.buttons = _buttons(self)
        controls = W.HBox([*self.buttons, self.play, self.slider], layout=W.Layout(flex_flow="row wrap"))
        super().__init__([controls, self.panel.box])
        self.add_class("vmlib-stepper")
        self.renders = 0
        self._show(0)

    @property
    def step(self) -> int:
        return self.steps.step

    def _show(self, i: int) -> None:
        self.steps.goto(i)
        self.panel.show()
        self.renders += 1
        self.slider.value = self.steps.step + 1       # observed by _slid, which sees nothing to do

    def __len__(self) -> int:
        return len(self.steps)

    def graph(self):
        """The Graph currently shown."""
        return self.steps.graph_now()

    def show_steps(self) -> None:
        """Emit every step as a static SVG output (for slides; needs no running kernel)."""
        show_steps(self.steps.trace, self.steps.ops_only, self.steps.graph, self.steps.theme)


# -- Compare -----------------------------------------------------------------------------

def _side_label(side) -> str:
    if isinstance(side, dict):
        if "label" in side:
            return str(side["label"])
        return "/".join(str(side[k]) for k in ("version", "arch") if k in side) or "default kernel"
    prof = (getattr(side, "info", None) or {}).get("profile")
    return getattr(prof, "name", "trace")


def run_scenario(scenario, side: dict, kernel_kwargs: dict):
    """Run scenario(k) (or scenario(k, param)) on a fresh traced Kernel(**side); (trace, error text)."""
    from vmlib import Kernel
    args = {k: v for k, v in side.items() if k not in ("label", "param")}
    k = Kernel(**args, **kernel_kwargs)
    t = k.tracer.reset()
    try:
        if "param" in side:
            scenario(k, side["param"])
        else:
            scenario(k)
    except (VmError, ValueError, TypeError) as e:
        return t, f"{type(e).__name__}: {e}"
    return t, ""


class Compare(_Navigation, W.VBox):
    """One scenario on two kernels (or two ready traces), shown side by side, stepping together
    by operation. A side dict's keys go to Kernel(); 'label' titles it, 'param' is passed to a
    two-argument scenario(k, param) (e.g. a PFNMAP versus a MIXEDMAP driver)."""

    def __init__(self, scenario=None, left=None, right=None, graph="fork", theme: str = "auto", **kernel_kwargs):
        left = {"version": "2.6.26", "arch": "x86"} if left is None else left
        right = {"version": "2.6.26", "arch": "s390"} if right is None else right
        sides = []
        for name, side in (("left", left), ("right", right)):
            if isinstance(side, dict):
                if not callable(scenario):
                    raise TypeError(f"Compare: {name} is a kernel description, so scenario must be a function "
                                    f"scenario(k) that runs operations; got {scenario!r}")
                if "param" in side and len(inspect.signature(scenario).parameters) < 2:
                    raise TypeError(f"Compare: {name} has 'param' but scenario takes one argument; "
                                    "write scenario(k, param)")
                trace, error = run_scenario(scenario, side, kernel_kwargs)
            elif hasattr(side, "events"):
                trace, error = side, ""
            else:
                raise TypeError(f"Compare: {name} must be a dict of Kernel arguments or a Trace, "
                                f"got {type(side).__name__}")
            if len(trace) == 0:
                raise ValueError(f"Compare: the {name} side recorded no events" +
                                 (f" (the scenario failed: {error})" if error else "") +
                                 "; the scenario must perform operations on the kernel it is given")
            sides.append((Steps(trace, True, graph, theme), _side_label(side), error))
        self.left, self.right = sides[0][0], sides[1][0]
        self.left.share_layout(self.right)       # one layout: the two pictures line up, same text size
        self.panels = [_Panel(s, label) for s, label, _ in sides]
        for panel, side in zip(self.panels, ("left", "right")):
            panel.box.add_class(f"vmlib-side-{side}")
        self.errors = [err for _, _, err in sides]
        self.n = max(len(self.left), len(self.right))
        self.slider, self.play = _slider("operation", self.n, 1200, self._slid)
        body = W.VBox([p.box for p in self.panels])          # stacked: each side gets the full column
        super().__init__([W.HBox([*_buttons(self), self.play, self.slider],
                                 layout=W.Layout(flex_flow="row wrap")), body])
        self.add_class("vmlib-compare")
        self.step = 0
        self.renders = 0
        self._show(0)

    def _show(self, i: int) -> None:
        self.step = max(0, min(i, self.n - 1))
        for panel, err in zip(self.panels, self.errors):
            shown = panel.steps.goto(self.step)
            panel.show()
            notes = []
            if shown < self.step:
                notes.append(f"this side has only {len(panel.steps)} operations")
            if err and shown == len(panel.steps) - 1:
                notes.append(f"the scenario stopped here: {err}")
            panel.note.value = (f'<div class="vmlib-note" style="border-left:4px solid #D55E00;padding-left:6px">'
                                f'{_esc("; ".join(notes))}</div>' if notes else "")
        self.renders += 1
        self.slider.value = self.step + 1

    def __len__(self) -> int:
        return self.n


# -- Playground --------------------------------------------------------------------------

USER_ERRORS = (VmError, ValueError, TypeError, KeyError)


def _style() -> dict:
    """Room for the whole description ("flags", "offset pg"), so no label is cut."""
    return {"description_width": "initial"}


def _result(value) -> str:
    """What an operation returned, in words (a Process by its pid and name, not its repr)."""
    if hasattr(value, "pid") and hasattr(value, "name"):
        return proc_label(value.pid, value.name)
    return str(value)


class Playground(W.VBox):
    """Buttons for mmap, read, write, fork, munmap, gup on a live kernel; graph and event log follow.
    `files` maps names to opened files (k.open(...)) offered to mmap besides anonymous memory."""

    def __init__(self, k, files: dict | None = None, graph="fork", theme: str = "auto"):
        if not hasattr(k, "spawn") or not hasattr(k, "snapshot"):
            raise TypeError(f"Playground needs a vmlib.Kernel, got {type(k).__name__}")
        theme_ink(theme)
        self.k, self.files, self.graph, self.theme = k, dict(files or {}), graph, theme
        self.pinned: list = []
        lay = W.Layout(width="170px")
        self.proc = W.Dropdown(description="process", layout=W.Layout(width="220px"), style=_style())
        self.pages = W.BoundedIntText(value=4, min=1, max=1 << 20, description="pages", layout=lay,
                                       style=_style())
        self.prot = W.Dropdown(options=["rw", "r", "rwx", "none"], value="rw", description="prot", layout=lay,
                                 style=_style())
        self.flags = W.Dropdown(options=["private", "shared"], value="private", description="flags", layout=lay,
                                  style=_style())
        self.file = W.Dropdown(options=["anonymous", *self.files], value="anonymous", description="file",
                               layout=W.Layout(width="220px"), style=_style())
        self.offset = W.BoundedIntText(value=0, min=0, max=1 << 40, description="offset pg", layout=lay,
                                      style=_style())
        self.addr = W.Text(value="", description="addr", placeholder="0x40000000", layout=W.Layout(width="220px"),
                           style=_style())
        self.data = W.Text(value="x", description="data", layout=lay, style=_style())
        self.nbytes = W.BoundedIntText(value=1, min=1, max=1 << 20, description="n", layout=lay,
                                        style=_style())
        self.gup_write = W.Checkbox(value=False, description="gup write", indent=False)
        self.message = W.HTML()
        self.event_log = W.HTML()
        self.graph_view = W.HTML()
        acts = [("spawn", self.do_spawn), ("mmap", self.do_mmap), ("read", self.do_read), ("write", self.do_write),
                ("fork", self.do_fork), ("munmap", self.do_munmap), ("gup", self.do_gup),
                ("put gup pages", self.do_put), ("exit", self.do_exit)]
        self.buttons = {name: _button(name, name, fn) for name, fn in acts}
        rows = [W.HBox([self.proc, self.buttons["spawn"], self.buttons["fork"], self.buttons["exit"]]),
                W.HBox([self.pages, self.prot, self.flags, self.file, self.offset, self.buttons["mmap"]]),
                W.HBox([self.addr, self.data, self.nbytes, self.buttons["read"], self.buttons["write"],
                        self.buttons["munmap"]]),
                W.HBox([self.gup_write, self.buttons["gup"], self.buttons["put gup pages"]])]
        rows = [W.HBox(r.children, layout=W.Layout(flex_flow="row wrap")) for r in rows]
        super().__init__([*rows, self.message, self.event_log, self.graph_view])
        self.add_class("vmlib-playground")
        self._refresh(None)

    # helpers
    def _process(self):
        if self.proc.value is None or self.proc.value not in self.k.procs:
            raise ValueError("no process selected: press 'spawn' first (or pick one in 'process')")
        return self.k.procs[self.proc.value]

    def _address(self) -> int:
        text = self.addr.value.strip()
        if not text:
            raise ValueError("no address: mmap something first, or type one in 'addr' (e.g. 0x40000000)")
        try:
            return int(text, 0)
        except ValueError:
            raise ValueError(f"addr {text!r} is not a number: write it like 0x40000000") from None

    def _refresh(self, diff) -> None:
        opts = [(proc_label(pid, p.name), pid) for pid, p in sorted(self.k.procs.items())]
        keep = self.proc.value
        self.proc.options = opts
        if opts:
            self.proc.value = keep if keep in dict(opts).values() else opts[-1][1]
        snap, info = self.k.snapshot(), self.k.trace_info()
        g = graph_for(self.graph, snap, info, diff, f"{len(self.k.procs)} process(es)", self.theme)
        self.graph_view.value = f'<div class="vmlib-graph">{g.html()}</div>'

    def _run(self, what: str, fn):
        """Run one operation; on success show its events and diff, on failure the message only."""
        before = self.k.snapshot()
        trace = self.k.trace
        n0 = len(trace)
        try:
            result = fn()
        except USER_ERRORS as e:
            self.message.value = (f'<div class="vmlib-error" style="border:2px solid #D55E00;'
                                  f'padding:4px"><b>{_esc(what)} failed</b>: {_esc(type(e).__name__)}: '
                                  f'{_esc(e)}</div>')
            self.event_log.value = ""                  # the old log belongs to an earlier operation
            return None
        self.message.value = f'<div class="vmlib-ok">{_esc(what)}: {_esc(_result(result))}</div>'
        text = trace.text(n0) if self.k.trace is trace else ""
        self.event_log.value = f'<pre class="vmlib-log" style="{PRE}">{_esc(text)}</pre>'
        self._refresh(Diff.between(before, self.k.snapshot()))
        return result

    # actions
    def do_spawn(self):
        p = self._run("spawn", lambda: self.k.spawn())
        if p is not None:
            self.proc.value = p.pid

    def do_mmap(self):
        def op():
            f = None if self.file.value == "anonymous" else self.files[self.file.value]
            addr = self._process().mmap(self.pages.value * 4096, prot=self.prot.value, flags=self.flags.value,
                                        file=f, offset=self.offset.value * 4096)
            self.addr.value = hex(addr)
            return f"mapped at {addr:#x}"
        self._run("mmap", op)

    def do_read(self):
        self._run("read", lambda: self._process().read(self._address(), self.nbytes.value))

    def do_write(self):
        self._run("write", lambda: (self._process().write(self._address(), self.data.value.encode()),
                                    f"wrote {len(self.data.value.encode())} bytes")[1])

    def do_fork(self):
        child = self._run("fork", lambda: self._process().fork())
        if child is not None:
            self._refresh(None)

    def do_munmap(self):
        def op():
            p, addr, n = self._process(), self._address(), self.pages.value * 4096
            had = p.mm.overlaps(addr, addr + n)
            p.munmap(addr, n)
            return "unmapped" if had else "returned 0: nothing is mapped there, so nothing changed"
        self._run("munmap", op)

    def do_gup(self):
        def op():
            pages = self._process().get_user_pages(self._address(), self.nbytes.value, write=self.gup_write.value)
            self.pinned.extend(pages)
            return f"got {len(pages)} page(s): pfn {', '.join(str(p.pfn) for p in pages)} (each +1 ref)"
        self._run("gup", op)

    def do_put(self):
        def op():
            n = len(self.pinned)
            while self.pinned:
                self.k.put_page(self.pinned.pop())
            return f"put_page on {n} page(s)"
        self._run("put_page", op)

    def do_exit(self):
        self._run("exit", lambda: (self._process().exit(), "exited")[1])
