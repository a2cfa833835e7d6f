"""Ungraded self-check quizzes with instant feedback, for the lesson notebooks.

    from vmlib.views.quiz import Quiz
    Quiz.from_bank("04-1")           # a lesson's quiz, kept in vmlib.views.quizbank
    Quiz("After fork, what is the page's mapcount?", ["1", "2", "0"], 1,
         "Both processes map it: copy_page_range took a second mapping.")

Lessons use `from_bank`, so the notebook a student opens holds neither the right option nor
the explanation; a quiz written inline shows its answer index to anyone who reads the cell.

In JupyterLab the quiz is radio buttons, a "check" button and a feedback line. Without a
browser, `quiz.check(i)` returns the same feedback as a string, and `str(quiz)` (or a static
export of the notebook) shows the question with numbered options. Nothing is graded or stored.
"""

from __future__ import annotations

import html
import re

from vmlib.facts import link_html

CORRECT = "Correct."
WRONG = "Not quite."


def _inline(text: str) -> str:
    """HTML for a short text: escaped, with `backticks` shown as code and § references as links."""
    return link_html(re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text)))


def _need_text(name: str, value) -> str:
    """`value` if it is a non-empty string; TypeError/ValueError naming `name` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"Quiz: {name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"Quiz: {name} is empty; write the text the student should see")
    return value


def feedback_html(text: str, right: bool) -> str:
    """Feedback in the theme's text colour (AA contrast in light and dark), marked ✔ or ✘ and
    with a coloured bar: bluish green for right, vermillion for wrong (>= 3:1 on either theme)."""
    colour, mark = ("#009E73", "✔") if right else ("#D55E00", "✘")
    return (f'<div class="vmlib-feedback" style="border-left:5px solid {colour};padding:2px 8px;'
            f'color:var(--jp-content-font-color1,#111)"><b>{mark}</b> {_inline(text)}</div>')


class Quiz:
    """One multiple-choice question; `check(i)` gives feedback for option i (0-based).

    `feedback` (optional) holds one line per option, shown when that option is chosen
    (say why a tempting wrong answer is wrong); `explanation` is shown with a right answer.
    """

    def __init__(self, question: str, options: list[str], answer_index: int, explanation: str,
                 feedback: list[str] | None = None):
        self.question = _need_text("question", question)
        if isinstance(options, str) or not isinstance(options, (list, tuple)):
            raise TypeError("Quiz: options must be a list of strings, e.g. ['1', '2', '3']")
        if len(options) < 2:
            raise ValueError(f"Quiz: need at least 2 options, got {len(options)}")
        self.options = [_need_text(f"option {i}", o) for i, o in enumerate(options)]
        if len(set(self.options)) != len(self.options):
            raise ValueError("Quiz: two options have the same text; make every option distinct")
        self.answer_index = self._index(answer_index, "answer_index")
        self.explanation = _need_text("explanation", explanation)
        if feedback is not None and len(feedback) != len(self.options):
            raise ValueError(f"Quiz: feedback needs one line per option ({len(self.options)}), "
                             f"got {len(feedback)}")
        self.feedback = list(feedback) if feedback is not None else [""] * len(self.options)

    @classmethod
    def from_bank(cls, qid: str) -> Quiz:
        """The lesson quiz called `qid` in vmlib.views.quizbank; ValueError listing the ids otherwise."""
        from vmlib.views.quizbank import QUIZZES

        if qid not in QUIZZES:
            raise ValueError(f"Quiz.from_bank: no quiz {qid!r}; the bank has {', '.join(sorted(QUIZZES))}")
        e = QUIZZES[qid]
        return cls(e.question, e.options, e.answer, e.explanation, e.feedback)

    def _index(self, i, name: str = "choice") -> int:
        """`i` if it is a valid option index; a clear TypeError/ValueError otherwise."""
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"Quiz: {name} must be an option number (int), got {i!r}")
        if not 0 <= i < len(self.options):
            raise ValueError(f"Quiz: {name} {i} is out of range; options are numbered "
                             f"0..{len(self.options) - 1}")
        return i

    def is_correct(self, i: int) -> bool:
        """True iff option i is the right answer."""
        return self._index(i) == self.answer_index

    def check(self, i: int) -> str:
        """The feedback for choosing option i, as plain text."""
        extra = self.feedback[self._index(i)]
        if i == self.answer_index:
            return " ".join(filter(None, [CORRECT, extra, self.explanation]))
        return " ".join(filter(None, [WRONG, extra or "Look again at the cells above.", "Try another option."]))

    def reveal(self) -> str:
        """The right option and the explanation, as plain text."""
        return f"Answer: {self.options[self.answer_index]}. {self.explanation}"

    def __str__(self) -> str:
        lines = [self.question] + [f"  {i}. {o}" for i, o in enumerate(self.options)]
        return "\n".join(lines + ["(check an answer with quiz.check(n))"])

    def __repr__(self) -> str:
        return str(self)

    def static_html(self) -> str:
        """The quiz without a kernel: question, options, the answer folded in <details>."""
        items = "".join(f"<li>{_inline(o)}</li>" for o in self.options)
        return (f'<div class="vmlib-quiz"><p><b>Self-check:</b> {_inline(self.question)}</p>'
                f'<ol start="0">{items}</ol><details><summary>answer</summary>'
                f"<p>{_inline(self.reveal())}</p></details></div>")

    def widget(self):
        """An ipywidgets box: question, radio buttons, check/answer buttons, feedback line."""
        import ipywidgets as w

        radio = w.RadioButtons(options=[(o, i) for i, o in enumerate(self.options)], value=None,
                               layout=w.Layout(width="auto"))
        check = w.Button(description="check", button_style="primary")
        show = w.Button(description="show answer")
        out = w.HTML("")

        def on_check(_):
            if radio.value is None:
                out.value = "<i>Pick an option first.</i>"
                return
            right = self.is_correct(radio.value)
            out.value = feedback_html(self.check(radio.value), right)

        def on_change(_):
            out.value = ""

        check.on_click(on_check)
        show.on_click(lambda _: setattr(out, "value", _inline(self.reveal())))
        radio.observe(on_change, names="value")
        box = w.VBox([w.HTML(f"<b>Self-check:</b> {_inline(self.question)}"), radio,
                      w.HBox([check, show]), out])
        box.radio, box.check_button, box.show_button, box.feedback = radio, check, show, out
        return box

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The widget for JupyterLab, with static HTML and text for exports without a kernel."""
        bundle = {"text/plain": str(self), "text/html": self.static_html()}
        try:
            widget_bundle = self.widget()._repr_mimebundle_()
        except ImportError:
            return bundle
        data = widget_bundle[0] if isinstance(widget_bundle, tuple) else widget_bundle
        bundle.update({k: v for k, v in data.items() if k != "text/plain"})
        return bundle
