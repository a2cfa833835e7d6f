"""Microseconds per page fault in the simulator, beside the live kernel's cost on this machine.

    .venv/bin/python bench/faults.py [NPAGES]

For each kind of fault (anonymous write, anonymous read, COW after fork, XipFs) it times
NPAGES faults in the simulator with tracing on and off, runs bench/live_faults.c for the
same kinds on the live kernel in the same run (compiled on the spot by bench/live.py;
skipped with the reason where there is no C compiler), and prints the ratio simulator/kernel.
Both sides measure CPU time (time.process_time here, CLOCK_PROCESS_CPUTIME_ID in the C
program), which a machine shared with other work disturbs far less than wall clock.
Targets (issue 14): anonymous write, tracing off, <= 3x the kernel (the last line printed);
tracing on <= 1.5x tracing off. The simulator's figure is vmlib.measure.sim_fault_cost, which
lesson 02 calls too; vmlib.measure.live_fault_cost measures the live side from Python without a
compiler (within about 20 % of this C program's figures).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's vmlib
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmlib.measure import KINDS, sim_fault_cost  # the figures, importable for the lessons


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
        off = sim_fault_cost(kind, npages, False)
        on = sim_fault_cost(kind, npages, True)
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
