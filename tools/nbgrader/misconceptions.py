"""Where a class goes wrong: first divergences of failing checks, counted by kernel-facts row and step.

After autograde, every failing check of every student has a verdict in the autograded notebook
(course/autograded/<student>/<assignment>/*.ipynb, which stays on the instructor's side). Its
"first divergence" names the scenario, the step and, when the student's answer differed from
the kernel's, the kernel-facts row that decided it:

    first divergence: scenario 'NAME' (2.6.26/x86) step 4 (parent: fork → child): ...
                      the kernel returns NULL (special) (kernel-facts §1a row 4); consequence: ...

This module reads those verdicts and counts, per assignment, the share of students whose
failing checks first diverge at each row ("41 % of the class diverge at §1a row 4"), with the
scenario steps where it shows, as CSV, an SVG bar chart (matplotlib) and an HTML page that links
each row into the fact sheet. A check with no row (a crash, a timeout, a consequence without a
differing answer) is counted under what it says. Instructor only: reports/ is never released.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FACTS = ROOT / "docs" / "kernel-facts.md"
FIRST = re.compile(r"first divergence: (?P<what>.*)")
SCENARIO = re.compile(r"scenario '(?P<name>[^']*)' \((?P<profile>[^)]*)\)(?: step (?P<step>\d+) \((?P<text>[^)]*)\))?")
ROW = re.compile(r"kernel-facts (?P<ref>§\d+[a-z]?(?: v?[\d.]+)?(?: row \d+)?)")
FACTS_URL = "kernel-facts.html"   # where the rendered sheet sits beside the report (see row_link)


def _text(x) -> str:
    return "".join(x) if isinstance(x, list) else str(x or "")


def divergences(nb: dict) -> list[dict]:
    """One record per failing graded test cell: grade_id, suite, row ("" if none), scenario, step, what."""
    out = []
    for c in nb.get("cells", []):
        meta = c.get("metadata", {}).get("nbgrader", {})
        if c.get("cell_type") != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        outs = c.get("outputs", [])
        if not any(o.get("output_type") == "error" for o in outs):
            continue
        text = "".join(_text(o.get("text")) for o in outs if o.get("output_type") == "stream")
        suite = text.split(":", 1)[0].strip() if text else meta.get("grade_id", "")
        m = FIRST.search(text)
        first = m.group("what") if m else next((_text(o.get("evalue")) for o in outs
                                                if o.get("output_type") == "error"), "")
        row = ROW.search(first)
        sc = SCENARIO.search(first)
        out.append({"grade_id": meta.get("grade_id", ""), "suite": suite,
                    "row": _short_row(row.group("ref")) if row else "",
                    "scenario": sc.group("name") if sc else "", "profile": sc.group("profile") if sc else "",
                    "step": f"step {sc.group('step')} ({sc.group('text')})" if sc and sc.group("step") else "",
                    "what": _what(first)})
    return out


def _short_row(ref: str) -> str:
    """'§6b v2.6.26 row 3' -> '§6b row 3' (rows are numbered per section); '§6b 6.12' stays."""
    m = re.match(r"(§\d+[a-z]?)(?: v?[\d.]+)? row (\d+)", ref)
    return f"{m.group(1)} row {m.group(2)}" if m else ref


def _what(first: str) -> str:
    """A short class of a divergence with no row: what went wrong, without the student's specifics."""
    for key, label in (("did not finish in time", "ran out of time"), ("ended the grading process", "crashed"),
                       ("the reference you are asked to write", "called the reference"),
                       ("is not defined", "function not defined"), ("the kernel returns", "answered otherwise"),
                       ("raised", "raised an exception"), ("k.check() fails", "k.check() fails")):
        if key in first:
            return label
    return "wrong outcome"


def rows_of_sheet(path: Path = FACTS) -> dict[str, str]:
    """{'§1a row 4': 'VM_PFNMAP · linear rule false and ... · NULL ...'} from the fact sheet's tables
    (vmlib.facts reads the sheet)."""
    from vmlib.facts import parse
    return {f"§{sec} row {n}": " · ".join(c for c in cells[1:4] if c)
            for sec, rows in parse(path.read_text()).items() for n, cells in rows.items()}


def row_link(row: str) -> str:
    """The link of a row into the rendered fact sheet beside the report ('§1a row 4' -> kernel-facts.html#s1a-row-4)."""
    from vmlib.facts import url
    try:
        return url(row)
    except ValueError:
        return FACTS_URL


