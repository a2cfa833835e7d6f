"""One layout per trace: page-table graphs whose nodes never move while stepping.

The way through this module is trace -> union -> rows -> layout -> per-step SVG:

1. `Union.of(traces)` (vmlib.views.picture) walks each trace once and collects everything any
   step will show: processes, page-table pages, pte keys (with the steps at which each changed
   and its values then), linear runs (remap_pfn_range) and frames.
2. `Layout(union)` takes the union's rows (picture.table_rows: ptes that always change together
   form one row, the rows the DOT renderer draws too), gives every process, table, row and
   frame a fixed place and the picture a fixed size, sized for a 960 px column with 12 px text
   (tall rather than wide; stack=True: each mm box above its tables, narrower still).
3. `Layout.svg(snap, info, diff, title)` writes one step's SVG from that fixed layout: only
   labels, styles and visibility change, and no Graphviz runs. The SVG scales down with its
   column (viewBox, max-width 100 %) and takes its colours from JupyterLab's theme variables
   (light fallbacks outside JupyterLab), so it reads in the light and the dark theme.

Colours are Okabe-Ito (colour-blind safe): fills carry black text, changed parts get a thick
vermillion outline and a "Δ", special ptes an orange S cell and a dashed edge.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from vmlib.trace import Snapshot
from vmlib.views import picture as D
from vmlib.views.picture import Row, Union, row_pfns, table_rows, walk

PAGE = 4096
FONT = 12                       # px; the smallest text in a graph is 11 px
LINE = 18                       # height of one text row
CHAR = 0.56 * FONT              # mean width of a character (DejaVu Sans / Helvetica)
WIDTH = 960                     # the column a graph is designed for
GAP = 8
BIT = 18                        # width of one P/W/D/S cell
PRESENT_W = 940                 # a reveal.js slide's column: what a presentation picture is sized for
MAX_VMA_LINES = 6               # more vmas than this in one process: the mm box counts them
SEEN = 4                        # how far outside a box its "examined" outline runs
MANY_FRAMES = 12                # more frames than this: one-line frame boxes
FRAME_X_GAP = 40                # room for the edges between pte tables and frames
STACK_INDENT = 22               # stack=True: how far right of its mm box a process's tables start

CSS = (
    ".vg{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;font-size:12px}"
    ".vg .bg{fill:var(--jp-layout-color0,#fff)}"
    ".vg text{fill:var(--jp-content-font-color1,#111)}"
    ".vg text.k{fill:#000}.vg text.w{fill:#fff}"
    ".vg text.b{font-weight:bold}.vg text.i{font-style:italic;fill:var(--jp-content-font-color2,#333)}"
    ".vg text.s{font-size:12px}"
    ".vg .box{fill:var(--jp-layout-color2,#eee);stroke:var(--jp-content-font-color1,#222)}"
    ".vg .ln{stroke:var(--jp-content-font-color1,#222);fill:none;stroke-width:1.2}"
    ".vg .ar{fill:var(--jp-content-font-color1,#222)}"
    ".vg .sep{stroke:var(--jp-content-font-color2,#555);stroke-width:.6}"
    ".vg .fill{stroke:var(--jp-content-font-color1,#222)}"
    ".vg .dash{stroke-dasharray:5 3}"
    ".vg .hot{stroke:#D55E00;stroke-width:3}"
    ".vg .ln.hot{stroke-width:2.5}.vg .ar.hot{fill:#D55E00;stroke:none}"
    ".vg .seen{stroke:var(--vm-seen,#0072B2);stroke-width:3;stroke-dasharray:7 4;fill:none}"
    ".vg .seenmark{fill:var(--vm-seen,#0072B2)}"
    "[data-jp-theme-light=false] .vg{--vm-seen:#56B4E9}"
)


THEMES = {   # JupyterLab's variables, set on the picture for an explicit theme ("auto" inherits them)
    "light": "--jp-layout-color0:#fff;--jp-layout-color2:#eee;--jp-content-font-color1:#111;"
             "--jp-content-font-color2:#333",
    "dark": "--jp-layout-color0:#111;--jp-layout-color2:#424242;--jp-content-font-color1:#fff;"
            "--jp-content-font-color2:#ddd;--vm-seen:#56B4E9",
}


def themed(svg: str, theme: str) -> str:
    """The picture with an explicit theme's colours (unchanged for "auto")."""
    if theme not in THEMES:
        return svg
    return svg.replace(' style="', f' style="{THEMES[theme]};', 1)


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def text_width(text: str, bold: bool = False) -> float:
    """Estimated width in px of `text` at FONT px."""
    return len(text) * CHAR * (1.08 if bold else 1.0)


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float


