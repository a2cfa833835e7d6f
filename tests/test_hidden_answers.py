"""No notebook shows a quiz answer or a lecturer note before the student acts (issue 12).

Quizzes are `Quiz.from_bank(id)` calls whose question, right option and explanation live in
vmlib.views.quizbank; lecturer notes live in cell metadata (vmlib.notes), which JupyterLab
does not show and tools/slides.py turns into reveal.js speaker notes.
"""

import collections
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from vmlib.views.quiz import Quiz
from vmlib.views.quizbank import QUIZZES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools/ is not an installed package
from tools import slides

NOTEBOOKS = sorted(p for folder in ("course", "solutions", "exercises")
                   for p in (ROOT / folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
LESSONS = sorted((ROOT / "course").glob("*.ipynb"))
INLINE_QUIZ = re.compile(r"\bQuiz\s*\(")
BANK_CALL = re.compile(r"Quiz\.from_bank\(\s*[\"']([^\"']+)[\"']\s*\)")
NOTE_WORDS = re.compile(r"^\s*(speaker|lecturer) notes?\b", re.IGNORECASE | re.MULTILINE)


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_notebooks_and_quizzes():
    assert len(LESSONS) >= 8 and len(QUIZZES) >= 17


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_answer_or_note_in_the_notebook_source(nb):
    hidden = [e.explanation for e in QUIZZES.values()]
    hidden += [f for e in QUIZZES.values() for f in (e.feedback or ()) if len(f) > 12]
    for cell in cells(nb):
        where = f"{nb.relative_to(ROOT)} cell {cell.get('id')}"
        text = source(cell)
        if cell["cell_type"] == "code":
            assert not INLINE_QUIZ.search(text), (
                f"{where}: an inline Quiz(...) shows its answer index in the cell; put it in "
                "vmlib/views/quizbank.py and call Quiz.from_bank(id)")
        for secret in hidden:
            assert secret not in text, f"{where}: shows a quiz explanation or feedback: {secret[:60]!r}"
        slide = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
        assert slide != "notes", (f"{where}: a notes cell is visible in JupyterLab; move its text to "
                                  'the previous cell\'s metadata "vmlib": {"notes": ...}')
        if cell["cell_type"] == "markdown":
            assert not NOTE_WORDS.search(text), f"{where}: lecturer notes in a visible cell"
        notes = cell.get("metadata", {}).get("vmlib", {}).get("notes")
        assert notes is None or (isinstance(notes, str) and notes.strip()), f"{where}: empty notes"


def test_every_bank_quiz_is_used_once_and_every_call_exists():
    used = collections.Counter(qid for nb in LESSONS for cell in cells(nb)
                               for qid in BANK_CALL.findall(source(cell)))
    assert set(used) == set(QUIZZES), (f"unknown ids: {sorted(set(used) - set(QUIZZES))}; "
                                       f"unused: {sorted(set(QUIZZES) - set(used))}")
    assert all(n == 1 for n in used.values()), f"a quiz appears twice: {used.most_common(1)}"


def test_the_lecturer_notes_are_kept_for_the_slides():
    notes = [cell["metadata"]["vmlib"]["notes"] for nb in LESSONS for cell in cells(nb)
             if cell.get("metadata", {}).get("vmlib", {}).get("notes")]
    assert len(notes) >= 8, f"lecturer notes went missing: {len(notes)} left"


def test_right_answers_are_spread_over_the_positions():
    positions = collections.Counter(e.answer for e in QUIZZES.values())
    n = len(QUIZZES)
    assert max(positions.values()) <= 0.4 * n, f"answer positions are lopsided: {dict(positions)}"
    assert all(positions[i] >= n // 5 for i in range(3)), f"some position is hardly used: {dict(positions)}"
    by_lesson = collections.defaultdict(list)
    for qid, e in QUIZZES.items():
        by_lesson[qid.split("-")[0]].append(e.answer)
    same = [lesson for lesson, answers in by_lesson.items() if len(set(answers)) < len(answers)]
    assert not same, f"lessons whose quizzes all have the answer at the same place: {same}"


@pytest.mark.parametrize("qid", sorted(QUIZZES))
def test_bank_entries_make_valid_quizzes(qid):
    e = QUIZZES[qid]
    q = Quiz.from_bank(qid)
    assert q.check(e.answer).startswith("Correct.") and e.explanation in q.check(e.answer)
    for i in set(range(len(e.options))) - {e.answer}:
        assert e.explanation not in q.check(i)
    assert e.explanation not in str(q), "the text form shows no explanation"
    assert not re.search(r"\b(correct|right answer)\b", qid, re.IGNORECASE)


def test_from_bank_rejects_an_unknown_id():
    with pytest.raises(ValueError, match=r"no quiz 'zz-9'; the bank has 00-1, "):
        Quiz.from_bank("zz-9")


def test_quiz_widget_shows_nothing_before_the_student_acts():
    e = QUIZZES["04-1"]
    box = Quiz.from_bank("04-1").widget()
    shown = [c.value for c in box.children if hasattr(c, "value") and isinstance(c.value, str)]
    assert box.feedback.value == "" and box.radio.value is None
    assert not any(e.explanation in s for s in shown)


def test_slides_turn_metadata_notes_into_speaker_notes():
    nb = nbformat.v4.new_notebook()
    first = nbformat.v4.new_markdown_cell("# Title", metadata={"slideshow": {"slide_type": "slide"},
                                                               "vmlib": {"notes": "SAY-THIS"}})
    nb.cells = [first, nbformat.v4.new_markdown_cell("next", metadata={"slideshow": {"slide_type": "-"}})]
    slides.prepare(nb)
    kinds = [(c.source, c.metadata["slideshow"]["slide_type"]) for c in nb.cells]
    assert kinds == [("# Title", "slide"), ("SAY-THIS", "notes"), ("next", "-")]
