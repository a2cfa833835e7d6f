"""Trace events and state snapshots: what the stepper, graphs, golden tests and graders read.

Every kernel function reports to the tracer owned by its kernel object (never a global):
`call` events (a function was entered), `decision` events (which branch, the row of
kernel-facts that decided it, and in `examined` what the deciding code looked at: a Seen of
ptes, vmas, pfns and vm_flags bits), and state changes, each carrying a reversible delta
(what, key, old, new). A Trace holds the state when recording began (a Snapshot) and the
events since; `state_at(i)` replays the deltas, forwards or backwards, so any step can be
shown.

Delta kinds (all values are plain, immutable data):
  ("pte",   (mm_id, addr), old Pte|None, new Pte|None)
  ("runs",  mm_id, old tuple, new tuple)      linear runs of raw pfns (remap_pfn_range)
  ("page",  pfn, old PageInfo|None, new PageInfo|None)   a struct page's counts and flags
  ("rss",   (mm_id, "anon"|"file"), old int, new int)
  ("vmas",  mm_id, old tuple[VmaInfo], new tuple[VmaInfo])
  ("mm",    mm_id, old str|None, new str|None)      a process appears or goes away
  ("table", (mm_id, level, base), old pfn|None, new pfn|None)   a page-table page comes or goes
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import NamedTuple


class PageInfo(NamedTuple):
    """A struct page as the views see it: its refcount (page_count), its mapcount as
    page_mapcount gives it (how many ptes map the page, 0 for none: the kernel's -1-based
    _mapcount plus one, never the raw field) and its type."""

    count: int
    mapcount: int
    anon: bool
    reserved: bool = False
    mapping: str | None = None     # name of the page cache (file) the page belongs to
    index: int | None = None
    exclusive: bool = False        # PageAnonExclusive (6.12)
    pgtable: bool = False          # a page-table page


class VmaInfo(NamedTuple):
    start: int
    end: int
    flags: int
    pgoff: int
    name: str


class Seen(NamedTuple):
    """What a deciding kernel function looked at, as data (a decision event's `examined`):
    the ptes (mm id, page address), the vmas (mm id, vm_start), the pfns, and the vm_flags bits
    it tested (0: none). Set by the model where it decides; the views mark these, they never
    read them from the event's words. An error event carries the Seen of the last decision of
    the operation it undid."""

    ptes: tuple = ()
    vmas: tuple = ()
    pfns: tuple = ()
    flags: int = 0

    def __bool__(self):
        return bool(self.ptes or self.vmas or self.pfns or self.flags)


NOTHING_SEEN = Seen()
new_seen = partial(tuple.__new__, Seen)        # new_seen((ptes, vmas, pfns, flags)): a Seen without a Python __new__


def seen(vma=None, addr: int | None = None, pfn: int | None = None, flags: int = 0, *,
         bounds: bool = False, mm=None) -> Seen:
    """The Seen of a decision about VMA: its pte at ADDR (if ADDR is given), PFN, and the vma
    itself when the decision tested its vm_flags (FLAGS, the bits tested) or its BOUNDS.
    Without a vma (a walk that has none), MM says whose pte ADDR is. NOTHING_SEEN if none."""
    mm = vma.vm_mm.id if vma is not None else mm.id if mm is not None else None
    ptes = ((mm, addr & ~0xFFF),) if mm is not None and addr is not None else ()
    vmas = ((mm, vma.vm_start),) if (flags or bounds) and vma is not None else ()
    if not (ptes or vmas or flags) and pfn is None:
        return NOTHING_SEEN
    return new_seen((ptes, vmas, () if pfn is None else (pfn,), flags))


class Said(NamedTuple):
    """An event text stored with what its decision examined (see Tracer.emit)."""

    text: object
    seen: Seen


_new_said = partial(tuple.__new__, Said)


class Run(NamedTuple):
    """A linear run of raw pfns: ptes for [start, end) map pfn0, pfn0+1, ... with `bits`."""

    start: int
    end: int
    pfn0: int
    bits: int


@dataclass(slots=True)
class Event:
    """One trace event. The trace stores events in columns; an Event is made when read."""

    seq: int
    kind: str          # "op" | "call" | "decision" | "warn" | "error" | "state"
    func: str          # kernel function (or facade operation) that emitted it
    text: str
    row: str = ""      # kernel-facts table and row that decided, e.g. "§1a row 3"
    delta: tuple | None = None
    depth: int = 0
    examined: Seen = NOTHING_SEEN   # what the deciding code looked at (decision and error events)

    def __str__(self):
        row = f"  [{self.row}]" if self.row else ""
        return f"{'  ' * self.depth}{self.func}: {self.text or describe(self.delta)}{row}"


def _pte_text(pte) -> str:
    return "none" if pte is None else f"pfn {pte.pfn} {pte.flags_str()}"


def _page_text(info) -> str:
    if info is None:
        return "free"
    kind = "pgtable" if info.pgtable else "anon" if info.anon else (
        f"file {info.mapping}" if info.mapping else "reserved" if info.reserved else "kernel")
    return f"ref {info.count} map {info.mapcount} {kind}"


def describe(delta) -> str:
    """One line saying what a state delta changed."""
    if delta is None:
        return ""
    what, key, old, new = delta
    if what == "pte":
        if old is None and new is None:
            return f"pte {key[1]:#x} of P{key[0]}: empty entry dropped (no linear run left to mask)"
        return f"pte {key[1]:#x} of P{key[0]}: {_pte_text(old)} → {_pte_text(new)}"
    if what == "page":
        return f"page {key}: {_page_text(old)} → {_page_text(new)}"
    if what == "rss":
        return f"P{key[0]} {key[1]}_rss: {old} → {new}"
    if what == "vmas":
        return f"P{key} vmas: {len(old or ())} → {len(new or ())}"
    if what == "runs":
        return f"P{key} linear runs: {len(old or ())} → {len(new or ())}"
    if what == "mm":
        return f"process {key}: {'created' if new else 'gone'}"
    if what == "table":
        name = {4: "pgd", 3: "pud", 2: "pmd", 1: "pte"}[key[1]]
        return (f"P{key[0]} {name} table for {key[2]:#x}: "
                f"{'new at pfn ' + str(new) if new is not None else 'freed (pfn ' + str(old) + ')'}")
    return str(delta)


_FIELD = {"pte": "ptes", "runs": "runs", "page": "pages", "rss": "rss", "vmas": "vmas",
          "mm": "mms", "table": "tables"}


@dataclass
class Snapshot:
    """The visible state of a kernel: mms, vmas, ptes, runs, struct pages, rss counters."""

    mms: dict = field(default_factory=dict)      # mm_id -> name
    vmas: dict = field(default_factory=dict)     # mm_id -> tuple[VmaInfo]
    ptes: dict = field(default_factory=dict)     # (mm_id, addr) -> Pte | None (None masks a run)
    runs: dict = field(default_factory=dict)     # mm_id -> tuple[Run]
    pages: dict = field(default_factory=dict)    # pfn -> PageInfo (allocated frames only)
    rss: dict = field(default_factory=dict)      # (mm_id, kind) -> int
    tables: dict = field(default_factory=dict)   # (mm_id, level 4..1, base address) -> pfn

    def copy(self) -> Snapshot:
        return Snapshot(dict(self.mms), dict(self.vmas), dict(self.ptes), dict(self.runs),
                        dict(self.pages), dict(self.rss), dict(self.tables))

    def apply(self, delta: tuple, forward: bool = True) -> None:
        """Apply a delta (or undo it when forward is False)."""
        what, key, old, new = delta
        value = new if forward else old
        table = getattr(self, _FIELD[what])
        if value is not None:
            table[key] = value
        elif what == "pte" and self._in_run(key):
            table[key] = None                  # an empty entry that masks a linear run
        else:
            table.pop(key, None)

    def _replay(self, deltas, rec: tuple | None = None) -> None:
        """Apply many stored deltas forwards (Trace.state_at's inner loop: apply() without the
        calls, records expanded; `rec` is the record of leading parts whose record came before)."""
        tables = {what: getattr(self, name) for what, name in _FIELD.items()}
        runs = self.runs
        for d in filter(None, deltas):               # events without a delta skipped in C
            if type(d) is int:
                d = _RECORDS[rec[0]](rec, d)
            elif len(d) != 4:
                rec = d
                d = _RECORDS[d[0]](d, 0)
            what, key, _old, new = d
            if new is not None:
                tables[what][key] = new
            elif what == "pte" and any(r.start <= key[1] < r.end for r in runs.get(key[0], ())):
                tables[what][key] = None
            else:
                tables[what].pop(key, None)

    def _in_run(self, key) -> bool:
        mm_id, addr = key
        return any(r.start <= addr < r.end for r in self.runs.get(mm_id, ()))

    def pte(self, mm_id: int, addr: int):
        """The pte at addr in mm_id (explicit entries first, then linear runs), or None."""
        if (mm_id, addr) in self.ptes:
            return self.ptes[(mm_id, addr)]
        for r in self.runs.get(mm_id, ()):
            if r.start <= addr < r.end:
                from vmlib.pte import Pte
                return Pte(r.pfn0 + ((addr - r.start) >> 12), r.bits)
        return None

    def mm_ptes(self, mm_id: int) -> dict:
        """Explicit ptes of one mm: addr -> Pte (runs not expanded)."""
        return {a: p for (m, a), p in self.ptes.items() if m == mm_id and p is not None}


_RECORDS: list = []          # code -> decode(record, part) -> delta


def record_kind(decode) -> int:
    """Register a compact record: a fast path that changes several things at once may store,
    in place of the 4-tuple deltas of events i, i+1, i+2, ..., one plain tuple (code, ...) of
    ints and strings (any length but 4) at event i and the ints 1, 2, ... at the next ones
    (part k of the record k events back). decode(record, k) gives the delta of part k.
    A record is one small object where the deltas were several, and being plain data the
    garbage collector stops scanning it at once; Trace.delta, state_at and step expand it."""
    _RECORDS.append(decode)
    return len(_RECORDS) - 1


_TEXT_MAKERS: list = []      # code -> (fn, reads the trace itself, seen fn or None)


def lazy_text(fn, seen=None) -> int:
    """Register fn(*args) -> str as a lazily made event text; returns its code. A hot path
    stores the tuple (code, *args) in place of the text, cheaper to build than the string and,
    being plain data, soon ignored by the garbage collector; Events makes the text when read,
    and the decision's `examined` as seen(*args) (a Seen) when SEEN is given."""
    _TEXT_MAKERS.append((fn, False, seen))
    return len(_TEXT_MAKERS) - 1


def neighbour_text(fn, seen=None) -> int:
    """Register fn(trace, i) -> str, a text made from the events next to event i (a fast path
    that appends a fixed run of events knows where they are) and from what is stored in its
    place: the code alone (an int, which costs no memory) or a tuple (code, *data). SEEN, if
    given, is seen(trace, i) -> the Seen of the decision, made the same way."""
    _TEXT_MAKERS.append((fn, True, seen))
    return len(_TEXT_MAKERS) - 1


def text_seen(text) -> Seen:
    """The Seen that a text as a Tracer stores it carries: a Said's, or the one a lazy
    (code, *args) text makes; NOTHING_SEEN for a plain string (or a text made from its neighbours)."""
    if type(text) is Said:
        return text[1]
    if type(text) is tuple:
        _make, neighbours, see = _TEXT_MAKERS[text[0]]
        if see and not neighbours:
            return see(*text[1:])
    return NOTHING_SEEN


class Events(Sequence):
    """The events of a trace as a read-only sequence of Event (made on access)."""

    __slots__ = ("_trace",)

    def __init__(self, trace: Trace):
        self._trace = trace

    def __len__(self):
        return len(self._trace._rows) // 3

    def __getitem__(self, i):
        t = self._trace
        if isinstance(i, slice):
            return [t._event(j) for j in range(*i.indices(len(t)))]
        n = len(t)
        if not -n <= i < n:
            raise IndexError(f"trace event {i} out of range: the trace has {n} events")
        return t._event(i % n)

    def __iter__(self):
        t = self._trace
        return (t._event(j) for j in range(len(t)))


class Trace:
    """Events recorded since `base` was captured; `state_at(i)` is the state after event i.

    Storage (memory linear in the number of events): one flat list holding three entries per
    event, its interned (kind, func, row, depth) head, its text and its delta (so a fast path
    appends a run of events with one call); `events` makes Event objects on access. state_at keeps full snapshots at most every `spacing` events and at
    most MAX_CHECKPOINTS of them (the spacing doubles when there would be more), so any step
    is one snapshot copy plus at most `spacing` deltas replayed."""

    FIRST_SPACING = 1024
    MAX_CHECKPOINTS = 16

    def __init__(self, base: Snapshot, info: dict):
        self.base = base
        self.info = info            # static facts: profile, ram_pages, devices, zero_pfn
        self._rows: list = []       # head, text, delta of event 0, then of event 1, ...
        self.events = Events(self)
        self._checkpoints: dict[int, Snapshot] = {}
        self._spacing = self.FIRST_SPACING

    def __len__(self):
        return len(self._rows) // 3

    def __getitem__(self, i):
        return self.events[i]

    def delta(self, i: int):
        """The delta of event i (None for an event that changes no state)."""
        d = self._rows[3 * i + 2]
        if type(d) is int:                            # part d of the record d events back
            rec = self._rows[3 * (i - d) + 2]
            return _RECORDS[rec[0]](rec, d)
        if d is not None and len(d) != 4:             # a record: its part 0
            return _RECORDS[d[0]](d, 0)
        return d

    def record(self, i: int) -> tuple:
        """The record stored for event i (see record_kind), as it is stored."""
        return self._rows[3 * i + 2]

    def __iter__(self):
        return iter(self.events)

    def _event(self, i: int) -> Event:
        kind, func, row, depth = self._rows[3 * i]
        text = self._rows[3 * i + 1]
        seen = NOTHING_SEEN
        if type(text) is Said:                        # a text stored with its Seen
            text, seen = text
        if type(text) is tuple:                       # (code, *args): made when read
            make, neighbours, see = _TEXT_MAKERS[text[0]]
            text, seen = (make(self, i), see(self, i) if see else seen) if neighbours else \
                (make(*text[1:]), see(*text[1:]) if see else seen)
        elif type(text) is int:                       # made from the events around it
            make, _, see = _TEXT_MAKERS[text]
            text, seen = make(self, i), see(self, i) if see else seen
        return Event(i, kind, func, text, row, self.delta(i), depth, seen)

    def state_at(self, i: int) -> Snapshot:
        """State after events[0..i] (i = -1: the base state). Raises IndexError past the end."""
        n = len(self)
        if not -1 <= i < n:
            raise IndexError(f"trace step {i} out of range: the trace has {n} events "
                             f"(steps -1..{n - 1})")
        paused = gc.isenabled()                       # bulk work that makes no garbage cycles
        gc.disable()
        try:
            return self._state_at(i)
        finally:
            if paused:
                gc.enable()

    def _state_at(self, i: int) -> Snapshot:
        start = max((c for c in self._checkpoints if c <= i), default=-1)
        snap = (self._checkpoints[start] if start >= 0 else self.base).copy()
        rows = self._rows
        spacing = self._spacing
        at = start
        while at < i:
            nxt = min(i, (at + 1) // spacing * spacing + spacing - 1)   # next checkpoint position
            first = rows[3 * at + 5]                  # a record's later part: the record is before
            rec = rows[3 * (at + 1 - first) + 2] if type(first) is int else None
            snap._replay(islice(rows, 3 * at + 5, 3 * nxt + 5, 3), rec)      # deltas of at+1..nxt
            at = nxt
            if (at + 1) % spacing == 0 and at not in self._checkpoints:
                self._checkpoints[at] = snap.copy()
                if len(self._checkpoints) > self.MAX_CHECKPOINTS:
                    self._thin_checkpoints()
                    spacing = self._spacing
        return snap

    def _thin_checkpoints(self) -> None:
        """Double the checkpoint spacing and drop the checkpoints that no longer fall on it."""
        self._spacing *= 2
        for c in [c for c in self._checkpoints if (c + 1) % self._spacing]:
            del self._checkpoints[c]

    def step(self, snap: Snapshot, i: int, forward: bool) -> None:
        """Move `snap` across event i in place: from state i-1 to i, or back from i to i-1."""
        d = self.delta(i)
        if d is not None:
            snap.apply(d, forward)

    def last_seen(self, start: int) -> Seen:
        """What the last decision from event START on examined (NOTHING_SEEN if none did)."""
        for i in range(len(self) - 1, start - 1, -1):
            if self._rows[3 * i][0] == "decision":
                looked = self._event(i).examined
                if looked:
                    return looked
        return NOTHING_SEEN

    def ops(self) -> list[int]:
        """Indexes of the top-level operation events."""
        return [i for i, h in enumerate(self._rows[::3]) if h[0] == "op"]

    def text(self, start: int = 0, end: int | None = None) -> str:
        return "\n".join(str(e) for e in self.events[start:end])

    def _truncate(self, n: int) -> None:
        del self._rows[3 * n:]
        for c in [c for c in self._checkpoints if c >= n]:
            del self._checkpoints[c]


class EventBatch:
    """A fixed run of events that a fast path appends at once to Trace._rows: each a
    (kind, func, row, depth below the current one), optionally after an "op" event of a
    process. The heads are made once per (depth, process name) and shared."""

    __slots__ = ("_heads", "spec")

    def __init__(self, *spec: tuple):
        self.spec = spec
        self._heads: dict = {}

    def heads(self, depth: int, op: str | None) -> tuple:
        heads = self._heads.get((depth, op))
        if heads is None:
            heads = tuple((kind, func, row, depth + below) for kind, func, row, below in self.spec)
            if op is not None:
                heads = (("op", op, "", depth), *heads)
            if len(self._heads) < 10_000:
                self._heads[(depth, op)] = heads
        return heads


class Tracer:
    """Owned by one kernel object; appends events to the current Trace when enabled."""

    def __init__(self, kernel, enabled: bool = True):
        self.kernel = kernel
        self.enabled = enabled
        self.depth = 0
        self._quiet = 0
        self._heads: dict = {}      # interned (kind, func, row, depth) event heads
        self._state_heads: dict = {}   # (func, depth) -> the head of a state event
        self.trace = Trace(Snapshot(), {})

    def reset(self) -> Trace:
        """Start a new trace from the kernel's current state and return it."""
        self.trace = Trace(self.kernel.snapshot(), self.kernel.trace_info())
        return self.trace

    @property
    def on(self) -> bool:
        return self.enabled and not self._quiet

    def emit(self, kind: str, func: str, text: str, row: str = "", delta: tuple | None = None,
             seen: Seen = NOTHING_SEEN) -> None:
        """Append one event; SEEN (what a decision examined) is stored with its text."""
        if self.enabled and (not self._quiet or delta is not None):
            key = (kind, func, row, self.depth)
            head = self._heads.get(key)
            if head is None:
                head = self._heads[key] = key
            self.trace._rows.extend((head, text if seen is NOTHING_SEEN else _new_said((text, seen)), delta))

    def state(self, func: str, delta: tuple) -> None:
        """emit("state", func, "", "", delta) for the kernel's primitives (callers check enabled)."""
        head = self._state_heads.get((func, self.depth))
        if head is None:
            head = self._state_heads[(func, self.depth)] = ("state", func, "", self.depth)
        self.trace._rows.extend((head, "", delta))
