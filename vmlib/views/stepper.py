"""Stepper: a stepper that steps in the browser (an anywidget), with an optional predict mode.

    Stepper(trace, ops_only=True, graph="fork", predict=False)        # one trace, a step per operation
    Stepper.compare(scenario, left={...}, right={...})                # two kernels, side by side

Every frame (the step's SVG, headline, kernel-facts row and events) is computed once in Python
and sent to the browser with the widget's state; the buttons, the slider, play and the predict
questions (vmlib.views.predict) then run in the browser with no kernel round trip, so a step
repaints within a frame and the widget keeps working where no kernel runs: the widget state
saved in an executed notebook, and the self-contained HTML (`text/html` of the same output)
that exported HTML and the slide decks show. Why anywidget: one ES module, shipped as package
data (stepper.js), is the whole front end, with no npm build; JupyterLab, Notebook 7, VS Code and
JupyterLite (with the anywidget extension in the site) all load it the same way.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import anywidget
import traitlets as T

from vmlib.views.predict import questions as make_questions

HERE = Path(__file__).parent
ESM = HERE / "stepper.js"
CSS = HERE / "stepper.css"


def _side(title: str, steps, error: str = "", lead_in: bool = False) -> dict:
    """One side of a stepper: every frame of `steps` with its presentation picture ("big"), in one pass."""
    frames = [_frame(f, f["big"]) for f in steps.frames(lead_in=lead_in, big=True)]
    if error and frames:
        frames[-1]["note"] = f"the scenario stopped here: {error}"
    return {"title": title, "frames": frames, "ops": len(steps.trace.ops()), "lead": int(lead_in and bool(frames))}


def _frame(f: dict, big: str) -> dict:
    """What the browser needs of one frame: the pictures and texts, with every kernel-facts row a link
    into the sheet (row_href, events_html: HTML we escaped ourselves)."""
    import html

    from vmlib.facts import link_html, link_svg, url
    return {"svg": link_svg(f["svg"]), "big": link_svg(big), "headline": f["headline"], "row": f["row"],
            "row_href": url(f["row"]) if f["row"] else "", "events": f["events"],
            "events_html": [link_html(html.escape(e, quote=False)) for e in f["events"]]}


class Stepper(anywidget.AnyWidget):
    """Step a trace in the browser: buttons, play, slider, the step's headline, picture and events.

    predict=True starts in predict mode: before a key step (vmlib.views.predict) it asks what the
    kernel will do and reveals the step once the student chose. `step` (0-based) follows the
    browser; setting it from Python moves the picture."""

    _esm = ESM
    _css = CSS
    sides = T.List(T.Dict()).tag(sync=True)
    questions = T.List(T.Dict()).tag(sync=True)
    step = T.Int(0).tag(sync=True)
    predict = T.Bool(False).tag(sync=True)
    answers = T.Dict().tag(sync=True)

    def __init__(self, trace=None, ops_only: bool = True, graph="fork", theme: str = "auto",
                 predict: bool = False, *, sides=None, questions=None):
        if sides is None:
            from vmlib.views.widgets import Steps
            steps = Steps(trace, ops_only, graph, theme)
            if questions is None:
                questions = make_questions(trace, steps.spans, lead_in=True)
            lead_in = any(q["step"] == 0 for q in questions)     # a question about the first step:
            questions = [{**q, "step": q["step"] + lead_in} for q in questions]   # show the state before it
            sides = [_side("", steps, lead_in=lead_in)]
        if not sides or not all(s["frames"] for s in sides):
            raise ValueError("Stepper needs at least one side with at least one frame")
        n = max(len(s["frames"]) for s in sides)
        bad = [q for q in questions or [] if not 0 < q.get("step", -1) < n]
        if bad:
            raise ValueError(f"question steps must be 1..{n - 1} (step 0 has nothing before it), got "
                             f"{[q.get('step') for q in bad]}")
        super().__init__(sides=sides, questions=list(questions or []), predict=bool(predict))

    @classmethod
    def compare(cls, scenario=None, left=None, right=None, graph="fork", theme: str = "auto",
                predict: bool = False, **kernel_kwargs) -> Stepper:
        """One scenario on two kernels (or two traces) side by side, stepping together by
        operation (the arguments of vmlib.views.Compare); both pictures share one layout."""
        from vmlib.views.widgets import Compare
        cmp = Compare(scenario, left, right, graph, theme, **kernel_kwargs)
        titles = [p.title.value.removeprefix("<b>").removesuffix("</b>") for p in cmp.panels]
        import html
        sides = [_side(html.unescape(t), p.steps, err) for t, p, err in zip(titles, cmp.panels, cmp.errors)]
        w = cls(sides=sides, questions=[], predict=predict)
        w.kind = "compare"
        return w

    def __len__(self) -> int:
        return max(len(s["frames"]) for s in self.sides)

    def goto(self, i: int) -> int:
        """Show step i (clamped); returns the step shown."""
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"step must be an int, got {type(i).__name__}")
        self.step = max(0, min(i, len(self) - 1))
        return self.step

    def static_html(self) -> str:
        """Self-contained HTML running the same front end on the frames, with no kernel and no
        widget manager (exported HTML, slide decks): the state as JSON and the module inline."""
        uid = f"vmlib-{uuid.uuid4().hex[:12]}"
        state = {"sides": self.sides, "questions": self.questions, "step": self.step, "predict": self.predict,
                 "answers": self.answers}
        data = json.dumps(state).replace("</", "<\\/")
        code = ESM.read_text().replace("export default { render };", "")
        tallest = max(_svg_height(f["svg"]) for s in self.sides for f in s["frames"])
        return (f'<div class="vmlib-stepper-static" data-vmlib-height="{tallest:.0f}" '
                f'data-vmlib-sides="{len(self.sides)}" id="{uid}"></div>\n'
                f"<style>{CSS.read_text()}</style>\n"
                f'<script type="application/json" id="{uid}-state">{data}</script>\n'
                f'<script type="module">\n{code}\n'
                f'const state = JSON.parse(document.getElementById("{uid}-state").textContent);\n'
                f"{_LOCAL_MODEL}\n"
                f'render({{ model, el: document.getElementById("{uid}") }});\n</script>')

    def _repr_mimebundle_(self, **kwargs):
        """The widget; its text/html runs the same stepping without a kernel (exports, slides)."""
        from vmlib.views.practice_static import with_static_html
        return with_static_html(super()._repr_mimebundle_(**kwargs), self.static_html)


_LOCAL_MODEL = """const handlers = {};
const model = { get: (k) => state[k], save_changes() {}, off() {},
  set(k, v) { state[k] = v; for (const f of handlers["change:" + k] || []) f(); },
  on(ev, f) { (handlers[ev] = handlers[ev] || []).push(f); } };"""


def _svg_height(svg: str) -> float:
    import re
    m = re.search(r'<svg[^>]*?\sheight="([\d.]+)(pt|px)?"', svg)
    return float(m[1]) * (4 / 3 if m[2] == "pt" else 1) if m else 0.0
