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
import re

import ipywidgets as W

from vmlib.errors import VmError
from vmlib.facts import link_html, link_svg
from vmlib.trace import Snapshot
from vmlib.views.dot import Diff, proc_label, theme_ink
from vmlib.views.graphs import SCROLL, graph_for
from vmlib.views.picture import StepModel, event_words, op_spans, step_model

PRE = ("margin:2px 0;font-size:12px;white-space:pre-wrap;word-break:normal;overflow-wrap:normal;"
       "max-height:14em;overflow-y:auto")     # wraps between words only ("fast path", not "fas t path")
JUMP = 2000     # farther than this, rebuild the snapshot from a checkpoint instead of stepping


def _esc(text) -> str:
    return html.escape(str(text), quote=False)


class Steps:
    """Navigate a trace step by step: by default one user-visible operation per step (mmap,
    read, write, fork, munmap, get_user_pages, exit, ...; vmlib.views.picture.op_spans), with
    ops_only=False one kernel event per step (the drill-down).

    Every step has a StepModel (vmlib.views.picture): a headline saying what the kernel did
    and why, the deciding kernel-facts row, the kernel events in words, what changed and what
    the deciding code examined. `frames()` gives all steps at once for a browser-side stepper.
    """

    def __init__(self, trace, ops_only: bool = True, graph="fork", theme: str = "auto"):
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
        self._player = None
        self._models: dict[int, StepModel] = {}

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
        """Draw this trace and `other` on one layout (Compare: both sides line up, and without
        pgd/pud/pmd boxes, each mm box above its tables, each is narrow enough to stand beside
        the other at 12 px in a 968 px column; the presentation layout keeps the wide form)."""
        from vmlib.views.layout import Layout, Union
        if self.graph in ("fork", "process") and other.graph == self.graph:
            u = Union.of([(self.trace, self.spans), (other.trace, other.spans)])
            pids = None if self.graph == "fork" or not u.mms else [min(u.mms)]
            self._layout = other._layout = Layout(u, pids=pids, levels=False, stack=True)
            self._player = other._player = Layout(u, pids=pids, levels=False, fit="column")

    @staticmethod
    def _spans(trace, ops_only: bool) -> list[tuple[int, int]]:
        """(first, last) event index of every step."""
        if not ops_only:
            return [(i, i) for i in range(len(trace))]
        return op_spans(trace)

    @property
    def models(self) -> list[StepModel]:
        """The StepModel of every step."""
        return [self.model(i) for i in range(len(self))]

    def model(self, i: int | None = None) -> StepModel:
        """The StepModel of step i (the current one by default), made once when first asked."""
        i = self.step if i is None else i
        if i not in self._models:
            keep = self.step
            self.goto(i)
            first, last = self.spans[i]
            self._models[i] = step_model(self.trace, first, last, self._snap)
            self.goto(keep)
        return self._models[i]

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
        """What the kernel did in this step and why, in plain words (with ops_only=False: the event)."""
        if not self.ops_only:
            return event_words(self.trace.events[self.spans[self.step][0]]).strip() or self.model().headline
        return self.model().headline

    def caption(self) -> str:
        return f"step {self.step + 1}/{len(self)}: {self.headline()}"

    def graph_now(self, presentation: bool = False, title: str | None = None):
        """The Graph of the current step with what it changed and what it examined marked
        (fork and process graphs are drawn on the trace's one layout: nodes stay where they are);
        its title is the caption unless given."""
        lay = self.presentation_layout if presentation else self.layout
        caption = self.caption() if title is None else title
        if lay is None:
            return graph_for(self.graph, self._snap, self.trace.info, self.diff(), caption, self.theme)
        from vmlib.views.dot import mm_graph
        from vmlib.views.graphs import Graph
        from vmlib.views.layout import themed
        snap, info, diff = self._snap.copy(), self.trace.info, self.diff()
        examined = self.model().examined
        pids = [p for p in lay.pids if p in snap.mms]
        return Graph(lambda: mm_graph(snap, info, pids, diff, caption, self.theme), self.graph, caption,
                     themed(lay.svg(snap, info, diff, caption, examined), self.theme))

    @property
    def presentation_layout(self):
        """The layout for presentation mode: no pgd/pud/pmd boxes, so the picture is narrow
        and grows to the column's width with large text."""
        if self._player is None and self.layout is not None:
            from vmlib.views.layout import Layout
            self._player = Layout(self.layout.u, pids=self.layout.pids, levels=False, fit="column")
        return self._player

    def frames(self, presentation: bool = False, lead_in: bool = False, big: bool = False) -> list[dict]:
        """Every step, computed once, for a browser-side stepper: one dict per step (lead_in: first
        a frame of the state before the first step, see lead_in_frame; big: each dict also has
        the presentation picture, made in the same pass over the trace).

        Keys of each dict:
          svg       complete SVG markup of the step's picture; every frame of one Steps has the
                    same width, height and viewBox (the layout is fixed per trace, the tallest
                    state reserved). presentation=False: its width/height attributes are its
                    natural size (text 12 px at 1:1: show it at that size and let it scroll in a
                    narrow column rather than shrink); presentation=True: a narrower picture
                    (no pgd/pud/pmd boxes) with style width:100%, for the column's width.
          big       (big=True only) the presentation=True picture of the same step.
          headline  plain text: what the kernel did in this step and why.
          row       the deciding kernel-facts row ("§6b v2.6.26 row 3") or "".
          events    list[str]: the step's kernel events in words, bookkeeping folded away
                    (show them collapsed); indentation is the call depth.
          marks     {"changed": [...], "examined": [...]}: the data-vm attribute values of the
                    SVG elements the step changed / the deciding code looked at (ptes "pte:PID:ADDR",
                    vmas "vma:PID:START", frames "frame:PFN", mms "mm:PID"); informational.
          op        machine-readable facts of the operation (for questions), see below.

        Keys of "op" (absent when the trace does not say):
          kind      "spawn" "mmap" "read" "write" "fork" "exit" "munmap" "get_user_pages"
                    "get_user_pages_fast" "pin_user_pages", or a kernel function a lesson called
                    directly ("move_to_xip", ...); with ops_only=False the event's function.
          who, pid  the process (name as traced, pid); who is "kernel" for spawn and direct calls.
          text      the operation as traced, e.g. "write(0x40000000, b'P')" (not for display).
          addr      the address it works on (mmap: the new vma's start); n (read), data (write,
                    as text in quotes), length (mmap, munmap), nr and write (gup), prot, flags,
                    file, vma {start, end, flags} (mmap), child (fork: the new pid).
          decision  the decision in one word: "copy" | "reuse" | "fallback" | "special" |
                    "efault" | "sigbus" | "segfault" | else the deciding function's name.
          fn, row, why   the deciding function, its kernel-facts row and its words.
          error     the error or warning text, when the operation failed.
          decisions [{"fn", "text", "row"}, ...]: every decision of the step, in order.
          before, after  {"pte": {"pfn", "flags", "present", "write", "special"} | None,
                    "page": {"pfn", "count", "mapcount", "anon"} | None} at addr's page, before
                    and after the step (read/write/gup/munmap/mmap with a pid and addr).
        Leaves the navigator on the step it was on."""
        keep = self.step
        out = [self.lead_in_frame(presentation, big)] if lead_in else []
        try:
            for i in range(len(self)):
                self.goto(i)
                m = self.model()
                title = f"step {i + 1}/{len(self)}: {m.action}"
                f = {"svg": self.graph_now(presentation, title).svg(), "headline": self.headline(), "row": m.row,
                     "events": list(m.events), "marks": marks(self.diff().prune(self._snap), m.examined),
                     "op": dict(m.op)}
                if big:
                    f["big"] = self.graph_now(True, title).svg()
                out.append(f)
        finally:
            self.goto(keep)
        return same_size(same_size(out), "big") if big else same_size(out)

    def lead_in_frame(self, presentation: bool = False, big: bool = False) -> dict:
        """The state before the first step, with what the first step's deciding code will examine
        marked (nothing it decides or changes): where a predict question about the first step is asked
        (big: with the presentation picture too, as in frames)."""
        first = self.spans[0][0]
        snap, m = self.trace.state_at(first - 1), self.model(0)
        title = f"before step 1: {m.action}"
        none = Diff.from_deltas([])

        def picture(lay) -> str:
            if lay is None:
                return graph_for(self.graph, snap, self.trace.info, none, title, self.theme).svg()
            from vmlib.views.layout import themed
            return themed(lay.svg(snap, self.trace.info, none, title, m.examined), self.theme)
        f = {"svg": picture(self.presentation_layout if presentation else self.layout),
             "headline": f"Before: {m.action}", "row": "", "events": [], "marks": marks(none, m.examined), "op": {}}
        if big:
            f["big"] = picture(self.presentation_layout)
        return f

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
        """The step's headline (with its row) and its events in words, collapsed under a
        <details> so that opening them never moves the picture's top (the list comes last)."""
        m = self.model()
        if self.ops_only:
            lines = [_esc(t) for t in m.events]
        else:
            lo = max(0, self._at - 3)
            lines = []
            for e in self.trace.events[lo:self._at + 4]:
                text = link_html(_esc(event_words(e) or str(e)))
                lines.append(f"<b>{text}</b>" if e.seq == self._at else text)
        row = f' <span class="vmlib-row">{link_html(_esc(f"[{m.row}]"))}</span>' if m.row else ""
        return (f'<div class="vmlib-event" data-step="{self.step}"><b>step {self.step + 1}/{len(self)}</b>: '
                f'{_esc(self.headline())}{row}'
                f'<details><summary>kernel events ({len(lines)})</summary>'
                f'<pre style="{PRE}">{"<br>".join(lines)}</pre></details></div>')

    def all_steps(self):
        """Yield (caption, Graph) for every step, from the first; leaves the navigator on the last."""
        for i in range(len(self)):
            self.goto(i)
            yield self.caption(), self.graph_now()