class Layout:
    """Fixed places for every node of a union of states; `svg()` draws one state on them."""

    _seen = None                  # what the step being drawn examined (set by svg)

    def __init__(self, u: Union, collapse: int = 4, width: int = WIDTH, pids=None, levels: bool = True,
                 fit: str = "natural", stack: bool = False):
        if fit not in ("natural", "column"):
            raise ValueError(f"fit must be 'natural' or 'column', got {fit!r}")
        self.u = u
        self.levels = levels           # False: no pgd/pud/pmd boxes (the walk in the pte table's head), narrower
        self.stack = stack             # True: each mm box above its tables, not left of them (narrower again)
        self.fit = fit                 # "column": drawn as wide as its column (presentation)
        self.pids = sorted(u.mms) if pids is None else sorted(pids)
        self.rows = table_rows(u, self.pids, collapse)   # (pid, i4, i3, i2) -> rows in address order
        self.boxes: dict[str, Box] = {}
        self.ports: dict[str, float] = {}           # "pgd1:e0" -> y of that entry
        self._place(width)

    # -- placing -------------------------------------------------------------------------
    def _place(self, width: int) -> None:
        self.vma_slots = {p: sorted(self.u.vmas.get(p, {})) for p in self.pids}
        for p, slots in self.vma_slots.items():
            if len(slots) > MAX_VMA_LINES:
                self.vma_slots[p] = []             # too many to list: the mm box says how many
        mm_w = max([text_width("anon rss 9999→9999"), text_width("vmas: 99")] +
                   [text_width(t) + 4 for p in self.pids for v in self.u.vmas.get(p, {}).values()
                    for t in _vma_lines(v)] +
                   [text_width(D.proc_label(p, n), True) for p in self.pids for n in self.u.mms[p]]) + 12
        lvl_w = text_width("pfn 99999") + 12
        self.walk_w = 3 * (lvl_w + 12) if self.levels else 0
        x_pgd = 2 + STACK_INDENT if self.stack else 2 + mm_w + 14
        x_pt0 = x_pgd + self.walk_w
        wants = {r.rid: text_width(_row_text_max(r, self.u), True) for rows in self.rows.values() for r in rows}

        def room(frame_w: float) -> float:          # for a row's text, in a 960 px column
            return width - 8 - frame_w - FRAME_X_GAP - x_pt0 - 4 * BIT - 16
        # many frames: one-line frame boxes (half as tall), unless that would wrap the rows instead
        many = len(self.frame_ids()) > MANY_FRAMES
        self.frame_rows = 1 if many and max(wants.values(), default=0) <= room(self._frame_width(1)) else 2
        self.frame_w = self._frame_width(self.frame_rows)
        budget = room(self.frame_w)
        for rows in self.rows.values():
            for r in rows:
                r.lines = 2 if wants[r.rid] > budget else 1
        self.label_w = max([w for w in wants.values() if w <= budget] +
                           [text_width(_row_text_max(r, self.u, True), True) for rows in self.rows.values() for r in rows
                            if r.lines == 2] + [text_width("0x7fffffff000 (empty)")]) + 16
        xs = (x_pgd, x_pgd + lvl_w + 12, x_pgd + 2 * (lvl_w + 12))
        x_pt = x_pgd + self.walk_w
        self.pt_w = max(self.label_w + 4 * BIT, text_width("pte table @pfn 99999", True) + 12)
        self.x_frames = x_pt + self.pt_w + FRAME_X_GAP
        y = LINE + 10                                 # below the title
        for pid in self.pids:
            y = self._place_mm(pid, y, mm_w, xs, lvl_w, x_pt) + 16
        self._place_frames()
        self.width = max([self.x_frames + self.frame_w] + [b.x + b.w for b in self.boxes.values()]) + 4
        self.legend_y = max(b.y + b.h for b in self.boxes.values()) + 12 if self.boxes else y
        self.legend = self._legend_items()
        self.legend_lines = _wrap_legend(self.legend, self.width)
        self.height = self.legend_y + LINE * len(self.legend_lines) + 4

    def _place_mm(self, pid: int, top: float, mm_w, xs, lvl_w, x_pt) -> float:
        x_pgd, x_pud, x_pmd = xs
        mm_h = (5 + 2 * len(self.vma_slots[pid])) * LINE + 8
        self.boxes[f"mm{pid}"] = Box(2, top, mm_w, mm_h)
        tree: dict = {}
        for (p, i4, i3, i2) in self.rows:
            if p == pid:
                tree.setdefault(i4, {}).setdefault(i3, []).append(i2)
        bottom = top + mm_h
        top = bottom + GAP if self.stack else top       # where the tables start
        y = top
        self.boxes[f"pgd{pid}"] = self._level(f"pgd{pid}", x_pgd, top, lvl_w, sorted(tree))
        for i4 in sorted(tree):
            pud = f"pud{pid}_{i4}"
            self.boxes[pud] = self._level(pud, x_pud, y, lvl_w, sorted(tree[i4]))
            for i3 in sorted(tree[i4]):
                pmd = f"pmd{pid}_{i4}_{i3}"
                i2s = sorted(tree[i4][i3])
                self.boxes[pmd] = self._level(pmd, x_pmd, y, lvl_w, i2s)
                for i2 in i2s:
                    rows = self.rows[(pid, i4, i3, i2)]
                    h = LINE * (2 + max(1, sum(r.lines for r in rows))) + 4
                    self.boxes[f"pt{pid}_{i4}_{i3}_{i2}"] = Box(x_pt, y, self.pt_w, h)
                    ry = y + 2 * LINE + 2
                    for r in rows:
                        r.y = ry
                        ry += LINE * r.lines
                    y += h + GAP
                    bottom = max(bottom, y)
                y = max(y, self.boxes[pmd].y + self.boxes[pmd].h + GAP)
            y = max(y, self.boxes[pud].y + self.boxes[pud].h + GAP)
        return max(bottom, self.boxes[f"pgd{pid}"].y + self.boxes[f"pgd{pid}"].h, y)

    def _level(self, nid: str, x: float, y: float, w: float, entries: list[int]) -> Box:
        """A pgd/pud/pmd box: name, its pfn, then one line per entry."""
        for j, e in enumerate(entries):
            self.ports[f"{nid}:{e}"] = y + LINE * (j + 2) + 2 + LINE / 2
        return Box(x, y, w, LINE * (2 + len(entries)) + 4)

    def frame_ids(self) -> dict[str, list[float]]:
        """Frame node id -> the y of every row that maps it (at some step)."""
        out: dict[str, list[float]] = {}
        for rows in self.rows.values():
            for r in rows:
                ids = [r.frame] if r.frame else [f"f{p}" for p in sorted(row_pfns(r, self.u))]
                for fid in ids:
                    out.setdefault(fid, []).append(r.y + LINE / 2)
        return out

    def _frame_width(self, rows: int) -> float:
        """Frame box width for boxes of one line (head · counts) or two."""
        texts = [_frame_text_max(f, self.u) for f in self.frame_ids()]
        if rows == 1:
            return max([120] + [text_width(head, True) + text_width("· " + counts) + 16 for head, counts in texts])
        return max([120] + [max(text_width(head, True), text_width(counts)) + 12 for head, counts in texts])

    def _place_frames(self) -> None:
        wanted = self.frame_ids()
        h = self.frame_rows * LINE + 4
        y = LINE + 10
        for fid in sorted(wanted, key=lambda f: (min(wanted[f]), _fid_pfn(f))):
            y = max(y, min(wanted[fid]) - h / 2)
            self.boxes[fid] = Box(self.x_frames, y, self.frame_w, h)
            y += h + 4

    def _legend_items(self) -> list[tuple[str, str]]:
        kinds = self.u.kinds
        items = [("", "legend:"), (D.FILL["mm"], "mm (process)"), ("table", "page table")]
        names = {"anon": "anon page", "file": "file / page cache page", "kernel": "kernel / reserved page",
                 "zero": "zero page", "device": "device memory: no struct page (dashed)",
                 "none": "no memory there (dashed)"}
        if self.u.info.get("memmapped"):          # 2.6.25 XIP: its driver made struct pages
            names["device"] = D.DEVICE_MEMMAPPED
        items += [(D.FILL[k], name) for k, name in names.items() if k in kinds]
        if self.u.special:
            items.append((D.ORANGE, "special pte (S), dashed edge"))
        items.append(("", "P W D S: present write dirty special"))
        items.append(("hot", "Δ changed in this step"))
        items.append(("seen", "looked at by the deciding code (▶ the entry it decided on)"))
        return items

    # -- drawing one state ----------------------------------------------------------------
    def svg(self, snap: Snapshot, info: dict, diff: D.Diff | None = None, title: str = "", examined=None) -> str:
        """The SVG of `snap` on this layout; `diff` (what the step changed) is highlighted with a
        solid vermillion outline, `examined` (a picture.Examined: what the deciding code looked at)
        with a dashed blue outline just outside the element. Marked elements carry data-vm."""
        diff = diff.prune(snap) if diff else None
        self._seen = examined if examined else None
        out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="vg" viewBox="0 0 {self.width:.0f} '
               f'{self.height:.0f}" {self.size_attrs()} role="img">'),
               f"<title>{esc(title)}</title><style>{CSS}</style>",
               f'<rect class="bg" x="0" y="0" width="{self.width:.0f}" height="{self.height:.0f}"/>',
               _text(4, 4 + FONT, _fit(title, self.width - 8, True), "b")]
        seen: dict[str, list] = {}
        for pid in self.pids:
            if pid in snap.mms:
                self._draw_mm(out, snap, pid, diff, seen)
            elif diff is not None and diff.mms.get(pid) is not None:
                self._draw_gone(out, pid, diff.mms[pid])
        self._draw_frames(out, snap, info, diff, seen)
        self._draw_legend(out, diff is not None, self._seen is not None)
        out.append("</svg>")
        return "".join(out)

    def size_attrs(self) -> str:
        """width, height and style of the picture. fit "natural": its natural size, text 12 px,
        never shrunk (the box around it scrolls in a narrow column). fit "column" (presentation):
        as wide as its column (its width/height say a 940 px slide's), never narrower than its
        natural size (text 12 px at least: a narrow column scrolls it)."""
        if self.fit == "natural":
            return f'width="{self.width:.0f}" height="{self.height:.0f}" style="max-width:none;height:auto"'
        k = PRESENT_W / self.width
        return (f'width="{PRESENT_W}" height="{self.height * k:.0f}" '
                f'style="width:100%;min-width:{self.width:.0f}px;height:auto"')

    def _draw_mm(self, out, snap, pid, diff, seen) -> None:
        b = self.boxes[f"mm{pid}"]
        hot = bool(diff and (any(k[0] == pid for k in diff.rss) or pid in diff.mms))
        head = Box(b.x, b.y, b.w, 4 * LINE + 4)
        out.append(f'<g data-node="mm{pid}" data-vm="mm:{pid}">{_rect(head, D.FILL["mm"], hot, rx=6)}'
                   f'{self._seen_mark(head, self._seen and pid in self._seen.mms)}'
                   f'{_text(b.x + 6, b.y + 16, D.proc_label(pid, snap.mms[pid]), "w b")}'
                   f'{_text(b.x + 6, b.y + 16 + LINE, "mm_struct", "w")}'
                   f'{_text(b.x + 6, b.y + 16 + 2 * LINE, "anon rss " + D.rss_text(snap, diff, (pid, "anon")), "w")}'
                   f'{_text(b.x + 6, b.y + 16 + 3 * LINE, "file rss " + D.rss_text(snap, diff, (pid, "file")), "w")}'
                   "</g>")
        self._draw_vmas(out, snap, pid, diff, Box(b.x, b.y + head.h + 4, b.w, b.h - head.h - 4))
        live = {key: rows for key, rows in self.rows.items() if key[0] == pid}
        present = {key: [(r, r.ptes(snap)) for r in rows] for key, rows in live.items()}

        def has(key_prefix) -> bool:
            n = len(key_prefix)
            return any(k[1:1 + n] == key_prefix and any(p[0] is not None for _r, p in rs)
                       for k, rs in present.items())

        def table_at(level, base):
            """The table's pfn; 'freed' text in the step that freed it (drawn once more); None."""
            pfn = snap.tables.get((pid, level, base))
            old = diff.tables.get((pid, level, base)) if diff else None
            return ("freed", old) if pfn is None and old is not None else pfn

        def new(level, base):
            return bool(diff and (pid, level, base) in diff.tables)

        i4s = sorted({k[1] for k in live if has((k[1],)) or table_at(3, k[1] << 39) is not None})
        if not i4s and table_at(4, 0) is None:
            return
        pgd = f"pgd{pid}"
        if not self.levels:
            for key, rows in present.items():
                b2 = key[1] << 39 | key[2] << 30 | key[3] << 21
                if any(p[0] is not None for _r, p in rows) or table_at(1, b2) is not None:
                    pt = f"pt{pid}_{key[1]}_{key[2]}_{key[3]}"
                    self._pte_table(out, pt, b2, table_at(1, b2), new(1, b2), rows, diff, seen)
                    _edge(out, *self._mm_port(b), self.boxes[pt], False)
            return
        out.append(self._index(pgd, "pgd", table_at(4, 0), new(4, 0), i4s))
        _edge(out, *self._mm_port(b), self.boxes[pgd], False)
        for i4 in i4s:
            pud = f"pud{pid}_{i4}"
            b4 = i4 << 39
            i3s = sorted({k[2] for k in live if k[1] == i4 and (has((i4, k[2])) or
                                                                table_at(2, b4 | k[2] << 30) is not None)})
            out.append(self._index(pud, "pud", table_at(3, b4), new(3, b4), i3s))
            _edge(out, self.boxes[pgd].x + self.boxes[pgd].w, self.ports[f"{pgd}:{i4}"], self.boxes[pud], False)
            for i3 in i3s:
                pmd = f"pmd{pid}_{i4}_{i3}"
                b3 = b4 | i3 << 30
                i2s = sorted({k[3] for k in live if k[1:3] == (i4, i3) and
                              (has((i4, i3, k[3])) or table_at(1, b3 | k[3] << 21) is not None)})
                out.append(self._index(pmd, "pmd", table_at(2, b3), new(2, b3), i2s))
                _edge(out, self.boxes[pud].x + self.boxes[pud].w, self.ports[f"{pud}:{i3}"], self.boxes[pmd],
                      False)
                for i2 in i2s:
                    key = (pid, i4, i3, i2)
                    b2 = b3 | i2 << 21
                    pt = f"pt{pid}_{i4}_{i3}_{i2}"
                    self._pte_table(out, pt, b2, table_at(1, b2), new(1, b2), present[key], diff, seen)
                    _edge(out, self.boxes[pmd].x + self.boxes[pmd].w, self.ports[f"{pmd}:{i2}"],
                          self.boxes[pt], False)

    def _mm_port(self, b: Box) -> tuple[float, float]:
        """Where the edge from mm box b to its first table starts: its right side, or (stack) its foot."""
        return (b.x + STACK_INDENT / 2, b.y + b.h) if self.stack else (b.x + b.w, b.y + LINE / 2 + 4)

    def _seen_mark(self, b: Box, on, inside: bool = False, key: bool = False) -> str:
        """The dashed "examined" outline around box b (just outside it, or inside for a row);
        key: the entry the deciding code named, with a pointer at its left."""
        if not on:
            return ""
        m = -2 if inside else SEEN
        mark = (f'<rect class="seen" x="{b.x - m:.1f}" y="{b.y - m:.1f}" width="{b.w + 2 * m:.1f}" '
                f'height="{b.h + 2 * m:.1f}"/>')
        if key:
            y = b.y + b.h / 2
            mark += f'<path class="seenmark" data-key="1" d="M{b.x - 1:.1f},{y:.1f} l-9,-6 v12 z"/>'
        return mark

    def _draw_gone(self, out, pid: int, name: str) -> None:
        """A process that exited in this step: its mm box once more, marked changed."""
        b = self.boxes[f"mm{pid}"]
        head = Box(b.x, b.y, b.w, 4 * LINE + 4)        # the mm box's place and size: nothing moves
        out.append(f'<g data-node="mm{pid}" data-vm="mm:{pid}">{_rect(head, "", True, rx=6)}'
                   f'{self._seen_mark(head, self._seen and pid in self._seen.mms)}'
                   f'{_text(b.x + 6, b.y + 16, "Δ " + D.proc_label(pid, name), "b")}'
                   f'{_text(b.x + 6, b.y + 16 + LINE, "exited: mm freed", "i")}</g>')

    def _draw_vmas(self, out, snap, pid, diff, b: Box) -> None:
        """The process's vmas under its mm box, one fixed slot (two lines) per vma start."""
        vmas = {v.start: v for v in snap.vmas.get(pid, ())}
        moved = diff is not None and pid in diff.vmas
        old = {v.start: v for v in (diff.vmas[pid] or ())} if moved else {}
        parts = [f'<g data-vm="vmas:{pid}">{_rect(b, "", False)}', _text(b.x + 6, b.y + 15, f"vmas: {len(vmas)}", "b")]
        for j, start in enumerate(self.vma_slots[pid]):
            v = vmas.get(start)
            y = b.y + LINE * (1 + 2 * j) + 2
            if v is None:
                continue
            box = Box(b.x + 2, y, b.w - 4, 2 * LINE)
            hot = moved and old.get(start) != v
            looked = bool(self._seen and (pid, start) in self._seen.vmas)
            parts.append(f'<g data-vm="vma:{pid}:{start:#x}">')
            if hot:
                parts.append(f'<rect class="hot" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" '
                             f'height="{box.h:.1f}" fill="none"/>')
            parts.append(self._seen_mark(box, looked, inside=True))
            first, second = _vma_lines(v)
            parts.append(_text(b.x + 6, y + 14, first, ""))
            parts.append(_text(b.x + 6, y + 14 + LINE, second, "s"))
            parts.append("</g>")
        parts.append("</g>")
        out.append("".join(parts))

    def _index(self, nid: str, name: str, pfn, hot: bool, entries: list[int]) -> str:
        b = self.boxes[nid]
        where = "" if pfn is None else "freed" if isinstance(pfn, tuple) else f"pfn {pfn}"
        parts = [f'<g data-node="{nid}">{_rect(b, "", hot)}', _text(b.x + 5, b.y + 15, name, "b"),
                 _text(b.x + 5, b.y + 15 + LINE, _fit(where, b.w - 8), "s")]
        all_entries = sorted(int(k.rsplit(":", 1)[1]) for k in self.ports if k.startswith(nid + ":"))
        for e in all_entries:
            y = self.ports[f"{nid}:{e}"]
            parts.append(f'<line class="sep" x1="{b.x:.1f}" y1="{y - LINE / 2:.1f}" x2="{b.x + b.w:.1f}" '
                         f'y2="{y - LINE / 2:.1f}"/>')
            parts.append(_text(b.x + 5, y + 4, f"[{e}]" if e in entries else f"[{e}] none",
                               "" if e in entries else "i"))
        parts.append("</g>")
        return "".join(parts)

    def _pte_table(self, out, nid, base, pfn, hot, rows, diff, seen) -> None:
        b = self.boxes[nid]
        where = "" if pfn is None else f" freed (was @pfn {pfn[1]})" if isinstance(pfn, tuple) else f" @pfn {pfn}"
        xb = b.x + self.label_w
        sub = f"entries from {base:#x}" if self.levels else \
            f"pgd[{base >> 39 & 511}] pud[{base >> 30 & 511}] pmd[{base >> 21 & 511}]"
        parts = [f'<g data-node="{nid}">{_rect(b, "", hot)}',
                 _text(b.x + 5, b.y + 15, f"pte table{where}", "b"),
                 _text(b.x + 5, b.y + 15 + LINE, sub, "s")]
        for j, letter in enumerate("PWDS"):
            parts.append(_text(xb + BIT * j + 4, b.y + 15 + LINE, letter, "s b"))
        for r, ptes in rows:
            parts.append(f'<line class="sep" x1="{b.x:.1f}" y1="{r.y:.1f}" x2="{b.x + b.w:.1f}" y2="{r.y:.1f}"/>')
            parts.append(self._row(r, ptes, diff, xb, b, seen))
        parts.append("</g>")
        out.append("".join(parts))

    def _row(self, r: Row, ptes, diff, xb, b, seen) -> str:
        olds = r.olds(diff)
        if r.run and olds and (olds[0] is None) == (ptes[0] is None):
            olds = []                                  # the run is as it was
        changed = olds
        now = ptes[0]
        ty = r.y + LINE / 2 + 4
        parts = [f'<g data-vm="pte:{r.pid}:{r.first:#x}">']
        if self._seen and any((r.pid, a) in self._seen.ptes for a in _row_addrs(r)):
            key = any((r.pid, a) in self._seen.key for a in _row_addrs(r))
            parts.append(self._seen_mark(Box(b.x + 1, r.y + 1, b.w - 2, LINE * r.lines - 2), True, inside=True,
                                         key=key))
        if now is None:
            old = next((o for o in olds if o is not None), None)
            if old is not None:
                parts.append(f'<rect class="hot" x="{b.x + 2:.1f}" y="{r.y + 1:.1f}" width="{b.w - 4:.1f}" '
                             f'height="{LINE * r.lines - 2}" fill="none"/>')
                parts.append(_row_text(b.x + 6, ty, r, f"Δ {_addr_text(r)}", "→ none", ""))
                self._want(seen, r, [old], True, True, removed=True)
            else:
                parts.append(_text(b.x + 6, ty, f"{_addr_text(r)} (empty)", "i"))
            return "".join(parts) + "</g>"
        if now.special:
            parts.append(f'<rect x="{xb + 3 * BIT:.1f}" y="{r.y:.1f}" width="{BIT}" height="{LINE}" fill="{D.ORANGE}"/>')
        if changed:
            parts.append(f'<rect class="hot" x="{b.x + 2:.1f}" y="{r.y + 1:.1f}" width="{b.w - 4:.1f}" '
                         f'height="{LINE * r.lines - 2}" fill="none"/>')
        head = f"{'Δ ' if changed else ''}{_addr_text(r)}"
        parts.append(_row_text(b.x + 6, ty, r, head, f"→ {_pfn_text(r, ptes)}", "b" if changed else ""))
        for j, name in enumerate(("present", "write", "dirty", "special")):
            on = getattr(now, name)
            parts.append(_text(xb + BIT * j + 4, ty, "PWDS"[j] if on else "·",
                               ("k b" if name == "special" else "b") if on else ""))
        self._want(seen, r, ptes, bool(changed), now.special)
        return "".join(parts) + "</g>"

    def _want(self, seen, r: Row, ptes, hot: bool, dashed: bool, removed: bool = False) -> None:
        """Note the edge from row r to its frame node (drawn after the frames)."""
        fid = r.frame or f"f{ptes[0].pfn}"
        if fid in self.boxes:
            seen.setdefault(fid, []).append((r, hot, dashed, removed))

    def _draw_frames(self, out, snap, info, diff, seen) -> None:
        for fid, refs in seen.items():
            b = self.boxes[fid]
            lines, kind, hot = _frame_lines(fid, refs, snap, info, diff)
            style = "dash" if kind in ("device", "none") else ""
            fill = D.FILL.get(kind, D.GREEN)
            if self.frame_rows == 1:
                second = _text(b.x + 10 + text_width(lines[0], True), b.y + 15, "· " + lines[1], "k")
            else:
                second = _text(b.x + 6, b.y + 15 + LINE, lines[1], "k")
            looked = bool(self._seen and _fid_pfns(fid, refs, snap) & self._seen.frames)
            out.append(f'<g data-node="{fid}" data-vm="frame:{_fid_pfn(fid)}">{_rect(b, fill, hot, extra=style)}'
                       f'{self._seen_mark(b, looked)}'
                       f'{_text(b.x + 6, b.y + 15, lines[0], "k b")}{second}</g>')
            for r, hot_edge, dashed, removed in refs:
                tb = self.boxes[_table_of(r)]
                _edge(out, tb.x + tb.w, r.y + LINE / 2, b, hot_edge, dashed or removed,
                      f"×{r.n}" if r.n > 1 and not r.frame else "")

    def _draw_legend(self, out, with_diff: bool, with_seen: bool = False) -> None:
        y = self.legend_y
        for line in self.legend_lines:
            x = 4.0
            for swatch, label in line:
                if (swatch == "hot" and not with_diff) or (swatch == "seen" and not with_seen):
                    continue
                if swatch == "seen":
                    out.append(f'<rect class="seen" x="{x:.1f}" y="{y + 3:.1f}" width="14" height="12"/>')
                    x += 18
                    out.append(_text(x, y + 14, label, ""))
                    x += text_width(label) + 16
                    continue
                if swatch:
                    cls = ' class="hot"' if swatch == "hot" else ' class="box"' if swatch == "table" else ""
                    fill = "none" if swatch == "hot" else "" if swatch == "table" else swatch
                    fill_attr = f' fill="{fill}"' if fill else ""
                    out.append(f'<rect{cls} x="{x:.1f}" y="{y + 3:.1f}" width="14" height="12"{fill_attr} '
                               'stroke="#222"/>')
                    x += 18
                out.append(_text(x, y + 14, label, ""))
                x += text_width(label) + 16
            y += LINE


