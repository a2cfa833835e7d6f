"""Side-by-side views of a comparison: plain text, an HTML string, and DOT text for a graph.

Only strings are built here (stdlib); vmlib.views may render the DOT text with graphviz.
A cell shows one value when both worlds agree and 'live|sim' marked with '!' when they do not.
"""

from __future__ import annotations

import html

from vmlib.real.compare import OBSERVABLES

HEAD = {"present": "present", "frame": "frame", "exclusive": "excl(56)", "file_shared": "file(61)",
        "kpagecount": "kpagecount", "ANON": "ANON", "MMAP": "MMAP", "ZERO_PAGE": "ZERO",
        "vmflags": "VmFlags"}


def fmt(v) -> str:
    """Short text for one observable value."""
    if v is None:
        return "-"
    if v is True:
        return "y"
    if v is False:
        return "."
    return str(v)


def cell_text(cell) -> str:
    lv, sv, status = cell
    if status == "n/a":
        return f"n/a|{fmt(sv)}"
    if status == "missing":
        return f"{fmt(lv)}|{fmt(sv)}"
    if status == "mismatch":
        return f"!{fmt(lv)}|{fmt(sv)}"
    return fmt(lv)


def title(cmp: dict) -> str:
    s = cmp.get("scenario") or {}
    world = cmp.get("label") or f"{cmp.get('live_world') or 'live'} kernel"
    verdict = "agree" if cmp.get("agree") else f"{len(cmp.get('mismatches', []))} mismatch(es)"
    if cmp.get("blocked"):
        verdict = "not compared: this machine cannot run it live (see below)"
    if cmp.get("unavailable"):
        verdict += f" ({len(cmp['unavailable'])} observable(s) not visible here, see below)"
    return f"{s.get('name', '?')}: {world} vs simulator 6.12 - {verdict}"


def text_table(cmp: dict) -> str:
    """The comparison as a fixed-width text table, then mismatches and notes."""
    lines = [title(cmp), (cmp.get("scenario") or {}).get("description", "")]
    cols = ["proc", "page"] + [HEAD[o] for o in OBSERVABLES]
    for step in cmp["steps"]:
        lines.append("")
        lines.append(f"step {step['index']}: {step['text']}" + _result_text(step))
        rows = [r for r in cmp["rows"] if r["step"] == step["index"]]
        table = [cols] + [[r["proc"], f"{r['map']}[{r['page']}]"] +
                          [cell_text(r["cells"][o]) for o in OBSERVABLES] for r in rows]
        widths = [max(len(row[c]) for row in table) for c in range(len(cols))]
        for row in table:
            lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)))
    lines += _tail(cmp)
    return "\n".join(lines)


def _result_text(step: dict) -> str:
    parts = []
    for world, key in (("live", "live"), ("sim", "sim")):
        res = step.get(key) or {}
        if "data" in res:
            parts.append(f"{world} read {bytes.fromhex(res['data'])!r}")
        if step.get(f"{key}_error"):
            parts.append(f"{world} error: {step[f'{key}_error']}")
        if res.get("not_applicable"):
            parts.append(f"{world}: n/a ({res['not_applicable']})")
        for vma in res.get("special", []):
            pages = vma.get("pages", [])
            present = sum(1 for p in pages if p.get("present"))
            parts.append(f"{world} {vma['name'] or 'anon'} VmFlags {' '.join(vma['vmflags'])}: "
                         f"{present}/{len(pages)} pages present in pagemap")
    return ("  -> " + "; ".join(parts)) if parts else ""


def _tail(cmp: dict) -> list[str]:
    lines = ["", ("cells: one value = both agree; !live|sim = mismatch; n/a|sim = live cannot see it;"
                 " y = set, . = clear, - = nothing there")]
    if cmp.get("unavailable"):
        lines.append("not visible on this machine:")
        lines += [f"  {k}: {v}" for k, v in cmp["unavailable"].items()]
    if cmp.get("mismatches"):
        lines.append("mismatches:")
        for m in cmp["mismatches"]:
            if m["observable"] == "run":
                lines.append(f"  {m['explanation']}")
                continue
            where = f"{m['proc']} {m['map']}[{m['page']}]" if m["proc"] else "step result"
            lines.append(f"  step {m['step']} {where} {m['observable']}: live {fmt(m['live'])}, "
                         f"simulator {fmt(m['sim'])} - {m['explanation']}")
    if cmp.get("notes"):
        lines.append("notes:")
        lines += [f"  {n}" if n.startswith("  ") else f"  * {n}" for n in cmp["notes"]]
    return lines


def html_table(cmp: dict) -> str:
    """The comparison as an HTML string; mismatched cells have a red background."""
    e = html.escape
    out = [f"<div class='vmlib-real'><h4>{e(title(cmp))}</h4>"]
    head = "".join(f"<th>{e(HEAD[o])}</th>" for o in OBSERVABLES)
    for step in cmp["steps"]:
        out.append(f"<p><b>step {step['index']}</b>: {e(step['text'])}{e(_result_text(step))}</p>")
        out.append(f"<table><tr><th>proc</th><th>page</th>{head}</tr>")
        for r in (r for r in cmp["rows"] if r["step"] == step["index"]):
            tds = "".join(_html_cell(r["cells"][o]) for o in OBSERVABLES)
            out.append(f"<tr><td>{e(r['proc'])}</td><td>{e(r['map'])}[{r['page']}]</td>{tds}</tr>")
        out.append("</table>")
    tail = "\n".join(_tail(cmp))
    out.append(f"<pre>{e(tail)}</pre></div>")
    return "\n".join(out)


def _html_cell(cell) -> str:
    style = {"mismatch": "background:#f8b4b4", "n/a": "color:#888"}.get(cell[2], "")
    return f"<td style='{style}'>{html.escape(cell_text(cell))}</td>"


def dot(cmp: dict, step: int = -1) -> str:
    """DOT text for one step: pages of each process point to frames, live left, simulator right.

    An edge is red when the two worlds map that page differently.
    """
    idx = cmp["steps"][step]["index"] if cmp["steps"] else 0
    rows = [r for r in cmp["rows"] if r["step"] == idx]
    lines = ["digraph compare {", "  rankdir=LR; node [shape=box, fontsize=10];",
             f'  label="{_q(title(cmp))} - step {idx}";']
    for w, world in ((0, "live"), (1, "simulator")):
        lines.append(f'  subgraph cluster_{world} {{ label="{world}";')
        for r in rows:
            lv, sv, status = r["cells"]["frame"]
            frame = (lv, sv)[w]
            node = f"{world}_{r['proc']}_{r['map']}_{r['page']}"
            lines.append(f'    "{node}" [label="{_q(r["proc"])} {_q(r["map"])}[{r["page"]}]"];')
            if frame is not None:
                color = "red" if status == "mismatch" else "black"
                lines.append(f'    "{world}_{frame}" [label="{frame}\\nkpagecount '
                             f'{fmt(r["cells"]["kpagecount"][w])}", shape=ellipse];')
                lines.append(f'    "{node}" -> "{world}_{frame}" [color={color}];')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines)


def _q(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace('"', '\\"')
