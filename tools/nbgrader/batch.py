"""One grading worker: nbgrader's autograde and generate_feedback, in-process, for batches of students.

    python tools/nbgrader/batch.py COURSE [--cell-timeout S] [--unsafe-no-sandbox]

tools/grade.py starts one worker per core. A worker loads nbgrader and the course's
nbgrader_config.py once, then reads one batch a line on stdin as JSON
({"assignment": name, "students": [...]}) and grades it with nbgrader's own converters (the
pipeline of vmlib_nbgrader.configure: no Jupyter kernel, the clean verdicts). It writes JSON
lines on stdout: {"step": 1} after each submission's autograde and again after its feedback, then
{"batch": n, "ok": bool, "log": tail-of-nbgrader's-log}. nbgrader's log goes nowhere else.
"""

from __future__ import annotations

import argparse
import copy
import json
import runpy
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_config(course: Path, cell_timeout: float | None, unsafe: bool):
    """The course's nbgrader config with COURSE as root (and the worker's options)."""
    from traitlets.config import Config
    c = Config()
    runpy.run_path(str(ROOT / "nbgrader_config.py"), {"get_config": lambda: c})
    c.CourseDirectory.root = str(course)
    if cell_timeout is not None:
        c.VerifyChecks.cell_timeout = cell_timeout
    if unsafe:
        c.VerifyChecks.unsafe_no_sandbox = True
    return c


def _say(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def grade_batch(config, assignment: str, students: list[str], all_students: list[str]) -> tuple[bool, str]:
    """Autograde and generate feedback for `students` of `assignment`; (all went through, log tail)."""
    from nbgrader.apps.api import capture_log
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    c = copy.deepcopy(config)
    c.CourseDirectory.assignment_id = assignment
    c.CourseDirectory.student_id_exclude = ",".join(s for s in all_students if s not in set(students))
    coursedir = CourseDirectory(config=c)
    c.BaseConverter.post_convert_hook = lambda **_: _say({"step": 1})
    logs, ok = [], True
    for cls in (Autograde, GenerateFeedback):
        app = cls(coursedir=coursedir, config=c)
        app.force = True
        result = capture_log(app)
        ok = ok and result["success"]
        logs.append(result.get("log", "") + result.get("error", ""))
    return ok, "".join(logs)[-4000:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("course", type=Path)
    parser.add_argument("--cell-timeout", type=float, default=None)
    parser.add_argument("--unsafe-no-sandbox", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")     # nbgrader's own SQLAlchemy and nbformat warnings, every submission
    config = load_config(args.course.resolve(), args.cell_timeout, args.unsafe_no_sandbox)
    _say({"ready": True})
    for n, line in enumerate(sys.stdin):
        item = json.loads(line)
        ok, log = grade_batch(config, item["assignment"], item["students"], item["all"])
        _say({"batch": n, "ok": ok, "log": log})
    return 0


if __name__ == "__main__":
    sys.exit(main())