# -- helpers ------------------------------------------------------------------------------------

def _vma_lines(v) -> tuple[str, str]:
    """Two short lines for a vma: '0x40000000 ×4' (start, pages) and 'rw-p MIXEDMAP' (or its file)."""
    from vmlib.flags import VM_EXEC, VM_MIXEDMAP, VM_PFNMAP, VM_READ, VM_SHARED, VM_WRITE
    f = v.flags
    prot = "".join(c if f & bit else "-" for c, bit in (("r", VM_READ), ("w", VM_WRITE), ("x", VM_EXEC)))
    prot += "s" if f & VM_SHARED else "p"
    kind = "PFNMAP" if f & VM_PFNMAP else "MIXEDMAP" if f & VM_MIXEDMAP else (v.name or "anon")
    return f"{v.start:#x} ×{(v.end - v.start) // PAGE}", f"{prot} {kind}"[:20]


def _row_addrs(r: Row):
    """Every address a row stands for."""
    if r.run:
        return range(r.run[0], r.run[0] + r.run[1] * PAGE, PAGE)
    return r.addrs


def _fid_pfns(fid: str, refs, snap) -> set:
    """The pfns a frame node stands for (one, a group's, or a run's)."""
    if fid.startswith("f"):
        return {int(fid[1:])}
    r = refs[0][0]
    if r.run:
        return set(range(r.run[2], r.run[2] + r.n))
    return {p.pfn for p in r.ptes(snap) if p is not None}


