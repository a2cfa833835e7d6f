"""Shared test plumbing: the repo root, CI detection, and tools that tests need.

A test that needs an outside tool says so with a marker or a call:

    @pytest.mark.dot            # needs a Graphviz renderer (pygraphviz or the dot binary)
    @pytest.mark.browser        # needs Chromium and the playwright package
    def test_x(): ...

    def test_y():
        dot = require_tool("dot")   # path of the binary

When the tool is missing the test skips with the reason, unless the environment variable CI
is set (and not "0"/"false"): then it fails, so that a CI machine without the tool is noticed.

`./setup.sh test` runs the suite in two processes (pytest-xdist, `--dist loadfile`): each test
file is one unit of work that runs whole in one process (its module fixtures, such as a
JupyterLab or a fresh venv, are made once); files that share something outside their tmp_path
run one after the other in the same process (SHARED); and the longest units start first (COST).
"""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

INSTALL_HINTS = {
    "dot": "install Graphviz: sudo apt-get install graphviz (macOS: brew install graphviz), "
    "or run ./setup.sh test as root",
    "graphviz renderer": "pip install pygraphviz (its wheel bundles Graphviz), or install Graphviz's dot "
    "(sudo apt-get install graphviz; macOS: brew install graphviz)",
    "chromium": "install Chromium: sudo apt-get install chromium, or run ./setup.sh test as root",
    "playwright": "install the test extra: ./setup.sh test (pip install -e '.[test]')",
}


def in_ci() -> bool:
    """True when the environment variable CI is set to something other than "", "0" or "false"."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_tool(what: str) -> None:
    """Skip the running test because WHAT is missing; fail instead when CI is set."""
    hint = INSTALL_HINTS.get(what, f"install {what}")
    if in_ci():
        pytest.fail(f"{what} is missing and CI is set, so this is a failure, not a skip: {hint}",
                    pytrace=False)
    pytest.skip(f"{what} not found: {hint}")


def find_chromium() -> str | None:
    """Path of a Chromium binary ($CHROMIUM first, then the usual names), or None."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_tool(name: str) -> str:
    """Return the path of binary NAME ("chromium" finds any Chromium); skip or fail if absent."""
    path = find_chromium() if name == "chromium" else shutil.which(name)
    if path is None:
        missing_tool(name)
    return path


def require_module(name: str) -> None:
    """Skip (or under CI fail) the running test when Python module NAME cannot be imported."""
    if importlib.util.find_spec(name) is None:
        missing_tool(name)


def require_renderer() -> None:
    """Skip (or under CI fail) the running test when nothing can render DOT text to SVG."""
    if importlib.util.find_spec("pygraphviz") is None and shutil.which("dot") is None:
        missing_tool("graphviz renderer")


def pytest_runtest_setup(item):
    """Apply the dot and browser markers before each test runs."""
    if item.get_closest_marker("dot"):
        require_renderer()
    if item.get_closest_marker("browser"):
        require_tool("chromium")
        require_module("playwright")


@pytest.fixture
def repo_root() -> Path:
    """The checkout's top directory."""
    return ROOT


@pytest.fixture
def chromium_path() -> str:
    """Path of the Chromium binary for Playwright's executable_path; skips or fails if absent."""
    return require_tool("chromium")


@pytest.fixture(scope="session")
def executed() -> dict:
    """Every lesson executed once per session, as tests/test_course.py describes (execute_all):
    shared by test_course (runs clean, claims, time) and test_facts (the `§` in the outputs)."""
    from test_course import execute_all
    return execute_all()


# ---------------------------------------------------------------- two processes (pytest-xdist)

# Files that must run in one process, one after the other, because they share state outside tmp_path.
SHARED = {
    # setup.sh reads and rewrites .venv/.setup-stamp and .venv/share/jupyter; test_deploy rewrites the stamp
    "test_setup.py": "venv", "test_deploy.py": "venv",
    # `pip wheel` (tools/lite.py) and `python -m build` (test_deploy) both build in the checkout
    # (vmlib.egg-info, build/lib)
    "test_lite.py": "venv",
    # the session fixture `executed`: the lessons run once for both
    "test_course.py": "lessons", "test_facts.py": "lessons",
}

# About how many seconds a unit of work (a file, or a SHARED group) takes on this machine
# (`pytest --durations`, Dec 2026): the longest start first, so that none is left to run alone at
# the end. A file not listed counts as 0 and runs after these, in the usual order. A unit of one
# or two tests is handed its successor at once (an xdist worker holds a test until it knows the
# next), so the one-test lesson browser test comes second, where the doc test joins it. "venv"
# comes first also because its setup.sh tests reinstall the editable vmlib into .venv: meanwhile the
# other process runs the browser test, whose JupyterLab finds vmlib on PYTHONPATH, not in .venv.
COST: dict[str, float] = {
    "venv": 400, "tests/test_views_lessons_browser.py": 300, "tests/test_instructors_doc.py": 200,
    "tests/test_slides.py": 190, "tests/test_grading.py": 120, "tests/test_cluster.py": 90,
    "tests/test_feedback_safety.py": 80, "lessons": 75, "tests/test_sandbox.py": 60,
    "tests/test_assignment_coverage.py": 50, "tests/test_views_browser.py": 40, "tests/test_statemachine.py": 40,
    "tests/test_ps9.py": 40, "tests/test_bench.py": 30, "tests/test_views_stepper_browser.py": 30,
}


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or the SHARED group of its file."""
    path = nodeid.split("::", 1)[0]
    return SHARED.get(path.rsplit("/", 1)[-1], path)


@pytest.hookimpl(optionalhook=True)   # optional: a run without xdist (-p no:xdist) still loads this file
def pytest_xdist_make_scheduler(config, log):
    """Under `--dist loadfile`: xdist's file scheduler, with the files of a SHARED group as one unit.
    (`--dist loadgroup` would do it with marks, but it renames test ids, which pytest 9.2 ignores.)"""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LoadWorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return LoadWorkUnitScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """In an xdist worker: the costliest units of work first (COST); the order of the tests within
    a file stays. The scheduler hands out units in this order (setup.sh: --no-loadscope-reorder)."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: -COST.get(work_unit(item.nodeid), 0.0))
