"""Grading on a Dask cluster (tools/nbgrader/cluster.py): the same grades as the local pool, one
gradebook writer, and a worker lost mid-run loses nothing and counts nothing twice."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, in_ci

sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
sys.path.insert(0, str(ROOT / "tools" / "nbgrader"))
import plants

from vmlib.grading import sandbox

NAME = "ps1_memmap"


def need_cluster() -> None:
    why = sandbox.problem()
    try:
        import distributed  # noqa: F401
    except ImportError:
        why = "dask distributed is not installed: pip install -e '.[grading]'"
    if why is None:
        return
    if in_ci():
        pytest.fail(f"cannot grade on a cluster here and CI is set: {why}", pytrace=False)
    pytest.skip(why)


def _grade_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location("grade_tool", ROOT / "tools" / "grade.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A folder of ps1 submissions (every planted kind but the endless loop) and a course directory in
    which generate_assignment has run and nothing is graded yet (copied for each run)."""
    need_cluster()
    tmp = tmp_path_factory.mktemp("cluster")
    subs, students = tmp / "submissions", []
    for plant in plants.PLANTS[NAME]():
        if plant.student == "t_loop":
            continue
        path = subs / plant.student / NAME / f"{NAME}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(plant.build()))
        students.append(plant)
    tool = _grade_tool()
    tool.prepare(tmp / "pristine", [NAME])
    return subs, tmp / "pristine", students


def _course(prepared, tmp_path: Path) -> Path:
    course = tmp_path / "course"
    shutil.copytree(prepared[1], course)
    return course


def _rows(path: Path) -> list[dict]:
    return sorted(csv.DictReader(path.open()), key=lambda r: (r["assignment"], r["student_id"]))


def _grade(course: Path, subs: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(course), "autograde", str(subs),
           "--timeout", "5", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)


def test_a_two_worker_local_cluster_gives_the_local_runs_grades(prepared, tmp_path):
    subs, _, students = prepared
    local, dask = _course(prepared, tmp_path / "local"), _course(prepared, tmp_path / "dask")
    for course, extra in ((local, ()), (dask, ("--scheduler", "local", "--workers", "2"))):
        proc = _grade(course, subs, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert _rows(dask / "grades.csv") == _rows(local / "grades.csv")
    assert {r["student_id"] for r in _rows(dask / "grades.csv")} == {p.student for p in students}
    for p in students:       # the instructor's process wrote what nbgrader's autograde writes
        for folder in ("autograded", "feedback"):
            names = sorted(x.name for x in (dask / folder / p.student / NAME).iterdir())
            assert names == sorted(x.name for x in (local / folder / p.student / NAME).iterdir()), (folder, p)
    html = (dask / "feedback" / "w_cow_maywrite" / NAME / f"{NAME}.html").read_text()
    assert "the kernel says False" in html


def test_a_worker_killed_mid_run_loses_nothing_and_counts_nothing_twice(prepared, tmp_path):
    """SIGKILL the worker process that is grading a task: Dask runs its tasks again elsewhere, every
    student is recorded once with the scores the plants deserve, and no failure is reported."""
    import cluster
    from distributed import Client, LocalCluster
    from nbgrader.api import Gradebook
    subs, _, students = prepared
    course = _course(prepared, tmp_path)
    tool = _grade_tool()
    found = tool.find_submissions(subs, [NAME])
    tool.collect_into(course, subs, found)
    recorded: list[str] = []
    real_record = cluster.record

    def counting_record(gb, course, name, student, result):
        recorded.append(student)
        real_record(gb, course, name, student, result)

    cluster.record = counting_record
    out: dict = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as lc, Client(lc) as client:
        pids = client.run(os.getpid)
        grading = threading.Thread(target=lambda: out.setdefault(
            "failures", cluster.run(course, found, "", 2, 1, 5.0, False, None, {}, client=client)))
        grading.start()
        victim, deadline = None, time.monotonic() + 300
        while victim is None and time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                time.sleep(1.0)                       # well inside its first task (generate_assignment)
                victim = pids[busy[0]]
            time.sleep(0.1)
        assert victim is not None, "no worker ever took a task"
        os.kill(victim, signal.SIGKILL)
        grading.join(600)
        cluster.record = real_record
        assert not grading.is_alive()
        assert victim not in client.run(os.getpid).values()     # it really died (the nanny made a new one)
    assert out["failures"] == [], out["failures"]
    assert sorted(recorded) == sorted(p.student for p in students)     # each exactly once
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert sorted(s.student.id for s in gb.find_assignment(NAME).submissions) == sorted(recorded)
        for p in students:
            nb = gb.find_submission_notebook(NAME, NAME, p.student)
            got = {g.cell.name: g.auto_score for g in nb.grades if g.cell.cell_type != "markdown"}
            want = {g.cell.name: 0.0 if g.cell.name in p.loses else g.max_score
                    for g in nb.grades if g.cell.cell_type != "markdown"}
            assert got == want, p.student


def test_tasks_ship_regular_files_only_and_workers_write_nothing_outside(tmp_path):
    """What travels to a worker is data: regular files (a link is left out, never followed), and what
    comes back is written only under the folder it is meant for."""
    import cluster
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.ipynb").write_text("{}")
    (tmp_path / "private").write_text("secret")
    (sub / "link.ipynb").symlink_to(tmp_path / "private")
    assert cluster.pack(sub) == {"a.ipynb": b"{}"}
    for bad in ("../escape", "/etc/passwd", "x/../../escape"):
        with pytest.raises(ValueError, match="outside"):
            cluster.unpack({bad: b"x"}, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_a_worker_with_other_grading_code_refuses_the_task():
    import cluster
    task = {"code": "0" * 16, "assignment": NAME, "students": {}, "source": {}, "source_key": ""}
    with pytest.raises(RuntimeError, match="other grading code than the instructor's"):
        cluster.grade_task(task, None, False, None)


def test_grades_csv_rows_are_the_rows_nbgrader_writes(tmp_path, monkeypatch):
    """StatusCsvExport reads the gradebook with a query per assignment, not nbgrader's few per row; its
    rows must be the ones nbgrader's CsvExportPlugin writes (every assignment x student, its formats)."""
    import csv
    import datetime

    from nbgrader.api import Gradebook
    from nbgrader.plugins.export import CsvExportPlugin
    from vmlib_nbgrader import StatusCsvExport

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")   # alembic
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        gb.add_assignment("ps1_memmap", duedate=datetime.datetime(2026, 12, 1, 17, 0))
        gb.add_assignment("ps2_pfnmap")
        for s, (first, last) in {"s1": ("Ada", "L"), "s2": ("Linus", None), "s3": (None, None)}.items():
            gb.add_student(s, first_name=first, last_name=last, email=f"{s}@example.org" if first else None)
        gb.add_submission("ps1_memmap", "s1", timestamp=datetime.datetime(2026, 11, 30, 9, 30))
        gb.add_submission("ps2_pfnmap", "s2")
        CsvExportPlugin(to=str(tmp_path / "nbgrader.csv")).export(gb)
        rows, submitted = StatusCsvExport().nbgrader_rows(gb)
    with open(tmp_path / "nbgrader.csv", newline="") as f:
        assert rows == list(csv.DictReader(f))
    assert len(rows) == 6 and submitted == {("ps1_memmap", "s1"), ("ps2_pfnmap", "s2")}
