"""nbgrader plug-in: every autograded test cell is judged outside the notebook; no student code runs in a kernel.

VerifyChecks runs in the sanitize stage, right after nbgrader has restored the locked cells from
its gradebook; it grades the solution cells through vmlib.grading.notebook.verify (the student's
code runs only there, in the grading sandbox). ApplyVerdicts then gives every autograded test cell
the outputs nbgrader scores: the clean verdict, or, for a test cell without a check() call the
verifier can read, an error saying so. nbgrader's Execute is not in the pipeline: running the
student's notebook in a Jupyter kernel would run student code outside the sandbox, and nothing
it printed could change a score anyway. `configure(c)` wires both, with nbgrader's other default
preprocessors, into a config object.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    IgnorePattern,
    LimitOutput,
    NbGraderPreprocessor,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from traitlets import Bool, Float

from vmlib.grading.notebook import verify

_VERDICTS: dict[tuple, dict] = {}
BUDGET_FACTOR = 10    # by default a submission's checks may run this many times the reference solution's time
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
                              "reference solution's time, measured here (at least BUDGET_FLOOR); "
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
    """BUDGET_FACTOR times the time the reference solution `source` takes to verify here (its second
    run: the first fills caches), at least BUDGET_FLOOR; BUDGET_FLOOR if there is no reference."""
    if not source.is_file():
        return BUDGET_FLOOR
    nb = json.loads(source.read_text(encoding="utf-8"))
    for _ in range(2):
        start = time.perf_counter()
        verify(nb, cell_timeout, unsafe_no_sandbox=unsafe, in_process=True, student="reference")
        took = time.perf_counter() - start
    return max(BUDGET_FLOOR, BUDGET_FACTOR * took)


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


def configure(c, cell_timeout: float = 10.0) -> None:
    """Put VerifyChecks and ApplyVerdicts into nbgrader's autograde pipeline on config `c` (no Execute)."""
    c.OverwriteCells.add_missing_cells = True
    c.Exporter.optimistic_validation = True      # validate each notebook once, after all preprocessors
    c.VerifyChecks.cell_timeout = cell_timeout
    c.Autograde.sanitize_preprocessors = [
        ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, VerifyChecks, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [
        ApplyVerdicts, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
        AssignLatePenalties, CheckCellMetadata]
