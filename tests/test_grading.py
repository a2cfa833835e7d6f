"""Grading pipeline: clean verdicts, feedback text, the release's freshness, the nbgrader round trip."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vmlib.flags
from vmlib.grading import NotVerifiedHere, check
from vmlib.grading.notebook import checking_cells, parse_checks
from vmlib.grading.runner import run_clean

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import plants

ASSIGNMENTS = sorted(plants.PLANTS)
WRONG_COW = "def is_cow_mapping(vm_flags):\n    return not vm_flags & VM_SHARED\n"


def _verdict(suite: str, cells: list[str], **params) -> dict:
    names = {"ps1.is_cow_mapping": ["is_cow_mapping"], "ps1.memmap": ["memmap_bytes", "break_even_guests"],
             "ps1.classify_mmap": ["classify_mmap"]}[suite]
    [v] = run_clean([{"suite": suite, "params": params, "cells": cells, "bind": {n: {"name": n} for n in names}}])
    return v


def test_feedback_names_case_and_first_divergence():
    v = _verdict("ps1.is_cow_mapping", [WRONG_COW])
    assert not v["passed"]
    assert v["first"].startswith("case 3 (MAP_SHARED, fd opened read-only")
    assert "your is_cow_mapping returned True; the kernel says False because VM_MAYWRITE is cleared" in v["first"]


def test_reference_comes_from_a_clean_process(monkeypatch):
    monkeypatch.setattr(vmlib.flags, "is_cow_mapping", lambda vm_flags: not vm_flags & vmlib.flags.VM_SHARED)
    assert not _verdict("ps1.is_cow_mapping", [WRONG_COW])["passed"]


def test_calling_the_reference_does_not_count():
    cells = [("import vmlib.flags\ndef is_cow_mapping(f):\n    try:\n        return vmlib.flags.is_cow_mapping(f)\n"
             "    except BaseException:\n        return (f & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE\n")]
    v = _verdict("ps1.is_cow_mapping", cells)
    assert not v["passed"] and "called vmlib.flags.is_cow_mapping" in v["first"]


def test_exit_and_endless_loop_cost_only_their_cases():
    cells = [("import os, sys\ndef memmap_bytes(*a):\n    os._exit(0)\ndef break_even_guests(s, p=4096):\n"
             "    while True:\n        pass\n")]
    v = _verdict("ps1.memmap", cells)
    assert "called os._exit(0)" in v["first"] and "did not finish in time" in v["text"]
    assert v["failed"] == v["cases"]


def test_check_refuses_to_grade_inside_autograde(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(NotVerifiedHere):
        check("ps1.is_cow_mapping", vmlib.flags.is_cow_mapping)


def test_parse_checks_reads_literals_only():
    [c] = parse_checks('"""doc"""\ncheck("ps7.choice", fb, driver="fb", expected="PFNMAP")\nx = 1\n')
    assert c == {"suite": "ps7.choice", "params": {"driver": "fb", "expected": "PFNMAP"}, "answers": [{"name": "fb"}]}


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_autograded_test_cell_is_verified_outside(name):
    nb = plants.load(ROOT / "solutions" / name / f"{name}.ipynb")
    tests = [c for c in nb["cells"] if c["cell_type"] == "code" and c["metadata"].get("nbgrader", {}).get("grade")]
    assert len(checking_cells(nb)) == len(tests) > 0
    setup = plants.src(plants.cell(nb, "setup"))
    if name == "ps1_memmap":
        from vmlib.grading.ps1 import PRELUDE
        assert setup.startswith(PRELUDE), "the notebook's setup cell must give what the clean grader gives"


def _release(out: Path, course: Path) -> None:
    cmd = [sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(course), "release", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)


def _cells(path: Path) -> list:
    nb = json.loads(path.read_text())
    return [(c["cell_type"], plants.src(c), c["metadata"].get("nbgrader"), c.get("outputs")) for c in nb["cells"]]


@pytest.mark.slow
def test_exercises_are_current(tmp_path):
    """exercises/ must be what `tools/grade.py release` makes of solutions/ (run it after editing)."""
    _release(tmp_path / "out", tmp_path / "course")
    for name in ASSIGNMENTS:
        for fresh in sorted((tmp_path / "out" / name).glob("*.ipynb")):
            committed = ROOT / "exercises" / name / fresh.name
            assert committed.exists(), f"{committed} is missing: run python tools/grade.py release"
            assert _cells(fresh) == _cells(committed), f"{committed} is stale: run python tools/grade.py release"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Autograde every planted submission of every assignment in one run of tools/grade.py."""
    tmp = tmp_path_factory.mktemp("grading")
    subs = plants.write_all(tmp / "submissions")
    course = tmp / "course"
    cmd = [sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(course), "autograde",
           str(tmp / "submissions"), "--timeout", "5"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return subs, course


def _scores(course: Path, name: str, student: str) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(name, name, student)
        return {g.cell.name: (g.auto_score, g.max_score) for g in nb.grades if g.cell.cell_type != "markdown"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_round_trip_scores(graded, name):
    subs, course = graded
    wrong = [p for p in subs[name] if p.student.startswith("w_")]
    assert len(wrong) >= 2
    for plant in subs[name]:
        scores = _scores(course, name, plant.student)
        assert plant.loses <= set(scores), plant.student
        got = {cell: auto for cell, (auto, _) in scores.items()}
        want = {cell: 0.0 if cell in plant.loses else full for cell, (_, full) in scores.items()}
        assert got == want, f"{plant.student}: {plant.why}"
        if plant in wrong:
            assert 0 < sum(got.values()) < sum(full for _, full in scores.values())


@pytest.mark.slow
def test_grades_csv_feedback_and_no_stderr(graded):
    subs, course = graded
    rows = list(csv.DictReader((course / "grades.csv").open()))
    for name, ps in subs.items():
        graded_students = {r["student_id"] for r in rows if r["assignment"] == name}
        assert {p.student for p in ps} <= graded_students
        for p in ps:
            html = (course / "feedback" / p.student / name / f"{name}.html").read_text()
            assert "Score" in html
            nb = json.loads((course / "autograded" / p.student / name / f"{name}.ipynb").read_text())
            for c in nb["cells"]:
                if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code":
                    assert not [o for o in c["outputs"] if o.get("name") == "stderr"], (p.student, c["source"])
    html = (course / "feedback" / "w_cow_maywrite" / "ps1_memmap" / "ps1_memmap.html").read_text()
    assert "case 4 (MAP_SHARED, fd opened read-write" in html and "the kernel says False" in html
    html = (course / "feedback" / "w_framebuffer" / "ps7_design" / "ps7_design.html").read_text()
    assert "you chose MIXEDMAP; the kernel needs PFNMAP" in html


def test_selfcheck_command_on_release_and_solution():
    tool = [sys.executable, str(ROOT / "tools" / "grade.py"), "selfcheck"]
    env = dict(os.environ)
    env.pop("NBGRADER_EXECUTION", None)
    bad = subprocess.run(tool + [str(ROOT / "exercises/ps1_memmap/ps1_memmap.ipynb")], check=False, capture_output=True, text=True,
                         env=env)
    good = subprocess.run(tool + [str(ROOT / "solutions/ps1_memmap/ps1_memmap.ipynb")], check=False, capture_output=True,
                          text=True, env=env)
    assert bad.returncode == 1 and "visible checks: 0 of 5 points" in bad.stdout
    assert good.returncode == 0 and "visible checks: 12 of 12 points" in good.stdout
