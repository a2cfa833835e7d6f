"""Microseconds per page fault in the simulator, beside the live kernel's cost on this machine.

    .venv/bin/python bench/faults.py [NPAGES]

For each kind of fault (anonymous write, anonymous read, COW after fork, XipFs) it times
NPAGES faults in the simulator with tracing on and off, runs bench/live_faults.c for the
same kinds on the live kernel in the same run (compiled on the spot by bench/live.py;
skipped with the reason where there is no C compiler), and prints the ratio simulator/kernel.
Both sides measure CPU time (time.process_time here, CLOCK_PROCESS_CPUTIME_ID in the C
program), which a machine shared with other work disturbs far less than wall clock.
Targets (issue 14): anonymous write, tracing off, <= 3x the kernel (the last line printed);
tracing on <= 1.5x tracing off.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import vmlib
from vmlib import PAGE_SIZE

KINDS = ("anon_write", "anon_read", "cow_write", "file_read")
LIVE_NAME = {"file_read": "file_read"}


def _setup(kind: str, npages: int, trace: bool):
    """A kernel and a process ready to take npages faults of `kind`; returns (fault(), k)."""
    k = vmlib.Kernel(version="2.6.26", arch="x86", ram_pages=npages * 3 + 4096, trace=trace)
    p = k.spawn()
    if kind == "file_read":
        dev = k.add_device_memory(npages * 4 + 8192, npages, "nvram")
        xip = vmlib.drivers.XipFs(k, backing=dev)
        f = xip.create("img", b"", size=npages * PAGE_SIZE)
        for i in range(npages):
            xip.write(f, i * PAGE_SIZE, b"x")
        a = p.mmap(npages * PAGE_SIZE, prot="r", flags="shared", file=xip.open("img", "r"))
        return (lambda: [p.read(a + i * PAGE_SIZE, 1) for i in range(npages)]), k
    a = p.mmap(npages * PAGE_SIZE)
    if kind == "anon_write":
        return (lambda: [p.write(a + i * PAGE_SIZE, b"x") for i in range(npages)]), k
    if kind == "anon_read":
        return (lambda: [p.read(a + i * PAGE_SIZE, 1) for i in range(npages)]), k
    for i in range(npages):
        p.write(a + i * PAGE_SIZE, b"x")
    child = p.fork()
    return (lambda: [child.write(a + i * PAGE_SIZE, b"y") for i in range(npages)]), k


def sim_cost(kind: str, npages: int, trace: bool, reps: int = 3) -> float:
    """Median microseconds per fault over `reps` fresh runs."""
    samples = []
    for _ in range(reps):
        run, k = _setup(kind, npages, trace)
        k.tracer.reset() if trace else None
        t0 = time.process_time()
        run()
        samples.append((time.process_time() - t0) / npages * 1e6)
    return statistics.median(samples)


def main(argv: list[str]) -> int:
    npages = int(argv[1]) if len(argv) > 1 else 4096
    from live import live_fault_costs
    live, reason = live_fault_costs()
    print(f"simulator: 2.6.26/x86, {npages} faults per kind, median of 3 runs; CPU time on both sides")
    if live is None:
        print(f"live kernel: skipped ({reason})")
    print(f"{'kind':<12}{'trace off':>12}{'trace on':>12}{'kernel':>10}{'off/kernel':>12}{'on/kernel':>11}"
          f"{'on/off':>8}")
    costs = {}
    for kind in KINDS:
        off = sim_cost(kind, npages, False)
        on = sim_cost(kind, npages, True)
        costs[kind] = off, on
        kern = live.get(kind) if live else None
        r_off = f"{off / kern:.1f}x" if kern else "-"
        r_on = f"{on / kern:.1f}x" if kern else "-"
        kern_s = f"{kern:.2f}" if kern else "-"
        print(f"{kind:<12}{off:>10.2f}us{on:>10.2f}us{kern_s:>8}us{r_off:>12}{r_on:>11}{on / off:>7.2f}x")
    print("(file_read on the kernel is a memfd/tmpfs stand-in for XipFs; the kernel's fault-around "
          "maps 16 pages per file fault, the simulator one)")
    off, on = costs["anon_write"]
    print(f"anon_write, tracing on / off: {on / off:.2f}x (target <= 1.5x) "
          f"{'ok' if on / off <= 1.5 else 'MISS'}")
    if live is None:
        print(f"anon_write, tracing off / live kernel: not measured ({reason})")
        return 0
    ratio = off / live["anon_write"]
    print(f"anon_write, tracing off / live kernel: {ratio:.2f}x (target <= 3x) {'ok' if ratio <= 3 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
