"""The practice widget: a seeded problem from vmlib.practice, answer boxes, "check", "another one".

    from vmlib.views import Practice
    Practice(topic="cow")            # or Practice("gup", seed=7) to get a given problem

The widget holds no simulation logic: the problem, its answers and the scoring come from
vmlib.practice. Nothing of an answer is on the page until the student presses "check", and
then only for the questions they answered: right or wrong, the right answer and the
kernel-facts rows that decide it.
"""

from __future__ import annotations

import html
import random

import ipywidgets as W

from vmlib.facts import link_html
from vmlib.practice import MAX_SEED, RAM_PAGES, check_seed, check_topic, describe, generate
from vmlib.views.quiz import feedback_html

NO_CHOICE = "(choose)"


def _esc(text) -> str:
    return html.escape(str(text), quote=False)


class Practice(W.VBox):
    """One problem at a time; `check()` scores what was entered, `another()` draws a new seed."""

    def __init__(self, topic: str = "cow", seed: int | None = None):
        check_topic(topic)
        if seed is None:
            seed = random.SystemRandom().randrange(MAX_SEED + 1)
        check_seed(seed)
        self.topic = topic
        self._seeds = random.Random(seed)       # "another one" walks a seeded sequence
        self.problem_view = W.HTML()
        self.answers_box = W.VBox()
        self.check_button = W.Button(description="check", button_style="primary",
                                     tooltip="score your answers and show the rows that decide them")
        self.another_button = W.Button(description="another one", tooltip="a new problem (new seed)")
        self.result = W.HTML()
        self.check_button.on_click(lambda _: self.check())
        self.another_button.on_click(lambda _: self.another())
        super().__init__([self.problem_view, self.answers_box,
                          W.HBox([self.check_button, self.another_button]), self.result])
        self.show(seed)

    def show(self, seed: int) -> None:
        """Show the problem of this topic for `seed`, with empty answer boxes."""
        self.problem = generate(self.topic, check_seed(seed))
        self.seed = seed
        p = self.problem
        steps = "".join(f"<li><code>{_esc(describe(op))}</code></li>" for op in p.ops)
        setup = "".join(f"<div>{_esc(line)}</div>" for line in p.setup_lines())
        self.problem_view.value = (
            f'<div class="vmlib-practice"><b>Practice ({_esc(p.topic)}), seed {seed}</b>: kernel '
            f"<code>{_esc(p.profile)}</code>, {RAM_PAGES} pages of RAM.{setup}<ol>{steps}</ol></div>")
        self.inputs = {q.qid: self._input(q) for q in p.questions}
        self.answers_box.children = [
            W.VBox([W.HTML(f"<b>{q.qid}.</b> {_esc(q.text)}"), self.inputs[q.qid]])
            for q in p.questions]
        self.result.value = ""

    @staticmethod
    def _input(q):
        if q.choices:
            return W.Dropdown(options=[NO_CHOICE, *q.choices], value=NO_CHOICE,
                              layout=W.Layout(width="max-content"))
        return W.Text(placeholder=q.hint, layout=W.Layout(width="32em"))

    def entered(self) -> dict:
        """{qid: answer} for every question the student has answered."""
        out = {}
        for qid, box in self.inputs.items():
            value = box.value.strip() if isinstance(box.value, str) else box.value
            if value and value != NO_CHOICE:
                out[qid] = value
        return out

    def check(self) -> dict:
        """Score the entered answers; show right/wrong, the right answer and its rows for each."""
        given = self.entered()
        if not given:
            self.result.value = "<i>Answer at least one question first.</i>"
            return {}
        marks = self.problem.check(given)
        solution = {a.question.qid: a for a in self.problem.solve().answers}
        parts = [self._verdict(qid, given[qid], ok, solution[qid]) for qid, ok in marks.items()]
        left = len(self.inputs) - len(given)
        if left:
            parts.append(f"<p><i>{left} question(s) not answered: their answers stay hidden.</i></p>")
        self.result.value = "".join(parts)
        return marks

    @staticmethod
    def _verdict(qid: str, given: str, ok: bool, answer) -> str:
        head = f"{qid}: right: {answer.value}" if ok else f"{qid}: not quite (you said {given}): {answer.value}"
        rows = "".join(f"<li><code>{link_html(f'[{_esc(row)}]')}</code> {_esc(why)}</li>" for row, why in answer.rows)
        return feedback_html(head, ok) + (f"<ul>{rows}</ul>" if rows else "")

    def _repr_mimebundle_(self, **kwargs):
        """The widget; for a static export (slides) also the same practice as self-contained HTML."""
        from vmlib.views.practice_static import practice_html, with_static_html
        return with_static_html(super()._repr_mimebundle_(**kwargs), lambda: practice_html(self), export_only=True)

    def another(self) -> int:
        """Draw a new seed and show its problem; returns the seed."""
        seed = self.seed
        while seed == self.seed:
            seed = self._seeds.randrange(MAX_SEED + 1)
        self.show(seed)
        return seed
