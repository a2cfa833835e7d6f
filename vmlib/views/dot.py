"""DOT text for the course graphs, built from a Snapshot and trace.info (pure strings).

Graphs: one or more processes (mm -> pgd -> pud -> pmd -> pte table -> frame), the vma
layout, physical memory. Long runs of similar ptes are collapsed into one row with a count;
a frame mapped by several processes is drawn once. A Diff (what one step changed) is drawn on
top: changed rows and frames get a thick vermillion border and a "Δ" mark, removed ptes a
dashed edge. Colours are Okabe-Ito (colour-blind safe); fills carry black text so a graph
reads on JupyterLab's light and dark themes alike (theme "auto": transparent background).
"""

from __future__ import annotations

from dataclasses import dataclass

from vmlib.flags import SMAPS_CODES, VM_MIXEDMAP, VM_PFNMAP, flag_names, is_cow_mapping, smaps_flags
from vmlib.trace import Snapshot
from vmlib.views.picture import (  # noqa: F401  (Diff, proc_label, theme_ink, colours: re-exported)
    BLUE,
    DEVICE_MEMMAPPED,
    FILL,
    GREEN,
    ORANGE,
    PAGE,
    PURPLE,
    SKY,
    SMAPS_WORDS,
    THEMES,
    VERMILLION,
    YELLOW,
    Diff,
    Union,
    check_pids,
    default_title,
    device_of,
    esc,
    frame_kind,
    frame_what,
    inputs,
    moved,
    page_text,
    proc_label,
    rss_text,
    table_rows,
    theme_ink,
)


def frame_label(pfns: tuple, n: int, snap: Snapshot, info: dict, diff: Diff | None) -> tuple[str, bool]:
    """(HTML label, changed) for a frame or a collapsed group of n frames starting with pfns[0]."""
    pfn = pfns[0]
    kind = frame_kind(pfn, snap, info)
    if n == 1:
        head = f"pfn {pfn}"
    elif len(pfns) == n and list(pfns) != list(range(pfn, pfn + n)):
        head = f"{n} frames: pfn {pfn}, {pfns[1]}, …"
    else:
        head = f"{n} frames: pfn {pfn}..{pfn + n - 1}"
    lines = [f"<B>{esc(head)}</B>"]
    page = snap.pages.get(pfn)
    changed = False
    if page is not None:
        what = frame_what(kind, page, pfn, info)
        counts = page_text(page)
        if diff is not None and pfn in diff.pages and diff.pages[pfn] != page:
            old = diff.pages[pfn]
            changed = True
            counts = (f"ref {moved(old and old.count, page.count)} "
                      f"map {moved(old and old.mapcount, page.mapcount)}")
        pages = [snap.pages.get(p) for p in pfns] if len(pfns) == n > 1 else []
        refs, maps = {p.count for p in pages if p}, {p.mapcount for p in pages if p}
        each = " each" if n > 1 else ""
        if len(refs) > 1 or len(maps) > 1:       # a group whose pages' counts differ (the one model's rows)
            counts, each = f"ref {min(refs)}–{max(refs)} map {min(maps)}–{max(maps)}", ""
            changed = diff is not None and any(p in diff.pages for p in pfns)
        lines.append(esc(f"struct page: {counts}{each}"))
        lines.append(esc(what))
    elif kind == "device":
        lines.append(esc(f"device {device_of(pfn, info)}"))
        lines.append("<I>no struct page</I>")
    else:
        lines.append("<I>no struct page, no memory</I>" if kind == "none" else "<I>RAM, free</I>")
    if diff is not None and n == 1 and pfn in diff.pages and page is not None and diff.pages[pfn] is None:
        changed = True
        lines.append("<B>Δ new page</B>")
    return "<BR/>".join(lines), changed


def frame_attrs(kind: str, changed: bool) -> str:
    style = "filled,dashed" if kind in ("device", "none") else "filled"
    pen = f' color="{VERMILLION}" penwidth=3' if changed else ""
    return f'shape=box style="{style}" fillcolor="{FILL[kind]}" fontcolor="black"{pen}'


# -- pte rows: the picture model's rows, as DOT draws them ----------------------------------

