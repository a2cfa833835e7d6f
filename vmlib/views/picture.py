"""The picture model of the views: what a step shows, computed from a trace, with no drawing.

Renderers (vmlib.views.layout: our own SVG; vmlib.views.dot: DOT text for Graphviz) read
this module and never each other. It holds the vocabulary both draw with (frame kinds,
colours, themes, what a step changed: Diff) and, in `StepModel`/`step_models`, what each
step of a trace is: one user-visible operation, its headline in plain words with the
deciding kernel-facts row, its kernel events in words, what it changed and what the deciding
code examined (ptes, vmas, frames, mms).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import ClassVar

from vmlib.trace import Snapshot

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



DEVICE_MEMMAPPED = "device memory (dashed): struct pages only where its driver made them"

def default_title(info, pids, snap) -> str:
    prof = info.get("profile")
    name = getattr(prof, "name", None) or (f"{prof.version}/{prof.arch}" if prof else "")
    procs = ", ".join(proc_label(p, snap.mms[p]) for p in pids) or "no processes"
    return f"{name}: {procs}".strip(": ")


def rss_text(snap, diff, key) -> str:
    now = snap.rss.get(key, 0)
    return moved(diff.rss[key] or 0, now) if diff and key in diff.rss else str(now)

