"""Grading for the course's exercises: plain Python, standard library only, no Jupyter.

Students call `check(suite, answer...)` in a test cell; it judges the answer against vmlib's
reference, running the student's code in a sandbox with a vmlib that lacks the functions being
graded (vmlib.grading.sandbox), and prints where it first diverged. At autograde time the
verdict that counts is computed outside the student's kernel (vmlib.grading.notebook, plugged
into nbgrader by tools/nbgrader/vmlib_nbgrader.py), so nothing the notebook does can change it.
"""

from __future__ import annotations

import json
import linecache
import os
import types

from vmlib.grading.runner import run_clean
from vmlib.grading.suites import get_suite

__all__ = ["NotVerifiedHere", "WrongAnswer", "check"]


class WrongAnswer(AssertionError):
    """The answer diverged from the kernel; the message names the case and how."""


class NotVerifiedHere(AssertionError):
    """Under `nbgrader autograde` the verdict comes from outside the notebook, not from here."""


def check(suite_id: str, *answers, **params) -> None:
    """Judge `answers` (the suite's names, in order) in a clean process; raise WrongAnswer if wrong."""
    __tracebackhide__ = True
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        raise NotVerifiedHere("this cell is graded outside the notebook by tools/grade.py autograde")
    suite = get_suite(suite_id)
    if len(answers) != len(suite.names):
        raise TypeError(f"check({suite_id!r}, ...) takes {', '.join(suite.names)}; got {len(answers)} answers")
    cells: list[str] = []
    bind = {name: _bind(answer, cells) for name, answer in zip(suite.names, answers)}
    cells.sort(key=lambda source: _run_at(source, answers))      # as the notebook ran them (a base class first)
    from vmlib.grading.notebook import renumber, with_student
    params = with_student(suite, params, None)       # ps9: always this user's own mutation
    [verdict] = run_clean([{"suite": suite_id, "params": params, "cells": cells, "bind": bind}], trusted=True)
    labels = [_label(source, answers) for source in cells]
    print(renumber(verdict["text"], labels))
    if not verdict["passed"]:
        raise WrongAnswer(renumber(verdict["first"], labels))


def _run_at(source: str, answers: tuple) -> int:
    """When the notebook last ran the cell `source` (its execution count), -1 if unknown."""
    fns = [f for a in answers if isinstance(a, (types.FunctionType, type)) and a.__module__ == "__main__"
           for f in _functions(a)]
    history = next((fn.__globals__.get("In") for fn in fns), None)
    runs = [n for n, text in enumerate(history or []) if isinstance(text, str) and text.strip() == source.strip()]
    return runs[-1] if runs else -1


def _label(source: str, answers: tuple) -> str:
    """How JupyterLab shows the cell whose code is `source`: by its execution count, "cell [7]"."""
    fns = [f for a in answers if isinstance(a, (types.FunctionType, type)) and a.__module__ == "__main__"
           for f in _functions(a)]
    history = next((fn.__globals__.get("In") for fn in fns), None)
    if isinstance(history, list):
        runs = [n for n, text in enumerate(history) if isinstance(text, str) and text.strip() == source.strip()]
        if runs:
            return f"cell [{runs[-1]}]"
    return "the cell that defines it"


def _bind(answer, cells: list[str]) -> dict:
    """How the clean side finds `answer`: by name in the cells we collect, by import, or as a value."""
    if isinstance(answer, (types.FunctionType, type)):
        if answer.__module__ != "__main__":
            return {"import": f"{answer.__module__}:{answer.__qualname__}"}
        seen: set = set()
        for fn in _functions(answer):
            _collect(fn, cells, seen)
        return {"name": answer.__name__}
    try:
        json.dumps(answer)
    except TypeError:
        raise TypeError(f"check() cannot grade a {type(answer).__name__}; pass your function, class or a plain value")
    return {"value": answer}


def _methods(cls: type) -> list[types.FunctionType]:
    """The methods of `cls` and of its bases from the notebook, the bases' first."""
    bases = [c for c in reversed(cls.__mro__) if c.__module__ == "__main__"]
    return [f for c in bases for f in vars(c).values() if isinstance(f, types.FunctionType)]


def _functions(answer) -> list[types.FunctionType]:
    """A function, or the methods of a class (a driver) and of its bases from the notebook."""
    if isinstance(answer, types.FunctionType):
        return [answer]
    found = _methods(answer)
    if not found:
        raise ValueError(f"cannot find the cell that defines {answer.__name__}: it has no methods")
    return found


def _collect(fn: types.FunctionType, cells: list[str], seen: set) -> None:
    """Add the notebook cell that defines `fn`, after the cells of the functions and classes it uses."""
    if fn.__code__ in seen:
        return
    seen.add(fn.__code__)
    for name in _names(fn.__code__):
        value = fn.__globals__.get(name)
        if isinstance(value, types.FunctionType) and value.__module__ == "__main__":
            _collect(value, cells, seen)
        elif isinstance(value, type) and value.__module__ == "__main__":    # a helper class, its bases first
            for method in _methods(value):
                _collect(method, cells, seen)
        elif isinstance(value, (int, float, str, bool)) and not name.startswith("VM_"):
            cells.append(f"{name} = {value!r}\n")
    source = "".join(linecache.getlines(fn.__code__.co_filename))
    if not source:
        raise ValueError(f"cannot find the cell that defines {fn.__name__}; run that cell again, then this one")
    if source not in cells:
        cells.append(source)


def _names(code: types.CodeType) -> set[str]:
    """Global names used by `code` and the functions nested in it."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names
