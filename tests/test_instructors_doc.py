"""docs/instructors.md works as written (issue 21, item 3).

The blocks of the guide marked `<!-- instructors-test: NAME -->` run verbatim, in order, in one
bash shell, from the root of a fresh copy of the repository's files (so `./setup.sh` makes its
own `.venv` there, and nothing of this checkout changes): install the instructor set, release
into a scratch course and exchange, two students fetch / self-check / submit, collect, autograde
(feedback and export), release and fetch the feedback, the formgrader's server for manual
grading, and the planted submissions. Then the results are checked: Alice (the model solution)
outscores Bob (the blank release), both fetched their feedback, the formgrader serves the scratch
course's ps1 with two submissions, and no class course (`build/nbgrader/` of the copy) was made.

Slow: the install alone is a few minutes with a warm pip cache.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, missing_tool
from test_deploy import clean_env, project_files

DOC = ROOT / "docs" / "instructors.md"
ORDER = ("install", "release", "students", "grade", "manual", "planted")
BLOCK = re.compile(r"<!-- instructors-test: (\w+) -->\n\n((?:    .*\n|[ \t]*\n)+)")
PORT = 8765


def doc_blocks() -> dict[str, str]:
    """NAME -> the shell text of the guide's marked block (indentation removed)."""
    found = {m.group(1): "\n".join(line[4:] for line in m.group(2).splitlines()).strip() + "\n"
             for m in BLOCK.finditer(DOC.read_text())}
    return found


def test_the_guide_marks_every_step_and_names_no_missing_command():
    blocks = doc_blocks()
    assert tuple(blocks) == ORDER, f"docs/instructors.md marks {tuple(blocks)}, want {ORDER}"
    text = DOC.read_text()
    assert "nbgrader formgrader" not in text.replace("no standalone formgrader", ""), "0.9 has no formgrader command"
    assert "--CourseDirectory.root=build/" not in text, "nbgrader wants an absolute --CourseDirectory.root"
    demo = "".join(blocks[n] for n in ORDER[1:])
    assert "build/nbgrader" not in demo and "/srv/nbgrader" not in demo, "the rehearsal must not touch a class course"


def _copy_repository(dest: Path) -> None:
    """The project's files (what git tracks) into DEST, executable bits kept."""
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)


def _formgrader_assignments(runtime: Path) -> list:
    """The formgrader's assignment list from the server the guide started (found in RUNTIME)."""
    end = time.monotonic() + 120
    last = ""
    while time.monotonic() < end:
        for info in runtime.glob("jpserver-*.json"):
            server = json.loads(info.read_text())
            if server.get("port") != PORT:
                continue
            url = f"{server['url'].rstrip('/')}/formgrader/api/assignments?token={server['token']}"
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    return json.load(r)
            except OSError as e:
                last = str(e)
        time.sleep(1)
    raise AssertionError(f"the formgrader did not answer on port {PORT} within 120 s ({last})")


@pytest.mark.slow
def test_the_guide_runs_as_written(tmp_path):
    if shutil.which("bwrap") is None:
        missing_tool("bwrap")             # autograde runs student code in the bubblewrap sandbox
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", PORT)) == 0:
            pytest.skip(f"port {PORT} (the guide's formgrader) is taken on this machine")
    repo, tmp, runtime = tmp_path / "repo", tmp_path / "tmp", tmp_path / "runtime"
    tmp.mkdir()
    _copy_repository(repo)
    blocks = doc_blocks()
    script = "set -euo pipefail\n" + "".join(f"# --- {n}\n{blocks[n]}" for n in ORDER) + 'echo "DEMO=$DEMO"\n'
    env = clean_env(TMPDIR=str(tmp), JUPYTER_RUNTIME_DIR=str(runtime), SETUP_VENV_ONLY="1")
    start = time.monotonic()
    proc = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=2400, check=False)
    print(f"the guide's commands took {time.monotonic() - start:.0f} s")
    try:
        assert proc.returncode == 0, f"the guide failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        demo = Path(re.search(r"^DEMO=(.*)$", proc.stdout, re.MULTILINE).group(1))
        assert tmp in demo.parents, demo
        course = demo / "course"
        with open(course / "grades.csv") as f:
            rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f) if r["assignment"] == "ps1_memmap"}
        assert set(rows) == {"alice", "bob"} and rows["alice"] > rows["bob"], rows
        for student in ("alice", "bob"):
            assert list((demo / student / "ps1_memmap" / "feedback").glob("*/ps1_memmap.html")), f"{student}: no feedback"
        assert (demo / "planted-course" / "feedback" / "w_cow_maywrite" / "ps1_memmap" / "ps1_memmap.html").exists()
        assignments = _formgrader_assignments(runtime)
        ps1 = next(a for a in assignments if a["name"] == "ps1_memmap")
        assert ps1["num_submissions"] == 2, ps1
        assert not (repo / "build" / "nbgrader").exists(), "the rehearsal made the class course build/nbgrader"
    finally:
        subprocess.run([str(repo / ".venv" / "bin" / "jupyter"), "lab", "stop", str(PORT)], env=env,
                       capture_output=True, timeout=60, check=False)       # the guide's "jupyter lab stop 8765"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", PORT)) != 0, "jupyter lab stop 8765 left the formgrader running"
