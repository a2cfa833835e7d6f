"""Student side of a check: run the student's cells and cases in a throw-away interpreter.

Started by vmlib.grading.runner as `python -I -m vmlib.grading.child RESULT_FILE` with the
request as JSON on stdin. Writes one JSON line per event to RESULT_FILE, flushed at once, so
the runner knows how far it got even if the student's code kills this process.
Nothing here is trusted: the runner compares what this process reports with answers it
computed itself.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import traceback
import types

from vmlib.grading.suites import Case, as_json, default_run_case, get_suite


class CellTimeout(BaseException):
    """The student's code ran longer than the time allowed for one cell or case."""


class ReferenceCalled(BaseException):
    """The student's code called the reference implementation it is asked to write."""


_called: list[str] = []


def _tripwire(name: str):
    def tripwire(*args, **kwargs):
        _called.append(name)
        raise ReferenceCalled(f"{name} is the function you are asked to write; calling it does not count")
    return tripwire


def reference_called(name: str):
    _called.append(name)
    raise ReferenceCalled(f"{name} is the function you are asked to write; calling it does not count")


def _tripped(*args, **kwargs):
    import sys
    sys.modules["vmlib.grading.child"].reference_called(sys._getframe().f_code.co_filename)


def install_tripwires(spots) -> None:
    """Make each "module:attr" record the call and raise, under every name it is known by.

    The module attribute is replaced, and a plain function also gets the trip-wire's code, so
    that a reference imported under another name or kept elsewhere (k.ops, another module) trips
    too. Nothing in this process needs the references: the kernel runs on the clean side.
    """
    sys.modules["vmlib.grading.child"] = sys.modules[__name__]     # also when run as __main__
    for spot in spots:
        module, attr = spot.split(":")
        mod = importlib.import_module(module)
        fn = getattr(mod, attr)
        if isinstance(fn, types.FunctionType) and not fn.__code__.co_freevars:
            fn.__code__ = _tripped.__code__.replace(co_filename=f"{module}.{attr}", co_name=attr)
        setattr(mod, attr, _tripwire(f"{module}.{attr}"))


def _no_exit(status=0):
    raise SystemExit(f"os._exit({status!r})")


def _on_alarm(signum, frame):
    raise CellTimeout()


def describe(exc: BaseException) -> str:
    """A one-line account of what the student's code raised, with its cell line if known."""
    if isinstance(exc, SystemExit):
        code = exc.code
        what = f"called {code}" if str(code).startswith("os._exit(") else f"called sys.exit({code!r})"
        what = "called sys.exit()" if code is None else what
    elif isinstance(exc, CellTimeout):
        what = "did not finish in time (an endless loop?)"
    elif isinstance(exc, ReferenceCalled):
        what = f"called vmlib's reference: {exc}"
    else:
        what = f"raised {type(exc).__name__}: {exc}"[:300]
    where = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
    return f"{what} ({where[-1].filename[1:-1]}, line {where[-1].lineno})" if where else what


def guarded(fn, seconds: float):
    """Run fn() with an alarm; return (value, None) or (None, exception)."""
    _called.clear()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(), None
    except BaseException as exc:  # noqa: BLE001 - the student's code may raise anything, SystemExit too
        return None, exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(result_path: str) -> None:
    request = json.load(sys.stdin)
    with open(result_path, "w") as out:
        run(request, out)


def run(request: dict, out) -> None:
    """Run the student's cells, then each case, writing one event line per step to `out`."""
    def emit(event: dict) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    suite = get_suite(request["suite"])
    limit = float(request.get("cell_timeout", 5))
    signal.signal(signal.SIGALRM, _on_alarm)
    install_tripwires(suite.tripwires)
    os._exit = _no_exit  # so that one os._exit costs the case it is in, not every check
    ns: dict = {"__name__": "__main__"}
    exec(compile(suite.prelude, "<prelude>", "exec"), ns)  # noqa: S102 - running student code is the point
    errors = []
    for k, source in enumerate(request["cells"], 1):
        code, exc = guarded(lambda s=source, k=k: compile(s, f"<cell {k}>", "exec"), limit)
        if exc is None:
            _, exc = guarded(lambda c=code: exec(c, ns), limit)  # noqa: S102
        if exc is not None:
            errors.append(f"cell {k} {describe(exc)}")
    bound, missing = {}, {}
    for name, how in request["bind"].items():
        if "value" in how:
            bound[name] = how["value"]
        elif "import" in how:
            module, attr = how["import"].split(":")
            bound[name] = getattr(importlib.import_module(module), attr)
        elif how["name"] in ns:
            bound[name] = ns[how["name"]]
        else:
            missing[name] = how["name"]
    emit({"setup": {"errors": errors, "missing": missing}})
    run_case = suite.run_case or default_run_case
    hung: set[str] = set()
    for i, raw in enumerate(request["cases"]):
        case = Case(raw["label"], raw["fn"], raw["args"])
        if case.fn in missing:
            emit({"i": i, "missing": missing[case.fn]})
            continue
        if case.fn in hung:
            emit({"i": i, "raised": "was not run: an earlier case of it did not finish in time"})
            continue
        value, exc = guarded(lambda c=case: as_json(run_case(bound, c)), limit)
        if _called:
            emit({"i": i, "reference": _called[0]})
        elif exc is not None:
            hung |= {case.fn} if isinstance(exc, CellTimeout) else set()
            emit({"i": i, "raised": describe(exc)})
        else:
            emit({"i": i, "result": value})


if __name__ == "__main__":
    main(sys.argv[1])
