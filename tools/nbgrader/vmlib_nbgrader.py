"""nbgrader plug-in: every autograded test cell is judged outside the notebook; no student code runs in a kernel.

VerifyChecks runs in the sanitize stage, right after nbgrader has restored the locked cells from
its gradebook; it grades the solution cells through vmlib.grading.notebook.verify (the student's
code runs only there, in the grading sandbox). ApplyVerdicts then gives every autograded test cell
the outputs nbgrader scores: the clean verdict, or, for a test cell without a check() call the
verifier can read, an error saying so. nbgrader's Execute is not in the pipeline: running the
student's notebook in a Jupyter kernel would run student code outside the sandbox, and nothing
it printed could change a score anyway. `configure(c)` wires both, with nbgrader's other default
preprocessors, into a config object.

What a student receives is made safe here too (`configure` wires it for tools/grade.py, the
`nbgrader` commands and the formgrader alike):

* NormaliseMetadata (first in autograde): a student can only fail itself; nbgrader metadata it
  cannot read (another schema_version, not a dict, a grade_id that is not a plain name) is put
  right or dropped, so nbgrader's converter never stops on it for the whole batch.
* HideHiddenTests (feedback): the hidden part of every test cell is cut from its source, and a
  test cell with hidden tests shows only its score; its verdict (which names hidden cases, seeds,
  ps7's expected choice and reason, ps9's rows) stays in autograded/, which only the grader sees.
* nbgrader collect keeps a link in the exchange a link (never reads through it), so tools/grade.py
  refuses it.
* Feedback is only the HTML: nbgrader's generate_feedback would copy every other file of
  autograded/ into feedback/, which release_feedback hands out.
* safe_markdown2html: students' markdown and HTML (and graders' comments) are rendered, then
  cleaned by nh3 (the Python binding of the Rust sanitiser ammonia, maintained, allowlist-based:
  no script, no event handler attribute, no javascript: URL), in the feedback and in the formgrader.
"""

from __future__ import annotations

import csv
import functools
import json
import re
import time
from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbformat.notebooknode import NotebookNode
from nbgrader.converters import GenerateFeedback
from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.plugins import CsvExportPlugin
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    NbGraderPreprocessor,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from traitlets import Bool, Float, List

from vmlib.grading.notebook import verify

_VERDICTS: dict[tuple, dict] = {}
BUDGET_FACTOR = 20    # by default a submission's code may run this many times the reference solution's (student side)
BUDGET_FLOOR = 1.0    # ... and at least this many seconds
_BUDGETS: dict[str, float] = {}      # source notebook -> its budget, measured once per process
SECONDS = {"verify": 0.0}     # time spent judging in this process (tools/grade.py reports it by stage)
UNVERIFIED = ("this test cell has no check(...) call that the grader can read, so it was not graded: "
              "tools/grade.py never runs a notebook in a Jupyter kernel (ask your instructor)")


def _key(resources) -> tuple:
    nbg = resources["nbgrader"]
    return (nbg["db_url"], nbg["assignment"], nbg["student"], nbg["notebook"])


class VerifyChecks(NbGraderPreprocessor):
    """Grade the notebook's check() cells outside the notebook (vmlib.grading.notebook.verify).

    The clean side runs in nbgrader's own process (no student code runs there: no Execute); the
    student's cells run in a fresh sandbox per notebook.
    """

    cell_timeout = Float(5.0, help="seconds one student cell or case may run in the clean grader").tag(config=True)
    unsafe_no_sandbox = Bool(False, help="grade without the bubblewrap sandbox: student code runs as you, "
                             "unisolated (only for trusted work on a machine without bwrap)").tag(config=True)

    submission_budget = Float(0.0, help="seconds the student's code may run in all the checks of one submission, "
                              "after which the rest fail as 'time budget used'; 0: BUDGET_FACTOR times the "
                              "reference solution's running time on the student side, measured here (at least "
                              "BUDGET_FLOOR); "
                              "negative: no budget").tag(config=True)

    def preprocess(self, nb, resources):
        start = time.perf_counter()
        _VERDICTS[_key(resources)] = verify(nb, self.cell_timeout, unsafe_no_sandbox=self.unsafe_no_sandbox,
                                            in_process=True, student=resources["nbgrader"]["student"],
                                            budget=self.budget(resources))
        SECONDS["verify"] += time.perf_counter() - start
        return nb, resources

    def budget(self, resources) -> float | None:
        """The seconds this submission's checks may take together (None: no limit)."""
        if self.submission_budget:
            return self.submission_budget if self.submission_budget > 0 else None
        nbg, course = resources["nbgrader"], self.config.CourseDirectory
        source = (Path(course.get("root", ".")) / course.get("source_directory", "source") / nbg["assignment"]
                  / f"{nbg['notebook']}.ipynb")
        if str(source) not in _BUDGETS:
            _BUDGETS[str(source)] = reference_budget(source, self.cell_timeout, self.unsafe_no_sandbox)
        return _BUDGETS[str(source)]


