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
    assert "/.venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -x -k a\\ b" in proc.stdout, \
        proc.stdout


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


# ---------------------------------------------------------------- the lock (constraints.txt)

LOCK = ROOT / "constraints.txt"
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
CLASS_EXTRAS = ("course", "grading", "hub")


def _pins_for(version: str) -> dict:
    import sys
    sys.path.insert(0, str(ROOT))
    from tools.constraints import pins_for
    return pins_for(version)


def find_python(minor: str) -> str | None:
    """An interpreter of Python MINOR on this machine: python3.X on PATH, pyenv's, or uv's; or None."""
    import glob
    import shutil
    found = [shutil.which(f"python{minor}")] + sorted(glob.glob(f"/root/.pyenv/versions/{minor}.*/bin/python{minor}"))
    found += sorted(glob.glob(os.path.expanduser(f"~/.local/share/uv/python/cpython-{minor}.*/bin/python{minor}")))
    for p in found:          # a pyenv shim is on PATH but may refuse to run: try each
        if p and os.access(p, os.X_OK) and subprocess.run([p, "-c", ""], capture_output=True, timeout=60,
                                                          check=False).returncode == 0:
            return p
    return None


def test_lock_pins_every_requirement_of_the_class_set_for_each_supported_python():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    text = (ROOT / "pyproject.toml").read_text()
    names = set()
    for extra in CLASS_EXTRAS:
        line = re.search(rf"^{extra} = \[(.*)\]", text, re.MULTILINE).group(1)
        names |= {canonicalize_name(Requirement(r).name) for r in re.findall(r'"([^"]+)"', line)}
    assert {"jupyterlab", "matplotlib", "nbgrader", "ipywidgets"} <= names, names
    for minor in SUPPORTED:
        pins = _pins_for(f"{minor}.0")
        assert not names - set(pins), f"Python {minor}: not in constraints.txt: {sorted(names - set(pins))}"
    assert _pins_for("3.11.2")["soupsieve"] != _pins_for("3.11.7")["soupsieve"], \
        "Debian 12's Python 3.11.2 needs its own soupsieve (the newest needs 3.11.5)"


@pytest.mark.slow
@pytest.mark.parametrize("minor", SUPPORTED)
def test_lock_resolves_in_a_fresh_venv(minor, tmp_path):
    """pip, in a fresh venv of that Python, resolves the student and instructor sets with the lock
    as constraints, to exactly the locked versions (a dry run: nothing is installed)."""
    import json
    python = find_python(minor)
    if python is None:
        if in_ci():
            pytest.fail(f"no Python {minor} on this CI machine: install it (pyenv, uv python install {minor})")
        pytest.skip(f"no Python {minor} on this machine (python{minor}, pyenv or uv)")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    full_version = subprocess.run([str(venv / "bin" / "python"), "-c", "import platform; print(platform.python_version())"],
                                  capture_output=True, text=True, check=True).stdout.strip()
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                           "--dry-run", "--ignore-installed", "--report", str(report), "-c", str(LOCK),
                           f"{ROOT}[course,grading]"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, f"Python {full_version}: the lock does not resolve:\n{proc.stderr[-3000:]}"
    from packaging.utils import canonicalize_name
    resolved = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}
    pins = _pins_for(full_version)
    resolved.pop("vmlib")
    off = {n: (v, pins.get(n)) for n, v in resolved.items() if pins.get(n) != v}
    print(f"Python {full_version}: {len(resolved)} packages resolved, all as locked")
    assert not off, f"Python {full_version}: resolved (version, locked) differ: {off}"
    assert "matplotlib" in resolved and "nbgrader" in resolved


@pytest.mark.slow
def test_a_python_that_cannot_install_the_lock_is_told_which_python_to_use(tmp_path):
    """setup.sh with a lock no interpreter here can meet (numpy 2.5 needs Python 3.12) says so in one line."""
    python = find_python("3.10") or find_python("3.11")
    if python is None:
        pytest.skip("needs a Python 3.10 or 3.11 (numpy 2.5 needs 3.12)")
    bad = tmp_path / "lock.txt"
    bad.write_text("numpy==2.5.5\n")
    proc = run_setup("lab", env={"PYTHON": python, "SETUP_VENV": str(tmp_path / "venv"), "SETUP_LOCK": str(bad),
                                 "SETUP_EXTRAS": "course", "SETUP_DRY_RUN": "1"}, timeout=900)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("==> ERROR")]
    assert len(errors) == 1 and "cannot install the locked versions" in errors[0], proc.stderr[-2000:]
    assert "PYTHON=python3.12 ./setup.sh lab" in errors[0], errors
    assert "Traceback" not in proc.stderr and "ResolutionImpossible" not in proc.stderr, proc.stderr[-2000:]


def _system_setup(verb: str, tmp_path) -> subprocess.CompletedProcess:
    """setup.sh's system_setup VERB on a machine without Graphviz, bwrap, chromium or apt-get
    (PATH holds only the few tools the function calls)."""
    import shutil
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("bash", "uname", "id", "cat", "mktemp", "rm", "tail", "printf", "dirname"):
        if shutil.which(tool) and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(shutil.which(tool))
    functions = tmp_path / "functions.sh"           # every function of setup.sh, then one call instead of main
    functions.write_text(SETUP.read_text().rsplit('main "$@"', 1)[0] + f"system_setup {verb}\n")
    return subprocess.run([str(bin_dir / "bash"), str(functions)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, timeout=60, check=False)


def test_the_student_path_says_nothing_about_tests_or_the_sandbox(tmp_path):
    lab = _system_setup("lab", tmp_path)
    said = (lab.stdout + lab.stderr).replace(str(tmp_path), "TMP")
    assert lab.returncode == 0, said
    assert "Graphviz (dot) is missing" in said and "vma and physical-memory graphs" in said, said
    for word in ("test", "sandbox", "bubblewrap", "bwrap", "chromium", "CI"):
        assert word not in said, f"./setup.sh lab talks about {word!r}: {said}"
    control = _system_setup("test", tmp_path)        # the developer path does name them
    said = control.stdout + control.stderr
    assert "bubblewrap" in said and "tests needing" in said, said
