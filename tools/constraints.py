"""Write constraints.txt: the versions of this venv for everything a class installs.

    .venv/bin/python -m tools.constraints            # rewrite constraints.txt
    .venv/bin/python -m tools.constraints --check    # exit 1 (saying what differs) if it is stale

The class set is every distribution that `vmlib[course,grading,hub]` pulls in (the student set,
nbgrader for an exchange, nbgitpuller for a hub), found by walking the installed packages'
requirements (environment markers evaluated for this interpreter), pinned to the installed
version: `pip freeze` filtered to the course. The venv needs those extras first:
`.venv/bin/pip install -e '.[course,grading,hub]'`. Use the file with
`pip install -c constraints.txt '.[course]'` (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "constraints.txt"
PROJECT = "vmlib"
EXTRAS = ("course", "grading", "hub")


def _wanted(req: Requirement, extras: set[str]) -> bool:
    """True when REQ applies here, for a distribution installed with EXTRAS."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**default_environment(), "extra": e}) for e in extras or {""})


def closure(project: str = PROJECT, extras: tuple[str, ...] = EXTRAS) -> dict[str, str]:
    """Canonical name -> installed version of everything PROJECT[EXTRAS] needs, PROJECT excluded.

    Raises LookupError naming a requirement that is not installed (set up the venv first).
    """
    pins: dict[str, str] = {}
    explored: dict[str, set[str]] = {canonicalize_name(project): set(extras)}
    todo = [(project, set(extras))]
    while todo:
        name, want = todo.pop()
        for line in metadata.distribution(name).requires or []:
            req = Requirement(line)
            if not _wanted(req, want):
                continue
            key = canonicalize_name(req.name)
            try:
                pins[key] = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                hint = f"pip install -e '.[{','.join(extras)}]'"
                raise LookupError(f"{req.name} (needed by {name}) is not installed: {hint} first") from None
            new = set(req.extras) - explored.get(key, set())
            if key not in explored or new:
                explored[key] = explored.get(key, set()) | new
                todo.append((req.name, new))
    pins.pop(canonicalize_name(project), None)
    return pins


def python_floor(pins: dict[str, str]) -> tuple[str, list[str]]:
    """The oldest Python every pinned version allows, and the distributions that set it."""
    specs = {name: SpecifierSet(metadata.metadata(name).get("Requires-Python") or "") for name in pins}
    bounds = {Version(sp.version) for spec in specs.values() for sp in spec if sp.operator in (">=", ">")}
    floor = min((v for v in bounds | {Version("3.10")} if all(s.contains(v) for s in specs.values())),
                default=Version("3.10"))
    return str(floor), sorted(n for n, spec in specs.items() if any(
        sp.operator in (">=", ">") and Version(sp.version) == floor for sp in spec))


def render(pins: dict[str, str]) -> str:
    """The text of constraints.txt for PINS."""
    head = (f"# The class set: what vmlib[{','.join(EXTRAS)}] installs, pinned to the versions tested with\n"
            f"# Python {sys.version_info.major}.{sys.version_info.minor}. Regenerate: .venv/bin/python -m tools.constraints\n"
            "# Use: pip install -c constraints.txt '.[course]'   (docs/deploy.md)\n")
    floor, names = python_floor(pins)
    if names:
        head += f"# Needs Python >= {floor} (set by {', '.join(names)}); on an older Python install without -c\n"
    return head + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def read_pins(path: Path = OUT) -> dict[str, str]:
    """name -> version of an existing constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.constraints", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only say whether constraints.txt is current")
    args = ap.parse_args(argv)
    pins = closure()
    if not args.check:
        OUT.write_text(render(pins))
        print(f"wrote {OUT.name}: {len(pins)} pins")
        return 0
    old = read_pins() if OUT.exists() else {}
    diff = sorted(f"{n}: {old.get(n, 'missing')} in {OUT.name}, {pins.get(n, 'not needed')} here"
                  for n in set(old) | set(pins) if old.get(n) != pins.get(n))
    for line in diff:
        print(line)
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
