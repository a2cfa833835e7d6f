"""The set-up script, the CI entry and the README's two commands agree and work."""

import json
import os
import re
import subprocess

import pytest
from conftest import ROOT, in_ci, require_tool

SETUP = ROOT / "setup.sh"


def readme_commands() -> list[str]:
    """The commands of the README's first fenced shell block, comments stripped."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.DOTALL)
    assert block, "README.md has no fenced code block with the set-up commands"
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def command_lines(path) -> list[str]:
    """Non-blank, non-comment lines of a shell script."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def run_setup(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run setup.sh with the venv-only, dry-run-free environment given in ENV."""
    full = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "SETUP_DRY_RUN")}
    full.update({"SETUP_VENV_ONLY": "1"}, **(env or {}))
    return subprocess.run(["bash", str(SETUP), *args], check=False, cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=timeout)


def test_readme_starts_with_lab_and_test_commands():
    cmds = readme_commands()
    assert cmds == ["./setup.sh lab", "./setup.sh test"], cmds
    head = (ROOT / "README.md").read_text().splitlines()[:6]
    assert any("./setup.sh lab" in line for line in head), "the commands must open the README"


def test_ci_run_calls_exactly_the_readme_test_command():
    test_cmd = next(c for c in readme_commands() if c.endswith(" test"))
    lines = command_lines(ROOT / ".ci" / "run")
    assert lines == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', test_cmd], lines
    assert (ROOT / ".ci" / "run").read_text().startswith("#!/usr/bin/env bash\n")


def test_setup_script_has_valid_bash_syntax_and_is_executable():
    proc = subprocess.run(["bash", "-n", str(SETUP)], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert os.access(SETUP, os.X_OK), "setup.sh must be executable (git update-index --chmod=+x)"


def test_unknown_verb_is_refused_with_a_clear_message():
    proc = run_setup("tset")
    assert proc.returncode != 0
    assert "unknown command 'tset'" in proc.stderr and "lab, test or env" in proc.stderr


def test_dry_run_test_passes_arguments_through():
    proc = run_setup("test", "-x", "-k", "a b", env={"SETUP_DRY_RUN": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "==> running the test suite" in proc.stdout
    assert "/.venv/bin/python -m pytest -x -k a\\ b" in proc.stdout, proc.stdout


def test_dry_run_lab_writes_overrides_and_passes_arguments_through():
    proc = run_setup("lab", "--no-browser", "--port", "8999", env={"SETUP_DRY_RUN": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("would run:"))
    assert "/.venv/bin/jupyter lab --ServerApp.root_dir=" in line
    assert line.endswith("--no-browser --port 8999"), line
    if (ROOT / "course" / "00_start_here.ipynb").exists():
        assert "course/00_start_here.ipynb" in line
    else:
        assert "--LabApp.default_url=/lab/tree/course" in line
    overrides = ROOT / ".venv" / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    notification = json.loads(overrides.read_text())["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}


@pytest.mark.parametrize("body, want", [
    ("def test_ok():\n    assert True\n", 0),
    ("def test_bad():\n    assert False\n", 1),
    ("# no tests here\n", 1),   # pytest's exit 5 (no tests collected) must count as failure
])
def test_test_verb_returns_pytests_verdict(tmp_path, body, want):
    (tmp_path / "test_probe.py").write_text(body)
    proc = run_setup("test", str(tmp_path), "-p", "no:cacheprovider", "-q")
    assert proc.returncode == want, proc.stdout + proc.stderr
    if "no tests" in body:
        assert "collected no tests" in proc.stderr


def test_require_tool_skips_without_ci_and_fails_with_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-xyz not found"):
        require_tool("no-such-tool-xyz")
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_tool("no-such-tool-xyz")
    assert require_tool("sh").endswith("/sh")
