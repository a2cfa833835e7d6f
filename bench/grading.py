"""Autograde 30 generated submissions with tools/grade.py and print the time (target: < 3 min on 2 cores).

    python bench/grading.py [--n 30]

Submissions are the planted ones of tests/fixtures/submissions (right, wrong and tampering, the
endless loops left out), taken in turn from every assignment (ps1 and ps7, and the
simulator-graded ps2-ps6) until there are N of them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import plants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="number of submissions (30)")
    n = parser.parse_args().n
    by_name = {name: [p for p in make() if p.student != "t_loop"] for name, make in plants.PLANTS.items()}
    pool = [pair for row in itertools.zip_longest(*[[(a, p) for p in ps] for a, ps in by_name.items()])
            for pair in row if pair]
    with tempfile.TemporaryDirectory(prefix="vmlib-bench-") as tmp:
        subs = Path(tmp) / "submissions"
        for i, (name, plant) in enumerate(itertools.islice(itertools.cycle(pool), n)):
            path = subs / f"s{i:03d}_{plant.student}" / name / f"{name}.ipynb"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(plant.build()))
        cmd = [sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(Path(tmp) / "course"),
               "autograde", str(subs)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    names = sorted({name for name, _ in itertools.islice(itertools.cycle(pool), n)})
    print(f"assignments: {', '.join(names)}")
    print(f"autograded {n} submissions (autograde + feedback + grades.csv) in {elapsed:.1f} s "
          f"({elapsed / n:.2f} s each); target < 180 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
