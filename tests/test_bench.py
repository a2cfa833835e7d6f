"""The benchmark scripts run (tiny sizes; the figures themselves are not judged here: bench/
prints them with their targets, and the full runs are too long for the test suite)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args) -> list[str]:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.splitlines()


def test_scale_quick_prints_every_row():
    out = "\n".join(_run("bench/scale.py", "--quick"))
    for row in ("mmaps:", "fork:", "state_at(end), first call", "state_at(middle)", "stepper:",
                "memory, tracing on", "garbage collector share", "tracing on / off"):
        assert row in out, f"bench/scale.py --quick printed no {row!r} row:\n{out}"
    assert "quick run" in out.splitlines()[-1]


def test_faults_prints_the_ratio_last():
    lines = _run("bench/faults.py", "64")
    assert "CPU time on both sides" in lines[0]
    last = lines[-1]
    assert last.startswith("anon_write, tracing off / live kernel:"), last
    measured = re.search(r": ([0-9.]+)x \(target <= 3x\) (ok|MISS)$", last)
    if os.environ.get("CI") == "true":
        assert measured, f"CI must measure the live kernel (needs gcc): {last}"
