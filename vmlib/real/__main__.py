"""python -m vmlib.real [--record | --recorded] [SCENARIO ...]: print side-by-side tables."""

from __future__ import annotations

import argparse
import sys

from vmlib import scenarios as sc
from vmlib.real import compare, record, recorded_run, run_live, simulate, text_table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vmlib.real", description=__doc__)
    ap.add_argument("names", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--record", action="store_true", help="run all live and store vmlib/real/recorded")
    ap.add_argument("--recorded", action="store_true",
                    help="compare the recorded live run (what off-Linux machines see) instead of running live")
    args = ap.parse_args(argv)
    if args.record and args.recorded:
        print("error: --record runs live and stores a recording; --recorded reads one: give one of them",
              file=sys.stderr)
        return 2
    if args.record:
        print(f"recorded to {record()}")
        return 0
    try:
        chosen = [sc.get(n) for n in args.names] or sc.SCENARIOS
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bad = 0
    for s in chosen:
        live = recorded_run(s, reason="asked for the recorded run (--recorded)") if args.recorded else run_live(s)
        cmp = compare(live, simulate(s))
        bad += not cmp["agree"]
        print(text_table(cmp), end="\n\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
