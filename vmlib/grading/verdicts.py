"""A verdict: the feedback text and counts of one check, for case suites (runner) and scenario suites (sim).

Its own module so that vmlib.grading.runner (which imports sim) and vmlib.grading.sim (which packs
its verdicts here) do not import each other.
"""

from __future__ import annotations

from vmlib.grading.suites import Case, Suite

MAX_SHOWN = 5           # failures listed in the feedback
MAX_FAILURE = 2000      # characters of one failure line: a student's answer shown in it can be long, so it
                        # is cut (a scenario's divergence, its row and consequence fit well within this)


def verdict(suite: Suite, cases: list[Case], failures: list[str], cell_errors: list[str],
            shape_only: bool = False, unit: str = "cases") -> dict:
    """Pack a verdict with its feedback text; a `shape_only` one checked only the form of the answers;
    `unit` is what was counted ("cases", "scenarios")."""
    n = len(cases)
    failures = [f if len(f) <= MAX_FAILURE else f[:MAX_FAILURE - 20] + " ... (cut here)" for f in failures]
    if shape_only:
        lines = [f"{suite.id}: {n - len(failures)} of {n} answers well-formed; graded by the autograder"]
    else:
        lines = [f"{suite.id}: {n - len(failures)} of {n} {unit} agree with the kernel"]
    lines += [f"  note: {e}" for e in cell_errors]        # "cell 3 raised ...", renamed by the caller
    if failures:
        lines.append(f"  first divergence: {failures[0]}")
        lines += [f"  also: {f}" for f in failures[1:MAX_SHOWN]]
        if len(failures) > MAX_SHOWN:
            lines.append(f"  ... and {len(failures) - MAX_SHOWN} more")
    return {"suite": suite.id, "passed": not failures, "cases": n, "failed": len(failures),
            "first": failures[0] if failures else None, "text": "\n".join(lines), "shape_only": shape_only}