@dataclass
class Row:
    """How DOT draws one row of the picture model (vmlib.views.picture.table_rows) in one state:
    n ptes from addr mapping frame node `frame` (pfns)."""

    pid: int
    addr: int
    n: int
    pfns: tuple          # the frames, or (pfn0,) for a linear run drawn by its range
    bits: object         # a Pte (of the first entry)
    frame: str           # frame node id
    kind: str            # "single", "chain", "repeat", "run", "removed"
    changed: bool = False
    old: object = None   # the pte before the step (changed rows)


def build_rows(snap: Snapshot, info: dict, pids: list[int], diff: Diff | None, collapse: int) -> dict:
    """pid -> [Row] in address order: the rows of the picture model for this step (the state
    before `diff` and `snap`, vmlib.views.picture.Union.of_step), the same rows the SVG layout
    draws; frame ids agree across processes so shared frames meet. Empty entries are left out."""
    tables = table_rows(Union.of_step(snap, diff, info), pids, collapse)
    rows: dict = {pid: [] for pid in pids}
    for (pid, *_walk), trows in tables.items():
        rows[pid].extend(r for r in (_drawn(m, snap, diff) for m in trows) if r is not None)
    for pid in pids:
        rows[pid].sort(key=lambda r: r.addr)
    return rows


def _drawn(m, snap: Snapshot, diff: Diff | None) -> Row | None:
    """The Row DOT draws for model row m in `snap` (None for an entry empty before and after)."""
    ptes, olds = m.ptes(snap), m.olds(diff)
    if m.run and olds and (olds[0] is None) == (ptes[0] is None):
        olds = []                                      # the run is as it was
    old = olds[0] if olds else None
    if ptes[0] is None:
        if old is None:
            return None
        frame = (m.frame if m.run else f"c{m.frame[1:]}") if m.frame else f"f{old.pfn}"
        pfns = tuple(o.pfn for o in olds) if len(olds) == m.n and not m.run else (old.pfn,)
        return Row(m.pid, m.first, m.n, pfns, old, frame, "removed", True, old)
    if m.run:
        pfn0 = m.run[2]
        kind, pfns, frame = ("run" if m.n > 1 else "single"), (pfn0,), m.frame or f"f{pfn0}"
    else:
        pfns = tuple(p.pfn for p in ptes)
        kind = "single" if m.n == 1 else "repeat" if len(set(pfns)) == 1 else "chain"
        pfns = pfns[:1] if kind == "repeat" else pfns
        frame = f"c{m.frame[1:]}" if m.frame else f"f{pfns[0]}"
    return Row(m.pid, m.first, m.n, pfns, ptes[0], frame, kind, bool(olds), old)


# -- graph assembly ------------------------------------------------------------------------

class Dot:
    """A tiny DOT writer: graph attributes, nodes, edges; str() gives the text."""

    def __init__(self, title: str, theme: str, rankdir: str = "LR"):
        t = theme_ink(theme)
        self.ink = t["ink"]
        self.lines = [
            "digraph vmlib {",
            (f'  graph [rankdir={rankdir} bgcolor="{t["bg"]}" fontname="Helvetica" fontsize=12 '
             f'fontcolor="{self.ink}" labelloc=t labeljust=l nodesep=0.15 ranksep=0.5 '
             f'label=<{title}>];'),
            f'  node [fontname="Helvetica" fontsize=10 color="{self.ink}"];',
            f'  edge [color="{self.ink}" fontcolor="{self.ink}" fontname="Helvetica" fontsize=9 arrowsize=0.6];',
        ]

    def node(self, nid: str, label: str, attrs: str = "shape=plain") -> None:
        self.lines.append(f"  {nid} [{attrs} label=<{label}>];")

    def edge(self, a: str, b: str, attrs: str = "") -> None:
        self.lines.append(f"  {a} -> {b}" + (f" [{attrs}];" if attrs else ";"))

    def raw(self, text: str) -> None:
        self.lines.append("  " + text)

    def __str__(self):
        return "\n".join(self.lines + ["}"])


