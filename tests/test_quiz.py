"""Tests for vmlib.views.quiz: plain-text feedback, argument checks, the widget's buttons."""

import pytest

from vmlib.views.quiz import Quiz


def make(**kw):
    args = {"question": "After fork, what is the page's `mapcount`?",
                "options": ["0", "1", "2"], "answer_index": 2,
                "explanation": "Both processes map the page."}
    args.update(kw)
    return Quiz(**args)


def test_check_right_and_wrong():
    q = make()
    assert q.check(2).startswith("Correct.")
    assert "Both processes map the page." in q.check(2)
    for wrong in (0, 1):
        text = q.check(wrong)
        assert text.startswith("Not quite.")
        assert "Both processes" not in text      # a wrong answer does not give the answer away


def test_per_option_feedback():
    q = make(feedback=["0 would mean nobody maps it.", "The child maps it too.", "Yes."])
    assert "The child maps it too." in q.check(1)
    assert "Yes." in q.check(2)


def test_reveal_names_the_right_option():
    assert make().reveal().startswith("Answer: 2.")


@pytest.mark.parametrize("bad, exc, words", [
    (3, ValueError, "out of range"),
    (-1, ValueError, "out of range"),
    ("2", TypeError, "option number"),
    (True, TypeError, "option number"),
])
def test_check_rejects_bad_choice(bad, exc, words):
    with pytest.raises(exc, match=words):
        make().check(bad)


@pytest.mark.parametrize("kw, exc, words", [
    ({"options": ["only"]}, ValueError, "at least 2"),
    ({"options": "abc"}, TypeError, "list of strings"),
    ({"options": ["a", "a"]}, ValueError, "same text"),
    ({"options": ["a", ""]}, ValueError, "option 1 is empty"),
    ({"answer_index": 5}, ValueError, "answer_index 5 is out of range"),
    ({"question": ""}, ValueError, "question is empty"),
    ({"explanation": None}, TypeError, "explanation must be a string"),
    ({"feedback": ["x"]}, ValueError, "one line per option"),
])
def test_constructor_rejects_bad_arguments(kw, exc, words):
    with pytest.raises(exc, match=words):
        make(**kw)


def test_text_and_static_html():
    q = make()
    assert "  2. 2" in str(q)
    page = q.static_html()
    assert "<code>mapcount</code>" in page
    assert "<details>" in page and "Both processes" in page


def test_mimebundle_has_widget_and_fallbacks():
    bundle = make()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("After fork")
    assert "vmlib-quiz" in bundle["text/html"]


def test_widget_buttons_give_instant_feedback():
    box = make().widget()
    box.check_button.click()
    assert "Pick an option" in box.feedback.value
    box.radio.value = 0
    box.check_button.click()
    assert "Not quite." in box.feedback.value and "✘" in box.feedback.value
    assert "var(--jp-content-font-color1" in box.feedback.value, "text in the theme's ink (AA on light and dark)"
    box.radio.value = 2
    assert box.feedback.value == ""                 # changing the choice clears old feedback
    box.check_button.click()
    assert "Correct." in box.feedback.value and "✔" in box.feedback.value
    box.show_button.click()
    assert box.feedback.value.startswith("Answer: 2.")
