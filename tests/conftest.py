"""Shared test plumbing: the repo root, CI detection, and tools that tests need.

A test that needs an outside tool says so with a marker or a call:

    @pytest.mark.dot            # needs a Graphviz renderer (pygraphviz or the dot binary)
    @pytest.mark.browser        # needs Chromium and the playwright package
    def test_x(): ...

    def test_y():
        dot = require_tool("dot")   # path of the binary

When the tool is missing the test skips with the reason, unless the environment variable CI
is set (and not "0"/"false"): then it fails, so that a CI machine without the tool is noticed.
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
