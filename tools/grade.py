"""Instructor and student commands for the course's nbgrader assignments.

    python tools/grade.py release                  # regenerate exercises/ from solutions/
    python tools/grade.py autograde SUBMISSIONS    # grade SUBMISSIONS/<student>/<assignment>/*.ipynb
    python tools/grade.py selfcheck NOTEBOOK       # a student's check of the visible tests
    python tools/grade.py similarity ASSIGNMENT    # near copies among the graded submissions (instructor only)
    python tools/grade.py misconceptions ASSIGNMENT  # where the class first diverges, by kernel-facts row

nbgrader runs with the repository's nbgrader_config.py on a course directory under
build/nbgrader/ (made here; `--course` picks another). See docs/instructors.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools" / "nbgrader"))

import batch  # tools/nbgrader is not a package: the path above finds them
import intake

SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
COURSE = ROOT / "build" / "nbgrader"
BATCH = 25           # students of one assignment a worker grades in one go


def assignments() -> list[str]:
    """The assignments: every folder of solutions/ that holds a notebook."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Run one nbgrader command on `course` with the repository's config; output goes to our stderr."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}"]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), check=False, stdout=sys.stderr, stderr=sys.stderr)


def _env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def preflight() -> None:
    """Exit with the reason if nbgrader_config.py cannot load (nbgrader would only log it and go on)."""
    code = ("import runpy; runpy.run_path('nbgrader_config.py', {'get_config': lambda: "
            "__import__('traitlets.config').config.Config()})")
    probe = [sys.executable, "-c", code]
    proc = subprocess.run(probe, cwd=ROOT, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("nbgrader_config.py does not load, so grading would run without the clean verifier:\n"
                 + proc.stderr[-1500:])


def fingerprint(name: str) -> str:
    """A hash of solutions/<name>/ (every file but checkpoints): what generate_assignment depends on."""
    h = hashlib.sha256()
    for path in sorted((SOLUTIONS / name).rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts:
            h.update(str(path.relative_to(SOLUTIONS)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def prepare(course: Path, names: list[str], force: bool = False) -> None:
    """Make the course's release and gradebook match solutions/: `nbgrader generate_assignment` for
    every assignment whose solutions changed since it was last generated here (all if `force`)."""
    preflight()
    marks = course / ".generated"
    todo = {}
    for name in names:
        mark, digest = marks / name, fingerprint(name)
        current = (mark.is_file() and mark.read_text() == digest and (course / "gradebook.db").is_file()
                   and (course / "release" / name / f"{name}.ipynb").is_file())
        if force or not current:
            todo[name] = digest
    for name in todo:
        source = course / "source" / name
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(SOLUTIONS / name, source, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    if not todo:
        return
    cmd = [sys.executable, str(ROOT / "tools" / "nbgrader" / "batch.py"), str(course), "--generate", *todo]
    generated = subprocess.run(cmd, cwd=ROOT, env=_env(), check=False, stdout=sys.stderr).returncode == 0
    batch.restore_journal(course / "gradebook.db")
    if not generated:
        sys.exit("generate_assignment failed (its messages are above)")
    marks.mkdir(parents=True, exist_ok=True)
    for name, digest in todo.items():
        (marks / name).write_text(digest)


def release(course: Path, out: Path, names: list[str]) -> None:
    """Regenerate out/<assignment>/ (exercises/ by default) from solutions/."""
    prepare(course, names, force=True)
    for name in names:
        shutil.rmtree(out / name, ignore_errors=True)
        shutil.copytree(course / "release" / name, out / name)
        print(f"released {name} -> {out / name}")


def find_submissions(folder: Path, known: list[str]) -> dict[str, list[str]]:
    """{assignment: [student, ...]} to grade from folder/<student>/<assignment>/ (tools/nbgrader/intake.py:
    nothing followed; refusals are refused_submissions); SystemExit if there is no submission at all."""
    found, refused, notes = intake.discover(folder, known)
    for note in notes:
        print(note, file=sys.stderr)
    if not found and not refused:
        sys.exit(f"no submissions in {folder}: expected {folder}/<student>/<assignment>/<notebook>.ipynb")
    return found


def refused_submissions(folder: Path, known: list[str]) -> dict[str, dict[str, str]]:
    """{assignment: {student: "not graded: <reason>"}}: the submissions under `folder` that are not only
    regular files (a link, a hard link, a device, a fifo) or hold no notebook; none is read."""
    return intake.discover(folder, known)[1] if folder.is_dir() else {}


def collect_into(course: Path, folder: Path, found: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """Copy folder/<student>/<assignment>/ into the course's submitted/ (nothing to do if `folder` is
    submitted/ itself), regular files only, never following a link (intake.copy_tree); {assignment:
    {student: "not graded: <reason>"}} for a submission that changed into something else meanwhile
    (dropped from `found`). The input is only read: SystemExit if it is, or holds, a folder nbgrader rewrites."""
    submitted = course / "submitted"
    if folder == submitted:
        return {}
    if folder == course or course.is_relative_to(folder) or folder.is_relative_to(course):
        sys.exit(f"{folder} is part of the nbgrader course {course} (whose autograded/ and feedback/ "
                 f"nbgrader rewrites): give its submitted/ folder, or a folder outside it")
    refused: dict[str, dict[str, str]] = {}
    for name, students in found.items():
        for student in list(students):
            dest = submitted / student / name
            shutil.rmtree(dest, ignore_errors=True)
            try:
                intake.copy_tree(folder / student / name, dest)
            except OSError as exc:
                shutil.rmtree(dest, ignore_errors=True)
                refused.setdefault(name, {})[student] = f"not graded: {exc}"
                students.remove(student)
    return refused


def forget(course: Path, statuses: dict[str, dict[str, str]], copied: bool) -> None:
    """Remove what an earlier run left in autograded/ and feedback/ (and submitted/, when the input was
    `copied` there) for the submissions refused now (their grades in grades.csv become 0 with the
    reason: vmlib_nbgrader.StatusCsvExport)."""
    for name, by_student in statuses.items():
        for student in by_student:
            for stage in ("autograded", "feedback", *(("submitted",) if copied else ())):
                shutil.rmtree(course / stage / student / name, ignore_errors=True)


def report(course: Path, statuses: dict[str, dict[str, str]]) -> list[str]:
    """Save each student's status in the course (status.json, the "status" column of grades.csv) and
    print those not graded on stderr; returns them."""
    intake.write_status(course, statuses)
    out = [f"{student}/{name}: {status}" for name, by_student in sorted(statuses.items())
           for student, status in sorted(by_student.items()) if status != intake.GRADED]
    for line in out:
        print(line, file=sys.stderr)
    if out:
        print(f"{len(out)} submission(s) not (fully) graded: see the column 'status' of grades.csv", file=sys.stderr)
    return out


def batches(found: dict[str, list[str]], workers: int) -> list[dict]:
    """Work items for the workers: at most BATCH students of one assignment each, and enough items
    to keep every worker busy."""
    items = []
    for name, students in sorted(found.items()):
        size = max(1, min(BATCH, -(-len(students) // workers)))
        items += [{"assignment": name, "students": students[i:i + size]}
                  for i in range(0, len(students), size)]
    return items


class Progress:
    """Prints "graded N of M submissions, S s, about T left" on stderr, at most every `every` seconds."""

    def __init__(self, total: int, every: float = 5.0):
        self.total, self.done, self.every = total, 0, every
        self.start = self.last = time.monotonic()

    def add(self, n: float = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= 1 and (now - self.last >= self.every or self.done == self.total):
            self.last = now
            elapsed = now - self.start
            left = elapsed / self.done * (self.total - self.done)
            print(f"graded {self.done:.0f} of {self.total} submissions, {elapsed:.0f} s, about {_span(left)} left",
                  file=sys.stderr, flush=True)


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def run_workers(course: Path, items: list[dict], progress: Progress, workers: int, timeout: float | None,
                unsafe: bool, seconds: dict, statuses: dict | None = None, budget: float | None = None) -> list[str]:
    """Grade `items` on `workers` processes of tools/nbgrader/batch.py; the logs of failed batches.
    Adds the workers' seconds by stage to `seconds`, and each student's status to
    statuses[assignment][student] ("graded", "not graded: <reason>")."""
    statuses = {} if statuses is None else statuses

    def lost(item: dict, why: str) -> None:
        statuses.setdefault(item["assignment"], {}).update(dict.fromkeys(item["students"], f"not graded: {why}"))

    todo: queue.Queue = queue.Queue()
    for item in items:
        todo.put(item)
    events: queue.Queue = queue.Queue()
    cmd = [sys.executable, str(ROOT / "tools" / "nbgrader" / "batch.py"), str(course)]
    cmd += [f"--cell-timeout={timeout}"] if timeout else []
    cmd += ["--unsafe-no-sandbox"] if unsafe else []
    cmd += [f"--budget={budget}"] if budget is not None else []

    def work() -> None:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        try:
            if not proc.stdout.readline():
                events.put({"failed": "a grading worker did not start (tools/nbgrader/batch.py; see above)"})
                return
            while True:
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                proc.stdin.write(json.dumps(item) + "\n")
                proc.stdin.flush()
                if not follow(proc, item):
                    lost(item, "the grading worker died grading this batch")
                    events.put({"failed": f"a grading worker died grading {item['assignment']} "
                                          f"({', '.join(item['students'])})"})
                    return
        except Exception as exc:  # noqa: BLE001 - reported, and the other workers go on
            events.put({"failed": f"a grading worker failed: {exc!r}"})
        finally:
            proc.stdin.close()
            proc.wait()
            events.put({"exit": True})

    def follow(proc, item) -> bool:
        """Pass the worker's events on until its batch is done; False if the worker ended first."""
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                print(line, end="", file=sys.stderr)
                continue
            events.put(event)
            if "batch" in event:
                return True
        return False

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(workers, len(items))))]
    for t in threads:
        t.start()
    failures, running = [], len(threads)
    while running:
        event = events.get()
        if "step" in event:
            progress.add(0.5)
        elif "exit" in event:
            running -= 1
        elif "failed" in event:
            failures.append(event["failed"])
        else:
            for stage, t in event["seconds"].items():
                seconds[stage] = seconds.get(stage, 0.0) + t
            statuses.setdefault(event["assignment"], {}).update(event["status"])
            if not event["ok"]:
                failures.append(event["log"])
    while not todo.empty():            # every worker ended early: say whose work nobody graded
        item = todo.get_nowait()
        lost(item, "no grading worker was left to grade it")
        failures.append(f"not graded (no grading worker left): {item['assignment']} ({', '.join(item['students'])})")
    return failures


def autograde(course: Path, folder: Path, csv: Path, timeout: int | None, workers: int = 2,
              unsafe: bool = False, budget: float | None = None, scheduler: str | None = None) -> int:
    """Autograde every submission under `folder` (never changed), write feedback HTML and `csv`;
    0 if all went through."""
    from vmlib.grading.sandbox import SandboxUnavailable, require
    try:
        require(trusted=False, unsafe_no_sandbox=unsafe)
    except SandboxUnavailable as exc:
        sys.exit(str(exc))
    found = find_submissions(folder, assignments())
    statuses = refused_submissions(folder, assignments())
    for name, refused in (collect_into(course, folder, found) or {}).items():
        statuses.setdefault(name, {}).update(refused)
    forget(course, statuses, copied=folder != course / "submitted")
    clock, seconds = time.perf_counter(), {}
    prepare(course, sorted(set(found) | set(statuses)))
    seconds["generate_assignment"] = time.perf_counter() - clock
    total = sum(len(s) for s in found.values())
    print(f"grading {total} submissions of {len(found)} assignment(s) on {workers} worker(s)", file=sys.stderr)
    progress, clock = Progress(total), time.perf_counter()
    if scheduler:                      # a Dask cluster (tools/nbgrader/cluster.py); this process keeps the gradebook
        sys.path.insert(0, str(ROOT / "tools" / "nbgrader"))
        import cluster
        failures = cluster.run(course, found, scheduler, workers, BATCH, timeout, unsafe, budget, seconds, progress)
    else:
        failures = run_workers(course, batches(found, workers), progress, workers, timeout, unsafe, seconds, statuses,
                               budget)
        batch.restore_journal(course / "gradebook.db")      # the workers used WAL (batch.speed_up_nbgrader)
    seconds["grading (wall)"] = time.perf_counter() - clock
    for log in failures:
        print(log, file=sys.stderr)
    not_graded = report(course, statuses)
    clock = time.perf_counter()        # the grades of every batch that went through, also when one did not
    exported = nbgrader(course, "export", f"--to={csv}").returncode == 0
    seconds["export"] = time.perf_counter() - clock
    failed = bool(failures) or not exported or bool(not_graded)
    print(f"grades: {csv if exported else 'not exported (nbgrader export failed: its messages are above)'}\n"
          f"feedback: {course / 'feedback'}")
    clock = time.perf_counter()
    for name in sorted(found):
        reports(course, name, similarity=False)
    seconds["reports"] = time.perf_counter() - clock
    print("seconds by stage (verify, autograde and feedback summed over the workers): "
          + json.dumps({k: round(v, 1) for k, v in seconds.items()}), file=sys.stderr)
    return 1 if failed else 0


def reports(course: Path, name: str, similarity: bool = True, misconceptions: bool = True) -> None:
    """Write the instructor's reports of `name` under course/reports/<name>/ (never released): the
    misconception report (from the autograded notebooks) and the similarity report (from submitted/)."""
    sys.path.insert(0, str(ROOT / "tools" / "nbgrader"))
    import misconceptions as mc
    import similarity as sim
    out = course / "reports" / name
    if misconceptions:
        _, page, counted = mc.report(course, name, out)
        print(f"misconceptions: {page} ({len(counted)} places)", file=sys.stderr)
    if similarity:
        solution = json.loads((SOLUTIONS / name / f"{name}.ipynb").read_text())
        release_nb = json.loads((EXERCISES / name / f"{name}.ipynb").read_text())
        _, page, rows = sim.report(course / "submitted", name, solution, release_nb, out)
        print(f"similarity: {page} ({sum(r['flagged'] for r in rows)} of {len(rows)} pairs flagged)",
              file=sys.stderr)


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
    auto.add_argument("--timeout", type=int, default=None, help="seconds a student cell or case may run (10)")
    auto.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="grading processes (one per core)")
    auto.add_argument("--budget", type=float, default=None,
                      help="seconds a submission's code may run in all its checks, after which the rest fail as "
                           "'time budget used' (20 x the time the reference solution's code runs in the sandbox here, at "
                           "least 1; <0: none)")
    auto.add_argument("--scheduler", default=None,
                      help="grade on a Dask cluster: its scheduler's address (tcp://HOST:8786; workers started "
                           "with tools/nbgrader/cluster.py worker), or 'local' for one here with --workers processes")
    auto.add_argument("--unsafe-no-sandbox", action="store_true",
                      help="grade without the bubblewrap sandbox (student code runs as you; trusted work only)")
    check = sub.add_parser("selfcheck", help="run the visible checks of a notebook")
    check.add_argument("notebook", type=Path)
    for verb, what in (("similarity", "rank answer cells by similarity to the references and to each other"),
                       ("misconceptions", "count where failing checks first diverge, by kernel-facts row")):
        rep = sub.add_parser(verb, help=f"{what} (HTML and CSV under COURSE/reports/ASSIGNMENT/; instructor only)")
        rep.add_argument("assignment", nargs="+")
    args = parser.parse_args(argv)
    course = args.course.resolve()
    if args.command in ("similarity", "misconceptions"):
        unknown = set(args.assignment) - set(assignments())
        if unknown:
            parser.error(f"unknown assignment(s) {sorted(unknown)}; choose from {', '.join(assignments())}")
        for name in args.assignment:
            if not (course / ("submitted" if args.command == "similarity" else "autograded") / ".").is_dir():
                parser.error(f"{course} has no graded submissions yet: run autograde first")
            reports(course, name, similarity=args.command == "similarity",
                    misconceptions=args.command == "misconceptions")
        return 0
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
                         args.timeout, args.workers, args.unsafe_no_sandbox, args.budget, args.scheduler)
    from vmlib.grading.notebook import main as selfcheck
    return selfcheck([str(args.notebook)])


if __name__ == "__main__":
    sys.exit(main())
