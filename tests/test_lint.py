"""The code is ruff-clean (the rule set of the ruff version pinned in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed: run ./setup.sh test (it installs the test extra)"
    proc = subprocess.run([ruff, "check", "--output-format", "concise", "vmlib", "tests", "bench", "tools"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"ruff finds problems:\n{proc.stdout}{proc.stderr}"