def _table(rows: list[str], fill: str, cellborder: int = 1) -> str:
    return (f'<TABLE BORDER="1" CELLBORDER="{cellborder}" CELLSPACING="0" CELLPADDING="3" BGCOLOR="{fill}" '
            'COLOR="black">' + "".join(rows) + "</TABLE>")


def _td(text: str, port: str = "", bg: str = "", extra: str = "") -> str:
    p = f' PORT="{port}"' if port else ""
    b = f' BGCOLOR="{bg}"' if bg else ""
    return f"<TD{p}{b}{extra}>{text}</TD>"


def bits_cells(pte, old=None, port: str = "") -> str:
    """Four cells: present, write, dirty, special (letter when set, '·' when clear); the last
    cell carries `port` so edges leave the row at its right end."""
    out = []
    for name, letter in (("present", "P"), ("write", "W"), ("dirty", "D"), ("special", "S")):
        on = getattr(pte, name)
        moved = old is not None and getattr(old, name) != on
        text = f"<B>{letter}</B>" if on else "·"
        if moved:
            text = f"<U>{text}</U>"
        bg = ORANGE if (name == "special" and on) else ""
        out.append(_td(text, bg=bg, port=port if letter == "S" else ""))
    return "".join(out)


def row_label(r: Row) -> str:
    end = r.addr + r.n * PAGE
    where = f"{r.addr:#x}" if r.n == 1 else f"{r.addr:#x}–{end:#x} ×{r.n}"
    if r.kind == "removed":
        return f"<S>{esc(where)}</S> removed (was pfn {r.old.pfn})"
    target = f"pfn {r.pfns[0]}" if r.n == 1 or r.kind == "repeat" else (
        f"pfn {r.pfns[0]}.." if r.kind == "chain" else f"pfn {r.pfns[0]}..{r.pfns[0] + r.n - 1}")
    text = f"{esc(where)} → {esc(target)}"
    if r.changed:
        was = "new" if r.old is None else f"was pfn {r.old.pfn} {r.old.flags_str()}"
        text = f"<B>Δ</B> {text} <I>({esc(was)})</I>"
    return text


def _pte_table_label(base: int, rows: list[tuple[str, Row]], pfn=None) -> str:
    where = f" @pfn {pfn}" if pfn is not None else ""
    head = _td(f"<B>pte table</B>{esc(where)} for {base:#x}", extra=' COLSPAN="5"')
    trs = [f"<TR>{head}</TR>", "<TR><TD>entries</TD><TD>P</TD><TD>W</TD><TD>D</TD><TD>S</TD></TR>"]
    for port, r in rows:
        bg = ORANGE if r.bits.special and r.kind != "removed" else ""
        border = f' COLOR="{VERMILLION}" BORDER="3"' if r.changed else ""
        cells = _td(row_label(r), bg=bg, extra=' ALIGN="LEFT"' + border)
        trs.append(f"<TR>{cells}{bits_cells(r.bits, r.old if r.changed else None, port)}</TR>")
    return _table(trs, FILL["table"])


def _index_table(name: str, entries: list[tuple[str, str]], pfn=None, changed: bool = False) -> str:
    where = f" @pfn {pfn}" if pfn is not None else ""
    border = f' COLOR="{VERMILLION}" BORDER="3"' if changed else ""
    trs = [f"<TR><TD{border}><B>{esc(name)}</B>{esc(where)}</TD></TR>"]
    trs += [f"<TR>{_td(esc(text), port=port)}</TR>" for port, text in entries]
    return _table(trs, FILL["table"])


LEGEND = {
    "mm": (FILL["mm"], "mm (process)", "white"), "table": (FILL["table"], "page table", "black"),
    "anon": (GREEN, "anon page", "black"), "file": (SKY, "file / page cache page", "black"),
    "kernel": (YELLOW, "kernel / reserved page", "black"), "zero": (FILL["zero"], "zero page", "black"),
    "device": (PURPLE, "device memory: no struct page (dashed)", "black"),
    "none": (FILL["none"], "no memory there (dashed)", "black"),
    "special": (ORANGE, "special pte (S)", "black"), "cow": (GREEN, "COWed anon page", "black"),
    "memmap": (YELLOW, "memmap (struct pages)", "black"), "free": ("#FFFFFF", "free frame", "black"),
    "pgtable": (FILL["table"], "page-table page", "black"),
    "bits": ("#FFFFFF", "P W D S: present write dirty special", "black"),
}



