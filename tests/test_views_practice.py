"""The Practice widget driven from Python: nothing of an answer shows before "check"."""

import pytest

from vmlib.practice import TOPICS, generate
from vmlib.views import Practice
from vmlib.views.practice import NO_CHOICE


def page_text(w) -> str:
    """Every HTML and label the widget shows, concatenated."""
    out, todo = [], [w]
    while todo:
        x = todo.pop()
        for attr in ("value", "description", "placeholder"):
            v = getattr(x, attr, None)
            if isinstance(v, str) and v != NO_CHOICE:
                out.append(v)
        todo.extend(getattr(x, "children", ()))
    return "\n".join(out)


def answers(w) -> dict:
    return {a.question.qid: a for a in w.problem.solve().answers}


@pytest.mark.parametrize("topic", TOPICS)
def test_shows_the_problem_and_nothing_of_the_answer(topic):
    w = Practice(topic, seed=3)
    assert w.problem == generate(topic, 3)
    text = page_text(w)
    assert "seed 3" in text and w.problem.profile in text
    assert w.result.value == "" and "§" not in text and "right" not in text
    assert set(w.inputs) == {q.qid for q in w.problem.questions}
    for q in w.problem.questions:
        box = w.inputs[q.qid]
        assert box.value in (NO_CHOICE, ""), "every answer box starts empty"
        if q.choices:
            assert list(box.options) == [NO_CHOICE, *q.choices]


def test_check_needs_an_answer_first():
    w = Practice("cow", seed=5)
    assert w.check() == {}
    assert "Answer at least one question" in w.result.value
    w.check_button.click()
    assert "Answer at least one question" in w.result.value


def test_check_reveals_only_what_was_answered():
    w = Practice("pfnmap", seed=3)
    right = answers(w)
    first, *others = w.problem.questions
    w.inputs[first.qid].value = right[first.qid].value
    w.check_button.click()
    shown = w.result.value
    assert f"{first.qid}: right" in shown
    for row, _ in right[first.qid].rows:
        assert row in shown
    for q in others:
        assert f"{q.qid}:" not in shown
    assert f"{len(others)} question(s) not answered" in shown


def test_a_wrong_answer_says_so_and_shows_the_right_one():
    w = Practice("gup", seed=8)
    right = answers(w)
    q = next(q for q in w.problem.questions if q.choices)
    wrong = next(c for c in q.choices if c != right[q.qid].value)
    w.inputs[q.qid].value = wrong
    marks = w.check()
    assert marks == {q.qid: False}
    assert f"{q.qid}: not quite" in w.result.value and right[q.qid].value in w.result.value


def test_every_answer_right_scores_all_right():
    w = Practice("mixedmap", seed=21)
    for qid, a in answers(w).items():
        w.inputs[qid].value = a.value
    assert all(w.check().values())
    assert "not quite" not in w.result.value and "not answered" not in w.result.value


def test_another_one_draws_a_new_seed_and_clears_everything():
    w = Practice("special", seed=1)
    q = w.problem.questions[0]
    w.inputs[q.qid].value = q.choices[0] if q.choices else "x"
    w.check()
    old = w.problem
    w.another_button.click()
    assert w.seed != 1 and w.problem == generate("special", w.seed) and w.problem != old
    assert w.result.value == "" and all(v in (NO_CHOICE, "") for v in (b.value for b in w.inputs.values()))
    assert Practice("special", seed=1).another() == w.seed, "the sequence of seeds is seeded too"


@pytest.mark.parametrize("kw, exc, words", [
    ({"topic": "tlb"}, ValueError, "unknown practice topic"),
    ({"seed": -1}, ValueError, "seed must be in"),
    ({"seed": "7"}, TypeError, "seed must be an int"),
])
def test_bad_arguments(kw, exc, words):
    with pytest.raises(exc, match=words):
        Practice(**kw)
