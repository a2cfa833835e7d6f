"""Benchmarks for vmlib.views: step change -> new SVG (64-page mapping), and 1,000 touched pages.

Run: .venv/bin/python bench/views.py   (needs Graphviz `dot`). Targets: <= 50 ms, <= 1 s.
"""

from __future__ import annotations

import statistics
import time

import vmlib
from vmlib.views import FaultStepper, process_graph
from vmlib.views.render import cache_clear

PAGE = vmlib.PAGE_SIZE


def traced_mapping(pages: int, fork: bool = True):
    """A kernel whose trace writes every page of a `pages`-page private mapping, then forks."""
    k = vmlib.Kernel(ram_pages=4 * pages + 256)
    t = k.tracer.reset()
    p = k.spawn("bench")
    a = p.mmap(pages * PAGE)
    for i in range(pages):
        p.write(a + i * PAGE, b"x")
    if fork:
        c = p.fork()
        c.write(a, b"y")
    return k, t, p


def step_to_svg_ms(pages: int = 64) -> list[float]:
    """Milliseconds from goto(i) to the new SVG in the widget, for every step forward then back."""
    _k, t, _p = traced_mapping(pages)
    s = FaultStepper(t, ops_only=True)
    cache_clear()
    times = []
    for i in [*range(1, len(s.steps)), *range(len(s.steps) - 2, -1, -1)]:
        cache_clear()
        t0 = time.perf_counter()
        s.goto(i)
        assert "<svg" in s.panel.graph.value
        times.append(1000 * (time.perf_counter() - t0))
    return times


def big_process_s(pages: int = 1000) -> tuple[float, float]:
    """Seconds to build the DOT text and to render the SVG for a process with `pages` touched pages."""
    k, _t, p = traced_mapping(pages, fork=False)
    cache_clear()
    t0 = time.perf_counter()
    g = process_graph(k, p.pid)
    t1 = time.perf_counter()
    g.svg()
    return t1 - t0, time.perf_counter() - t0


def main() -> None:
    times = step_to_svg_ms(64)
    med = statistics.median(times)
    print(f"step change -> new SVG, 64-page mapping: median {med:.1f} ms, max {max(times):.1f} ms "
          f"over {len(times)} steps (target <= 50 ms): {'OK' if med <= 50 else 'SLOW'}")
    dot_s, total = big_process_s(1000)
    print(f"process with 1,000 touched pages: DOT {1000 * dot_s:.1f} ms, DOT+SVG {1000 * total:.1f} ms "
          f"(target <= 1000 ms): {'OK' if total <= 1 else 'SLOW'}")


if __name__ == "__main__":
    main()