def legend(dot: Dot, with_diff: bool, kinds, info: dict | None = None, notes: str = "") -> None:
    """One compact legend row under the graph: only the kinds this graph shows, then `notes`
    (lines of text, e.g. what the smaps letters mean); nothing at all when there is nothing to say."""
    if not kinds and not with_diff and not notes:
        return                                       # an empty legend box explains nothing
    cells = [f'<TD><FONT COLOR="{dot.ink}"><B>legend</B></FONT></TD>']       # on the graph's background
    for kind in kinds:
        colour, text, ink = LEGEND[kind]
        if kind == "device" and info and info.get("memmapped"):     # 2.6.25 XIP: its driver made struct pages
            text = DEVICE_MEMMAPPED
        cells.append(f'<TD BGCOLOR="{colour}"><FONT COLOR="{ink}">{esc(text)}</FONT></TD>')
    if with_diff:
        cells.append(f'<TD BGCOLOR="#FFFFFF" COLOR="{VERMILLION}" BORDER="3">Δ changed in this step</TD>')
    note = f'<TD ALIGN="LEFT" BALIGN="LEFT"><FONT COLOR="{dot.ink}">{notes}</FONT></TD>' if notes else ""
    if len(cells) == 1:                              # nothing but notes: one row
        cells.append(note)
        note = ""
    extra = f'<TR><TD COLSPAN="{len(cells)}" ALIGN="LEFT" BALIGN="LEFT">{note[note.index(">") + 1:]}</TR>' \
        if note else ""
    dot.node("legend", '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="3" COLOR="black">'
             f'<TR>{"".join(cells)}</TR>{extra}</TABLE>')
    dot.raw("{rank=sink; legend}")


def mm_graph(snap: Snapshot, info: dict, pids: list[int], diff: Diff | None = None, title: str = "",
             theme: str = "auto", collapse: int = 4) -> str:
    """DOT text: each mm's populated page-table paths down to frames; shared frames drawn once."""
    theme_ink(theme)
    diff = diff.prune(snap) if diff else None
    rows = build_rows(snap, info, pids, diff, collapse)
    dot = Dot(esc(title) if title else esc(default_title(info, pids, snap)), theme)
    frames: dict[str, tuple] = {}
    for pid in pids:
        _draw_mm(dot, snap, pid, rows[pid], diff, frames)
    kinds = []
    for fid, (pfns, n) in frames.items():
        label, changed = frame_label(pfns, n, snap, info, diff)
        kinds.append(frame_kind(pfns[0], snap, info))
        dot.node(fid, label, frame_attrs(kinds[-1], changed))
    special = any(r.bits.special for rs in rows.values() for r in rs if r.kind != "removed")
    legend(dot, bool(diff), ["mm", "table", *sorted(set(kinds), key=list(LEGEND).index),
                             *(["special"] if special else []), "bits"], info)
    return str(dot)