def marks(diff: Diff, examined) -> dict:
    """{"changed": [...], "examined": [...]}: data-vm values (see Steps.frames)."""
    changed = [f"pte:{p}:{a:#x}" for p, a in sorted(diff.ptes)] + [f"frame:{n}" for n in sorted(diff.pages)] + \
        [f"mm:{p}" for p in sorted({k[0] for k in diff.rss} | set(diff.mms))] + \
        [f"vmas:{p}" for p in sorted(diff.vmas)]
    seen = [f"pte:{p}:{a:#x}" for p, a in sorted(examined.ptes)] + [f"vma:{p}:{s:#x}" for p, s in
                                                                   sorted(examined.vmas)] + \
        [f"frame:{n}" for n in sorted(examined.frames)] + [f"mm:{p}" for p in sorted(examined.mms)]
    return {"changed": changed, "examined": seen}


_SVG_SIZE = re.compile(r'<svg\b[^>]*>')


def same_size(frames: list[dict], key: str = "svg") -> list[dict]:
    """Give every frame's root <svg> (frame[key]) the largest width, height and viewBox of them
    all (the fixed layouts already agree; Graphviz pictures differ from step to step)."""
    sizes = [_svg_box(f[key]) for f in frames]
    if not sizes or None in sizes or len(set(sizes)) == 1:
        return frames
    w, h = max(s[0] for s in sizes), max(s[1] for s in sizes)
    for f in frames:
        tag = _SVG_SIZE.search(f[key])[0]
        k = (_attr(tag, "width") / _svg_box(f[key])[0]) or 1.0    # the attribute's unit per viewBox unit
        unit = (re.search(r'\swidth="[\d.]+([a-z]*)"', tag) or [None, ""])[1]
        new = re.sub(r'\swidth="[^"]*"', f' width="{w * k:.0f}{unit}"', tag, count=1)
        new = re.sub(r'\sheight="[^"]*"', f' height="{h * k:.0f}{unit}"', new, count=1)
        new = re.sub(r'\sviewBox="([-\d.]+) ([-\d.]+) [^"]*"', lambda m: f' viewBox="{m[1]} {m[2]} {w:.2f} {h:.2f}"',
                     new, count=1)
        f[key] = f[key].replace(tag, new, 1)
    return frames


