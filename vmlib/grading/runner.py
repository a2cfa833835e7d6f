"""Clean side of a check: build cases, compute the reference, judge the student's answers.

`python -I -m vmlib.grading.runner` reads {"checks": [...], "cell_timeout": s} as JSON on stdin
and writes a JSON list of verdicts on stdout. It never runs the student's code itself: each
check starts its own vmlib.grading.child. A check is
    {"suite": "ps1.is_cow_mapping", "params": {...}, "cells": [source, ...],
     "bind": {suite_name: {"name": n} | {"value": v} | {"import": "module:attr"}}}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from vmlib.grading.suites import Case, Suite, get_suite

MAX_SHOWN = 5        # failures spelled out per check


def run_child(suite: Suite, check: dict, cases: list[Case], cell_timeout: float) -> tuple[list, str]:
    """Run the student side of one check; (events, how it ended: "ok", "timeout" or "died")."""
    request = {"suite": suite.id, "cells": check.get("cells", []), "bind": check["bind"],
               "cases": [{"label": c.label, "fn": c.fn, "args": c.args} for c in cases],
               "cell_timeout": cell_timeout}
    budget = cell_timeout * (len(request["cells"]) + len(cases)) + 10
    with tempfile.TemporaryDirectory(prefix="vmlib-grading-") as tmp:
        path = os.path.join(tmp, "events.jsonl")
        proc = subprocess.Popen([sys.executable, "-I", "-m", "vmlib.grading.child", path], cwd=tmp,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.communicate(json.dumps(request).encode(), timeout=budget)
            ended = "ok" if proc.returncode == 0 else "died"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            ended = "timeout"
        events = []
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        break
    return events, ended


def judge(suite: Suite, case: Case, event: dict | None, ended: str) -> str | None:
    """None if the student's answer for `case` agrees with the reference, else what went wrong."""
    fn, expected = case.fn, suite.show(case.expected)
    because = f" because {case.why}" if case.why else ""
    if event is None:
        return ("your code did not finish in time (an endless loop?)" if ended == "timeout"
                else "your code ended the grading process (os._exit or a crash) before this case finished")
    if "missing" in event:
        return f"{event['missing']} is not defined: run the cell that defines it and make sure it raises nothing"
    if "reference" in event:
        return f"your {fn} called {event['reference']}, the reference you are asked to write; this case does not count"
    if "raised" in event:
        return f"your {fn} {event['raised']}; the kernel says {expected}"
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


def verdict(suite: Suite, cases: list[Case], failures: list[str], cell_errors: list[str],
            shape_only: bool = False) -> dict:
    """Pack a verdict with its feedback text; a `shape_only` one checked only the form of the answers."""
    n = len(cases)
    if shape_only:
        lines = [f"{suite.id}: {n - len(failures)} of {n} answers well-formed; graded by the autograder"]
    else:
        lines = [f"{suite.id}: {n - len(failures)} of {n} cases agree with the kernel"]
    lines += [f"  note: your {e}" for e in cell_errors]
    if failures:
        lines.append(f"  first divergence: {failures[0]}")
        lines += [f"  also: {f}" for f in failures[1:MAX_SHOWN]]
        if len(failures) > MAX_SHOWN:
            lines.append(f"  ... and {len(failures) - MAX_SHOWN} more")
    return {"suite": suite.id, "passed": not failures, "cases": n, "failed": len(failures),
            "first": failures[0] if failures else None, "text": "\n".join(lines), "shape_only": shape_only}


def run_clean(checks: list[dict], cell_timeout: float = 5.0, python: str | None = None) -> list[dict]:
    """Verdicts for `checks`, computed in a fresh `python -I` the caller's code cannot reach."""
    payload = json.dumps({"checks": checks, "cell_timeout": cell_timeout})
    budget = sum(cell_timeout * (len(c.get("cells", [])) + 60) + 15 for c in checks) + 30
    proc = subprocess.run([python or sys.executable, "-I", "-m", "vmlib.grading.runner"], input=payload.encode(),
                          check=False, capture_output=True, timeout=budget, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise RuntimeError("vmlib.grading.runner failed:\n" + proc.stderr.decode(errors="replace")[-2000:])
    return json.loads(proc.stdout)


def main() -> None:
    request = json.load(sys.stdin)
    cell_timeout = float(request.get("cell_timeout", 5))
    json.dump([run_check(c, cell_timeout) for c in request["checks"]], sys.stdout)


if __name__ == "__main__":
    main()
