"""Clean side of a check: build cases, compute the reference, judge the student's answers.

`python -I -m vmlib.grading.runner` reads {"checks": [...], "cell_timeout": s, "sandbox": bool}
as JSON on stdin and writes a JSON list of verdicts on stdout. It never runs the student's code
itself: one student side (vmlib.grading.sandbox.StudentSide: a bubblewrap sandbox with a vmlib
that lacks the graded functions) runs every check of the request, each in a forked worker. A
check is
    {"suite": "ps1.is_cow_mapping", "params": {...}, "cells": [source, ...],
     "bind": {suite_name: {"name": n} | {"value": v} | {"import": "module:attr"}}}
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tempfile

from vmlib.grading import sandbox
from vmlib.grading.sim import MAX_ROUNDS
from vmlib.grading.suites import Case, Suite, get_suite
from vmlib.grading.verdicts import MAX_FAILURE, MAX_SHOWN, verdict  # noqa: F401 - kept names

CHECK_STEPS = 4      # a check may take this many cell timeouts in all (+ STARTUP_SLACK), then it is cut
STARTUP_SLACK = 5.0
_SIDE: list = []     # the student side of this runner process (one per request)
SPENT = [0.0]        # seconds the student side of the last verdicts_for() ran (what a budget counts)


def run_child(suite: Suite, check: dict, cases: list[Case], cell_timeout: float) -> tuple[list, str]:
    """Run the student side of one check; (events, how it ended: see sandbox.StudentSide.run)."""
    run_case = suite.run_case
    request = {"suite": suite.id, "cells": check.get("cells", []), "bind": check["bind"],
               "cases": [{"label": c.label, "fn": c.fn, "args": c.args} for c in cases],
               "prelude": suite.prelude(check.get("params", {})) if callable(suite.prelude) else suite.prelude,
               "run_case": f"{run_case.__module__}:{run_case.__qualname__}" if run_case else None}
    limit = CHECK_STEPS * cell_timeout + STARTUP_SLACK
    if _SIDE:
        events, ended = _SIDE[-1].run(request, cell_timeout, limit)
        stopped = _SIDE[-1].stopped
    else:                 # outside verdicts_for(): a sandbox for this one check (none: SandboxUnavailable)
        sandboxed = sandbox.require(trusted=False, unsafe_no_sandbox=False)
        with sandbox.StudentSide(suite.references, sandboxed=sandboxed) as side:
            events, ended = side.run(request, cell_timeout, limit)
            stopped = side.stopped
    return explain_stopped(clean_events(events), request["cells"], stopped), ended


def explain_stopped(events: list[dict], cells: list[str], stopped: dict) -> list[dict]:
    """`events` in which a name reported missing because the cell defining it did not finish (and so
    defines nothing, in this check and the later ones: sandbox.StudentSide.run) says so."""
    if not stopped:
        return events
    defines = {k: _top_level_names(cells[k - 1]) for k, (digest, _) in stopped.items()
               if k <= len(cells) and sandbox._digest(cells[k - 1]) == digest}
    out = []
    for e in events:
        k = next((k for k in sorted(defines) if e.get("missing") in defines[k]), None) if "missing" in e else None
        if k is not None:
            e = {"i": e["i"], "stopped": f"is not defined: your cell {k} {stopped[k][1]}, so nothing it defines "
                                        "is graded (later checks do not run it again)"}
        out.append(e)
    return out


def _top_level_names(source: str) -> set[str]:
    """The names a cell binds at its top level (functions, classes, assignments, imports); parsed, not run."""
    try:
        body = ast.parse(source).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def clean_events(events: list) -> list[dict]:
    """The well-formed events only: what the student side sent is untrusted data."""
    out = []
    for e in events:
        if not isinstance(e, dict):
            continue
        if "setup" in e:
            setup = e["setup"]
            if (isinstance(setup, dict) and isinstance(setup.get("errors"), list)
                    and all(isinstance(x, str) for x in setup["errors"])
                    and isinstance(setup.get("missing"), dict)
                    and all(isinstance(x, str) for x in setup["missing"].values())):
                out.append({"setup": {"errors": setup["errors"][:20], "missing": setup["missing"]}})
        elif isinstance(e.get("i"), int) and not isinstance(e["i"], bool):
            if "result" in e:
                out.append({"i": e["i"], "result": e["result"]})
            else:
                kind = next((k for k in ("missing", "reference", "raised") if isinstance(e.get(k), str)), None)
                if kind:
                    out.append({"i": e["i"], kind: e[kind][:500]})
    return out


def judge(suite: Suite, case: Case, event: dict | None, ended: str) -> str | None:
    """None if the student's answer for `case` agrees with the reference, else what went wrong."""
    fn, expected = case.fn, suite.show(case.expected)
    because = f" because {case.why}" if case.why else ""
    if event is None:
        return sandbox.UNFINISHED.get(ended, sandbox.UNFINISHED["died"])
    if "stopped" in event:
        return f"your {fn} {event['stopped']}"
    if "missing" in event:
        return f"{event['missing']} is not defined: run the cell that defines it and make sure it raises nothing"
    if "reference" in event:
        return f"your {fn} called {event['reference']}, the reference you are asked to write; this case does not count"
    if "raised" in event:           # a shape-only case (no expected answer) has nothing the kernel says
        unchecked = suite.compare is not None and case.expected is None
        return f"your {fn} {event['raised']}" + ("" if unchecked else f"; the kernel says {expected}")
    got = event["result"]
    if suite.compare is not None:
        return suite.compare(case, got)
    if got != case.expected:
        return f"your {fn} returned {suite.show(got)}; the kernel says {expected}{because}"
    return None


