"""python -m vmlib.real [--record] [--live-only] [SCENARIO ...]: print side-by-side tables."""

from __future__ import annotations

import argparse
import sys

from vmlib import scenarios as sc
from vmlib.real import compare, record, run_live, simulate, text_table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vmlib.real", description=__doc__)
    ap.add_argument("names", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--record", action="store_true", help="run all live and store vmlib/real/recorded")
    args = ap.parse_args(argv)
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
        cmp = compare(run_live(s), simulate(s))
        bad += not cmp["agree"]
        print(text_table(cmp), end="\n\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
