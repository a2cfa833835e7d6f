"""Benchmarks for vmlib.views: step change -> new picture (64-page mapping), and a process with
1,000 touched pages spread every other page. No Graphviz needed: both draw on vmlib.views.layout.

Run: .venv/bin/python bench/views.py
Targets (issue 10): step median <= 16 ms and worst <= 50 ms; 1,000 scattered pages <= 100 ms.
"""

from __future__ import annotations

import statistics
import time

import vmlib
from vmlib.views import FaultStepper, process_graph

PAGE = vmlib.PAGE_SIZE


def traced_mapping(pages: int, fork: bool = True, stride: int = 1):
    """A kernel whose trace writes every `stride`-th page of a private mapping (`pages` writes),
    then forks and the child writes the first page."""
    k = vmlib.Kernel(ram_pages=4 * pages + 256)
    t = k.tracer.reset()
    p = k.spawn("bench")
    a = p.mmap(pages * stride * PAGE)
    for i in range(pages):
        p.write(a + i * stride * PAGE, b"x")
    if fork:
        c = p.fork()
        c.write(a, b"y")
    return k, t, p


def step_ms(pages: int = 64) -> tuple[float, list[float]]:
    """(ms to build the stepper, ms from goto(i) to the new picture in the widget for every step
    forward then back)."""
    _k, t, _p = traced_mapping(pages)
    t0 = time.perf_counter()
    s = FaultStepper(t, ops_only=True)
    build = 1000 * (time.perf_counter() - t0)
    times = []
    for i in [*range(1, len(s.steps)), *range(len(s.steps) - 2, -1, -1)]:
        t0 = time.perf_counter()
        s.goto(i)
        assert "<svg" in s.panel.graph.value
        times.append(1000 * (time.perf_counter() - t0))
    return build, times


def scattered_ms(pages: int = 1000) -> tuple[float, int, int]:
    """(ms to draw a process with `pages` touched pages every other page, picture width, rows)."""
    k, _t, p = traced_mapping(pages, fork=False, stride=2)
    t0 = time.perf_counter()
    svg = process_graph(k, p.pid).svg()
    ms = 1000 * (time.perf_counter() - t0)
    width = int(svg.split('width="', 1)[1].split('"', 1)[0])
    return ms, width, svg.count('class="sep"')


def main() -> None:
    build, times = step_ms(64)
    med, worst = statistics.median(times), max(times)
    ok = med <= 16 and worst <= 50
    print(f"step change -> new picture, 64-page mapping: median {med:.1f} ms, worst {worst:.1f} ms over "
          f"{len(times)} steps (targets <= 16 / <= 50 ms): {'OK' if ok else 'SLOW'}; layout once {build:.0f} ms")
    ms, width, lines = scattered_ms(1000)
    print(f"process with 1,000 touched pages every other page: {ms:.1f} ms, {width} px wide, "
          f"{lines} table lines (target <= 100 ms): {'OK' if ms <= 100 else 'SLOW'}")


if __name__ == "__main__":
    main()
