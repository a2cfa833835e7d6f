"""Verify a notebook from outside: read its test cells, grade its solution cells in a clean process.

This is the verdict that counts. It reads the notebook as JSON (a dict) and never executes it in
a Jupyter kernel: each test cell's `check(...)` calls are parsed, not run, and the student's
solution cells go, as text, to vmlib.grading.runner. The student's notebook code therefore
cannot change the checks, the grading helpers or the reference.
"""

from __future__ import annotations

import ast
import json
import re
import sys

from vmlib.grading.runner import run_clean


def _nbgrader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


_DEFINITION = (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign)


def _defines(source: str) -> bool:
    """Whether a cell only defines things (a student's helper cell): a function or class, and nothing at
    its top level but definitions, imports and assignments (a cell that runs a replay is not one)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    docstring = [n for n in body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)]
    return (any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in body)
            and all(isinstance(n, _DEFINITION) or n in docstring for n in body))


def solution_cells(nb: dict) -> list[tuple[int, str]]:
    """(number, source) of the answer (solution) code cells and of the code cells the student added
    that define a function or class (a helper, a base class of a driver), in notebook order; cells
    are numbered 1, 2, ... over the whole notebook, markdown included, as JupyterLab counts them."""
    return [(n, _source(c)) for n, c in enumerate(nb["cells"], 1)
            if c.get("cell_type") == "code" and (_nbgrader(c).get("solution")
                                                 or not _nbgrader(c) and _defines(_source(c)))]


_CELL = re.compile(r"\bcell (\d+)\b")


def renumber(text: str, labels: list[str]) -> str:
    """`text` with the grader's "cell k" (the k-th cell it was sent) named by labels[k - 1]."""
    def sub(m):
        k = int(m.group(1))
        return labels[k - 1] if 0 < k <= len(labels) else m.group(0)
    return _CELL.sub(sub, text)


def parse_checks(source: str) -> list[dict]:
    """The check(...) calls at the top level of a test cell, as runner requests without cells."""
    checks = []
    for node in ast.parse(source).body:
        call = node.value if isinstance(node, ast.Expr) else None
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        if getattr(func, "id", None) != "check" and getattr(func, "attr", None) != "check":
            continue
        suite = ast.literal_eval(call.args[0])
        names = [{"name": a.id} if isinstance(a, ast.Name) else {"value": ast.literal_eval(a)}
                 for a in call.args[1:]]
        params = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        checks.append({"suite": suite, "params": params, "answers": names})
    return checks


def checking_cells(nb: dict) -> list[tuple[str, list[dict]]]:
    """(grade_id, checks) for each autograded test cell that calls check()."""
    out = []
    for cell in nb["cells"]:
        meta = _nbgrader(cell)
        if cell.get("cell_type") == "code" and meta.get("grade") and not meta.get("solution"):
            checks = parse_checks(_source(cell))
            if checks:
                out.append((meta["grade_id"], checks))
    return out


def verify(nb: dict, cell_timeout: float = 5.0, *, trusted: bool = False,
           unsafe_no_sandbox: bool = False, in_process: bool = False, student: str | None = None,
           budget: float | None = None) -> dict[str, dict]:
    """{grade_id: verdict} for every checking test cell; a verdict has passed, first, text and
    shape_only (only the form of the answer was checked).

    `student` is the id nbgrader grades the notebook for; suites with a "student" parameter (ps9:
    the mutation is drawn from it) get that one, never one written in the notebook (without it,
    the suite takes the id of the user running this).

    The solution cells run in the sandbox (see run_clean); `trusted` (the student's own
    selfcheck) may run without one, `unsafe_no_sandbox` is the instructor's explicit opt-out;
    `in_process` judges in this process (only where no student code runs: the autograder).
    `budget`: seconds the solution cells may run in all checks together (None: no such limit).
    """
    from vmlib.grading.suites import get_suite

    numbered = solution_cells(nb)
    cells, labels = [source for _, source in numbered], [f"notebook cell {n}" for n, _ in numbered]
    requests, owners = [], []
    for grade_id, checks in checking_cells(nb):
        for c in checks:
            suite = get_suite(c["suite"])
            names, params = suite.names, with_student(suite, c["params"], student)
            requests.append({"suite": c["suite"], "params": params, "cells": cells,
                             "bind": dict(zip(names, c["answers"]))})
            owners.append(grade_id)
    verdicts: dict[str, dict] = {}
    results = run_clean(requests, cell_timeout, trusted=trusted, unsafe_no_sandbox=unsafe_no_sandbox,
                        in_process=in_process, budget=budget) if requests else []
    for grade_id, v in zip(owners, results):
        merged = verdicts.setdefault(grade_id, {"passed": True, "first": None, "texts": [], "shape_only": True,
                                                "suites": []})
        merged["suites"].append(v.get("suite"))
        merged["passed"] = merged["passed"] and v["passed"]
        merged["first"] = merged["first"] or (v["first"] and renumber(v["first"], labels))
        merged["texts"].append(renumber(v["text"], labels))
        merged["shape_only"] = merged["shape_only"] and bool(v.get("shape_only"))
    for merged in verdicts.values():
        merged["text"] = "\n".join(merged.pop("texts"))
    return verdicts


