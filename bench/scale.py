"""How the simulator scales: the rows of issue 14 other than the per-fault ratio (bench/faults.py).

    .venv/bin/python bench/scale.py            # full sizes (about a minute or two of CPU)
    .venv/bin/python bench/scale.py --quick    # tiny sizes: checks that it runs, targets not judged

Each row prints its figure, its target and ok/MISS. Times are CPU time of this process
(time.process_time), which is steady on a shared machine where wall clock is not; the 1M-fault
rows run in a fresh interpreter each so that their peak memory (ru_maxrss) is their own.

Rows:
  faults      N anonymous write faults, tracing off and on: us per fault, peak memory, share of
              CPU time spent in the garbage collector (first half a plain loop, second half in
              k.bulk(), which pauses the collector), tracing on / off
  state_at    on a trace of E events: the first state_at(end) (builds its checkpoints), then
              start, middle and 20 spread steps; checkpoint entries per event (memory linear)
  stepper     one FaultStepper step on that trace (Steps.goto + counts + event text; the graph
              drawing is timed apart, since it depends on how much the view draws)
  fork        fork of a process with P written pages, traced: us per page
  mmaps       M one-page mmaps into one process; a fault among M vmas against among one
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vmlib
from vmlib import PAGE_SIZE

FULL = {"faults": 1_000_000, "events": 100_000, "fork": 100_000, "mmaps": 2000}
QUICK = {"faults": 2000, "events": 3000, "fork": 2000, "mmaps": 100}


class GcClock:
    """CPU time spent inside garbage collections while it is installed (gc.callbacks)."""

    def __init__(self):
        self.total = 0.0
        self._t0 = 0.0

    def __call__(self, phase, info):
        if phase == "start":
            self._t0 = time.process_time()
        else:
            self.total += time.process_time() - self._t0

    def __enter__(self):
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self)
        return False


def fault_run(n: int, trace: bool) -> dict:
    """n anonymous write faults in one process (run in a fresh interpreter: see main)."""
    k = vmlib.Kernel(ram_pages=n + 4096, trace=trace)
    p = k.spawn()
    a = p.mmap(n * PAGE_SIZE)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with GcClock() as gct:
        t0 = time.process_time()
        for i in range(n // 2):                     # a plain loop
            p.write(a + i * PAGE_SIZE, b"x")
        t1 = time.process_time()
        gc_plain = gct.total
        with k.bulk():                              # the collector paused
            for i in range(n // 2, n):
                p.write(a + i * PAGE_SIZE, b"x")
        t2 = time.process_time()
        gc_bulk = gct.total - gc_plain
        gc.collect(1)                               # what the pause deferred: one young collection
        deferred = time.process_time() - t2
    cpu = t2 - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss     # KiB on Linux
    return {"us": cpu / n * 1e6, "cpu": cpu, "gc_plain": gc_plain / (t1 - t0),
            "gc_bulk": (gc_bulk + deferred) / (t2 - t1 + deferred), "deferred": deferred,
            "peak_mb": peak / 1024, "grew_mb": (peak - rss0) / 1024, "events": len(k.trace)}


def fault_row(n: int, check) -> None:
    runs = {}
    for trace in (False, True):
        out = subprocess.run([sys.executable, __file__, "--fault-run", str(n), str(int(trace))],
                             capture_output=True, text=True, check=True)
        runs[trace] = json.loads(out.stdout.strip().splitlines()[-1])
    off, on = runs[False], runs[True]
    print(f"faults: {n} anonymous write faults: off {off['us']:.2f} us ({off['cpu']:.1f} s), "
          f"on {on['us']:.2f} us ({on['cpu']:.1f} s), {on['events']} events")
    check("  memory, tracing on (peak RSS)", on["peak_mb"], 1024, "MB")
    check("  memory, tracing off (peak RSS)", off["peak_mb"], 1024, "MB")
    print(f"  garbage collector share, tracing on, plain loop (first half): {on['gc_plain'] * 100:.1f} %")
    check("  garbage collector share, tracing on, in k.bulk() (second half; counts the deferred "
          f"collection, {on['deferred']:.2f} s)", on["gc_bulk"] * 100, 5, "%")
    check("  tracing on / off", on["us"] / off["us"], 1.5, "x")


def build_trace(n_events: int):
    """A traced kernel whose trace has about n_events events of faults, COW, fork, munmap, exit."""
    k = vmlib.Kernel(ram_pages=n_events // 2 + 4096)
    p = k.spawn("parent")
    rnd = 0
    while len(k.trace) < n_events:
        a = p.mmap(64 * PAGE_SIZE)
        for i in range(64):
            p.write(a + i * PAGE_SIZE, b"%d" % i)
        if rnd % 16 == 0:
            c = p.fork()
            for i in range(0, 64, 4):
                c.write(a + i * PAGE_SIZE, b"c")
            c.exit()
        if rnd % 3 == 2:
            p.munmap(a, 16 * PAGE_SIZE)
        rnd += 1
    return k, k.trace


def timed(fn):
    t0 = time.process_time()
    out = fn()
    return (time.process_time() - t0) * 1e3, out


def trace_rows(n_events: int, check) -> None:
    _k, t = build_trace(n_events)
    n = len(t)
    print(f"state_at: trace of {n} events")
    ms, _ = timed(lambda: t.state_at(n - 1))
    check("  state_at(end), first call", ms, 50, "ms")
    for name, i in (("start", 0), ("middle", n // 2), ("end", n - 1)):
        ms, _ = timed(lambda i=i: t.state_at(i))
        check(f"  state_at({name})", ms, 50, "ms")
    worst = max(timed(lambda i=i: t.state_at(i))[0] for i in range(0, n, max(1, n // 20)))
    check("  state_at, worst of 20 spread steps", worst, 50, "ms")
    entries = sum(len(s.ptes) + len(s.pages) + len(s.tables) + len(s.rss) + len(s.vmas)
                  for s in t._checkpoints.values())
    state = t.state_at(n - 1)
    size = len(state.ptes) + len(state.pages) + len(state.tables)
    print(f"  checkpoints: {len(t._checkpoints)} snapshots every {t._spacing} events, {entries} "
          f"entries ({entries / n:.2f} per event; the state at the end has {size})")
    check("  checkpoint snapshots kept", len(t._checkpoints), t.MAX_CHECKPOINTS, "")
    stepper_rows(t, check)


def stepper_rows(t, check) -> None:
    try:
        from vmlib.views.widgets import Steps
    except ImportError as e:          # the views need ipywidgets and graphviz
        print(f"stepper: skipped ({e})")
        return
    n = len(t)
    s = Steps(t)

    def click(i):
        s.goto(i)
        s.counts()
        s.event_html()

    worst = 0.0
    for i in (n // 2, n // 2 + 1, n // 2, n - 1, 0, n // 3):
        worst = max(worst, timed(lambda i=i: click(i))[0])
    check("stepper: one step (goto, counts, event text), worst of 6", worst, 50, "ms")
    ms, g = timed(s.graph_now)
    svg_ms, _ = timed(g.inline_svg)
    print(f"  drawing that step (views, not judged here): graph {ms:.1f} ms, svg {svg_ms:.1f} ms CPU "
          f"in this process (dot runs as a child process)")


def fork_row(npages: int, check) -> None:
    k = vmlib.Kernel(ram_pages=2 * npages + 4096)
    p = k.spawn()
    a = p.mmap(npages * PAGE_SIZE)
    for i in range(npages):
        p.write(a + i * PAGE_SIZE, b"x")
    with GcClock() as gct:
        ms, _ = timed(p.fork)
    check(f"fork: {npages} pages, traced, per page", ms * 1e3 / npages, 10, "us")
    print(f"  (garbage collector: {gct.total * 1e3:.0f} ms of {ms:.0f} ms)")


def mmap_row(n: int, check) -> None:
    k = vmlib.Kernel(ram_pages=4096)
    p = k.spawn()
    ms, _ = timed(lambda: [p.mmap(PAGE_SIZE) for _ in range(n)])
    check(f"mmaps: {n} one-page mmaps", ms / 1e3, 0.5, "s")
    ms, _ = timed(lambda: [p.find_vma(0x40000000 + i * PAGE_SIZE) for i in range(n)])
    print(f"  find_vma with {n} vmas: {ms * 1e3 / n:.2f} us")
    per = {}
    for nvmas in (1, n):                 # a write fault on the second page of each 2-page vma
        k = vmlib.Kernel(ram_pages=4 * n + 4096, trace=False)
        p = k.spawn()
        pages = 2 * n // nvmas
        addrs = [p.mmap(pages * PAGE_SIZE) for _ in range(nvmas)]
        for a in addrs:
            p.write(a, b"x")             # the first fault of a vma sets its anon_vma
        targets = [a + j * PAGE_SIZE for a in addrs for j in range(1, pages, 2)]
        ms, _ = timed(lambda targets=targets, p=p: [p.write(t, b"y") for t in targets])
        per[nvmas] = ms * 1e3 / len(targets)
    check(f"  an anonymous write fault with {n} vmas / with 1", per[n] / per[1], 1.5, "x")


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--fault-run"]:
        print(json.dumps(fault_run(int(argv[2]), bool(int(argv[3])))))
        return 0
    quick = "--quick" in argv
    sizes = QUICK if quick else FULL
    only = [a for a in argv[1:] if not a.startswith("--")]
    misses = []

    def check(name, value, target, unit):
        ok = value <= target
        verdict = "-" if quick else ("ok" if ok else "MISS")
        if not ok and not quick:
            misses.append(name.strip())
        print(f"{name}: {value:.2f} {unit} (target <= {target} {unit}) {verdict}")

    rows = {"mmaps": lambda: mmap_row(sizes["mmaps"], check),
            "fork": lambda: fork_row(sizes["fork"], check),
            "trace": lambda: trace_rows(sizes["events"], check),
            "faults": lambda: fault_row(sizes["faults"], check)}
    for name, row in rows.items():
        if not only or name in only:
            row()
    if quick:
        print("quick run: sizes too small to judge the targets")
    else:
        print(f"{len(misses)} target(s) missed" + (": " + ", ".join(misses) if misses else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
