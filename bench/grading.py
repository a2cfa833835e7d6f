"""Autograde a generated class with tools/grade.py; print submissions, wall time and seconds by stage.

    python bench/grading.py [--students 300] [--assignments ps1_memmap,...] [--workers N]

Target: 300 students x every assignment (ps1-ps11: 3300 submissions) in under 10 minutes on 2 cores. Each
student hands in every assignment; submission i of an assignment is one of its planted
submissions (tests/fixtures/submissions: right, wrong and tampering, the endless loops left out)
taken in turn, so every kind appears. The course directory is fresh, so the first run includes
generate_assignment (the stage "generate_assignment"); tools/grade.py skips it when solutions/ did
not change. Autograde writes each assignment's misconception report (stage "reports"); the bench then
runs `tools/grade.py similarity` on every assignment and prints its time. "verify", "autograde" (the rest of nbgrader's autograde) and "feedback" are summed
over the workers; "grading (wall)" is the time the workers took together.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import plants

TARGET = 600.0


def write_class(folder: Path, students: int, names: list[str]) -> int:
    """folder/<student>/<assignment>/<assignment>.ipynb for every student and assignment; the count."""
    n = 0
    for name in names:
        pool = [p for p in plants.PLANTS[name]() if p.student != "t_loop"]
        built = [json.dumps(p.build()) for p in pool]
        for i in range(students):
            path = folder / f"s{i:03d}" / name / f"{name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(built[i % len(built)])
            n += 1
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=300, help="students, each submitting every assignment (300)")
    parser.add_argument("--assignments", default=",".join(sorted(plants.PLANTS)), help="comma-separated (all)")
    parser.add_argument("--workers", type=int, default=None, help="grading processes (tools/grade.py's default)")
    args = parser.parse_args()
    names = args.assignments.split(",")
    with tempfile.TemporaryDirectory(prefix="vmlib-bench-") as tmp:
        subs = Path(tmp) / "submissions"
        n = write_class(subs, args.students, names)
        cmd = [sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(Path(tmp) / "course"),
               "autograde", str(subs)] + ([f"--workers={args.workers}"] if args.workers else [])
        load, start = os.getloadavg()[0], time.perf_counter()
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        clock = time.perf_counter()
        similar = subprocess.run([*cmd[:4], "similarity", *names], check=False, capture_output=True, text=True)
        similarity_seconds = time.perf_counter() - clock
        if similar.returncode != 0:
            print(similar.stderr[-3000:], file=sys.stderr)
            return 1
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    stages = re.search(r"seconds by stage[^:]*: (\{.*\})", proc.stderr)
    print(f"submissions: {n} ({args.students} students x {len(names)} assignments)")
    full = 300 * len(plants.PLANTS)
    projected = elapsed / n * full
    print(f"wall time: {elapsed:.1f} s ({elapsed / n:.3f} s a submission; 300 x {len(plants.PLANTS)} assignments "
          f"at this rate: {projected:.0f} s, {projected / TARGET:.2f} of the {TARGET:.0f} s target)")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} before and {os.getloadavg()[0]:.1f} after "
          f"(other work slows this down)")
    print(f"seconds by stage: {stages.group(1) if stages else '(not reported)'} (\"reports\": the misconception "
          "reports autograde writes)")
    print(f"similarity reports of {len(names)} assignments: {similarity_seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