def count(records: dict[str, list[dict]]) -> list[dict]:
    """Per place of first divergence (row, or what went wrong), how many students: most common first.
    `records` is {student: [divergence, ...]}; a student counts once per place."""
    students: dict[str, set] = defaultdict(set)
    steps: dict[str, Counter] = defaultdict(Counter)
    for student, divs in records.items():
        for d in divs:
            place = d["row"] or f"{d['suite']}: {d['what']} (no row)"
            students[place].add(student)
            if d["scenario"]:
                steps[place][f"{d['scenario']} ({d['profile']}) {d['step']}".strip()] += 1
    failing = sum(1 for divs in records.values() if divs)
    rows = [{"place": place, "students": len(who), "share": len(who) / failing if failing else 0.0,
             "where": steps[place].most_common(1)[0][0] if steps[place] else ""}
            for place, who in students.items()]
    return sorted(rows, key=lambda r: (-r["students"], r["place"]))


def collect(course: Path, assignment: str) -> dict[str, list[dict]]:
    """{student: [divergence, ...]} from course/autograded/<student>/<assignment>/*.ipynb."""
    out = {}
    base = course / "autograded"
    if not base.is_dir():
        return out
    for student in sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink()):
        divs = []
        for path in sorted((student / assignment).glob("*.ipynb")):
            if path.is_file() and not path.is_symlink():
                try:
                    divs += divergences(json.loads(path.read_text()))
                except (OSError, ValueError):
                    continue
        if (student / assignment).is_dir():
            out[student.name] = divs
    return out


def figure_svg(counted: list[dict], title: str, top: int = 12) -> str:
    """A horizontal bar chart of the most common places, as SVG text (matplotlib, Agg, no display)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    rows = counted[:top][::-1]
    fig = Figure(figsize=(8, 0.45 * max(3, len(rows)) + 1.2))
    ax = fig.subplots()
    labels = [textwrap.fill(r["place"], 34) for r in rows]
    ax.barh(labels, [100 * r["share"] for r in rows], color="#3b75af")
    for i, r in enumerate(rows):
        ax.text(100 * r["share"] + 1, i, f"{r['share']:.0%} ({r['students']})", va="center", fontsize=11)
    ax.set_xlim(0, 115)
    ax.set_xlabel("% of the students with a failing check", fontsize=12)
    ax.set_title(title, fontsize=13)
    ax.tick_params(labelsize=11)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue()


def report(course: Path, assignment: str, out: Path) -> tuple[Path, Path, list[dict]]:
    """misconceptions.csv, .svg and .html for `assignment` under `out`; returns (csv, html, counted)."""
    records = collect(course, assignment)
    counted = count(records)
    sheet = rows_of_sheet()
    out.mkdir(parents=True, exist_ok=True)
    from vmlib.facts import PACKAGED
    shutil.copyfile(PACKAGED, out / FACTS_URL)       # the rows link into the sheet beside the report
    path_csv, path_html = out / "misconceptions.csv", out / "misconceptions.html"
    with path_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["place", "students", "share", "most common step", "row text"])
        for r in counted:
            w.writerow([r["place"], r["students"], f"{r['share']:.3f}", r["where"], sheet.get(r["place"], "")])
    failing = sum(1 for divs in records.values() if divs)
    title = f"{assignment}: where failing checks first diverge ({failing} of {len(records)} students)"
    svg = figure_svg(counted, f"{assignment}: first divergences ({failing} students)") if counted else ""
    (out / "misconceptions.svg").write_text(svg)
    items = []
    for r in counted:
        place = html.escape(r["place"])
        if r["place"].startswith("§"):
            place = f"<a href='{html.escape(row_link(r['place']))}'>{place}</a>"
        items.append(f"<tr><td>{r['share']:.0%}</td><td>{r['students']}</td><td>{place}</td>"
                     f"<td>{html.escape(sheet.get(r['place'], ''))}</td><td>{html.escape(r['where'])}</td></tr>")
    path_html.write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font:15px system-ui,sans-serif;margin:2em;max-width:80em}td,th{padding:4px 10px;"
        "text-align:left;vertical-align:top}svg{max-width:100%;height:auto}</style>"
        f"<h1>{html.escape(title)}</h1>"
        "<p>Each failing check of a student has a first divergence: the first call where the student's "
        "function answered otherwise than the kernel (and the kernel-facts row that decided it), or, with "
        "no differing answer, what went wrong. A student counts once per place. Instructor only.</p>"
        + svg[svg.find("<svg"):] +
        "<table><tr><th>share</th><th>students</th><th>where</th><th>the row says</th>"
        "<th>most common step</th></tr>" + "".join(items) + "</table>")
    return path_csv, path_html, counted
