"""Probes of the live Linux kernel, and the same scenarios replayed on the simulator.

    from vmlib.real import run_live, simulate, compare, text_table
    cmp = compare(run_live("child_write_cow"), simulate("child_write_cow"))
    print(text_table(cmp))

Only the standard library is used. Nothing is written to /proc or to any process the runner
did not start. Off Linux, run_live returns a run recorded on a Linux machine, labelled so.

Root is needed for frame numbers (pagemap pfns) and /proc/kpagecount and /proc/kpageflags;
without it those observables are reported as not visible. The packet-ring scenarios need
CAP_NET_RAW (or a user namespace of the runner's own); io_uring rings need nothing.
"""

from vmlib.real.compare import compare, label_frames, simulate
from vmlib.real.probe import Probe
from vmlib.real.runner import record, recorded_run, run_all, run_live
from vmlib.real.view import dot, html_table, text_table


def side_by_side(scenario, **kw) -> dict:
    """Run `scenario` live (or recorded) and on the 6.12 simulator; the comparison dict."""
    return compare(run_live(scenario, **kw), simulate(scenario))


__all__ = ["Probe", "compare", "dot", "html_table", "label_frames", "record", "recorded_run",
           "run_all", "run_live", "side_by_side", "simulate", "text_table"]