def _draw_mm(dot: Dot, snap, pid: int, rows: list[Row], diff, frames: dict) -> None:
    """The mm node, its tables (only populated paths) and one edge per row to its frame."""
    rss = " ".join(f"{k} {rss_text(snap, diff, (pid, k))}" for k in ("anon", "file"))
    changed = bool(diff and (any(k[0] == pid for k in diff.rss) or pid in diff.mms))
    pen = f' color="{VERMILLION}" penwidth=3' if changed else ""
    dot.node(f"mm{pid}", f"<B>P{pid} {esc(snap.mms[pid])}</B><BR/>mm_struct<BR/>rss: {esc(rss)}",
             f'shape=box style="filled,rounded" fillcolor="{FILL["mm"]}" fontcolor="white"{pen}')
    tree: dict = {}
    for r in rows:
        i4, i3, i2 = r.addr >> 39 & 511, r.addr >> 30 & 511, r.addr >> 21 & 511
        tree.setdefault(i4, {}).setdefault(i3, {}).setdefault(i2, []).append(r)
    def tpfn(level: int, base: int):
        return snap.tables.get((pid, level, base))

    def tnew(level: int, base: int) -> bool:
        return bool(diff and (pid, level, base) in diff.tables)

    pgd = f"pgd{pid}"
    dot.node(pgd, _index_table("pgd", [(f"e{i4}", f"[{i4}]") for i4 in sorted(tree)], tpfn(4, 0), tnew(4, 0)))
    dot.edge(f"mm{pid}", pgd)
    for i4, puds in sorted(tree.items()):
        pud = f"pud{pid}_{i4}"
        b4 = i4 << 39
        dot.node(pud, _index_table("pud", [(f"e{i3}", f"[{i3}]") for i3 in sorted(puds)], tpfn(3, b4),
                                   tnew(3, b4)))
        dot.edge(f"{pgd}:e{i4}:e", pud)
        for i3, pmds in sorted(puds.items()):
            pmd = f"pmd{pid}_{i4}_{i3}"
            b3 = (i4 << 39) | (i3 << 30)
            dot.node(pmd, _index_table("pmd", [(f"e{i2}", f"[{i2}]") for i2 in sorted(pmds)], tpfn(2, b3),
                                       tnew(2, b3)))
            dot.edge(f"{pud}:e{i3}:e", pmd)
            for i2, trows in sorted(pmds.items()):
                pt = f"pt{pid}_{i4}_{i3}_{i2}"
                ported = [(f"r{j}", r) for j, r in enumerate(trows)]
                b2 = (i4 << 39) | (i3 << 30) | (i2 << 21)
                dot.node(pt, _pte_table_label(b2, ported, tpfn(1, b2)))
                dot.edge(f"{pmd}:e{i2}:e", pt)
                for port, r in ported:
                    frames.setdefault(r.frame, (r.pfns, r.n if r.kind != "repeat" else 1))
                    dot.edge(f"{pt}:{port}:e", r.frame, _edge_attrs(r))


def _edge_attrs(r: Row) -> str:
    attrs = []
    if r.kind == "removed":
        return f'style=dashed color="{VERMILLION}" label="removed"'
    if r.bits.special:
        attrs.append("style=dashed")
    if r.changed:
        attrs.append(f'color="{VERMILLION}" penwidth=2.5')
    if r.kind == "repeat":
        attrs.append(f'label="×{r.n}"')
    return " ".join(attrs)


# -- vma layout ----------------------------------------------------------------------------

def vma_dot(snap: Snapshot, info: dict, pids: list[int], diff: Diff | None = None, title: str = "",
            theme: str = "auto", collapse: int = 4) -> str:
    """DOT text: each vma's range, flags, smaps codes, vm_pgoff; PFNMAP ptes checked against
    the linear rule pfn == vm_pgoff + off (raw) or not (COWed)."""
    theme_ink(theme)
    diff = diff.prune(snap) if diff else None
    dot = Dot(esc(title or "vma layout: " + default_title(info, pids, snap)), theme, rankdir="TB")
    rows = build_rows(snap, info, pids, diff, collapse)
    for pid in pids:
        trs = [f'<TR><TD COLSPAN="6"><B>{esc(proc_label(pid, snap.mms[pid]))}: vmas</B></TD></TR>',
               "<TR><TD>range</TD><TD>pages</TD><TD>vm_flags</TD><TD>smaps</TD><TD>vm_pgoff</TD><TD>file</TD></TR>"]
        for j, v in enumerate(snap.vmas.get(pid, ())):
            moved = diff is not None and pid in diff.vmas and v not in (diff.vmas[pid] or ())
            border = f' COLOR="{VERMILLION}" BORDER="3"' if moved else ""
            names = flag_names(v.flags).replace("VM_", "").split("|")
            cow = " (COW)" if is_cow_mapping(v.flags) else ""
            trs.append(f"<TR>{_td(esc(f'{v.start:#x}–{v.end:#x}'), port=f'v{j}', extra=border)}"
                       f"<TD>{(v.end - v.start) // PAGE}</TD><TD>{_flag_lines(names, cow)}</TD>"
                       f"<TD>{esc(smaps_flags(v.flags))}</TD><TD>{v.pgoff}</TD><TD>{esc(v.name)}</TD></TR>")
        dot.node(f"vmas{pid}", _table(trs, FILL["table"]))
        for j, v in enumerate(snap.vmas.get(pid, ())):
            if v.flags & (VM_PFNMAP | VM_MIXEDMAP):
                inside = [r for r in rows[pid] if v.start <= r.addr < v.end]
                dot.node(f"vp{pid}_{j}", _pfn_rule_table(v, inside, snap, info))
                dot.edge(f"vmas{pid}:v{j}", f"vp{pid}_{j}")
    text = str(dot)
    codes = {c for pid in pids for v in snap.vmas.get(pid, ()) for c in smaps_flags(v.flags).split()}
    legend(dot, bool(diff), [k for k, colour in (("special", ORANGE), ("cow", GREEN)) if colour in text],
           notes=smaps_note(codes))
    return str(dot)


