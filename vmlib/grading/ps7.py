"""ps7 design: PFNMAP or MIXEDMAP for a described driver.

The answer key is not here: the expected choice and the kernel's reason live in the hidden
part of each test cell (the nbgrader gradebook), and reach this suite as check() parameters.
Without them the suite only checks that the answer is one of the two choices.
"""

from __future__ import annotations

from vmlib.grading.suites import Case, Suite, plain_value, register

CHOICES = ("PFNMAP", "MIXEDMAP")


def _choice_cases(params: dict) -> list[Case]:
    """One case: the student's answer, against params['expected'] when the key is given."""
    expected = params.get("expected")
    if expected is not None and expected not in CHOICES:
        raise ValueError(f"ps7.choice: expected must be one of {CHOICES}, got {expected!r}")
    return [Case(params.get("driver", "your answer"), "answer", [], expected, params.get("why", ""))]


def _compare(case: Case, got) -> str | None:
    """None if the answer is well formed (and right, when the key is known), else the problem."""
    if got not in CHOICES:
        return f"your answer is {got!r}; write exactly \"PFNMAP\" or \"MIXEDMAP\""
    if case.expected is not None and got != case.expected:
        because = f" because {case.why}" if case.why else ""
        return f"you chose {got}; the kernel needs {case.expected}{because}"
    return None


register(Suite("ps7.choice", ("answer",), _choice_cases, run_case=plain_value, compare=_compare,
               params=("driver", "expected", "why")))