def reference_budget(source: Path, cell_timeout: float, unsafe: bool) -> float:
    """BUDGET_FACTOR times the time the reference solution `source`'s code runs on the student side
    here (what a budget counts: sandbox.StudentSide.spent; not the clean side's references and
    judging), in its second run (the first fills caches), at least BUDGET_FLOOR; BUDGET_FLOOR if
    there is no reference."""
    from vmlib.grading import runner

    if not source.is_file():
        return BUDGET_FLOOR
    nb = json.loads(source.read_text(encoding="utf-8"))
    for _ in range(2):
        verify(nb, cell_timeout, unsafe_no_sandbox=unsafe, in_process=True, student="reference")
    return max(BUDGET_FLOOR, BUDGET_FACTOR * runner.SPENT[0])


class ApplyVerdicts(NbGraderPreprocessor):
    """Give each autograded test cell the outputs of its clean verdict (an error if it has none)."""

    def preprocess(self, nb, resources):
        verdicts = _VERDICTS.pop(_key(resources), {})
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
                continue
            verdict = verdicts.get(meta.get("grade_id"))
            cell.outputs = outputs_for(verdict or {"passed": False, "first": UNVERIFIED, "text": UNVERIFIED})
        return nb, resources


def outputs_for(verdict: dict) -> list:
    """Notebook outputs that nbgrader scores as the verdict says: stdout text, and an error if wrong."""
    outputs = [NotebookNode(output_type="stream", name="stdout", text=verdict["text"] + "\n")]
    if not verdict["passed"]:
        outputs.append(NotebookNode(output_type="error", ename="WrongAnswer", evalue=verdict["first"],
                                    traceback=[f"WrongAnswer: {verdict['first']}"]))
    return outputs


SCHEMA_VERSION = 3                      # nbgrader 0.9's cell metadata format
_GRADE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


class NormaliseMetadata(NbGraderPreprocessor):
    """Put right the nbgrader metadata a student may have changed, before nbgrader reads it.

    Another schema_version on a cell made nbgrader's converter stop the whole batch: every cell
    gets the version this nbgrader reads (the locked cells come back from the gradebook anyway).
    Metadata that is not a dict, or whose grade_id is not a plain name (the formgrader and the
    feedback print grade_id as HTML), is dropped: the cell is then an ordinary cell, and a graded
    cell it replaced comes back from the gradebook (OverwriteCells.add_missing_cells).
    """

    def preprocess(self, nb, resources):
        if not isinstance(nb.get("metadata"), dict):
            nb.metadata = NotebookNode()
        for cell in nb.cells:
            if not isinstance(cell.get("metadata"), dict):
                cell.metadata = NotebookNode()
            meta = cell.metadata.get("nbgrader")
            if meta is None:
                continue
            grade_id = meta.get("grade_id", "") if isinstance(meta, dict) else None
            if not isinstance(grade_id, str) or (grade_id and not _GRADE_ID.match(grade_id)):
                del cell.metadata["nbgrader"]
            else:
                meta["schema_version"] = SCHEMA_VERSION
        return nb, resources


BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
HIDDEN_SHOWN = "# hidden tests: run by the autograder; they are not shown in feedback"