def smaps_note(codes) -> str:
    """What the smaps letters in this graph mean (DOT HTML lines), in smaps' order."""
    shown = [f"{c} = {esc(SMAPS_WORDS[c])}" for _bit, c in SMAPS_CODES if c in codes and c in SMAPS_WORDS]
    if not shown:
        return ""
    lines = ["; ".join(shown[i:i + 3]) for i in range(0, len(shown), 3)]
    return "<BR/>".join(["smaps letters (VmFlags, kernel-facts §13d):", *lines])


def _flag_lines(names: list[str], cow: str, per_line: int = 4) -> str:
    """vm_flags as 'A|B|C|D' lines of a few names each (a narrow column instead of a wide one)."""
    lines = ["|".join(names[i:i + per_line]) for i in range(0, len(names), per_line)] or [""]
    return "<BR/>".join(esc(line) for line in lines) + esc(cow)


def pte_verdict(v, r: Row, snap: Snapshot, info: dict) -> str:
    """What a pte in a PFNMAP/MIXEDMAP vma is: raw (linear rule), COWed, struct page or not."""
    off = (r.addr - v.start) // PAGE
    if v.flags & VM_MIXEDMAP:
        return "has struct page" if r.pfns[0] in snap.pages else "no struct page"
    if r.kind in ("run", "chain") or r.n > 1:
        linear = r.kind == "run" and r.pfns[0] == v.pgoff + off
    else:
        linear = r.pfns[0] == v.pgoff + off
    if linear:
        return "raw (linear rule holds)"
    return "COWed (anon page)" if is_cow_mapping(v.flags) else "raw, non-linear (shared)"


def _pfn_rule_table(v, rows: list[Row], snap, info) -> str:
    kind = "VM_MIXEDMAP" if v.flags & VM_MIXEDMAP else "VM_PFNMAP"
    rule = "" if v.flags & VM_MIXEDMAP else f": linear rule pfn == vm_pgoff ({v.pgoff}) + off"
    trs = [f'<TR><TD COLSPAN="4"><B>{kind} {v.start:#x}</B>{esc(rule)}</TD></TR>',
           "<TR><TD>pte</TD><TD>off</TD><TD>pfn</TD><TD>verdict</TD></TR>"]
    for r in rows:
        off = (r.addr - v.start) // PAGE
        verdict = "removed" if r.kind == "removed" else pte_verdict(v, r, snap, info)
        bg = ORANGE if r.bits.special and r.kind != "removed" else (GREEN if "COW" in verdict else "")
        border = f' COLOR="{VERMILLION}" BORDER="3"' if r.changed else ""
        offs = str(off) if r.n == 1 else f"{off}..{off + r.n - 1}"
        first = _td(row_label(r), extra=' ALIGN="LEFT"' + border)
        trs.append(f"<TR>{first}<TD>{offs}</TD><TD>{r.pfns[0]}</TD>{_td(esc(verdict), bg=bg)}</TR>")
    if not rows:
        trs.append('<TR><TD COLSPAN="4"><I>no ptes yet</I></TD></TR>')
    return _table(trs, FILL["table"])


# -- physical memory -----------------------------------------------------------------------

GRID_MAX = 1024