def _attr(tag: str, name: str) -> float:
    m = re.search(rf'\s{name}="([\d.]+)', tag)
    return float(m[1]) if m else 0.0


def _svg_box(svg: str):
    tag = _SVG_SIZE.search(svg)
    vb = re.search(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) ([\d.]+)"', tag[0]) if tag else None
    return (float(vb[1]), float(vb[2])) if vb else None


class StepOutput:
    """One static output: the step's picture with its caption (text/plain carries the caption)."""

    def __init__(self, caption: str, graph, headline: str = "", row: str = ""):
        self.caption, self.graph, self.headline, self.row = caption, graph, headline, row

    def _repr_mimebundle_(self, include=None, exclude=None):
        row = " " + link_html(_esc(f"[{self.row}]")) if self.row else ""
        if self.row and f"[{self.row}]" in self.headline:         # an event's own words already cite it
            row = ""
        head = f'<p class="vmlib-step-headline">{link_html(_esc(self.headline))}{row}</p>' if self.headline else ""
        return {"text/html": f'<div class="vmlib-step-picture">{link_svg(self.graph.html())}{head}</div>',
                "text/plain": self.caption}


def show_steps(trace, ops_only: bool = True, graph="fork", theme: str = "auto") -> None:
    """Display one output per step, its picture drawn at the column's width (the presentation
    form) with its headline under it (so the pictures of all steps line up): a steps cell
    becomes slide fragments."""
    from IPython.display import display
    s = Steps(trace, ops_only, graph, theme)
    for i in range(len(s)):
        s.goto(i)
        g = s.graph_now(presentation=True, title=f"step {i + 1}/{len(s)}: {s.model().action}")
        display(StepOutput(s.caption(), g, s.headline(), s.model().row))


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
    """The display of one Steps: its picture first (the same size at every step, so nothing
    moves while stepping), then the headline, the events (collapsed), counts and notes."""

    def __init__(self, steps: Steps, title: str = ""):
        self.steps = steps
        self.title = W.HTML(f"<b>{_esc(title)}</b>" if title else "")
        self.event = W.HTML()
        self.graph = W.HTML()
        self.counts = W.HTML()
        self.note = W.HTML()
        self.box = W.VBox([self.title, self.graph, self.event, self.counts, self.note],
                          layout=W.Layout(min_width="0", flex="0 1 auto"))
        self.presentation = False        # True: the picture at the column's width, large text

    def show(self) -> None:
        s = self.steps
        self.event.value = s.event_html()
        counts = s.counts()
        self.counts.value = ('<div class="vmlib-counts">' + ("changed: " + "; ".join(map(_esc, counts))
                                                               if counts else "no counts changed") + "</div>")
        title = f"step {s.step + 1}/{len(s)}: {s.model().action}"
        self.graph.value = (f'<div class="vmlib-graph" data-step="{s.step}" data-ops="{len(s.trace.ops())}" '
                            f'style="{SCROLL}">'
                            f'{s.graph_now(self.presentation, title).html()}</div>')


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

    def __init__(self, trace, ops_only: bool = True, graph="fork", theme: str = "auto"):
        self.steps = Steps(trace, ops_only, graph, theme)
        self.panel = _Panel(self.steps)
        n = len(self.steps)
        self.slider, self.play = _slider("step", n, 900, self._slid)
        self.buttons = _buttons(self)
        self.present = W.ToggleButton(value=False, description="presentation", tooltip="presentation",
                                      layout=W.Layout(width="auto"))
        self.present.observe(lambda ch: self.presentation_mode(ch["new"]), names="value")
        controls = W.HBox([*self.buttons, self.play, self.slider, self.present],
                          layout=W.Layout(flex_flow="row wrap"))
        super().__init__([controls, self.panel.box])
        self.add_class("vmlib-stepper")
        self.renders = 0
        self._show(0)

    @property
    def step(self) -> int:
        return self.steps.step

    def presentation_mode(self, on: bool = True) -> None:
        """Draw the picture at the column's width with large text (for a lecture hall), or not."""
        self.panel.presentation = bool(on)
        self.present.value = bool(on)
        self._show(self.step)

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
        body = W.Box([p.box for p in self.panels],           # side by side where the column has room
                     layout=W.Layout(display="flex", flex_flow="row wrap", align_items="flex-start",
                                     grid_gap="8px 16px"))
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

    def static_html(self) -> str:
        """The playground as a page without a kernel shows it (a slide deck, exported HTML): its kernel's
        picture now, and what the buttons would do, with where to go to press them."""
        acts = ", ".join(self.buttons)
        return (f'<div class="vmlib-playground-static"><p><b>Playground</b> (needs a running Python kernel): '
                f"in the notebook its buttons ({_esc(acts)}) act on this kernel and the picture follows. "
                f"Open the lesson in JupyterLab to play; here is the kernel as the lesson left it.</p>"
                f"{self.graph_view.value}</div>")

    def _repr_mimebundle_(self, **kwargs):
        """The widget; for a static export (slides) also static_html, so the deck keeps the picture."""
        from vmlib.views.practice_static import with_static_html
        return with_static_html(super()._repr_mimebundle_(**kwargs), self.static_html, export_only=True)

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
        self.graph_view.value = f'<div class="vmlib-graph" style="{SCROLL}">{g.html()}</div>'

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
        words = [event_words(e) for e in trace.events[n0:]] if self.k.trace is trace else []
        text = "\n".join(w for w in words if w)          # bookkeeping folded, no raw Python values
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
