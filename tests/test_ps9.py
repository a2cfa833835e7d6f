"""ps9 debug: each mutation breaks one kernel rule, visibly, and the grader draws it from nbgrader's student id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmlib.grading import ps9
from vmlib.grading.notebook import verify
from vmlib.grading.suites import get_suite
from vmlib.kernel import Kernel

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "ps9_debug" / "ps9_debug.ipynb"

# mutation -> (the kernel function and version whose rule it breaks, the rows the trace may be
# answered with, what the scenario ends in). Each rule was read in that version's source.
FOLLOWS = {
    "m1": ("mm/memory.c:vm_normal_page @ v2.6.26: VM_MIXEDMAP and pfn_valid → the page",
           ["§1a row 2"], "k.check() fails"),
    "m2": ("mm/memory.c:vm_normal_page @ v2.6.25: VM_PFNMAP, not linear, not a COW mapping → NULL",
           ["§1a row 4", "§1e row 2"], "k.check() fails"),
    "m3": ("mm/memory.c:vm_normal_page @ v2.6.25: VM_PFNMAP and the linear rule → NULL",
           ["§1a row 3", "§1e row 1"], "k.check() fails"),
    "m4": ("mm/memory.c:vm_normal_page @ v2.6.27 (x86 has __HAVE_ARCH_PTE_SPECIAL): pte_special → NULL",
           ["§1b row 2"], "k.check() fails"),
    "m5": ("mm/memory.c:vm_insert_mixed @ v2.6.26: no pte special and pfn_valid → insert_page",
           ["§5a row 3", "§5a vm_insert_mixed"], "k.check() fails"),
    "m6": ("mm/memory.c:do_wp_page @ v2.6.26: an anon page is reused iff can_share_swap_page (mapcount 1)",
           ["§6b row 3"], "WRONG READ"),
}


def test_every_mutation_is_described_here():
    assert set(FOLLOWS) == set(ps9.BY_ID) and 5 <= len(ps9.MUTATIONS) <= 8


@pytest.mark.parametrize("mid", sorted(FOLLOWS))
def test_the_scenario_breaks_with_the_mutation_and_runs_without(mid):
    """The broken kernel's scenario ends in the failure FOLLOWS names; the kernel's own rule runs it clean."""
    m = ps9.BY_ID[mid]
    task = ps9.Task(m, "anyone")
    k = task.kernel()
    steps = task.play(k, quiet=True)
    last = steps[-1][1]
    assert FOLLOWS[mid][2] in last, steps
    assert all(outcome == "ok" or outcome.startswith("read ") for _, outcome in steps[:-1])
    good = Kernel(m.version, m.arch, ram_pages=64)
    clean = task.play(good, quiet=True)
    assert len(clean) == len(m.ops) + 1 and all(o == "ok" or o.startswith("read ") for _, o in clean), clean


@pytest.mark.parametrize("mid", sorted(FOLLOWS))
def test_the_trace_cites_the_broken_row_at_the_wrong_decision(mid):
    """Stepping the trace finds the wrong decision, and it cites the row the hidden key accepts."""
    m = ps9.BY_ID[mid]
    task = ps9.Task(m, "anyone")
    k = task.kernel()
    task.play(k, quiet=True)
    good = Kernel(m.version, m.arch, ram_pages=64)
    task.play(good, quiet=True)
    wrong = [str(e) for e in k.trace.events if e.kind == "decision"]
    right = [str(e) for e in good.trace.events if e.kind == "decision"]
    first = next(w for w, r in zip(wrong, right) if w != r)
    row = first[first.rindex("[") + 1:-1]
    assert ps9.normalize_row(row) in {ps9.normalize_row(r) for r in FOLLOWS[mid][1]}, first


def test_the_solution_key_matches_the_hidden_test_cell():
    nb = json.loads(SOLUTION.read_text())
    hidden = next("".join(c["source"]) for c in nb["cells"]
                  if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_row_hidden")
    for mid, (_, rows, _) in FOLLOWS.items():
        assert (repr(rows) if len(rows) > 1 else repr(rows[0])).replace("'", '"') in hidden, mid


def test_students_get_stable_and_different_mutations():
    assert ps9.mutation_for("alice") == ps9.mutation_for("alice")
    assert ps9.mutation_for("alice").id != ps9.mutation_for("bob").id
    drawn = {ps9.mutation_for(f"student{i}").id for i in range(60)}
    assert drawn == set(ps9.BY_ID)
    with pytest.raises(ValueError, match="non-empty string"):
        ps9.mutation_for("")


def test_student_id_is_what_nbgrader_submits_under(monkeypatch):
    from nbgrader.utils import get_username
    assert ps9.student_id() == get_username()
    monkeypatch.setattr("pwd.getpwuid", lambda uid: ("jovyan",))
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert ps9.student_id() == get_username() == "alice"


@pytest.mark.parametrize("text,row", [("§1a row 4", "§1a row 4"), ("1a row 4", "§1a row 4"),
                                      ("§1A, Row 4", "§1a row 4"), ("§1a r4", "§1a row 4"),
                                      ("§6b v2.6.26 row 3", "§6b row 3"), ("section 2 row 3", "§2 row 3"),
                                      ("§5a vm_insert_mixed", "§5a vm_insert_mixed"), ("§1a", None),
                                      ("row 4", None), (4, None)])
def test_row_spellings(text, row):
    assert ps9.normalize_row(text) == row


def test_a_key_without_every_mutation_is_refused():
    with pytest.raises(ValueError, match="a row for each of"):
        get_suite("ps9.row").make_cases({"student": "alice", "rows": {"m1": "§1a row 2"}})


def _notebook(row_cell: str, check_line: str) -> dict:
    nb = json.loads(SOLUTION.read_text())
    keep = []
    for c in nb["cells"]:
        g = c["metadata"].get("nbgrader", {}).get("grade_id")
        if g == "row":
            c["source"] = row_cell
        elif g == "test_row_visible":
            c["source"] = check_line
        elif g in ("fix", "test_row_hidden", "test_fix_visible", "test_fix_hidden"):
            continue
        keep.append(c)
    nb["cells"] = keep
    return nb


def test_the_grader_ignores_an_id_written_in_the_notebook():
    """The test cell asks for bob's mutation and the answer is bob's row: graded as alice, it fails."""
    alice, bob = ps9.mutation_for("alice"), ps9.mutation_for("bob")
    key = {mid: rows for mid, (_, rows, _) in FOLLOWS.items()}
    nb = _notebook(f"wrong_row = {key[bob.id][0]!r}",
                   f'check("ps9.row", wrong_row, student="bob", rows={key!r})')
    assert not verify(nb, trusted=True, student="alice")["test_row_visible"]["passed"]
    assert verify(nb, trusted=True, student="bob")["test_row_visible"]["passed"]
    nb = _notebook(f"wrong_row = {key[alice.id][0]!r}", f'check("ps9.row", wrong_row, rows={key!r})')
    assert verify(nb, trusted=True, student="alice")["test_row_visible"]["passed"]


def test_fix_feedback_does_not_name_the_row():
    nb = json.loads(SOLUTION.read_text())
    for c in nb["cells"]:
        if c["metadata"].get("nbgrader", {}).get("grade_id") == "fix":
            c["source"] = ('def fixed(k, *args):\n    return {"m5": "pfn", "m6": "reuse"}.get(MUTATION, None)\n')
    for student in ("bob", "carol", "dave", "a_good"):      # m4, m1, m5, m6
        v = verify(nb, trusted=True, student=student)["test_fix_visible"]
        assert not v["passed"] and "kernel-facts" not in v["text"] and "§" not in v["text"], v["text"]


def test_check_in_the_notebook_ignores_a_student_id_too(monkeypatch):
    from vmlib import grading
    sent = []
    monkeypatch.setattr(grading, "run_clean", lambda checks, **kw: sent.extend(checks) or [
        {"passed": True, "first": None, "text": "ok"}])
    grading.check("ps9.row", "§9b row 8", student="bob")
    assert "student" not in sent[0]["params"]


@pytest.mark.parametrize("mid", sorted(FOLLOWS))
def test_the_scenario_as_code_is_the_scenario_played(mid):
    """task.code() performs the operations task.play() does (compared on a kernel that is not broken)."""
    m = ps9.BY_ID[mid]
    task = ps9.Task(m, "anyone")
    played, coded = Kernel(m.version, m.arch, ram_pages=64), Kernel(m.version, m.arch, ram_pages=64)
    task.play(played, quiet=True)
    exec(task.code(), {"k": coded})  # noqa: S102 - our own generated code
    ops = [[str(k.trace.events[i]) for i in k.trace.ops()] for k in (played, coded)]
    assert ops[0] == ops[1] and len(ops[0]) == len(m.ops) + 2
    assert played.snapshot().pages == coded.snapshot().pages