def phys_dot(snap: Snapshot, info: dict, diff: Diff | None = None, title: str = "", theme: str = "auto") -> str:
    """DOT text: RAM frames (each with a struct page in the memmap) versus device memory
    (none), and the memmap's cost in bytes."""
    theme_ink(theme)
    ram = info.get("ram_pages", 0)
    prof = info.get("profile")
    size = getattr(prof, "sizeof_struct_page", 64)
    dot = Dot(esc(title or f"physical memory: {getattr(prof, 'name', '')}"), theme, rankdir="TB")
    counts: dict[str, int] = {}
    for pfn in range(ram):
        counts[_phys_kind(pfn, snap)] = counts.get(_phys_kind(pfn, snap), 0) + 1
    summary = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    extra = sum(n for name, _start, n in info.get("devices", ()) if name in info.get("memmapped", ()))
    dot.node("memmap", f"<B>memmap</B><BR/>{ram + extra} struct pages × {size} B<BR/>= "
             f"{(ram + extra) * size:,} B ({100 * size * (ram + extra) / (PAGE * ram):.2f} % of RAM)", f'shape=box style="filled" fillcolor="{YELLOW}" fontcolor="black"')
    dot.node("ram", _ram_grid(snap, ram, diff) if ram <= GRID_MAX else
             f"<B>RAM pfn 0..{ram - 1}</B><BR/>{esc(summary)}",
             "shape=plain" if ram <= GRID_MAX else f'shape=box style=filled fillcolor="{GREEN}"')
    dot.edge("memmap", "ram", 'label="one struct page per frame"')
    dot.raw(f'ramnote [shape=plaintext fontcolor="{dot.ink}" label="{esc(summary)}"];')
    dot.edge("ram", "ramnote", "style=invis")
    for j, (name, start, n) in enumerate(info.get("devices", ())):
        if name in info.get("memmapped", ()):
            dot.node(f"dev{j}", f"<B>{esc(name)}: pfn {start}..{start + n - 1}</B><BR/>{n} frames, "
                     f"<I>given struct pages by its driver</I><BR/>memmap cost {n * size:,} B",
                     f'shape=box style="filled" fillcolor="{PURPLE}" fontcolor="black"')
            dot.edge("memmap", f"dev{j}", 'label="one struct page per frame"')
            continue
        dot.node(f"dev{j}", f"<B>{esc(name)}: pfn {start}..{start + n - 1}</B><BR/>{n} frames, "
                 f"<I>no struct page</I><BR/>memmap cost 0 B (would be {n * size:,} B)",
                 f'shape=box style="filled,dashed" fillcolor="{PURPLE}" fontcolor="black"')
        dot.edge("memmap", f"dev{j}", 'style=dotted label="none" arrowhead=none')
    shown = set(counts) | ({"device"} if info.get("devices") else set())
    legend(dot, bool(diff), ["memmap", *(k for k in ("free", "pgtable", "anon", "file", "kernel", "device")
                                         if k in shown or (k == "kernel" and "reserved" in shown))], info)
    return str(dot)


def _phys_kind(pfn: int, snap: Snapshot) -> str:
    page = snap.pages.get(pfn)
    if page is None:
        return "free"
    if page.pgtable:
        return "pgtable"
    return "anon" if page.anon else "file" if page.mapping else "reserved" if page.reserved else "kernel"


PHYS_FILL = {"free": "#FFFFFF", "pgtable": "#E0E0E0", "anon": GREEN, "file": SKY, "reserved": YELLOW,
             "kernel": YELLOW}


def _ram_grid(snap: Snapshot, ram: int, diff: Diff | None, width: int = 32) -> str:
    trs = [f'<TR><TD COLSPAN="{width}"><B>RAM pfn 0..{ram - 1}</B> (one cell per frame)</TD></TR>']
    for base in range(0, ram, width):
        cells = []
        for pfn in range(base, min(base + width, ram)):
            mark = f' BORDER="2" COLOR="{VERMILLION}"' if diff is not None and pfn in diff.pages else ""
            cells.append(f'<TD BGCOLOR="{PHYS_FILL[_phys_kind(pfn, snap)]}" WIDTH="10" HEIGHT="10"'
                         f'{mark} TITLE="pfn {pfn}"> </TD>')
        trs.append("<TR>" + "".join(cells) + "</TR>")
    return _table(trs, "#FFFFFF")