def _table_of(r: Row) -> str:
    i4, i3, i2 = walk(r.first)
    return f"pt{r.pid}_{i4}_{i3}_{i2}"


def _fid_pfn(fid: str) -> int:
    return int(fid[1:].split("_")[0])


def _addr_text(r: Row) -> str:
    if r.n == 1:
        return f"{r.first:#x}"
    step = PAGE if r.run else r.addrs[1] - r.addrs[0]
    if step == PAGE:
        return f"{r.first:#x}–{r.first + r.n * PAGE:#x} ×{r.n}"
    return f"{r.first:#x}, {r.first + step:#x}, … ×{r.n}"


def _pfn_text(r: Row, ptes) -> str:
    if r.run:
        return f"pfn {r.run[2]}" if r.n == 1 else f"pfn {r.run[2]}..{r.run[2] + r.n - 1}"
    first, last = ptes[0].pfn, ptes[-1].pfn
    if first == last:
        return f"pfn {first}"
    step = ptes[1].pfn - first
    return f"pfn {first}..{last}" if step == 1 else f"pfn {first}, {ptes[1].pfn}, …"


def _row_text_max(r: Row, u: Union, split: bool = False) -> str:
    """The longest label the row can get (for its width); split: the longer of its two lines."""
    if r.run:
        targets = [_pfn_text(r, [])]
    else:
        lines = [u.ptes[(r.pid, a)] for a in r.addrs]
        targets = [_pfn_text(r, [line[i][1] for line in lines]) for i in range(len(lines[0]))
                   if lines[0][i][1] is not None]
    if split:
        return max([f"Δ {_addr_text(r)}"] + [f"  → {t}" for t in targets], key=len)
    return max([f"Δ {_addr_text(r)} → {t}" for t in targets] + [f"Δ {_addr_text(r)} → none"], key=len)