def without_hidden(source: str) -> str:
    """`source` without its hidden-test regions (from a line holding BEGIN HIDDEN TESTS to the
    line holding END HIDDEN TESTS, or to the end), each replaced by one line saying so."""
    out, hidden = [], False
    for line in source.splitlines():
        if not hidden and BEGIN_HIDDEN in line:
            hidden = True
            out.append(line[:len(line) - len(line.lstrip())] + HIDDEN_SHOWN)
        if not hidden:
            out.append(line)
        elif END_HIDDEN in line:
            hidden = False
    return "\n".join(out)


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback: no hidden test source, seed, key, expected value or reason reaches a student.

    The source of every cell loses its hidden-test regions (without_hidden). A cell that had one
    shows, instead of its verdict, only its score: the verdict of hidden cases names them, their
    expected values and the reasons (ps7), which would then be out for every later cohort. The
    visible checks, which reach the same decision rules, keep their full feedback.
    """

    display_data_priority = List(GetGrades.display_data_priority.default_value, config=True)   # as GetGrades

    def preprocess_cell(self, cell, resources, index):
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if BEGIN_HIDDEN in source:
            cell.source = without_hidden(source)
            if cell.get("cell_type") == "code":
                meta = cell.metadata.get("nbgrader", {})
                score, points = meta.get("score"), meta.get("points")
                got = f"{score:g} of {points:g} points" if isinstance(score, (int, float)) and isinstance(
                    points, (int, float)) else "see the score above"
                cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=(
                    f"hidden tests: {got}. The hidden cases are not described in feedback; the visible "
                    f"tests check the same rules and say what went wrong.\n"))]
        return cell, resources


def safe_markdown2html(source: str) -> str:
    """Markdown (with any HTML in it) to HTML that runs nothing when opened: rendered by nbconvert's
    mistune renderer, then cleaned by nh3 (no script or style element, no on* attribute, links and
    images only to http, https and mailto URLs and relative paths)."""
    return _safe_markdown2html(source if isinstance(source, str) else str(source))


@functools.lru_cache(maxsize=4096)     # a class's notebooks share most of their text: each is rendered once
def _safe_markdown2html(source: str) -> str:
    import nh3
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    html = markdown2html_mistune(source)
    return nh3.clean(html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")


def highlight_code(source: str, language: str | None = None, metadata=None) -> str:
    """nbconvert's Highlight2HTML (the feedback's code cells, as Python), each source highlighted once:
    most code cells (the instructor's tests and set-up) are the same in every student's notebook."""
    magics = metadata.get("magics_language") if hasattr(metadata, "get") else None
    return _highlight_code(source if isinstance(source, str) else str(source), language, magics)


@functools.lru_cache(maxsize=4096)
def _highlight_code(source: str, language: str | None, magics: str | None) -> str:
    from nbconvert.filters.highlight import Highlight2HTML

    return Highlight2HTML(pygments_lexer="ipython3")(source, language, {"magics_language": magics} if magics else None)


RELEASE_NEEDS = ("timestamp.txt", "submission_secret.txt")   # what release_feedback reads (never sends)


def _feedback_files_only(self, assignment_id: str, student_id: str) -> None:
    """GenerateFeedback.init_assignment: copy only the two files release_feedback reads to name the
    feedback (regular files only, no link followed). nbgrader would copy every file of the student's
    autograded/ folder into feedback/, from which release_feedback hands out the HTML."""
    import intake

    source = Path(self._format_source(assignment_id, student_id))
    dest = Path(self._format_dest(assignment_id, student_id))
    for name in RELEASE_NEEDS:
        if (source / name).is_file() and intake.refusal(source / name, source) is None:
            dest.mkdir(parents=True, exist_ok=True)
            intake.copy_file(source / name, dest / name)


GenerateFeedback.init_assignment = _feedback_files_only


def _collect_keeps_links(self, src, dest, log=None) -> None:
    """ExchangeCollect.do_copy: nbgrader's copy from the exchange, except that a link is copied as
    a link, never followed, and a fifo, socket or device is left out. The exchange is writable by
    every student: nbgrader's own copy, run by the instructor, would read through a student's link
    to a solution notebook or the gradebook and collect the target as the submission; kept as a
    link, tools/grade.py refuses it ("not graded: ... is a symbolic link")."""
    import os
    import shutil
    import stat

    from nbgrader.utils import ignore_patterns

    if self.get_size(src) > 1000 * self.coursedir.max_dir_size:
        raise RuntimeError(f"Directory size is too big: {src}")
    patterns = ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                               max_file_size=self.coursedir.max_file_size, log=self.log)

    def ignore(directory, names):
        special = [n for n in names if not stat.S_ISDIR(m := os.lstat(os.path.join(directory, n)).st_mode)
                   and not stat.S_ISREG(m) and not stat.S_ISLNK(m)]
        links = {n for n in names if os.path.islink(os.path.join(directory, n))}
        return set(special) | (set(patterns(directory, [n for n in names if n not in links])))

    shutil.copytree(src, dest, symlinks=True, ignore=ignore)
    if self.coursedir.groupshared:
        for dirname, _, filenames in os.walk(dest):
            os.chmod(dirname, (os.stat(dirname).st_mode | 0o2770) & 0o2777)
            for name in filenames:
                path = os.path.join(dirname, name)
                if not os.path.islink(path):          # chmod follows a link: never for one
                    os.chmod(path, (os.stat(path).st_mode | 0o660) & 0o777)


ExchangeCollect.do_copy = _collect_keeps_links


class StatusCsvExport(CsvExportPlugin):
    """nbgrader's CSV export with a "status" column and a row for every submission tools/grade.py
    saw: "graded", "graded (no feedback: ...)", "not graded: <reason>" (from the course's
    status.json; a refused submission may never have reached the gradebook), or, for a student
    without a word there, "graded" when the gradebook has a submission and "no submission" if not.
    A submission that was not graded scores 0, whatever an earlier run left in the gradebook."""

    FIELDS = ("assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email", "raw_score",
              "late_submission_penalty", "score", "max_score")

    def nbgrader_rows(self, gradebook) -> tuple[list[dict], set]:
        """The rows nbgrader's CsvExportPlugin writes (every assignment x every student, its formatting),
        read with one query per assignment instead of a few per row; and the (assignment, student)
        pairs the gradebook has a submission of."""
        from nbgrader.api import SubmittedAssignment
        from sqlalchemy.orm import joinedload, undefer

        def text(value) -> str:
            return "" if value is None else value if isinstance(value, str) else str(value)

        wanted_a = [str(a) for a in self.assignment]
        wanted_s = [str(s) for s in self.student]
        students = [s for s in gradebook.students if not wanted_s or s.id in wanted_s]
        rows, submitted = [], set()
        for a in gradebook.assignments:
            if wanted_a and a.name not in wanted_a:
                continue
            subs = {sub.student_id: sub for sub in gradebook.db.query(SubmittedAssignment)
                    .filter(SubmittedAssignment.assignment_id == a.id)
                    .options(undefer(SubmittedAssignment.score), undefer(SubmittedAssignment.late_submission_penalty),
                             joinedload(SubmittedAssignment.student))}
            max_score = a.max_score
            for st in students:
                sub = subs.get(st.id)
                row = {"assignment": a.name, "duedate": a.duedate, "student_id": st.id, "last_name": st.last_name,
                       "first_name": st.first_name, "email": st.email, "max_score": max_score, "timestamp": "",
                       "raw_score": 0.0, "late_submission_penalty": 0.0, "score": 0.0}
                if sub is not None:
                    submitted.add((a.name, st.id))
                    row.update(timestamp=sub.timestamp, raw_score=sub.score, late_submission_penalty=sub.late_submission_penalty,
                               score=max(0.0, sub.score - sub.late_submission_penalty))
                rows.append({k: text(row[k]) for k in self.FIELDS})
        return rows, submitted

    def export(self, gradebook) -> None:
        import intake

        dest = Path(self.to or "grades.csv")
        self.log.info("Exporting grades to %s", dest)
        statuses = intake.read_status(Path(self.parent.coursedir.root))
        rows, submitted = self.nbgrader_rows(gradebook)
        fields = list(self.FIELDS)
        seen = set()
        for row in rows:
            key = (row["assignment"], row["student_id"])
            seen.add(key)
            status = statuses.get(key[0], {}).get(key[1])
            if status is None:
                status = intake.GRADED if key in submitted else "no submission"
            row["status"] = status
            if status.startswith("not graded"):
                row.update(raw_score="0.0", late_submission_penalty="0.0", score="0.0")
        max_scores = {a.name: a.max_score for a in gradebook.assignments}
        for name, by_student in sorted(statuses.items()):
            for student, status in sorted(by_student.items()):
                if (name, student) not in seen and (not self.assignment or name in self.assignment):
                    rows.append({**dict.fromkeys(fields, ""), "assignment": name, "student_id": student,
                                 "raw_score": "0.0", "late_submission_penalty": "0.0", "score": "0.0",
                                 "max_score": str(max_scores.get(name, "")), "status": status})
        with dest.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[*fields, "status"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


def configure(c, cell_timeout: float = 10.0) -> None:
    """Put VerifyChecks and ApplyVerdicts into nbgrader's autograde pipeline on config `c` (no Execute),
    and what keeps feedback safe into its feedback, formgrader and export."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

    c.OverwriteCells.add_missing_cells = True
    c.Exporter.optimistic_validation = True      # validate each notebook once, after all preprocessors
    c.VerifyChecks.cell_timeout = cell_timeout
    c.Autograde.sanitize_preprocessors = [
        NormaliseMetadata, ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, VerifyChecks,
        CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [
        ApplyVerdicts, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
        AssignLatePenalties, CheckCellMetadata]
    c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
    c.HTMLExporter.filters = {"markdown2html": safe_markdown2html, "highlight_code": highlight_code}   # feedback, formgrader
    c.HTMLExporter.sanitize_html = True          # outputs: no JavaScript, HTML cleaned (bleach)
    c.ExportApp.plugin_class = StatusCsvExport
