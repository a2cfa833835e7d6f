"""What the grading sandbox costs per submission: verify() of each solution notebook, sandboxed and not.

    python bench/sandbox.py [--repeat 5]

For every assignment it grades the solution notebook (all its checks, visible and hidden) with
vmlib.grading.notebook.verify, once with the bubblewrap sandbox and once with the same forking
student side in a plain process, and prints the median milliseconds of each and their difference
(the isolation overhead per submission). It also prints how long a sandbox takes from start to
ready, and the cost of one check in a forked worker. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from vmlib.grading import notebook, sandbox


def _ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _probe_request() -> dict:
    return {"cells": ["answer = 1"], "bind": {"x": {"name": "answer"}}, "prelude": "",
            "cases": [{"label": "probe", "fn": "x", "args": []}], "run_case": "vmlib.grading.suites:plain_value"}


def side_figures(repeat: int) -> tuple[float, float]:
    """(ms from start to ready of a sandbox, ms of one trivial check in a forked worker)."""
    refs = ["vmlib.flags:is_cow_mapping"]
    sandbox.student_lib(refs)

    def boot():
        with sandbox.StudentSide(refs, sandboxed=True) as side:
            side.start()
            side._wait_ready()

    with sandbox.StudentSide(refs, sandboxed=True) as side:
        side.run(_probe_request(), 5, 20)
        check = _ms(lambda: side.run(_probe_request(), 5, 20), repeat * 10)
    return _ms(boot, repeat), check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the median is printed (5)")
    repeat = parser.parse_args().repeat
    why = sandbox.problem()
    if why:
        sys.exit(f"no sandbox here: {why}")
    boot, check = side_figures(repeat)
    print(f"sandbox start to ready: {boot:.0f} ms; one check in a forked worker: {check:.1f} ms")
    print(f"{'assignment':<14} {'checks':>6} {'sandboxed ms':>13} {'plain ms':>9} {'overhead ms':>12}")
    overheads = []
    for path in sorted((ROOT / "solutions").glob("ps*/ps*.ipynb")):
        nb = json.loads(path.read_text())
        checks = sum(len(c) for _, c in notebook.checking_cells(nb))
        notebook.verify(nb)                                   # build the stripped copy once
        boxed = _ms(lambda nb=nb: notebook.verify(nb), repeat)
        plain = _ms(lambda nb=nb: _plain(nb), repeat)
        overheads.append(boxed - plain)
        print(f"{path.stem:<14} {checks:>6} {boxed:>13.0f} {plain:>9.0f} {boxed - plain:>12.0f}")
    print(f"isolation overhead per submission: median {statistics.median(overheads):.0f} ms")
    return 0


def _plain(nb: dict) -> dict:
    """verify(nb) with the student side in a plain process (what the sandbox adds is the difference)."""
    saved = sandbox._PROBED.get("result")
    sandbox._PROBED["result"] = "benchmark: plain process"
    try:
        return notebook.verify(nb, trusted=True)
    finally:
        sandbox._PROBED["result"] = saved


if __name__ == "__main__":
    sys.exit(main())