def _frame_text_max(fid: str, u: Union) -> tuple[str, str]:
    """The longest head and counts lines a frame node can get (for its width)."""
    pfn = _fid_pfn(fid)
    n = int(fid.split("_")[1]) if "_" in fid else 1
    head = f"pfn {pfn}..{pfn + n} ×{n}" if n > 1 else f"pfn {pfn}"
    kinds = {"anon": ["anon"], "file": [f"file {name}" for name in u.names], "kernel": ["reserved", "kernel"],
             "zero": ["zero page"], "device": [max(u.names, key=len)] + [
                 f"device {name}, struct page made by its driver" for name in u.info.get("memmapped", ())]}
    what = max([w for k in u.kinds for w in kinds.get(k, [])] + [""], key=len)
    counts = max("ref 99→99 map 99→99" + (" each" if n > 1 else ""), "device: no struct page", key=len)
    return f"Δ {head} {what}", counts


def _frame_lines(fid: str, refs, snap: Snapshot, info: dict, diff) -> tuple[list[str], str, bool]:
    """(two text lines, kind, changed) of a frame node in this state."""
    r = refs[0][0]
    if fid.startswith("f"):
        pfns = [int(fid[1:])]
    elif r.run:
        pfns = list(range(r.run[2], r.run[2] + r.n))
    else:
        pfns = [p.pfn for p in r.ptes(snap) if p is not None] or [_fid_pfn(fid)]
    pfn = pfns[0]
    kind = D.frame_kind(pfn, snap, info)
    n = len(pfns)
    head = f"pfn {pfn}" if n == 1 else f"pfn {pfn}..{pfns[-1]} ×{n}"
    page = snap.pages.get(pfn)
    hot = bool(diff and any(p in diff.pages for p in pfns))
    if page is not None:
        what = D.frame_what(kind, page, pfn, info)
        return [f"{'Δ ' if hot else ''}{head} {what}", _counts(pfns, snap, diff)], kind, hot
    if kind == "device":
        return [f"{head} {D.device_of(pfn, info)}", "device: no struct page"], kind, hot
    freed = hot and diff.pages.get(pfn) is not None
    return [f"{'Δ ' if hot else ''}{head}", "freed" if freed else
            ("RAM, free" if kind == "kernel" else "no struct page, no memory")], kind, hot