def run_check(check: dict, cell_timeout: float = 5.0) -> dict:
    """The verdict of one check: passed, counts, the first divergences and a feedback text."""
    suite = get_suite(check["suite"])
    params = check.get("params", {})
    unknown = set(params) - set(suite.params)
    if unknown:
        raise ValueError(f"{suite.id}: unknown check() parameters {sorted(unknown)}; allowed: {suite.params}")
    if set(check["bind"]) != set(suite.names):
        raise ValueError(f"{suite.id}: check() needs {', '.join(suite.names)}, got {', '.join(check['bind'])}")
    if suite.grade is not None:      # simulator suites ask the child questions, round by round
        return suite.grade(suite, params, lambda cases: run_child(suite, check, cases, cell_timeout))
    cases = suite.make_cases(params)
    events, ended = run_child(suite, check, cases, cell_timeout)
    setup = next((e["setup"] for e in events if "setup" in e), {"errors": [], "missing": {}})
    by_case = {e["i"]: e for e in events if "i" in e}
    failures = []
    for i, case in enumerate(cases):
        problem = judge(suite, case, by_case.get(i), ended)
        if problem:
            failures.append(f"case {i + 1} ({case.label}): {problem}")
    shape_only = suite.compare is not None and all(case.expected is None for case in cases)
    return verdict(suite, cases, failures, setup["errors"], shape_only)


def run_clean(checks: list[dict], cell_timeout: float = 5.0, python: str | None = None, *,
              trusted: bool = False, unsafe_no_sandbox: bool = False, in_process: bool = False,
              budget: float | None = None) -> list[dict]:
    """Verdicts for `checks`, computed in a fresh `python -I` the caller's code cannot reach.

    The student's code runs in a sandbox (vmlib.grading.sandbox). Without one, untrusted work
    raises sandbox.SandboxUnavailable unless `unsafe_no_sandbox`; `trusted` work (a student's own
    check or selfcheck) then runs in a plain process, still without the graded functions.
    `in_process`: the clean side runs in the calling process instead, which must then be one no
    student code runs in (the autograder's worker, tools/nbgrader/batch.py); the student side
    is still a fresh sandbox for this call. `budget`: seconds the student's code may run in all
    these checks together (sandbox.StudentSide.run); None: no such limit.
    """
    sandboxed = sandbox.require(trusted, unsafe_no_sandbox)
    if in_process:
        return verdicts_for(checks, cell_timeout, sandboxed, budget)
    payload = json.dumps({"checks": checks, "cell_timeout": cell_timeout, "sandbox": sandboxed, "budget": budget})
    wait = len(checks) * MAX_ROUNDS * (CHECK_STEPS * cell_timeout + STARTUP_SLACK + 2) + sandbox.STARTUP + 60
    proc = subprocess.run([python or sys.executable, "-I", "-m", "vmlib.grading.runner"], input=payload.encode(),
                          check=False, capture_output=True, timeout=wait, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise RuntimeError("vmlib.grading.runner failed:\n" + proc.stderr.decode(errors="replace")[-2000:])
    return json.loads(proc.stdout)


def verdicts_for(checks: list[dict], cell_timeout: float, sandboxed: bool, budget: float | None = None) -> list[dict]:
    """The verdicts of `checks` (one submission's), judged here, with one student side for them all
    (sharing `budget` seconds, if given)."""
    suites = [get_suite(c["suite"]) for c in checks]
    references = sorted({r for s in suites for r in s.references})
    with sandbox.StudentSide(references, sandboxed=sandboxed, budget=budget) as side:
        side.start()      # it boots while the first references are computed
        _SIDE[:] = [side]
        try:
            return [run_check(c, cell_timeout) for c in checks]
        finally:
            _SIDE.clear()
            SPENT[0] = side.spent


def main() -> None:
    request = json.load(sys.stdin)
    cell_timeout = float(request.get("cell_timeout", 5))
    budget = request.get("budget")
    json.dump(verdicts_for(request["checks"], cell_timeout, bool(request.get("sandbox", True)),
                           None if budget is None else float(budget)), sys.stdout)


if __name__ == "__main__":
    main()
