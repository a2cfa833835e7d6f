"""nbgrader plug-in: the verdict of every checking test cell comes from outside the student's kernel.

VerifyChecks runs in the sanitize stage, right after nbgrader has restored the locked cells from
its gradebook and before any student code has run; it grades the solution cells in a clean
process (vmlib.grading.notebook.verify). ApplyVerdicts runs after the notebook was executed and
replaces the outputs of those test cells with the verdict, so that nothing the student's code did
in the kernel (redefined helpers, patched modules, swallowed exceptions) changes a score.
`configure(c)` wires both, with nbgrader's default preprocessors, into a config object.
"""

from __future__ import annotations

from nbclient.exceptions import DeadKernelError
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    Execute,
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


def _key(resources) -> tuple:
    nbg = resources["nbgrader"]
    return (nbg["db_url"], nbg["assignment"], nbg["student"], nbg["notebook"])


class VerifyChecks(NbGraderPreprocessor):
    """Grade the notebook's check() cells in a clean process, before the notebook runs."""

    cell_timeout = Float(5.0, help="seconds one student cell or case may run in the clean grader").tag(config=True)
    unsafe_no_sandbox = Bool(False, help="grade without the bubblewrap sandbox: student code runs as you, "
                             "unisolated (only for trusted work on a machine without bwrap)").tag(config=True)

    def preprocess(self, nb, resources):
        _VERDICTS[_key(resources)] = verify(nb, self.cell_timeout, unsafe_no_sandbox=self.unsafe_no_sandbox)
        return nb, resources


class SafeExecute(Execute):
    """nbgrader's Execute, except that a kernel the student killed does not lose the whole notebook.

    The cells that ran keep their outputs; every grade cell left without output is marked failed,
    and ApplyVerdicts then puts the clean verdict on the checking test cells.
    """

    def preprocess(self, nb, resources, *args, **kwargs):
        try:
            return super().preprocess(nb, resources, *args, **kwargs)
        except DeadKernelError as exc:
            self.log.warning("the kernel died (%s); grading what ran and the clean verdicts", exc)
            for cell in nb.cells:
                if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade") and not cell.outputs:
                    cell.outputs = [NotebookNode(output_type="error", ename="DeadKernelError", evalue=str(exc),
                                                 traceback=["the kernel died before this cell ran"])]
            return nb, resources


class ApplyVerdicts(NbGraderPreprocessor):
    """Replace the outputs of verified test cells with the clean verdict."""

    def preprocess(self, nb, resources):
        verdicts = _VERDICTS.pop(_key(resources), {})
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.cell_type == "code" and grade_id in verdicts:
                cell.outputs = outputs_for(verdicts[grade_id])
        return nb, resources


def outputs_for(verdict: dict) -> list:
    """Notebook outputs that nbgrader scores as the verdict says: stdout text, and an error if wrong."""
    outputs = [NotebookNode(output_type="stream", name="stdout", text=verdict["text"] + "\n")]
    if not verdict["passed"]:
        outputs.append(NotebookNode(output_type="error", ename="WrongAnswer", evalue=verdict["first"],
                                    traceback=[f"WrongAnswer: {verdict['first']}"]))
    return outputs


def configure(c, cell_timeout: float = 10.0) -> None:
    """Put VerifyChecks and ApplyVerdicts into nbgrader's autograde pipeline on config `c`."""
    c.OverwriteCells.add_missing_cells = True
    c.Execute.timeout = 30
    c.SafeExecute.timeout = 30
    c.VerifyChecks.cell_timeout = cell_timeout
    c.Autograde.sanitize_preprocessors = [
        ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, VerifyChecks, CheckCellMetadata]
    c.Autograde.autograde_preprocessors = [
        SafeExecute, ApplyVerdicts, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
        AssignLatePenalties, CheckCellMetadata]