def _counts(pfns, snap: Snapshot, diff) -> str:
    """'ref 2 map 2' (with 'a→b' where the step changed it; 'each' or a range for a group)."""
    if len(pfns) == 1:
        page = snap.pages[pfns[0]]
        old = diff.pages.get(pfns[0], page) if diff else page
        if old is None:
            return f"new: {D.page_text(page)}"
        if old != page:
            return (f"ref {D.moved(old and old.count, page.count)} "
                    f"map {D.moved(old and old.mapcount, page.mapcount)}")
        return D.page_text(page)
    pages = [snap.pages.get(p) for p in pfns]
    refs = sorted({p.count for p in pages if p is not None})
    maps = sorted({p.mapcount for p in pages if p is not None})
    if len(refs) == 1 and len(maps) == 1:
        return f"ref {refs[0]} map {maps[0]} each"
    return f"ref {refs[0]}–{refs[-1]} map {maps[0]}–{maps[-1]}"


def _row_text(x: float, y: float, r: Row, head: str, tail: str, cls: str) -> str:
    """A row's text: 'head tail' on one line, or tail on a second line for a two-line row."""
    if r.lines == 2:
        return _text(x, y, head, cls) + _text(x, y + LINE, f"  {tail}", cls)
    return _text(x, y, f"{head} {tail}", cls)


