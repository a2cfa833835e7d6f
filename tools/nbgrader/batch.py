"""One grading worker: nbgrader's autograde and generate_feedback, in-process, for batches of students.

    python tools/nbgrader/batch.py COURSE [--cell-timeout S] [--budget S] [--unsafe-no-sandbox]
    python tools/nbgrader/batch.py COURSE --generate ASSIGNMENT...    # generate_assignment, one process

tools/grade.py starts one worker per core. A worker loads nbgrader and the course's
nbgrader_config.py once, then reads one batch a line on stdin as JSON
({"assignment": name, "students": [...]}) and grades it with nbgrader's own converters (the
pipeline of vmlib_nbgrader.configure: no Jupyter kernel, the clean verdicts). It writes JSON
lines on stdout: {"step": 1} after each submission's autograde and again after its feedback, then
{"batch": n, "ok": bool, "log": tail-of-nbgrader's-log, "seconds": by stage, "status": {student:
"graded" or "not graded: <reason>"}}. nbgrader's log goes nowhere else. A submission nbgrader
cannot convert costs only its own student (grade_batch), and one that is not only regular files
is refused before nbgrader copies or reads it (intake.check_tree).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import re
import runpy
import shutil
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import intake  # tools/nbgrader is not a package: the path above finds it


def load_config(course: Path, cell_timeout: float | None, unsafe: bool, budget: float | None = None):
    """The course's nbgrader config with COURSE as root (and the worker's options)."""
    from traitlets.config import Config
    c = Config()
    runpy.run_path(str(ROOT / "nbgrader_config.py"), {"get_config": lambda: c})
    c.CourseDirectory.root = str(course)
    if cell_timeout is not None:
        c.VerifyChecks.cell_timeout = cell_timeout
    if unsafe:
        c.VerifyChecks.unsafe_no_sandbox = True
    if budget is not None:
        c.VerifyChecks.submission_budget = budget
    return c


def speed_up_nbgrader(scratch: bool = False) -> None:
    """Costs of nbgrader that do not change what it does, paid once per worker, not per call.

    * nbgrader opens a new Gradebook about ten times per submission, and each one creates a
      database engine, lists the tables and creates the missing ones: here the engine of a
      database URL is made once and its tables checked once (sessions stay per Gradebook).
    * CheckCellMetadata validates every cell's metadata with jsonschema.validate, which checks
      the schema itself and builds a validator each time, against a schema it reads from its file
      for every notebook: here each schema is read once and has one validator (keyed by the
      schema object; with a fresh schema per notebook that cache grew with every notebook).
    * nbgrader commits about 20 times per submission, and SQLite's default journal waits for the disk
      at each commit (8 ms each on a busy machine: a sixth of a submission's time): the gradebook is
      put in WAL mode with synchronous=NORMAL (durable against a crash of any process; a power cut
      may lose the last commits, which grading again redoes), or, for a `scratch` gradebook (a Dask
      worker's private course), synchronous=OFF. tools/grade.py puts the class gradebook back into
      SQLite's usual journal when the run ends (restore_journal).
    * nbconvert's HTMLExporter parses every page it made with BeautifulSoup to give images alt
      text and JupyterLab cells a tabindex; the feedback template (classic) has neither unless a
      cell shows an image: here a page without "<img" or "jp-Notebook" is returned as rendered.
    """
    import jsonschema
    from nbgrader import api
    from nbgrader.nbgraderformat import common
    from sqlalchemy.orm import scoped_session, sessionmaker

    engines: dict = {}

    def gradebook_init(self, db_url, course_id="default_course", authenticator=None):
        if db_url not in engines:
            original_init(self, db_url, course_id, authenticator)      # creates the tables if needed
            if db_url.startswith("sqlite:"):
                _fast_commits(self, scratch)
            engines[db_url] = self.engine
            return
        self.engine = engines[db_url]
        self.db = scoped_session(sessionmaker(autoflush=True, bind=self.engine, future=True))
        self.check_course(course_id=course_id)
        self.course_id, self.authenticator = course_id, authenticator

    def gradebook_close(self):
        self.db.remove()

    original_init = api.Gradebook.__init__
    api.Gradebook.__init__ = gradebook_init
    api.Gradebook.close = gradebook_close

    schemas: dict = {}          # schema version -> the schema, read once (nbgrader reads it for every notebook)
    original_validator_init = common.BaseMetadataValidator.__init__

    def validator_init(self):
        if self.schema_version not in schemas:
            original_validator_init(self)
            schemas[self.schema_version] = self.schema
        self.schema = schemas[self.schema_version]

    common.BaseMetadataValidator.__init__ = validator_init
    validators: dict = {}       # id of one of those schemas -> (it, its compiled validator): a few, kept

    def validate(instance, schema):
        key = id(schema)
        if key not in validators:
            jsonschema.validators.validator_for(schema).check_schema(schema)
            validators[key] = (schema, jsonschema.validators.validator_for(schema)(schema))
        validators[key][1].validate(instance)

    common.jsonschema = type("CachedJsonschema", (), {"validate": staticmethod(validate)})

    import nbconvert.exporters.html as html_exporter
    soup = html_exporter.BeautifulSoup

    class Rendered(str):
        """A page the accessibility pass would find nothing to change in."""

        def select(self, _selector):
            return []

    def maybe_soup(markup, features=None):
        return soup(markup, features=features) if ("<img" in markup or "jp-Notebook" in markup) else Rendered(markup)

    html_exporter.BeautifulSoup = maybe_soup


def _fast_commits(gb, scratch: bool) -> None:
    """The gradebook `gb`'s SQLite file in WAL mode, and every connection of its engine with
    synchronous=NORMAL (OFF if `scratch`): a commit no longer waits for the disk."""
    from sqlalchemy import event

    def pragmas(dbapi_connection, _record):
        dbapi_connection.execute(f"PRAGMA synchronous={'OFF' if scratch else 'NORMAL'}")

    event.listen(gb.engine, "connect", pragmas)
    gb.db.remove()
    gb.engine.dispose()                       # every connection from now on gets the pragma
    with gb.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def restore_journal(db: Path) -> None:
    """Put the SQLite file `db` back into SQLite's usual rollback journal (after a run in WAL mode:
    the last commits are moved into the file, and no -wal file is needed beside it)."""
    import sqlite3
    if db.is_file():
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")


def _say(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def grade_batch(config, assignment: str, students: list[str]) -> tuple[bool, str, dict, dict]:
    """Autograde and generate feedback for `students` of `assignment`; (all went through, log tail,
    seconds by stage: verify, the rest of autograde, feedback; {student: status}).

    A student can only fail itself: a submission nbgrader cannot convert (or that intake refuses)
    makes nbgrader stop or skip; whoever of the batch has no autograded notebook afterwards is
    graded again alone, and one that fails alone too is "not graded: <reason>"."""
    import vmlib_nbgrader
    from nbgrader.converters import GenerateFeedback

    course = Path(config.CourseDirectory.root)
    for student in students:         # what is there afterwards was made by this run
        for stage in ("autograded", "feedback"):
            shutil.rmtree(course / stage / student / assignment, ignore_errors=True)
    logs, seconds, status = [], {"autograde": 0.0, "feedback": 0.0}, {}
    verified = vmlib_nbgrader.SECONDS["verify"]
    graded = _isolated(config, assignment, students, _safe_autograde(), "autograded", ".ipynb", logs, seconds, status)
    made = _isolated(config, assignment, graded, GenerateFeedback, "feedback", ".html", logs, seconds, {})
    for student in graded:
        status[student] = intake.GRADED if student in made else f"{intake.GRADED} (no feedback: see the log)"
    seconds["verify"] = vmlib_nbgrader.SECONDS["verify"] - verified
    seconds["autograde"] -= seconds["verify"]
    ok = all(s == intake.GRADED for s in status.values())
    return ok, "".join(logs)[-4000:], seconds, status


def _isolated(config, assignment: str, students: list[str], cls, stage: str, ext: str, logs: list,
              seconds: dict, status: dict) -> list[str]:
    """Run the converter `cls` on `students`, then alone on each one it left without output in
    COURSE/`stage`; the students it made output for. Sets status[student] for the others."""
    done, result = _convert(config, assignment, students, cls, stage, ext, logs, seconds)
    for student in [s for s in students if s not in done]:
        if len(students) > 1:
            alone, result = _convert(config, assignment, [student], cls, stage, ext, logs, seconds)
            done += alone
        if student not in done:
            status[student] = f"not graded: {reason(result)}"
    return [s for s in students if s in done]


def _convert(config, assignment: str, students: list[str], cls, stage: str, ext: str, logs: list,
             seconds: dict) -> tuple[list[str], dict]:
    """One nbgrader converter run over `students`; (those with output in COURSE/`stage`, its result)."""
    from nbgrader.apps.api import capture_log
    from nbgrader.coursedir import CourseDirectory

    c = copy.deepcopy(config)
    c.CourseDirectory.assignment_id = assignment
    course = Path(c.CourseDirectory.root)
    source = course / ("submitted" if stage == "autograded" else "autograded")
    others = [d.name for d in source.iterdir() if d.name not in set(students) and (d / assignment).is_dir()]
    c.CourseDirectory.student_id_exclude = ",".join(others)       # every other submission there
    c.BaseConverter.post_convert_hook = lambda **_: _say({"step": 1})
    key = "autograde" if stage == "autograded" else "feedback"
    start = time.perf_counter()
    app = cls(coursedir=CourseDirectory(config=c), config=c)
    app.force = True
    result = capture_log(app)
    seconds[key] += time.perf_counter() - start
    logs.append(result.get("log", "") + result.get("error", ""))
    done = [s for s in students if any(p.suffix == ext for p in _listing(course / stage / s / assignment))]
    return done, result


def _listing(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.is_dir() else []


_BORING = ("There was an error processing assignment", "Please see the", "Removing failed")
_RAISED = re.compile(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Refused))(?::\s*(.*))?$")


def reason(result: dict) -> str:
    """One line saying why nbgrader could not convert a submission, from its log: the first
    exception other than nbgrader's summing-up one, else its last error message."""
    lines = (result.get("log", "") + result.get("error", "")).splitlines()
    for line in lines:
        m = _RAISED.match(line)
        if m and not m.group(1).endswith("NbGraderException"):
            name = m.group(1).rsplit(".", 1)[-1]
            return (m.group(2) if name == "Refused" else f"{name}: {m.group(2) or ''}").strip()[:300]
    errors = [ln[len("[ERROR] "):] for ln in lines if ln.startswith("[ERROR]") and not ln[8:].startswith(_BORING)]
    return errors[-1][:300] if errors else "nbgrader could not convert this notebook (no message)"


class Refused(Exception):
    """A submission that is not only regular files (intake.check_tree)."""


@functools.cache
def _safe_autograde():
    from nbgrader.converters import Autograde

    class SafeAutograde(Autograde):
        """nbgrader's Autograde that checks the submission (no link, hard link, device, fifo)
        before nbgrader copies or reads any of it: a link is refused, never followed."""

        def init_assignment(self, assignment_id: str, student_id: str) -> None:
            problem = intake.check_tree(Path(self._format_source(assignment_id, student_id)))
            if problem:
                self.log.error("not graded: %s", problem)
                raise Refused(problem)
            super().init_assignment(assignment_id, student_id)

    return SafeAutograde


def generate(config, names: list[str]) -> int:
    """`nbgrader generate_assignment --force` for each of `names`, in this one process; 0 if all worked."""
    from nbgrader.apps.api import capture_log
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    for name in names:
        c = copy.deepcopy(config)
        c.CourseDirectory.assignment_id = name
        app = GenerateAssignment(coursedir=CourseDirectory(config=c), config=c)
        app.force, app.create_assignment = True, True
        result = capture_log(app)
        if not result["success"]:
            print(result.get("log", "") + result.get("error", ""), file=sys.stderr)
            print(f"nbgrader generate_assignment {name} failed (its messages are above)", file=sys.stderr)
            return 1
        print(f"generated {name}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("course", type=Path)
    parser.add_argument("--cell-timeout", type=float, default=None)
    parser.add_argument("--unsafe-no-sandbox", action="store_true")
    parser.add_argument("--budget", type=float, default=None, help="VerifyChecks.submission_budget")
    parser.add_argument("--generate", nargs="+", metavar="ASSIGNMENT",
                        help="instead of grading: nbgrader generate_assignment for these, then exit")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")     # nbgrader's own SQLAlchemy and nbformat warnings, every submission
    speed_up_nbgrader()
    config = load_config(args.course.resolve(), args.cell_timeout, args.unsafe_no_sandbox, args.budget)
    if args.generate:
        return generate(config, args.generate)
    _say({"ready": True})
    for n, line in enumerate(sys.stdin):
        item = json.loads(line)
        ok, log, seconds, status = grade_batch(config, item["assignment"], item["students"])
        _say({"batch": n, "assignment": item["assignment"], "ok": ok, "log": log, "seconds": seconds,
              "status": status})
    return 0


if __name__ == "__main__":
    sys.exit(main())
