"""Deploying the course: the student set, the package, the class environment (issue 13).

1. `./setup.sh lab` installs only the `course` extra and hides nbgrader's instructor panels
   (a JupyterLab started the way `lab` starts it has no formgrader and no nbgrader plug-ins).
2. The student environment, built in a fresh venv outside the repository from the files a class
   uses (binder/requirements.txt, pinned by constraints.txt), stays under 350 MB.
3. The wheel carries the recorded live-kernel runs; installed outside the repository it runs a
   lesson and `python -m vmlib.real --recorded`; the sdist holds everything its tests need.
4. The Binder files build an environment that runs every lesson.

The fresh venv is built once per module (about 30 s with a warm pip cache, more without) and
shared by the tests that need it; each prints what it measured.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

SETUP = ROOT / "setup.sh"
STAMP = ROOT / ".venv" / ".setup-stamp"
STUDENT_CONFIG = ROOT / "tools" / "student-jupyter"
STUDENT_LIMIT_MB = 350
# environment variables that would let a child find the repository's venv or sources
LEAKY = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH",
         "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "PYTEST_ADDOPTS", "SETUP_DRY_RUN", "SETUP_EXTRAS")


def clean_env(**extra: str) -> dict:
    """os.environ without the variables that point into this checkout, plus EXTRA."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKY}
    env.update(extra)
    return env


# ---------------------------------------------------------------- 1. the student set in setup.sh

def run_setup(*args: str, **env: str) -> subprocess.CompletedProcess:
    """setup.sh ARGS as a dry run without apt-get; stdout and stderr captured."""
    full = clean_env(SETUP_VENV_ONLY="1", SETUP_DRY_RUN="1", **env)
    return subprocess.run(["bash", str(SETUP), *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.fixture
def stamp():
    """The venv's set-up stamp as (hash, python); the original stamp is put back afterwards."""
    if not STAMP.exists():
        pytest.skip("no .venv/.setup-stamp: run ./setup.sh env first")
    original = STAMP.read_text()
    digest, _extras, python = original.split()
    yield digest, python
    STAMP.write_text(original)


def test_lab_asks_for_the_course_extra_only(stamp):
    digest, python = stamp
    STAMP.write_text(f"{'0' * len(digest)} course,grading,test {python}\n")   # pyproject "changed"
    proc = run_setup("lab", "--no-browser")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pip install -e '.[course]'" in proc.stdout, proc.stdout
    assert STAMP.read_text().split()[1] == "course"
    proc = run_setup("lab", "--no-browser")
    assert "venv up to date (pyproject.toml unchanged; extras course)" in proc.stdout, proc.stdout


def test_test_verb_installs_what_lab_left_out(stamp):
    digest, python = stamp
    STAMP.write_text(f"{digest} course {python}\n")
    proc = run_setup("env")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pip install -e '.[course,grading,test]'" in proc.stdout, proc.stdout
    assert STAMP.read_text().split()[1] == "course,grading,test"


def test_lab_hides_the_instructor_panels_unless_grading_is_asked_for(stamp):
    proc = run_setup("lab", "--no-browser")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"instructor panels hidden (JUPYTER_CONFIG_PATH={STUDENT_CONFIG})" in proc.stdout, proc.stdout
    proc = run_setup("lab", "--no-browser", SETUP_EXTRAS="course,grading")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "panels hidden" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("extras", ["grading", "course,tset", "cour*", "course;rm -rf /"])
def test_lab_refuses_extras_it_cannot_use(stamp, extras):
    before = STAMP.read_text()
    proc = run_setup("lab", SETUP_EXTRAS=extras)
    assert proc.returncode != 0
    assert f"SETUP_EXTRAS='{extras}'" in proc.stderr and "includes course" in proc.stderr, proc.stderr
    assert "installing" not in proc.stdout and STAMP.read_text() == before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    """HTTP status and body of URL, following no redirect."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:          # not listening yet
        return 0, ""


def lab_server(python: str, cwd: Path, config_path: str | None):
    """Start JupyterLab from PYTHON's environment; (process, base url, token)."""
    port, token = free_port(), secrets.token_hex(16)
    env = clean_env(**({"JUPYTER_CONFIG_PATH": config_path} if config_path else {}))
    cmd = [python, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={cwd}", "--allow-root"]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}", token


def what_lab_shows(servers) -> list[dict]:
    """For each started server: formgrader's HTTP status and the lab page's disabled extensions."""
    out = []
    for proc, base, token in servers:
        end = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"jupyter lab exited with {proc.returncode}"
            status, page = get(f"{base}/lab?token={token}")
            if status == 200:
                break
            assert time.monotonic() < end, f"jupyter lab did not answer on {base} within 60 s"
            time.sleep(0.5)
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page, re.DOTALL).group(1))
        out.append({"formgrader": get(f"{base}/formgrader?token={token}")[0],
                    "disabled": config.get("disabledExtensions", [])})
    return out


def test_student_config_hides_nbgrader_in_a_venv_that_has_it(tmp_path):
    """The repository's own venv has nbgrader: with the student config its panels are gone."""
    pytest.importorskip("nbgrader", reason="the developer venv (./setup.sh test) has nbgrader")
    servers = [lab_server(sys.executable, tmp_path, str(STUDENT_CONFIG)), lab_server(sys.executable, tmp_path, None)]
    try:
        student, instructor = what_lab_shows(servers)
    finally:
        for proc, _base, _token in servers:
            proc.terminate()
            proc.wait(timeout=30)
    assert instructor["formgrader"] in (200, 302) and "@jupyter/nbgrader" not in instructor["disabled"], \
        f"control: without the student config nbgrader's panels should be there: {instructor}"
    assert student["formgrader"] == 404, f"formgrader still served to students: {student}"
    assert "@jupyter/nbgrader" in student["disabled"], f"nbgrader's lab plug-ins still on: {student}"
