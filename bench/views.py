"""Benchmarks for vmlib.views: step change -> new picture (64-page mapping), and a process with
1,000 touched pages spread every other page. No Graphviz needed: both draw on vmlib.views.layout.

Also click -> repaint in the browser (issue 19): lesson 04's stepper as the browser-side Stepper
(vmlib.views.stepper, the module the anywidget runs, here on its self-contained HTML) in
headless Chromium; performance.now() from just before a click on "forward" until the frame that
shows the new SVG has been painted (a task queued from the next requestAnimationFrame runs after
that paint), over 50 clicks (forward to the end, back to the start, and again).

Run: .venv/bin/python bench/views.py
Targets (issue 10): step median <= 16 ms and worst <= 50 ms; 1,000 scattered pages <= 100 ms.
Targets (issue 19): click -> repaint median <= 16 ms and worst <= 33 ms (printed as ratios).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[1]
CLICK_TO_PAINT = """async ([n, count]) => {
    const root = document.querySelector('.vmlib-stepper'), out = [];
    const fwd = root.querySelector("button[title='forward']"), back = root.querySelector("button[title='back']");
    const graph = root.querySelector('.vmlib-graph'), last = count - 1;
    let at = 0, dir = 1;                   // forward to the last step, back to the first, and again
    const painted = () => new Promise(ok => requestAnimationFrame(() => setTimeout(ok, 0)));
    const wait = ms => new Promise(ok => setTimeout(ok, ms));
    await painted();
    for (let i = 0; i < n; i++) {
        await wait((i * 7) % 17);          // a person's clicks fall anywhere in a frame, not just after a paint
        const before = graph.dataset.frame, t0 = performance.now();
        if (at + dir < 0 || at + dir > last) dir = -dir;
        at += dir;
        (dir > 0 ? fwd : back).click();
        const t1 = performance.now();
        await painted();
        if (graph.dataset.frame === before || !graph.querySelector('svg')) throw new Error('no new picture');
        out.push([performance.now() - t0, t1 - t0]);
    }
    return out; }"""


def lesson_trace(name: str = "04_fork_and_cow.ipynb"):
    """The trace the lesson's first FaultStepper cell steps: its code cells run up to that cell."""
    nb = json.loads((ROOT / "course" / name).read_text())
    env: dict = {}
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] != "code":
            continue
        if src.strip().startswith(("FaultStepper(", "Stepper(")):
            return eval(src.strip().split("(", 1)[1].rsplit(")", 1)[0].split(",")[0], env)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(src, env)   # noqa: S102 - the course's own lesson
    raise SystemExit(f"{name} has no stepper cell")


def click_repaint_ms(steps: int = 50) -> list[tuple[float, float]]:
    """(ms from a click on forward or back to the painted new picture, ms the click handler ran) for
    `steps` clicks in Chromium, each click at another point of the display frame. The stepper has
    fewer steps than that (one per operation), so the clicks walk it forward to its end, back to its
    start, and on: every click shows another picture."""
    from playwright.sync_api import sync_playwright

    from vmlib.views.stepper import Stepper
    w = Stepper(lesson_trace())
    if len(w) < 2:
        raise SystemExit(f"lesson 04's stepper has {len(w)} step: nothing to click through")
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    if chromium is None:
        raise SystemExit("click -> repaint needs Chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        page_path = Path(tmp) / "stepper.html"
        page_path.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{w.static_html()}'
                             "</body></html>")
        ctx = pw.chromium.launch_persistent_context(tmp + "/profile", executable_path=chromium, headless=True,
                                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
                                                    viewport={"width": 1400, "height": 900})
        try:
            page = ctx.new_page()
            page.goto(page_path.as_uri())
            page.wait_for_selector(".vmlib-graph svg")
            return [tuple(x) for x in page.evaluate(CLICK_TO_PAINT, [steps, len(w)])]
        finally:
            ctx.close()


def main() -> None:
    build, times = step_ms(64)
    med, worst = statistics.median(times), max(times)
    ok = med <= 16 and worst <= 50
    print(f"step change -> new picture, 64-page mapping: median {med:.1f} ms, worst {worst:.1f} ms over "
          f"{len(times)} steps (targets <= 16 / <= 50 ms): {'OK' if ok else 'SLOW'}; layout once {build:.0f} ms")
    ms, width, lines = scattered_ms(1000)
    print(f"process with 1,000 touched pages every other page: {ms:.1f} ms, {width} px wide, "
          f"{lines} table lines (target <= 100 ms): {'OK' if ms <= 100 else 'SLOW'}")
    measured = click_repaint_ms(50)
    clicks, script = [m[0] for m in measured], [m[1] for m in measured]
    med, worst = statistics.median(clicks), max(clicks)
    ok = med <= 16 and worst <= 33
    print(f"click -> repaint in Chromium, lesson 04's stepper: median {med:.1f} ms ({med / 16:.2f} of 16 ms), "
          f"worst {worst:.1f} ms ({worst / 33:.2f} of 33 ms) over {len(clicks)} steps: {'OK' if ok else 'SLOW'}; "
          f"of which the click handler (new SVG in the DOM): median {statistics.median(script):.1f} ms, "
          f"worst {max(script):.1f} ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