def with_student(suite, params: dict, student: str | None) -> dict:
    """For a suite with a "student" parameter: `params` with "student" set to `student` (or left out,
    so that the suite takes this user's id), whatever the notebook wrote there."""
    if "student" not in suite.params:
        return params
    params = {k: v for k, v in params.items() if k != "student"}
    return {**params, "student": student} if student else params


def find_notebook(name: str) -> str:
    """The notebook `name` names: a path, or a bare file name found in the current folder or in
    exercises/<assignment>/ below it (so the printed command works from both); ValueError if none."""
    import os
    if os.path.exists(name):
        return name
    stem = os.path.splitext(os.path.basename(name))[0]
    candidate = os.path.join("exercises", stem, f"{stem}.ipynb")
    if os.path.basename(name) == name and os.path.exists(candidate):
        return candidate
    raise ValueError(f"no notebook {name!r} here ({os.getcwd()}): run this from the notebook's folder, "
                     f"or give its path")


# suites whose shape-only check sits in a test cell of its own (the values are checked in another
# cell): the autograder gives that cell its points for a well-formed answer, so the self-check counts them.
# Elsewhere (ps7) the same cell also holds the hidden check, so its points are not known here.
SHAPE_CELLS_EARN = frozenset({"ps6.shape", "ps9.row"})


def selfcheck(path: str, cell_timeout: float = 5.0) -> int:
    """Print a student's score on the visible checks of the notebook at `path`; 0 if all pass."""
    with open(find_notebook(path), encoding="utf-8") as f:
        nb = json.load(f)
    verdicts = verify(nb, cell_timeout, trusted=True)
    got = total = 0
    failed = False
    for cell in nb["cells"]:
        meta = _nbgrader(cell)
        if not meta.get("grade") or meta.get("solution") or cell.get("cell_type") != "code":
            continue
        points = float(meta.get("points", 0))
        v = verdicts.get(meta["grade_id"])
        if v is None:
            print(f"[hidden] {meta['grade_id']} ({points:g} points): hidden cases, run by the autograder")
            continue
        if not v["shape_only"] or set(v["suites"]) <= SHAPE_CELLS_EARN:
            total += points
            got += points if v["passed"] else 0
        if v["shape_only"]:
            label = "well-formed" if v["passed"] else "FAIL"
            print(f"[{label}] {meta['grade_id']} ({points:g} points): whether it is right is graded by the autograder")
        else:
            print(f"[{'pass' if v['passed'] else 'FAIL'}] {meta['grade_id']} ({points:g} points)")
        failed = failed or not v["passed"]
        print("    " + v["text"].replace("\n", "\n    "))
    print(f"visible checks: {got:g} of {total:g} points")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """`python -m vmlib.grading.notebook NOTEBOOK`: the student's self-check."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m vmlib.grading.selfcheck NOTEBOOK.ipynb", file=sys.stderr)
        return 2
    try:
        return selfcheck(args[0])
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
