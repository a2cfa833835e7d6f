"""Test suites as data: what a student writes, the cases, and how a divergence is told.

A suite runs on two sides. The clean side (the runner, a fresh interpreter the student's code
never touches) builds the cases and computes the reference answer of each. The student side
(vmlib.grading.child, in the sandbox) runs the student's code on the same inputs. Only JSON crosses
between them, so the student's code cannot change the reference it is compared with.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# assignment prefix -> module that registers its suites
_MODULES = {f"ps{n}": f"vmlib.grading.ps{n}" for n in range(1, 12)}


@dataclass
class Case:
    """One input for the student's code and the reference answer for it."""

    label: str                # e.g. "MAP_SHARED, fd opened read-only"
    fn: str                   # which of the suite's names is called
    args: list                # JSON arguments
    expected: Any = None      # JSON reference result (filled on the clean side)
    why: str = ""             # the kernel's reason, shown when the student diverges


@dataclass
class Suite:
    """What the student writes (`names`, in check() order) and how it is tested."""

    id: str
    names: tuple[str, ...]
    make_cases: Callable[[dict], list[Case]]          # params -> cases, expected filled in
    prelude: str | Callable[[dict], str] = ""          # run before the student's cells (or params -> that)
    references: tuple[str, ...] = ()                   # "module:attr" the student writes: absent while grading
    show: Callable[[Any], str] = repr                  # how a result reads in feedback
    run_case: Callable[[dict, Case], Any] | None = None  # student side (a module in the sandbox); default: fn(*args)
    compare: Callable[[Case, Any], str | None] | None = None  # None if equal, else the divergence
    params: tuple[str, ...] = field(default=("cases", "seed"))
    grade: Callable[[Suite, dict, Callable], dict] | None = None  # clean side: own verdict (sim suites)


_REGISTRY: dict[str, Suite] = {}


def register(suite: Suite) -> Suite:
    """Add a suite to the registry (called by the assignment modules at import)."""
    _REGISTRY[suite.id] = suite
    return suite


def get_suite(suite_id: str) -> Suite:
    """The suite named `suite_id` ("ps1.is_cow_mapping"); ValueError listing the known ones."""
    prefix = suite_id.split(".", 1)[0]
    if prefix in _MODULES:
        importlib.import_module(_MODULES[prefix])
    if suite_id not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none loaded"
        raise ValueError(f"unknown grading suite {suite_id!r}; known suites: {known}")
    return _REGISTRY[suite_id]


def default_run_case(bound: dict, case: Case) -> Any:
    """Student side: call the student's function on the case's arguments."""
    return bound[case.fn](*case.args)


def plain_value(bound: dict, case: Case) -> Any:
    """Student side: the answer is a value, not a function."""
    return bound[case.fn]


def table_row(bound: dict, case: Case) -> Any:
    """Student side: row case.args[0] of the student's table (a list of rows), or None if missing."""
    table = bound[case.fn]
    i = case.args[0]
    if not isinstance(table, (list, tuple)):
        raise TypeError(f"the table must be a list of rows, got {type(table).__name__}")
    return list(table[i]) if i < len(table) and isinstance(table[i], (list, tuple)) else None


def as_json(value: Any) -> Any:
    """`value` as JSON would carry it (tuples become lists); TypeError if it cannot be carried."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    raise TypeError(f"a result of type {type(value).__name__} cannot be graded; return plain values")
