"""ps6 predict: refcount, mapcount and pte states after a seeded sequence of operations.

The student fills in a table, one row per operation: (page_count(A), page_mapcount(A), the
parent's pte, the child's pte), where A is the page the parent's first write faults in. The answer
key is the simulator's own state, computed on the clean side from the same seed.
"""

from __future__ import annotations

import random

from vmlib.grading.sim import BASE, play, scenario
from vmlib.grading.suites import Case, Suite, register, table_row

PTES = ("-", "A r", "A w", "new r", "new w", "zero r")
PROFILES = ("2.6.26/x86", "6.12/x86")


def sequence(seed: int) -> tuple[str, list]:
    """(profile, ops) of sequence `seed`: one page of private anonymous memory, the parent writes first."""
    rng = random.Random(seed)
    profile = PROFILES[seed % 2]
    ops = [("parent", "write", 0)]
    if rng.random() < 0.5:
        ops.append(("parent", "gupw", 0))
    ops.append(("parent", "fork", "child"))
    tail = [("child", "read", 0), ("child", "write", 0), ("parent", "write", 0), ("parent", "read", 0)]
    rng.shuffle(tail)
    ops += tail[:rng.randrange(2, 4)]
    ops.append(("child", "exit", None))
    ops.append(("parent", "write", 0))
    return profile, ops


def words(op: tuple) -> str:
    """An operation in words."""
    who, what, arg = op
    return {"write": f"{who} writes to the page", "read": f"{who} reads the page",
            "gupw": f"{who} calls get_user_pages(write=True) on the page and keeps the reference",
            "fork": f"{who} forks; the new process is called {arg}", "exit": f"{who} exits"}[what]


def describe(seed: int) -> str:
    """The sequence as a numbered markdown list (what the notebook shows)."""
    profile, ops = sequence(seed)
    lines = [f"Kernel {profile}; `p = k.spawn('parent'); a = p.mmap(PAGE_SIZE)` (private, anonymous), then:"]
    lines += [f"{i}. {words(op)}" for i, op in enumerate(ops, 1)]
    return "\n".join(lines)


def _pte(state: dict, who: str, a_pfn: int | None) -> str:
    val = state.get(f"{who}'s pte at {BASE:#x}")
    if val is None or val == "none":
        return "-"
    pfn, flags = val.split()[1], val.split()[2].split("|")
    page = "A" if a_pfn is not None and int(pfn) == a_pfn else "new"
    return f"{page} {'w' if 'W' in flags else 'r'}"


def answer_key(seed: int) -> list[list]:
    """[count(A), mapcount(A), parent pte, child pte] after each operation of sequence `seed`."""
    profile, ops = sequence(seed)
    w = play(scenario(f"sequence {seed}", profile, "anon", 1, "private", ops), (), None, {})
    steps = w.steps[1:]
    parent = steps[0][2][f"parent's pte at {BASE:#x}"]
    a_pfn = int(parent.split()[1])
    rows = []
    for _text, _outcome, state in steps:
        counts = state.get(f"page {a_pfn}", "refcount 0, mapcount 0").replace(",", "").split()
        rows.append([int(counts[1]), int(counts[3]), _pte(state, "parent", a_pfn), _pte(state, "child", a_pfn)])
    return rows


def _cases(params: dict, check_values: bool) -> list[Case]:
    seed = params.get("seed", 1)
    _, ops = sequence(seed)
    key = answer_key(seed)
    return [Case(f"sequence {seed}, row {i + 1} ({words(op)})", "table", [i], key[i] if check_values else None)
            for i, op in enumerate(ops)]


def _shape(case: Case, got) -> str | None:
    if got is None or len(got) != 4:
        return "this row is missing or is not (count, mapcount, parent pte, child pte)"
    count, mapcount, parent, child = got
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (count, mapcount)):
        return f"count and mapcount must be ints, got {count!r} and {mapcount!r}"
    bad = [x for x in (parent, child) if x not in PTES]
    if bad:
        return f"a pte state must be one of {', '.join(map(repr, PTES))}; got {bad[0]!r}"
    return None


def _compare(case: Case, got) -> str | None:
    problem = _shape(case, got)
    if problem or case.expected is None:
        return problem
    names = ("page_count(A)", "page_mapcount(A)", "the parent's pte", "the child's pte")
    wrong = [f"{n}: you predicted {g!r}, the simulator says {e!r}" for n, g, e in zip(names, got, case.expected)
             if g != e]
    return "; ".join(wrong) or None


register(Suite("ps6.predict", ("table",), lambda p: _cases(p, True), run_case=table_row, compare=_compare,
               params=("seed",), references=("vmlib.grading.ps6:answer_key",)))
register(Suite("ps6.shape", ("table",), lambda p: _cases(p, False), run_case=table_row, compare=_compare,
               params=("seed",), references=("vmlib.grading.ps6:answer_key",)))
