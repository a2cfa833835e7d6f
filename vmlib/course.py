"""Copy the course's lessons and exercises into a folder, for someone who installed vmlib with pip.

    python -m vmlib.course DIR        # DIR/course/*.ipynb (+ kernel-facts.html), DIR/exercises/ps*/
    jupyter lab DIR/course/00_start_here.ipynb

The wheel carries the lessons, the rendered fact sheet and the exercises as data files
(share/vmlib/ under the install prefix); from a checkout they come from the checkout itself.
Nothing is overwritten: if any file to be written exists, nothing is copied and the command
says which. Standard library only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
PARTS = ("course", "exercises")


def source_dirs() -> list[Path]:
    """Where the shipped course may be: this prefix's share/vmlib, the user scheme's, a checkout."""
    found = [Path(sysconfig.get_path("data")) / "share" / "vmlib"]
    found.append(Path(sysconfig.get_path("data", sysconfig.get_preferred_scheme("user"))) / "share" / "vmlib")
    found.append(CHECKOUT)
    return found


def find_source() -> Path:
    """The first folder holding course/00_start_here.ipynb; SystemExit saying where it looked."""
    for d in source_dirs():
        if (d / "course" / "00_start_here.ipynb").is_file():
            return d
    tried = ", ".join(str(d) for d in source_dirs())
    raise SystemExit(f"vmlib.course: the lessons are not installed (looked in {tried}); "
                     f"reinstall vmlib from its wheel: pip install --force-reinstall 'vmlib[course]'")


def files_to_copy(src: Path) -> list[Path]:
    """The lessons, their README and fact sheet, and every exercise notebook, relative to SRC."""
    out = []
    for part in PARTS:
        for path in sorted((src / part).rglob("*")):
            if path.is_file() and path.suffix in (".ipynb", ".html", ".md") \
                    and ".ipynb_checkpoints" not in path.parts:
                out.append(path.relative_to(src))
    return out


def copy_course(dest: Path, src: Path | None = None) -> list[Path]:
    """Copy the course into DEST (made if missing); the files written. FileExistsError, with
    nothing written, if any of them exists already."""
    src = src or find_source()
    files = files_to_copy(src)
    clash = [str(dest / f) for f in files if (dest / f).exists()]
    if clash:
        raise FileExistsError(f"vmlib.course: {len(clash)} file(s) exist already, e.g. {clash[0]}; "
                              f"nothing was copied. Choose an empty folder or move them away.")
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / f, dest / f)
    return [dest / f for f in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmlib.course",
                                     description="Copy the vmlib lessons and exercises into DIR.")
    parser.add_argument("dir", type=Path, help="the folder to copy into (made if missing)")
    args = parser.parse_args(argv)
    try:
        written = copy_course(args.dir)
    except FileExistsError as e:
        print(e, file=sys.stderr)
        return 1
    lessons = sum(1 for p in written if p.parent.name == "course" and p.suffix == ".ipynb")
    exercises = sum(1 for p in written if "exercises" in p.parts)
    print(f"copied {lessons} lessons and {exercises} exercises into {args.dir}")
    print(f"open the first lesson: jupyter lab {args.dir / 'course' / '00_start_here.ipynb'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
