"""Instructor and student commands for the course's nbgrader assignments.

    python tools/grade.py release                  # regenerate exercises/ from solutions/
    python tools/grade.py autograde SUBMISSIONS    # grade SUBMISSIONS/<student>/<assignment>/*.ipynb
    python tools/grade.py selfcheck NOTEBOOK       # a student's check of the visible tests

nbgrader runs with the repository's nbgrader_config.py on a course directory under
build/nbgrader/ (made here; `--course` picks another). See docs/instructors.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
COURSE = ROOT / "build" / "nbgrader"


def assignments() -> list[str]:
    """The assignments: every folder of solutions/ that holds a notebook."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Run one nbgrader command on `course` with the repository's config; output goes to our stderr."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}"]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False, stdout=sys.stderr, stderr=sys.stderr)


def preflight() -> None:
    """Exit with the reason if nbgrader_config.py cannot load (nbgrader would only log it and go on)."""
    code = ("import runpy; runpy.run_path('nbgrader_config.py', {'get_config': lambda: "
            "__import__('traitlets.config').config.Config()})")
    probe = [sys.executable, "-c", code]
    proc = subprocess.run(probe, cwd=ROOT, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("nbgrader_config.py does not load, so grading would run without the clean verifier:\n"
                 + proc.stderr[-1500:])


def prepare(course: Path, names: list[str]) -> None:
    """Copy solutions/ into the course's source/ and let nbgrader generate the release and gradebook."""
    preflight()
    for name in names:
        source = course / "source" / name
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(SOLUTIONS / name, source, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        if nbgrader(course, "generate_assignment", name, "--force").returncode != 0:
            sys.exit(f"nbgrader generate_assignment {name} failed (its messages are above)")


def release(course: Path, out: Path, names: list[str]) -> None:
    """Regenerate out/<assignment>/ (exercises/ by default) from solutions/."""
    prepare(course, names)
    for name in names:
        shutil.rmtree(out / name, ignore_errors=True)
        shutil.copytree(course / "release" / name, out / name)
        print(f"released {name} -> {out / name}")


def find_submissions(folder: Path, known: list[str]) -> dict[str, list[str]]:
    """{assignment: [student, ...]} from folder/<student>/<assignment>/*.ipynb; SystemExit if none."""
    found: dict[str, list[str]] = {}
    for nb in sorted(folder.glob("*/*/*.ipynb")):
        student, name = nb.parent.parent.name, nb.parent.name
        if name not in known:
            sys.exit(f"{nb}: unknown assignment {name!r}; expected one of {', '.join(known)}")
        if student not in found.setdefault(name, []):
            found[name].append(student)
    if not found:
        sys.exit(f"no submissions in {folder}: expected {folder}/<student>/<assignment>/<notebook>.ipynb")
    return found


def autograde(course: Path, folder: Path, csv: Path, timeout: int | None, unsafe_no_sandbox: bool = False) -> int:
    """Autograde every submission under `folder`, write feedback HTML and `csv`; 0 if all went through."""
    from vmlib.grading.sandbox import SandboxUnavailable, require
    try:
        require(trusted=False, unsafe_no_sandbox=unsafe_no_sandbox)
    except SandboxUnavailable as exc:
        sys.exit(str(exc))
    found = find_submissions(folder, assignments())
    prepare(course, sorted(found))
    failed = 0
    for name, students in sorted(found.items()):
        for student in students:
            dest = course / "submitted" / student / name
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(folder / student / name, dest)
        extra = [f"--SafeExecute.timeout={timeout}", f"--VerifyChecks.cell_timeout={min(timeout, 5)}"] if timeout else []
        extra += ["--VerifyChecks.unsafe_no_sandbox=True"] if unsafe_no_sandbox else []
        failed += nbgrader(course, "autograde", name, "--force", *extra).returncode != 0
        failed += nbgrader(course, "generate_feedback", name, "--force").returncode != 0
    failed += nbgrader(course, "export", f"--to={csv}").returncode != 0
    print(f"grades: {csv}\nfeedback: {course / 'feedback'}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--course", type=Path, default=COURSE, help="nbgrader course directory (build/nbgrader)")
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="regenerate exercises/ from solutions/")
    rel.add_argument("--out", type=Path, default=EXERCISES, help="where the release goes (exercises/)")
    rel.add_argument("assignment", nargs="*", help="default: all of solutions/")
    auto = sub.add_parser("autograde", help="grade a folder of submissions")
    auto.add_argument("submissions", type=Path, help="folder of <student>/<assignment>/<notebook>.ipynb")
    auto.add_argument("--csv", type=Path, default=None, help="grades file (COURSE/grades.csv)")
    auto.add_argument("--timeout", type=int, default=None, help="seconds per notebook cell (30)")
    auto.add_argument("--unsafe-no-sandbox", action="store_true",
                      help="grade without the bubblewrap sandbox (student code runs as you; trusted work only)")
    check = sub.add_parser("selfcheck", help="run the visible checks of a notebook")
    check.add_argument("notebook", type=Path)
    args = parser.parse_args(argv)
    course = args.course.resolve()
    if args.command == "release":
        unknown = set(args.assignment) - set(assignments())
        if unknown:
            parser.error(f"unknown assignment(s) {sorted(unknown)}; choose from {', '.join(assignments())}")
        release(course, args.out.resolve(), args.assignment or assignments())
        return 0
    if args.command == "autograde":
        if not args.submissions.is_dir():
            parser.error(f"{args.submissions} is not a folder of submissions")
        return autograde(course, args.submissions.resolve(), (args.csv or course / "grades.csv").resolve(),
                         args.timeout, args.unsafe_no_sandbox)
    from vmlib.grading.notebook import selfcheck
    return selfcheck(str(args.notebook))


if __name__ == "__main__":
    sys.exit(main())
