"""What a page fault costs: in the simulator, and on the kernel this Python runs on.

    sim_fault_cost("anon_write", npages=1024)        # microseconds per simulated fault
    live_fault_cost("anon_write", npages=4096)       # (microseconds per real fault, "") or (None, why)
    fault_costs(npages=1024)                         # both, for every kind, as a list of dicts

Kinds: anon_write (first write to private anonymous memory), anon_read (first read of it),
cow_write (a child's first write to a page it shares with its parent, simulator only),
file_read (first read of a shared file mapping whose pages already exist: XipFs in the
simulator, a cached temporary file on the live kernel).

The live side times, with time.process_time, a Python loop that touches each page of a fresh
mapping once (a fault per page), and subtracts the same loop over the now-mapped pages (no
fault): what is left is the kernel's fault cost, about a microsecond, with the interpreter's
share removed. It needs the `mmap` module of a real OS (Linux, macOS; not a browser kernel).
bench/faults.py prints the same figures as a table beside the C benchmark (bench/live.py).
Standard library only.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import vmlib
from vmlib.flags import PAGE_SIZE

try:
    import mmap
except ImportError:        # a browser's Python (Pyodide) may lack it: then no live side
    mmap = None

KINDS = ("anon_write", "anon_read", "cow_write", "file_read")
LIVE_KINDS = ("anon_write", "anon_read", "file_read")


def _check(kind: str, npages: int, reps: int, kinds=KINDS) -> None:
    """ValueError naming what is wrong with the arguments."""
    if kind not in kinds:
        raise ValueError(f"unknown fault kind {kind!r}; choose one of {', '.join(kinds)}")
    if not isinstance(npages, int) or not 1 <= npages <= 1 << 20:
        raise ValueError(f"npages must be an int from 1 to {1 << 20}, got {npages!r}")
    if not isinstance(reps, int) or not 1 <= reps <= 101:
        raise ValueError(f"reps must be an int from 1 to 101, got {reps!r}")


def sim_setup(kind: str, npages: int, trace: bool):
    """A 2.6.26/x86 kernel and a process ready to take NPAGES faults of KIND; (fault_all(), kernel)."""
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


def sim_fault_cost(kind: str, npages: int = 1024, trace: bool = False, reps: int = 3) -> float:
    """Median CPU microseconds per simulated fault of KIND over REPS fresh runs of NPAGES faults."""
    _check(kind, npages, reps)
    samples = []
    for _ in range(reps):
        run, k = sim_setup(kind, npages, trace)
        if trace:
            k.tracer.reset()
        t0 = time.process_time()
        run()
        samples.append((time.process_time() - t0) / npages * 1e6)
    return statistics.median(samples)


def live_unavailable() -> str:
    """Why the live kernel cannot be measured here, or "" when it can."""
    if sys.platform == "emscripten" or mmap is None or not hasattr(mmap, "MAP_PRIVATE"):
        return f"this Python ({sys.platform}) runs in no OS kernel that pages: the live side needs Linux or macOS"
    return ""


def _touch_loop(buf, npages: int, write: bool) -> float:
    """CPU seconds to touch the first byte of each of NPAGES pages of BUF once."""
    t0 = time.process_time()
    if write:
        for i in range(0, npages * PAGE_SIZE, PAGE_SIZE):
            buf[i] = 1
    else:
        for i in range(0, npages * PAGE_SIZE, PAGE_SIZE):
            buf[i]
    return time.process_time() - t0


def _cached_file():
    """A temporary file whose pages stay in memory: a memfd (tmpfs) on Linux, else a temporary file."""
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create("vmlib-faults"), "w+b")
    return tempfile.TemporaryFile()


def _live_once(kind: str, npages: int) -> float:
    """Microseconds per fault of one run: a first pass (faults) minus a second one (none)."""
    length = npages * PAGE_SIZE
    if kind == "file_read":
        with _cached_file() as f:
            f.write(b"x" * length)            # the file's pages are now in the page cache
            f.flush()
            buf = mmap.mmap(f.fileno(), length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    else:
        buf = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        if hasattr(buf, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):
            buf.madvise(mmap.MADV_NOHUGEPAGE)   # one fault per 4 KiB page, not per 2 MiB
        write = kind == "anon_write"
        first = _touch_loop(buf, npages, write)
        again = _touch_loop(buf, npages, write)
        return max(first - again, 0.0) / npages * 1e6
    finally:
        buf.close()


def live_fault_cost(kind: str, npages: int = 4096, reps: int = 5) -> tuple[float | None, str]:
    """Median CPU microseconds per fault of KIND on this machine's kernel; (cost, "") or (None, why).

    file_read faults are fewer than pages where the kernel maps several cached pages per fault
    (Linux's fault-around maps up to 16): the figure is then per page touched."""
    _check(kind, npages, reps, LIVE_KINDS + ("cow_write",))
    why = live_unavailable()
    if why:
        return None, why
    if kind == "cow_write":
        return None, "cow_write needs fork(), which a Jupyter kernel (a threaded process) must not do"
    return statistics.median(_live_once(kind, npages) for _ in range(reps)), ""


def fault_costs(npages: int = 1024, reps: int = 3) -> list[dict]:
    """For each kind: {"kind", "sim_off", "sim_on", "live", "why"}: microseconds per fault in the
    simulator with tracing off and on, and on the live kernel (None, with the reason in "why")."""
    out = []
    for kind in KINDS:
        live, why = live_fault_cost(kind, max(npages, 1024), reps)
        out.append({"kind": kind, "sim_off": sim_fault_cost(kind, npages, False, reps),
                    "sim_on": sim_fault_cost(kind, npages, True, reps), "live": live, "why": why})
    return out


if __name__ == "__main__":
    for row in fault_costs(int(sys.argv[1]) if len(sys.argv) > 1 else 1024):
        live = f"{row['live']:.2f}" if row["live"] is not None else row["why"]
        print(f"{row['kind']:<11} sim {row['sim_off']:.2f} us (traced {row['sim_on']:.2f} us), kernel {live}")
