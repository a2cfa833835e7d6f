"""The picture model of the views: what a step shows, computed from a trace, with no drawing.

Renderers (vmlib.views.layout: our own SVG; vmlib.views.dot: DOT text for Graphviz) read
this module and never each other. It holds the vocabulary both draw with (frame kinds,
colours, themes, what a step changed: Diff); the rows of the page tables both draw
(`Union` of the states to show, `table_rows`: single ptes, groups of ptes that change
together, pieces of linear runs, and the frame node each maps); and, in
`StepModel`/`step_models`, what each step of a trace is: one user-visible operation, its
headline in plain words with the deciding kernel-facts row, its kernel events in words, what
it changed and what the deciding code examined (ptes, vmas, frames, mms).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import ClassVar

from vmlib.trace import Snapshot, describe

PAGE = 4096

# Okabe-Ito colours
ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILLION, PURPLE = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
FILL = {"anon": GREEN, "file": SKY, "kernel": YELLOW, "zero": "#FFFFFF", "device": PURPLE,
        "table": "#E0E0E0", "special": ORANGE, "mm": BLUE, "none": "#BBBBBB"}
THEMES = {
    "auto": {"bg": "transparent", "ink": "#808080"},
    "light": {"bg": "#FFFFFF", "ink": "#333333"},
    "dark": {"bg": "#1E1E1E", "ink": "#D0D0D0"},
}


def theme_ink(theme: str) -> dict:
    """Background and line/text colour of a theme; ValueError for an unknown name."""
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}: use one of {', '.join(repr(t) for t in THEMES)}")
    return THEMES[theme]


def proc_label(pid: int, name: str) -> str:
    """How a process is named: "P2 child", or just "P2" when its name is the default one."""
    return f"P{pid}" if name == f"P{pid}" else f"P{pid} {name}"


def esc(text) -> str:
    return html.escape(str(text), quote=True)


# -- what a step changed ------------------------------------------------------------------

@dataclass
class Diff:
    """What changed between two states: for each key, the value before (None = absent)."""

    ptes: dict = field(default_factory=dict)     # (pid, addr) -> old Pte|None
    pages: dict = field(default_factory=dict)    # pfn -> old PageInfo|None
    rss: dict = field(default_factory=dict)      # (pid, kind) -> old int
    vmas: dict = field(default_factory=dict)     # pid -> old tuple
    runs: dict = field(default_factory=dict)     # pid -> old tuple
    mms: dict = field(default_factory=dict)      # pid -> old name|None
    tables: dict = field(default_factory=dict)   # (pid, level, base) -> old pfn|None

    TABLES: ClassVar[dict] = {"pte": "ptes", "page": "pages", "rss": "rss", "vmas": "vmas", "runs": "runs",
                              "mm": "mms", "table": "tables"}

    @classmethod
    def from_deltas(cls, deltas) -> Diff:
        """The net change of a sequence of trace deltas (first old value of each key wins)."""
        d = cls()
        for what, key, old, _new in deltas:
            getattr(d, cls.TABLES[what]).setdefault(key, old)
        return d

    @classmethod
    def between(cls, old: Snapshot, new: Snapshot) -> Diff:
        """The change from snapshot `old` to snapshot `new` (ptes compared with runs resolved)."""
        d = cls()
        for key in set(old.ptes) | set(new.ptes):
            if old.pte(*key) != new.pte(*key):
                d.ptes[key] = old.pte(*key)
        for name in ("pages", "rss", "vmas", "runs", "mms", "tables"):
            a, b = getattr(old, name), getattr(new, name)
            for key in set(a) | set(b):
                if a.get(key) != b.get(key):
                    getattr(d, name)[key] = a.get(key)
        return d

    def __bool__(self):
        return any((self.ptes, self.pages, self.rss, self.vmas, self.runs, self.mms, self.tables))

    def prune(self, snap: Snapshot) -> Diff:
        """Drop keys whose value ended where it started (nothing visible moved)."""
        d = Diff()
        d.ptes = {k: v for k, v in self.ptes.items() if snap.pte(*k) != v}
        for name in ("pages", "rss", "vmas", "runs", "mms", "tables"):
            now = getattr(snap, name)
            getattr(d, name).update({k: v for k, v in getattr(self, name).items() if now.get(k) != v})
        return d


# -- inputs --------------------------------------------------------------------------------

def inputs(src, trace_info=None) -> tuple[Snapshot, dict]:
    """(snapshot, info) from a Kernel, a Trace (its last state) or a Snapshot (+ trace_info)."""
    if hasattr(src, "snapshot") and hasattr(src, "trace_info"):
        return src.snapshot(), trace_info or src.trace_info()
    if isinstance(src, Snapshot):
        return src, trace_info or {}
    if hasattr(src, "state_at") and hasattr(src, "info"):
        return src.state_at(len(src) - 1), trace_info or src.info
    raise TypeError(f"expected a vmlib.Kernel, a Trace or a Snapshot, got {type(src).__name__}")


def check_pids(snap: Snapshot, pids) -> list[int]:
    """The pids to draw (all live ones for None); ValueError naming a pid that is not alive."""
    live = sorted(snap.mms)
    if pids is None:
        return live
    pids = [pids] if isinstance(pids, int) else list(pids)
    for pid in pids:
        if pid not in snap.mms:
            alive = ", ".join(f"{p} ({snap.mms[p]})" for p in live) or "none"
            raise ValueError(f"process {pid} is not in this state: it has exited or never existed "
                             f"(live processes: {alive}); pass one of those pids")
    return pids


# -- frames --------------------------------------------------------------------------------

def frame_kind(pfn: int, snap: Snapshot, info: dict) -> str:
    """'anon', 'file', 'kernel', 'zero', 'device' (device memory: no struct page, or one its
    driver made, as 2.6.25 XIP does) or 'none' (no memory there)."""
    page = snap.pages.get(pfn)
    if page is not None and not (pfn >= info.get("ram_pages", 0) and device_of(pfn, info)):
        if pfn == info.get("zero_pfn") and not page.anon:
            return "zero"
        return "anon" if page.anon else "file" if page.mapping else "kernel"
    if device_of(pfn, info):
        return "device"
    return "kernel" if pfn < info.get("ram_pages", 0) else "none"


def device_of(pfn: int, info: dict) -> str | None:
    for name, start, n in info.get("devices", ()):
        if start <= pfn < start + n:
            return name
    return None


def page_text(page) -> str:
    return f"ref {page.count} map {page.mapcount}"


def frame_what(kind: str, page, pfn: int, info: dict) -> str:
    """What a frame with a struct page holds, in words: 'anon', 'file NAME', 'zero page', ..."""
    if kind == "device":                        # device memory a driver gave struct pages (2.6.25 XIP)
        return f"device {device_of(pfn, info)}, struct page made by its driver"
    return {"anon": "anon", "zero": "zero page", "kernel": "reserved" if page.reserved else "kernel"}.get(
        kind, f"file {page.mapping}")


def moved(old, new) -> str:
    return str(new) if old == new else f"{'–' if old is None else old}→{new}"



# What each smaps "VmFlags:" letter pair says about a vma (kernel-facts §13d; our words).
SMAPS_WORDS = {
    "rd": "readable", "wr": "writable", "ex": "executable", "sh": "shared", "mr": "may be made readable",
    "mw": "may be made writable", "me": "may be made executable", "ms": "may be shared",
    "gd": "stack growing down", "pf": "pure pfn range (VM_PFNMAP)", "lo": "locked in memory",
    "io": "I/O memory (VM_IO)", "dc": "not copied on fork", "de": "not expanded by mremap",
    "ac": "counted against the commit limit", "ht": "huge pages", "dd": "left out of core dumps",
    "mm": "mixed map (VM_MIXEDMAP)",
}

DEVICE_MEMMAPPED = "device memory (dashed): struct pages only where its driver made them"

def default_title(info, pids, snap) -> str:
    prof = info.get("profile")
    name = getattr(prof, "name", None) or (f"{prof.version}/{prof.arch}" if prof else "")
    procs = ", ".join(proc_label(p, snap.mms[p]) for p in pids) or "no processes"
    return f"{name}: {procs}".strip(": ")


def rss_text(snap, diff, key) -> str:
    now = snap.rss.get(key, 0)
    return moved(diff.rss[key] or 0, now) if diff and key in diff.rss else str(now)



# -- the union of a trace's states: everything any step shows ----------------------------------------------------------

@dataclass
class Union:
    """Everything any step of some traces shows, and when each pte changed (step indexes)."""

    mms: dict = field(default_factory=dict)       # pid -> set of names
    tables: set = field(default_factory=set)      # (pid, level, base)
    ptes: dict = field(default_factory=dict)      # (pid, addr) -> list[(step, Pte|None)]
    runs: dict = field(default_factory=dict)      # pid -> set[Run]
    pfns: set = field(default_factory=set)        # every pfn a pte ever maps
    kinds: set = field(default_factory=set)       # frame kinds seen ("anon", "device", ...)
    names: set = field(default_factory=set)       # page-cache and device names seen
    special: bool = False                         # some pte was special
    sigs: dict = field(default_factory=dict)      # ((pid, addr), step) -> (kind, count, mapcount) then
    vmas: dict = field(default_factory=dict)      # pid -> {start: VmaInfo} of every vma any step shows
    info: dict = field(default_factory=dict)

    @classmethod
    def of(cls, sources, info: dict | None = None) -> Union:
        """The union of (trace, spans) pairs or single Snapshots (described by `info`, the
        trace_info); spans are Steps' (first, last) event indexes."""
        u = cls()
        for src in sources:
            if isinstance(src, Snapshot):
                u.info = info or {}
                u._record_all(src, 0)
            else:
                u.info = src[0].info
                u._walk(*src)
        return u

    @classmethod
    def of_step(cls, snap: Snapshot, diff: Diff | None, info: dict) -> Union:
        """The union of one step's two states: the state before `diff` (step 0) and `snap`, the
        state after it (step 1); so what the step changed never shares a row with what it did not.
        Without a diff, the union of `snap` alone."""
        if not diff:
            return cls.of([snap], info)
        before = snap.copy()
        for what in ("runs", "pte", "page", "rss", "vmas", "mm", "table"):      # runs first: ptes mask them
            for key, old in getattr(diff, Diff.TABLES[what]).items():
                before.apply((what, key, old, None), forward=False)
        u = cls.of([before], info)
        for pid in diff.runs:
            u._runs(snap, pid, snap.runs.get(pid))
        u.tables.update(k for k in diff.tables if snap.tables.get(k) is not None)
        for pid in diff.vmas:
            u._vmas(pid, snap.vmas.get(pid))
        for pid in diff.mms:
            if snap.mms.get(pid) is not None:
                u.mms.setdefault(pid, set()).add(snap.mms[pid])
        touched = set(diff.ptes) | {k for k in (*snap.ptes, *before.ptes) if k[0] in diff.runs}
        for key in touched:
            u._note(snap, key, 1)
        return u

    def _record_all(self, snap: Snapshot, step: int) -> None:
        for pid, name in snap.mms.items():
            self.mms.setdefault(pid, set()).add(name)
        self.tables.update(snap.tables)
        for pid, vmas in snap.vmas.items():
            self._vmas(pid, vmas)
        for pid, runs in snap.runs.items():
            self._runs(snap, pid, runs)
        for key in snap.ptes:
            self._note(snap, key, step)

    def _note(self, snap: Snapshot, key, step: int) -> None:
        value = snap.pte(*key)
        self.sigs[(key, step)] = None if value is None else _frame_sig(value.pfn, snap, self.info)
        line = self.ptes.setdefault(key, [])
        if line and line[-1][0] == step:
            line[-1] = (step, value)
        elif not line or line[-1][1] != value:
            line.append((step, value))
        if value is not None:
            self.pfns.add(value.pfn)
            self._frame(snap, value.pfn)
            self.special |= value.special

    def _frame(self, snap: Snapshot, pfn: int) -> None:
        self.kinds.add(frame_kind(pfn, snap, self.info))
        page = snap.pages.get(pfn)
        self.names.add(page.mapping if page is not None and page.mapping else device_of(pfn, self.info) or "")

    def _vmas(self, pid: int, vmas) -> None:
        slots = self.vmas.setdefault(pid, {})
        for v in vmas or ():
            if v.start not in slots or (v.end - v.start) > (slots[v.start].end - slots[v.start].start):
                slots[v.start] = v

    def _runs(self, snap: Snapshot, pid: int, runs) -> None:
        from vmlib.pte import Pte
        for r in runs or ():
            self.runs.setdefault(pid, set()).add(r)
            self._frame(snap, r.pfn0)
            self.special |= Pte(r.pfn0, r.bits).special

    def _walk(self, trace, spans) -> None:
        """Record the state of every step: all of step 0, then what each later span touched."""
        snap = trace.state_at(spans[0][1])
        self._record_all(snap, 0)
        at = spans[0][1]
        for step, (_first, last) in enumerate(spans[1:], start=1):
            touched, run_pids = set(), set()
            for j in range(at + 1, last + 1):
                d = trace.delta(j)
                if d is None:
                    continue
                snap.apply(d)
                what, key, _old, new = d
                if what == "pte":
                    touched.add(key)
                elif what == "runs":
                    run_pids.add(key)
                    self._runs(snap, key, new)
                elif what == "table" and new is not None:
                    self.tables.add(key)
                elif what == "vmas":
                    self._vmas(key, new)
                elif what == "mm" and new is not None:
                    self.mms.setdefault(key, set()).add(new)
            if run_pids:
                touched |= {k for k in snap.ptes if k[0] in run_pids}
            for key in touched:
                self._note(snap, key, step)
            at = last


