"""Page-fault costs measured on the live Linux kernel (bench/live_faults.c).

    costs, reason = live_fault_costs()
    # costs: {"anon_write": us, "anon_read": us, "cow_write": us, "file_read": us} per fault
    # or (None, "no C compiler (cc/gcc) found: install gcc")

The C program is built at run time with the system compiler ($CC, cc, then gcc) into
build/bench/. "file_read" maps an already cached memfd (tmpfs) file: the live stand-in for an
XipFs fault, which maps an existing page without allocating one. Run as a script for a table:
    .venv/bin/python bench/live.py [NPAGES [REPS]]
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "bench" / "live_faults.c"
BUILD = ROOT / "build" / "bench"
BINARY = BUILD / "live_faults"
KINDS = ("anon_write", "anon_read", "cow_write", "file_read")


def find_compiler() -> str | None:
    """Path of the C compiler to use: $CC, then cc, then gcc; None when there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build() -> tuple[Path | None, str]:
    """Compile live_faults.c into build/bench/ unless the binary is newer; (path, "") or (None, why)."""
    if not sys.platform.startswith("linux"):
        return None, f"the live fault benchmark needs Linux (memfd_create, MADV_NOHUGEPAGE); this is {sys.platform}"
    if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BINARY, ""
    cc = find_compiler()
    if cc is None:
        return None, "no C compiler (cc/gcc) found: install gcc (sudo apt-get install gcc)"
    BUILD.mkdir(parents=True, exist_ok=True)
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-std=gnu11", "-o", str(BINARY), str(SOURCE)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"compiling {SOURCE.name} with {cc} failed:\n{proc.stderr.strip()}"
    return BINARY, ""


def parse(output: str) -> list[dict]:
    """Parse the program's 'fault key=value ...' lines into dicts (numbers as int/float)."""
    records = []
    for line in output.splitlines():
        words = line.split()
        if not words or words[0] != "fault":
            continue
        rec = {}
        for word in words[1:]:
            key, _, value = word.partition("=")
            rec[key] = value if key == "kind" else float(value) if "." in value else int(value)
        records.append(rec)
    return records


def live_fault_samples(npages: int = 16384, reps: int = 5) -> tuple[list[dict] | None, str]:
    """Run the benchmark; ([record per kind], "") or (None, why it could not run)."""
    if npages < 1 or not 1 <= reps <= 101:
        raise ValueError(f"need npages >= 1 and 1 <= reps <= 101, got npages={npages}, reps={reps}")
    binary, reason = build()
    if binary is None:
        return None, reason
    proc = subprocess.run([str(binary), str(npages), str(reps)], check=False, capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        return None, f"{binary.name} failed (exit {proc.returncode}): {proc.stderr.strip()}"
    records = parse(proc.stdout)
    if [r["kind"] for r in records] != list(KINDS):
        return None, f"{binary.name} printed unexpected output:\n{proc.stdout}"
    return records, ""


def live_fault_costs(npages: int = 16384, reps: int = 5) -> tuple[dict[str, float] | None, str]:
    """Median microseconds per fault for each kind on this kernel; (costs, "") or (None, why)."""
    records, reason = live_fault_samples(npages, reps)
    if records is None:
        return None, reason
    return {r["kind"]: r["us_per_fault"] for r in records}, ""


def main(argv: list[str]) -> int:
    """Print a table of live fault costs; exit 1 with the reason when it cannot run."""
    args = [int(a) for a in argv]
    records, reason = live_fault_samples(*args)
    if records is None:
        print(reason, file=sys.stderr)
        return 1
    print(f"{'kind':<11} {'us/fault':>9} {'us/page':>8} {'faults/page':>12}")
    for r in records:
        print(f"{r['kind']:<11} {r['us_per_fault']:>9.3f} {r['us_per_page']:>8.3f} {r['faults_per_page']:>12.3f}")
    print(f"({records[0]['pages']} pages, median of {records[0]['reps']} runs; "
          "file_read = memfd/tmpfs stand-in for XipFs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
