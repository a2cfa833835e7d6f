"""Four-level x86-64 page tables (512 entries a level) plus linear runs of raw pfns.

Faithfulness ledger
- exact: pgd -> pud -> pmd -> pte, 9 bits a level, 4 KiB pages; a page-table page is a RAM
  frame taken from the allocator and freed when it no longer maps anything.
- simplified: remap_pfn_range of a long range records a linear Run on the mm instead of
  writing every pte (1 TiB of /dev/mem would otherwise need 2^28 ptes). A lookup consults the
  tables first and then the runs; an explicit empty entry (None) masks a run. Page-table pages
  that only a run needs are counted against RAM but built only when a pte in them changes.
  Empty tables are freed right after a zap rather than by free_pgtables' floor/ceiling walk.
- left out: huge pmd/pud leaves, pte locks, TLB flushing, 5-level tables.
"""

from __future__ import annotations

from vmlib.pte import Pte
from vmlib.trace import Run

PTRS_PER_TABLE = 512
LEVEL_NAMES = {4: "pgd", 3: "pud", 2: "pmd", 1: "pte"}
SHIFT = {4: 39, 3: 30, 2: 21, 1: 12}
_ABSENT = object()


class PageTable:
    """One page-table page: `entries` maps an index to a lower table or a Pte (or None)."""

    __slots__ = ("entries", "level", "page")

    def __init__(self, level: int, page):
        self.level = level
        self.page = page
        self.entries: dict = {}

    @property
    def pfn(self) -> int:
        return self.page.pfn

    def __repr__(self):
        return f"{LEVEL_NAMES[self.level]}@pfn{self.pfn}({len(self.entries)} entries)"


def pte_index(addr: int, level: int) -> int:
    return (addr >> SHIFT[level]) & 511


def pte_table(pgd: PageTable, addr: int) -> PageTable | None:
    """The last-level table covering addr, or None if a level above is missing."""
    t = pgd.entries.get((addr >> 39) & 511)
    if t is None:
        return None
    t = t.entries.get((addr >> 30) & 511)
    if t is None:
        return None
    return t.entries.get((addr >> 21) & 511)


def lookup(mm, addr: int) -> Pte | None:
    """The present pte for addr in mm, or None (tables first, then linear runs)."""
    t = pte_table(mm.pgd, addr)
    if t is not None:
        e = t.entries.get((addr >> 12) & 511, _ABSENT)
        if e is not _ABSENT:
            return e
    if mm.runs:
        return run_pte(mm.runs, addr)
    return None


def run_pte(runs, addr: int) -> Pte | None:
    for r in runs:
        if r.start <= addr < r.end:
            return Pte(r.pfn0 + ((addr - r.start) >> 12), r.bits)
    return None


def in_run(mm, addr: int) -> bool:
    return any(r.start <= addr < r.end for r in mm.runs)


def explicit_ptes(mm, start: int, end: int):
    """(addr, Pte|None) for every explicit pte entry in [start, end), in address order."""
    out = []
    for i4, pud in sorted(mm.pgd.entries.items()):
        base4 = i4 << 39
        if base4 >= end or base4 + (1 << 39) <= start:
            continue
        for i3, pmd in sorted(pud.entries.items()):
            base3 = base4 | (i3 << 30)
            if base3 >= end or base3 + (1 << 30) <= start:
                continue
            for i2, pt in sorted(pmd.entries.items()):
                base2 = base3 | (i2 << 21)
                if base2 >= end or base2 + (1 << 21) <= start:
                    continue
                for i1, pte in sorted(pt.entries.items()):
                    addr = base2 | (i1 << 12)
                    if start <= addr < end:
                        out.append((addr, pte))
    return out


def all_tables(mm):
    """Every page-table page of mm, top-down: (level, base address, PageTable)."""
    out = [(4, 0, mm.pgd)]
    for i4, pud in sorted(mm.pgd.entries.items()):
        out.append((3, i4 << 39, pud))
        for i3, pmd in sorted(pud.entries.items()):
            out.append((2, (i4 << 39) | (i3 << 30), pmd))
            for i2, pt in sorted(pmd.entries.items()):
                out.append((1, (i4 << 39) | (i3 << 30) | (i2 << 21), pt))
    return out


def trim_runs(runs: tuple, start: int, end: int) -> tuple:
    """The runs with [start, end) cut out of them."""
    out = []
    for r in runs:
        if r.end <= start or r.start >= end:
            out.append(r)
            continue
        if r.start < start:
            out.append(Run(r.start, start, r.pfn0, r.bits))
        if r.end > end:
            out.append(Run(end, r.end, r.pfn0 + ((end - r.start) >> 12), r.bits))
    return tuple(out)


def run_only_tables(mm) -> int:
    """How many page-table pages the runs need beyond the tables that exist."""
    if not mm.runs:
        return 0
    count = 0
    explicit = {lvl: set() for lvl in (1, 2, 3)}
    for level, base, _t in all_tables(mm):
        if level < 4:
            explicit[level].add(base >> (SHIFT[level] + 9))
    for level in (1, 2, 3):
        span = SHIFT[level] + 9            # one table of this level covers 1 << span bytes
        intervals = sorted((r.start >> span, (r.end - 1) >> span) for r in mm.runs)
        merged: list[list[int]] = []
        for lo, hi in intervals:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        needed = sum(hi - lo + 1 for lo, hi in merged)
        have = sum(1 for i in explicit[level] if any(lo <= i <= hi for lo, hi in merged))
        count += needed - have
    return count