# -- rows: the entries of the pte tables, grouped; the frames they map ----------------------------------------------------

@dataclass
class Row:
    """One row of a pte table: one pte, a group of ptes that always change together, or a
    piece of a linear run. `y` and `lines` are where the SVG layout placed it (it never moves)."""

    rid: str
    pid: int
    addrs: tuple                 # explicit pte addresses (empty for a run piece)
    run: tuple | None = None     # (start, n, pfn0, bits) of a run piece
    frame: str = ""              # frame node id for groups and run pieces ("" = per pfn)
    y: float = 0.0
    lines: int = 1               # 2: the target goes on a second line (narrow column)

    @property
    def first(self) -> int:
        return self.run[0] if self.run else self.addrs[0]

    @property
    def n(self) -> int:
        return self.run[1] if self.run else len(self.addrs)

    def ptes(self, snap: Snapshot) -> list:
        """The current ptes of this row (None where absent)."""
        if self.run:
            return self.run_ptes(snap.runs.get(self.pid, ()))
        return [snap.pte(self.pid, a) for a in self.addrs]

    def run_ptes(self, runs) -> list:
        """A run piece's first (and last) pte when `runs` cover it, else [None]."""
        start, n, pfn0, bits = self.run
        if not any(r.start <= start < r.end and r.pfn0 + (start - r.start) // PAGE == pfn0 for r in runs or ()):
            return [None]
        from vmlib.pte import Pte
        return [Pte(pfn0, bits), Pte(pfn0 + n - 1, bits)] if n > 1 else [Pte(pfn0, bits)]

    def olds(self, diff) -> list:
        """What the step changed in this row: the old ptes (None for an entry that was empty)."""
        if diff is None:
            return []
        if self.run:
            return self.run_ptes(diff.runs[self.pid]) if self.pid in diff.runs else []
        return [diff.ptes[(self.pid, a)] for a in self.addrs if (self.pid, a) in diff.ptes]


def _frame_sig(pfn: int, snap: Snapshot, info: dict) -> tuple:
    page = snap.pages.get(pfn)
    return frame_kind(pfn, snap, info), page and (page.count, page.mapcount, page.mapping)


def group_rows(pid: int, addrs: list[int], u: Union, collapse: int) -> list[Row]:
    """Rows of one pte table: consecutive ptes (constant address step) that changed at the same
    steps and were alike at each of them form one row when there are at least `collapse`."""
    groups: list[list[int]] = []
    for a in addrs:
        g = groups[-1] if groups else None
        if g and _joins(pid, g, a, u):
            g.append(a)
        else:
            groups.append([a])
    rows = []
    for g in groups:
        if len(g) >= collapse:
            rows.append(Row(f"p{pid}_{g[0]:x}_{len(g)}", pid, tuple(g)))
        else:
            rows.extend(Row(f"p{pid}_{a:x}", pid, (a,)) for a in g)
    return rows


def _joins(pid: int, g: list[int], a: int, u: Union) -> bool:
    prev = u.ptes[(pid, g[-1])]
    line = u.ptes[(pid, a)]
    if [s for s, _ in prev] != [s for s, _ in line]:
        return False
    if len(g) >= 2 and a - g[-1] != g[1] - g[0]:
        return False
    for (s, p0), (_t, p1) in zip(prev, line):
        if (p0 is None) != (p1 is None):
            return False
        if p0 is not None and (p0.bits != p1.bits or u.sigs.get(((pid, g[-1]), s)) != u.sigs.get(((pid, a), s))):
            return False
    if len(g) >= 2:           # the pfn step at each change must continue the group's
        first = u.ptes[(pid, g[0])]
        second = u.ptes[(pid, g[1])]
        for (_s, p0), (_t, p1), (_v, pl), (_w, pn) in zip(first, second, prev, line):
            if p0 is not None and (p1.pfn - p0.pfn) != (pn.pfn - pl.pfn):
                return False
    return True


def row_pfns(row: Row, u: Union) -> set:
    """Every pfn a row ever maps."""
    if row.run:
        return set(range(row.run[2], row.run[2] + row.run[1]))
    return {p.pfn for a in row.addrs for _s, p in u.ptes[(row.pid, a)] if p is not None}


def run_pieces(pid: int, u: Union, explicit: set, collapse: int) -> list[Row]:
    """Rows for linear runs, cut around addresses that ever had an explicit pte."""
    rows = []
    for r in sorted(u.runs.get(pid, ())):
        piece = []
        for a in range(r.start, r.end, PAGE):
            if (pid, a) in explicit:
                rows.extend(_run_rows(pid, piece, r, collapse))
                piece = []
            else:
                piece.append(a)
        rows.extend(_run_rows(pid, piece, r, collapse))
    return rows


def _run_rows(pid, piece, r, collapse) -> list[Row]:
    if not piece:
        return []
    pfn0 = r.pfn0 + (piece[0] - r.start) // PAGE
    if len(piece) >= collapse:
        return [Row(f"p{pid}_r{piece[0]:x}_{len(piece)}", pid, (), (piece[0], len(piece), pfn0, r.bits),
                    f"r{pfn0}_{len(piece)}")]
    return [Row(f"p{pid}_r{a:x}", pid, (), (a, 1, pfn0 + i, r.bits)) for i, a in enumerate(piece)]


def assign_frames(rows: list[Row], u: Union) -> None:
    """Give groups (pfn step != 0) one frame node when no other row maps any of their pfns;
    otherwise split them into single rows (a frame is drawn once)."""
    while True:
        owners: dict[int, set] = {}
        for r in rows:
            for pfn in row_pfns(r, u):
                owners.setdefault(pfn, set()).add(r.rid)
        split = None
        for r in rows:
            if r.n == 1 or r.run:
                continue
            pfns = row_pfns(r, u)
            if len(pfns) == 1:                     # one frame repeated: it is that frame's node
                r.frame = ""
                continue
            key = frozenset(pfns)
            mates = set().union(*(owners[p] for p in pfns))
            if all(key == frozenset(row_pfns(m, u)) for m in _rows(rows, mates)):
                r.frame = f"g{min(pfns)}_{len(pfns)}"
            else:
                split = r
                break
        if split is None:
            return
        i = rows.index(split)
        rows[i:i + 1] = [Row(f"p{split.pid}_{a:x}", split.pid, (a,)) for a in split.addrs]


def _rows(rows, ids):
    return [r for r in rows if r.rid in ids]


def table_rows(u: Union, pids, collapse: int = 4) -> dict[tuple, list[Row]]:
    """The rows of every pte table of `pids` in the union: (pid, i4, i3, i2) -> rows in address
    order (groups of ptes that change together, run pieces, single ptes; see group_rows,
    run_pieces, assign_frames). Both renderers draw these rows."""
    explicit = set(u.ptes)
    out: dict[tuple, list[Row]] = {}
    for pid in sorted(pids):
        by_table: dict[tuple, list[int]] = {}
        for (m, a) in explicit:
            if m == pid:
                by_table.setdefault(walk(a), []).append(a)
        tables = {t: group_rows(pid, sorted(addrs), u, collapse) for t, addrs in by_table.items()}
        for r in run_pieces(pid, u, explicit, collapse):
            tables.setdefault(walk(r.first), []).append(r)
        for (pid_, level, base) in u.tables:
            if pid_ == pid and level == 1:
                tables.setdefault(walk(base), [])
        for t, rows in tables.items():
            out[(pid, *t)] = rows
    every = [r for rows in out.values() for r in rows]
    assign_frames(every, u)
    for key in out:                             # assign_frames may have split some groups
        out[key] = sorted((r for r in every if r.pid == key[0] and walk(r.first) == key[1:]), key=lambda r: r.first)
    return out


def walk(addr: int) -> tuple[int, int, int]:
    """The pgd, pud and pmd index of an address (x86-64's 4 levels, 9 bits each)."""
    return addr >> 39 & 511, addr >> 30 & 511, addr >> 21 & 511


# -- what each step is: one operation, its words, what it changed and examined ---------------

# Kernel functions a lesson may call directly (outside any process operation): each starts a step.
STANDALONE = {"move_to_pagecache", "move_to_xip", "unpin_user_page", "put_page", "vm_insert_mixed",
              "vm_insert_page", "vm_insert_pfn", "remap_pfn_range", "add_shared_memory"}
# Decisions that only dispatch or look up; they decide an operation only when nothing else did.
MINOR = {"fault", "vm_normal_page", "insert_page", "insert_pfn"}
# Functions a lesson's own code calls to ask (k.vm_normal_page): at depth 0 they belong to no operation.
ASKED = {"vm_normal_page"}
_OP = re.compile(r"^(\w+)\((.*)\)$")


@dataclass
class Examined:
    """What the deciding code looked at: ptes (pid, addr), vmas (pid, start), frames (pfn), mms (pid)."""

    ptes: set = field(default_factory=set)
    vmas: set = field(default_factory=set)
    frames: set = field(default_factory=set)
    mms: set = field(default_factory=set)
    key: set = field(default_factory=set)      # the ptes (pid, addr) the deciding decision names

    def __bool__(self):
        return bool(self.ptes or self.vmas or self.frames or self.mms)


@dataclass
class StepModel:
    """One default step: a user-visible operation (events first..last of the trace).

    `op` holds its machine-readable facts (see Steps.frames for the keys); `headline` says in
    plain words what the kernel did and why, `row` is the deciding kernel-facts row, `events`
    the kernel events in words (bookkeeping folded), `examined` what the deciding code looked at."""

    first: int
    last: int
    op: dict
    action: str        # what was done, without the outcome ("P2 writes "C" to 0x40000000")
    headline: str
    row: str
    events: list
    examined: Examined


def op_spans(trace) -> list[tuple[int, int]]:
    """(first, last) event index of each operation: an "op" event, a top-level call of a kernel
    function a lesson may call directly (STANDALONE), or a run of top-level struct page changes
    after an operation's nested work (the lesson's own k.put_page / k.alloc_page, which emit no
    call); earlier events join the first."""
    heads = trace._rows[::3]
    starts, deeper, direct = [], False, False
    for i, (kind, func, _row, depth) in enumerate(heads):
        if kind == "op" or (kind == "call" and depth == 0 and func in STANDALONE):
            starts.append(i)
            deeper = direct = False
            continue
        own = kind == "state" and depth == 0 and func == "page"
        if own and deeper and not direct:
            starts.append(i)
        direct = own and (direct or deeper)
        deeper = deeper or depth > 0
    starts = sorted({0, *starts[1:]}) if starts else [0]
    return [(s, e - 1) for s, e in zip(starts, [*starts[1:], len(trace)])]


def step_models(trace, spans=None) -> list[StepModel]:
    """The StepModel of every span (default: op_spans), walking the trace once."""
    spans = op_spans(trace) if spans is None else spans
    snap = trace.state_at(spans[0][0] - 1) if spans[0][0] > 0 else trace.base.copy()
    out = []
    for first, last in spans:
        for j in range(first, last + 1):
            trace.step(snap, j, True)
        out.append(step_model(trace, first, last, snap))
    return out


def step_model(trace, first: int, last: int, after: Snapshot) -> StepModel:
    """The StepModel of events first..last, given the state after them (read, not kept)."""
    diff = Diff.from_deltas(d for d in map(trace.delta, range(first, last + 1)) if d is not None)
    return _model(trace, first, last, Before(after, diff), after)


class Before:
    """The state before a step, read through the state after it and the step's Diff: no copy
    of the whole state (a step of a large trace stays cheap). Offers what _model reads: mms,
    vmas, pages.get, pte(pid, addr) and ptes."""

    def __init__(self, after: Snapshot, diff: Diff):
        self._after, self._diff = after, diff
        self.mms = _undone(after.mms, diff.mms)
        self.vmas = _undone(after.vmas, diff.vmas)
        self.pages = _Undone(after.pages, diff.pages)

    def pte(self, pid: int, addr: int):
        if (pid, addr) in self._diff.ptes:
            return self._diff.ptes[(pid, addr)]
        if pid in self._diff.runs:                       # linear runs changed: read the old ones
            from vmlib.pte import Pte
            for r in self._diff.runs[pid] or ():
                if r.start <= addr < r.end:
                    return Pte(r.pfn0 + ((addr - r.start) >> 12), r.bits)
            return self._after.ptes.get((pid, addr))
        return self._after.pte(pid, addr)

    @property
    def ptes(self) -> dict:
        out = {k: v for k, v in self._after.ptes.items() if k not in self._diff.ptes}
        out.update((k, v) for k, v in self._diff.ptes.items() if v is not None)
        return out


def _undone(now: dict, olds: dict) -> dict:
    out = dict(now)
    for key, old in olds.items():
        if old is None:
            out.pop(key, None)
        else:
            out[key] = old
    return out


class _Undone:
    """dict.get over a large table with some keys' old values (None: absent) laid on top."""

    def __init__(self, now: dict, olds: dict):
        self._now, self._olds = now, olds

    def get(self, key, default=None):
        if key in self._olds:
            old = self._olds[key]
            return default if old is None else old
        return self._now.get(key, default)


def _model(trace, first: int, last: int, before: Before, after: Snapshot) -> StepModel:
    events = trace.events[first:last + 1]
    opev = next((e for e in events if e.kind == "op"), None)
    op = _parse_op(opev, events[0], before, after)
    decisions = [e for e in events if e.kind == "decision" and not (e.depth == 0 and e.func in ASKED)]
    errors = [e for e in events if e.kind in ("error", "warn")]
    key = _key_decision(decisions)
    op.update(_decision_facts(key, decisions, errors))
    pid, addr = op.get("pid"), op.get("addr")
    if pid is not None and addr is not None:
        page = addr & ~(PAGE - 1)
        op["before"], op["after"] = _facts(before, pid, page), _facts(after, pid, page)
    examined = _examined(op, decisions, errors, before, after)
    for e in [x for x in (key, *errors[-1:]) if x is not None]:
        examined.key |= set(e.examined.ptes) & examined.ptes
    if not examined.key and pid is not None and addr is not None and op["kind"] in ("read", "write"):
        examined.key.add((pid, addr & ~(PAGE - 1)))
    action = _action(op, after)
    why = _why(op, key, decisions, errors, events)
    return StepModel(first, last, op, action, words(f"{action}. {why}" if why else f"{action}."),
                     key.row if key else "", [w for e in events if (w := event_words(e))], examined)


def _parse_op(opev, first_event, before: Snapshot, after: Snapshot) -> dict:
    """{"kind", "who", "pid", and the operation's arguments} from the op event's text."""
    if opev is None and first_event.func == "page" and first_event.delta is not None:
        _what, pfn, old, new = first_event.delta        # the lesson's own call on a struct page
        kind = "alloc_page" if old is None else "put_page" if new is None or new.count < old.count else "get_page"
        return {"kind": kind, "who": "kernel", "pid": None, "text": describe(first_event.delta), "pfn": pfn}
    if opev is None:
        return {"kind": first_event.func, "who": "kernel", "pid": None, "text": first_event.text}
    m = _OP.match(opev.text.strip())
    kind, args = (m[1], m[2]) if m else (opev.text, "")
    op = {"kind": kind, "who": opev.func, "pid": _pid_of(opev.func, before, after), "text": opev.text}
    parts = [a.strip() for a in _split_args(args)]
    nums = [int(a, 0) for a in parts if re.fullmatch(r"0x[0-9a-f]+|\d+", a)]
    if kind in ("read", "write", "munmap") or "user_pages" in kind:
        op["addr"] = nums[0] if nums else None
    if kind == "read" and len(nums) > 1:
        op["n"] = nums[1]
    elif kind == "write" and len(parts) > 1:
        op["data"] = _bytes_text(parts[1])
    elif kind == "munmap" and len(nums) > 1:
        op["length"] = nums[1]
    elif "user_pages" in kind:
        op["nr"] = nums[1] if len(nums) > 1 else 1
        op["write"] = "write=True" in args
    elif kind == "mmap":
        op["length"] = nums[0] if nums else None
        op["prot"], op["flags"] = (parts + ["", ""])[1:3]
        op["file"] = parts[3] if len(parts) > 3 and "=" not in parts[3] else ""
        new = [v for v in after.vmas.get(op["pid"], ()) if v not in before.vmas.get(op["pid"], ())]
        if new:
            op["addr"], op["vma"] = new[0].start, {"start": new[0].start, "end": new[0].end, "flags": new[0].flags}
    elif kind == "spawn":
        born = [p for p in after.mms if p not in before.mms]
        op["pid"] = born[0] if born else None
        op["who"] = "kernel"
    elif kind == "fork":
        born = [p for p in after.mms if p not in before.mms]
        op["child"] = born[0] if born else None
    return op


def _split_args(args: str) -> list[str]:
    """Split 'a, b\'x, y\', c' at top-level commas (quoted bytes may hold commas)."""
    out, cur, quote = [], "", None
    for ch in args:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            out.append(cur)
            cur = ""
            continue
        cur += ch
    return [*out, cur] if args else out


def _bytes_text(arg: str) -> str:
    """b'hi' -> "hi" (what a student wrote, not Python's repr of it)."""
    arg = arg.strip()
    if arg[:2] in ("b'", 'b"') and arg[-1:] == arg[1]:
        arg = arg[2:-1]
    return f'"{arg}"'


def _pid_of(name: str, before: Snapshot, after: Snapshot):
    for snap in (before, after):
        pids = sorted(p for p, n in snap.mms.items() if n == name)
        if pids:
            return pids[0]
    m = re.fullmatch(r"P(\d+)", name)
    return int(m[1]) if m else None


def _key_decision(decisions):
    """The decision that decided the operation: a refusal or fallback first, then a decision
    with a numbered kernel-facts row, then any decision of a function that is not MINOR."""
    def score(e):
        t = e.text
        s = 0
        if "fall back" in t or "-E" in t or "SIGBUS" in t:
            s += 8
        if e.func not in MINOR:
            s += 4
        if "row" in e.row:
            s += 2
        return s
    best = None
    for e in decisions:
        if best is None or score(e) > score(best):
            best = e
    return best


def _decision_facts(key, decisions, errors) -> dict:
    facts = {"decisions": [{"fn": e.func, "text": e.text, "row": e.row} for e in decisions]}
    if key is not None:
        t = key.text
        word = t.split(":", 1)[0].strip() if ":" in t[:12] else ""
        facts.update(fn=key.func, row=key.row, why=t, decision=(
            "fallback" if "fall back" in t else word if word in ("copy", "reuse") else
            "special" if "→ special" in t else "efault" if "-EFAULT" in t else key.func))
    if errors:
        e = errors[-1]
        facts["error"] = e.text
        if "SIGBUS" in e.text:
            facts["decision"] = "sigbus"
        elif e.func == "Segfault" or "SIGSEGV" in e.text:
            facts["decision"] = "segfault"
    return facts


def _facts(snap: Snapshot, pid: int, addr: int) -> dict:
    """The pte at addr of pid and its struct page, as plain data (None where there is none)."""
    pte = snap.pte(pid, addr)
    out = {"pte": None, "page": None}
    if pte is not None:
        out["pte"] = {"pfn": pte.pfn, "flags": pte.flags_str(), "present": pte.present, "write": pte.write,
                      "special": pte.special}
        page = snap.pages.get(pte.pfn)
        if page is not None:
            out["page"] = {"pfn": pte.pfn, "count": page.count, "mapcount": page.mapcount, "anon": page.anon}
    return out


def _examined(op: dict, decisions, errors, before: Snapshot, after: Snapshot) -> Examined:
    """What the operation's deciding code looked at: from its arguments, and what its decisions
    (and an error's last decision) recorded in `examined` (ptes and vmas drawn before or after)."""
    ex = Examined()
    pid, addr = op.get("pid"), op.get("addr")
    kind = op["kind"]
    if kind in ("spawn", "fork", "exit"):
        ex.mms.add(pid)
    if "pfn" in op:
        ex.frames.add(op["pfn"])
    if kind == "fork" and pid is not None:
        ex.ptes |= {(pid, a) for (m, a), p in before.ptes.items() if m == pid and p is not None}
    if pid is not None and addr is not None:
        n = op.get("nr", 1) if "user_pages" in kind else max(1, -(-op.get("length", PAGE) // PAGE)) \
            if kind == "munmap" else 1
        for i in range(n):
            a = (addr & ~(PAGE - 1)) + i * PAGE
            if kind != "mmap":                   # mmap makes a vma and looks at no pte
                ex.ptes.add((pid, a))
            for snap in (before, after):
                v = _vma_at(snap, pid, a)
                if v is not None:
                    ex.vmas.add((pid, v.start))
    m = re.fullmatch(r"(.+) page (\d+)", op.get("text", "").strip()) if op["who"] == "kernel" else None
    named = [(p, v) for p, vmas in (before.vmas.items() if m else ()) for v in vmas if v.name]
    for pid_, v in [pv for pv in named if pv[1].name == m[1]] or named:    # a file's vma, else any file's
        a = v.start + (int(m[2]) - v.pgoff) * PAGE
        if v.start <= a < v.end:
            ex.vmas.add((pid_, v.start))
            ex.ptes.add((pid_, a))
    for e in [*decisions, *errors]:
        looked = e.examined
        ex.ptes |= {(m, a) for m, a in looked.ptes if _vma_at(before, m, a) or _vma_at(after, m, a)}
        ex.vmas |= {(m, s) for m, s in looked.vmas if _vma_at(before, m, s) or _vma_at(after, m, s)}
        ex.frames |= set(looked.pfns)
    for pid_, a in list(ex.ptes):
        pte = before.pte(pid_, a) or after.pte(pid_, a)
        if pte is not None and kind != "fork":
            ex.frames.add(pte.pfn)
    if kind == "mmap" and pid is not None and not ex.vmas:
        ex.mms.add(pid)          # a refused mmap made no vma: its code looked at the process's mm
    return ex


def _vma_at(snap: Snapshot, pid: int, addr: int):
    return next((v for v in snap.vmas.get(pid, ()) if v.start <= addr < v.end), None)


def _pgtable(info) -> bool:
    return info is not None and info.pgtable


def _bare(info) -> bool:
    """A page just allocated, mapped by nobody yet (it becomes a page table or is filled next)."""
    return info is not None and not info.anon and not info.mapping and info.mapcount == 0


def event_words(e) -> str:
    """One event in words for a student ('' for bookkeeping that is folded into its operation)."""
    d = e.delta
    if e.kind == "op":
        return ""
    if d is not None:
        what, key, old, new = d
        if what == "page" and (_pgtable(old) or _pgtable(new) or old is None and _bare(new)):
            return ""                             # page-table pages: said by their table events
        if what in ("rss", "vmas", "runs") and (old in (None, ()) and new in (0, ()) or
                                                 new in (None, ()) and old in (0, ())):
            return ""                             # counters and lists made or dropped with the mm
        if what == "vmas" and old is not None and new is not None and len(old) == len(new):
            return f"{'  ' * e.depth}{e.func}: P{key}'s vma updated" if old != new else ""
    return words(str(e))


def words(text: str) -> str:
    """Text without Python literals: 'COW=True' -> 'COW', 'write=False' -> 'not write', None -> none."""
    text = re.sub(r"\b(\w+)=True\b", r"\1", text)
    text = re.sub(r"\b(\w+)=False\b", r"not \1", text)
    return re.sub(r"\bNone\b", "none", text)


def _action(op, after) -> str:
    """What the operation asks for, in words (the first half of a headline)."""
    who, kind, pid = op.get("who"), op["kind"], op.get("pid")
    actor = proc_label(pid, who) if pid is not None and who != "kernel" else who
    at = f" {op['addr']:#x}" if op.get("addr") is not None else ""
    what = {
        "spawn": f"The kernel creates process {proc_label(pid, after.mms.get(pid, ''))}" if pid else "spawn",
        "mmap": f"{actor} maps {(op.get('length') or 0) // PAGE} page(s) {op.get('prot', '')} "
                f"{op.get('flags', '')}{' of ' + op['file'] if op.get('file') else ''}"
                + (f" at {op['addr']:#x}" if op.get("addr") is not None else ""),
        "read": f"{actor} reads{at}",
        "write": f"{actor} writes {op.get('data', '')} to{at}",
        "fork": f"{actor} forks" + (f" child P{op['child']}" if op.get("child") else ""),
        "exit": f"{actor} exits",
        "munmap": f"{actor} unmaps {(op.get('length') or 0) // PAGE} page(s) at{at}",
        "put_page": f"The lesson's code drops a reference to page {op.get('pfn')} (put_page): {op.get('text')}",
        "get_page": f"The lesson's code takes a reference to page {op.get('pfn')}: {op.get('text')}",
        "alloc_page": f"The lesson's code allocates page {op.get('pfn')} (alloc_page)",
    }.get(kind)
    if what is None and "user_pages" in kind:
        what = f"{actor} calls {kind} for {op.get('nr', 1)} page(s) at{at}"
    if what is None:
        what = f"{kind}: {op.get('text', '')}"
    return what


def _why(op, key, decisions, errors, events) -> str:
    """What the kernel did and the decision that made it so, in words (the second half)."""
    kind = op["kind"]
    why = ""
    if errors:
        why = f"{errors[-1].func}: {errors[-1].text}"
    elif key is not None:
        why = f"{key.func}: {key.text}"
        last = decisions[-1]
        if last is not key and key.func != last.func and ("fall back" in key.text or last.func == "follow_page"):
            why += f"; then {last.func}: {last.text}"
    elif kind in ("read", "write"):
        pte = op.get("before", {}).get("pte")
        changed = any(e.delta is not None for e in events)
        if pte and not changed:
            why = (f"The pte is present{' and writable' if kind == 'write' else ''} (pfn {pte['pfn']}): "
                   "the MMU does it, no fault, nothing changes.")
    elif kind == "spawn":
        why = "A new mm_struct with an empty page table (a pgd)."
    elif kind == "exit":
        why = "Its vmas, ptes and page tables are gone."
    return why