def _fit(text: str, width: float, bold: bool = False) -> str:
    """text, cut with … to fit width px."""
    n = int(width / (CHAR * (1.08 if bold else 1.0)))
    return text if len(text) <= n else text[:max(1, n - 1)] + "…"


def _text(x: float, y: float, text: str, cls: str) -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{c}>{esc(text)}</text>'


def _rect(b: Box, fill: str, hot: bool, rx: int = 0, extra: str = "") -> str:
    cls = " ".join(c for c in ("box" if not fill else "fill", "hot" if hot else "", extra) if c)
    f = f' fill="{fill}"' if fill else ""
    r = f' rx="{rx}"' if rx else ""
    return f'<rect class="{cls}" x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}"{f}{r}/>'


def _edge(out, x1: float, y1: float, to: Box, hot: bool, dashed: bool = False, label: str = "") -> None:
    """A curve from (x1, y1) to the left side of box `to` (near its first line), with an arrow."""
    x2, y2 = to.x, to.y + min(LINE / 2 + 4, to.h / 2)
    dx = max(12.0, (x2 - x1) / 2)
    cls = "ln" + (" hot" if hot else "") + (" dash" if dashed else "")
    out.append(f'<path class="{cls}" d="M{x1:.1f},{y1:.1f} C{x1 + dx:.1f},{y1:.1f} {x2 - dx:.1f},{y2:.1f} '
               f'{x2 - 5:.1f},{y2:.1f}"/>')
    out.append(f'<path class="ar{" hot" if hot else ""}" d="M{x2:.1f},{y2:.1f} l-7,-4 v8 z"/>')
    if label:
        out.append(_text(x1 + 4, y1 - 3, label, "s"))


def _wrap_legend(items, width: float) -> list[list]:
    lines, line, x = [], [], 4.0
    for swatch, label in items:
        w = (18 if swatch else 0) + text_width(label) + 16
        if line and x + w > width:
            lines.append(line)
            line, x = [], 4.0
        line.append((swatch, label))
        x += w
    return [*lines, line] if line else lines
