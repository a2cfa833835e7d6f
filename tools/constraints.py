"""Write constraints.txt: the lock of everything a class installs, for every supported Python.

    .venv/bin/python -m tools.constraints             # re-resolve and rewrite constraints.txt (needs uv)
    .venv/bin/python -m tools.constraints --python X  # print the pins that apply to Python X.Y[.Z]

The class set is `vmlib[course,grading,hub]`: the student set, nbgrader for an instructor or an
exchange, nbgitpuller for a hub. `uv pip compile --universal` resolves it once for Python
3.10 up (requires-python) and every platform, and forks where a version cannot serve them all:
a line then carries a marker, e.g. `soupsieve==2.10 ; python_full_version < '3.11.5'`
(Debian 12's Python 3.11.2 gets that one). So one file locks each supported Python.

Why uv: it is the one resolver that writes a lock valid for several Python versions from
one machine (pip-tools resolves for the interpreter it runs in, so it would need every Python
installed and one file each). Why still a requirements-format file: plain pip reads it, so a
student needs no tool beyond pip: `pip install -c constraints.txt '.[course]'` installs exactly
the locked versions (pip evaluates the markers) and nothing else. `./setup.sh` does that.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "constraints.txt"
EXTRAS = ("course", "grading", "hub")
PYTHONS = ("3.10", "3.11", "3.12", "3.13")          # supported and tested (pyproject classifiers)
LOWEST = PYTHONS[0]
HEAD = f"""# The class lock: vmlib[{','.join(EXTRAS)}] for Python {PYTHONS[0]}-{PYTHONS[-1]} on any platform, resolved by
# `uv pip compile --universal` (lines with a marker apply to some Pythons only).
# Use with plain pip: pip install -c constraints.txt '.[course]'   (./setup.sh does; docs/deploy.md)
# Regenerate: .venv/bin/python -m tools.constraints   (needs uv: pip install uv)
# fontTools as pure Python (its sdist builds no extension unless FONTTOOLS_WITH_CYTHON is set):
# 13 MB instead of the 37 MB wheel (Cython builds and their C sources); matplotlib runs the same.
--no-binary fonttools
"""


def compile_lock() -> str:
    """The lock text uv resolves now for the class set (SystemExit saying why when it cannot)."""
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        raise SystemExit("tools.constraints: uv not found; install it (pip install uv) and run again")
    cmd = [uv, "pip", "compile", "pyproject.toml", *(f"--extra={e}" for e in EXTRAS), "--universal",
           f"--python-version={LOWEST}", "--no-header", "--no-annotate", "--quiet"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"tools.constraints: {' '.join(cmd[1:])} failed:\n{proc.stderr}")
    return HEAD + proc.stdout


def pins_for(python: str, text: str | None = None) -> dict[str, str]:
    """Canonical name -> locked version of every line that applies to PYTHON ("3.11.2") on Linux."""
    from packaging.markers import Marker, default_environment
    from packaging.utils import canonicalize_name
    parts = (python.split(".") + ["0", "0"])[:3]
    env = {**default_environment(), "python_version": ".".join(parts[:2]), "python_full_version": ".".join(parts),
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
    pins = {}
    for line in (text if text is not None else OUT.read_text()).splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):        # blank, or a pip option such as --no-binary
            continue
        req, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(env):
            continue
        name, _, version = req.strip().partition("==")
        pins[canonicalize_name(re.sub(r"\[.*\]", "", name))] = version.strip()
    return pins


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.constraints", description=__doc__.splitlines()[0])
    ap.add_argument("--python", help="print the pins that apply to this Python version, e.g. 3.11.2")
    args = ap.parse_args(argv)
    if args.python:
        for name, version in sorted(pins_for(args.python).items()):
            print(f"{name}=={version}")
        return 0
    text = compile_lock()
    OUT.write_text(text)
    print(f"wrote {OUT.name}: {sum(1 for ln in text.splitlines() if '==' in ln)} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
