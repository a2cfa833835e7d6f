"""vmlib.facts: the kernel-facts sheet as a web page, and `§` references as links to its rows.

docs/kernel-facts.md is the sheet every lesson, trace and grading message cites (`§6b`,
`§1a row 3`, `§4 row 'COW vma'`, `§5a vm_insert_page`). `render` turns it into one HTML page
whose every section and row has a stable anchor:

    §1a          -> #s1a            §1a row 3 / rows 3-5 -> #s1a-row-3
    §4 row 'COW vma', §5a vm_insert_page -> the row whose label starts so, else the section

The page ships in the package (vmlib/facts/kernel-facts.html) and beside the lessons
(course/kernel-facts.html). `url(ref)` is where a reference points; `link_html` and
`link_markdown` turn the references in a text into links.

Where a link points (`sheet_base`): a lesson's markdown and anything run outside a Jupyter
server (nbconvert, the slide decks) link relatively, to the sheet beside the page. A kernel
started by a Jupyter server (JupyterLab, Notebook 7, a hub) or by JupyterLite links to the sheet
as the server serves it, `/files/<path>` (`<site>/files/<path>` in JupyterLite), and target=_blank:
JupyterLab opens a relative link in its own HTML viewer, which drops the #fragment, but leaves a
root-absolute one to the browser, whose new tab scrolls to the row and marks it (`:target`).
`python -m vmlib.facts` regenerates both pages from docs/kernel-facts.md (a test checks they are
current); `python -m vmlib.facts --link NOTEBOOK...` links the references in notebooks' markdown.

Standard library only, like the model (in a kernel, jupyter_core may say where the server's info file is).
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

SHEET_NAME = "kernel-facts.html"
PACKAGED = Path(__file__).with_name(SHEET_NAME)

# a reference: §sec, then optionally rows N[-M, and/or ...], or row 'label' (quote maybe escaped)
_Q = r"(?:'|&#x27;|&#39;)"
REF = re.compile(
    r"§(?P<sec>\d+[a-z]?)"
    r"(?:\s+rows?\s+(?P<rows>\d+(?:\s*(?:-|–|,|and|or)\s*\d+)*)"
    rf"|\s+row\s+{_Q}(?P<label>[^'&\n]+){_Q})?"
)
# the row of a trace event, shown in brackets: [§5a vm_insert_page], [§6b v2.6.26 row 1]
_BRACKET = re.compile(r"\[(?P<ref>§\d+[a-z]?[^\]\n]*)\]")
_HEADING = re.compile(r"^(#{1,3}) (?:(\d+[a-z]?)\. )?(.*)$")
_ROW = re.compile(r"^\| (\d+) \|")


# ---------------------------------------------------------------- anchors

def _first_row(spec: str) -> int:
    """The first row number of `3`, `3-6`, `5 and 6`, `1, 4`."""
    return int(re.match(r"\d+", spec).group(0))


def anchor(ref: str, rows: dict | None = None) -> str:
    """The anchor (without '#') of a kernel-facts reference such as "§1a row 3".

    A row reference names its row (the first of several); a label (`row 'COW vma'`, or words after
    the section as a trace writes them, "§5a vm_insert_page") names the row whose label starts with
    it when the sheet has one, else the section. ROWS is the sheet as `parse` gives it (default: the
    sheet shipped with vmlib). ValueError if REF is not a reference.
    """
    ref = html.unescape(ref.strip())
    m = REF.match(ref)
    if not m:
        raise ValueError(f"vmlib.facts.anchor: {ref!r} is not a kernel-facts reference such as '§1a row 3'")
    sec = m.group("sec")
    if m.group("rows"):
        return f"s{sec}-row-{_first_row(m.group('rows'))}"
    words = m.group("label") or ref[m.end():]
    versioned = re.match(r"\s*v?[\d.]+\s+rows?\s+(\d+)", words)       # "§6b v2.6.26 row 1"
    if versioned:
        return f"s{sec}-row-{versioned.group(1)}"
    sheet = rows if rows is not None else sheet_rows()
    row = next((r for label in dict.fromkeys((words.strip(), words.strip(" ()"))) if label
                for r in [_label_row(sheet, sec, label)] if r), None)
    return f"s{sec}-row-{row}" if row else f"s{sec}"


def _label_row(rows: dict, sec: str, label: str) -> int | None:
    """The row of section SEC of ROWS whose label (second cell) starts with LABEL, or None."""
    for number, cells in rows.get(sec, {}).items():
        if len(cells) > 1 and cells[1].startswith(label):
            return number
    return None


def url(ref: str, absolute: bool = False) -> str:
    """Where REF points: sheet_base()#anchor, e.g. "kernel-facts.html#s1a-row-3"; with ABSOLUTE, a
    file:// URL of the sheet installed with vmlib (for a terminal)."""
    base = PACKAGED.resolve().as_uri() if absolute else sheet_base()
    return f"{base}#{anchor(ref)}"


# ---------------------------------------------------------------- where the sheet is served

@lru_cache(maxsize=1)
def sheet_base() -> str:
    """The URL of the sheet for links this process shows: `/files/...` when a Jupyter server started
    this kernel and serves a copy of the sheet, `<site>/files/kernel-facts.html` in JupyterLite,
    else SHEET_NAME (relative: the sheet beside the page, as nbconvert and the slide decks have it)."""
    notebook = os.environ.get("JPY_SESSION_NAME")   # set by a server's session (not by nbclient)
    return (notebook and served_url(_server_info(), notebook)) or _lite_url() or SHEET_NAME


def served_url(server: dict | None, notebook: str) -> str | None:
    """The root-absolute URL under which SERVER (a Jupyter server's info: root_dir, base_url) serves
    the sheet nearest NOTEBOOK (its path, absolute or relative to root_dir; "" for the current folder):
    the sheet in the notebook's folder or a parent's, or in a parent's course/. None if there is none
    below root_dir."""
    if not server or not server.get("root_dir"):
        return None
    root = Path(server["root_dir"]).resolve()
    folder = (root / notebook).parent if notebook else Path.cwd()
    sheet = _nearest_sheet(folder if folder.is_dir() else Path.cwd(), root)
    if sheet is None:
        return None
    base = "/" + server.get("base_url", "/").strip("/")
    return f"{base.rstrip('/')}/files/{quote(sheet.relative_to(root).as_posix())}"


def _nearest_sheet(start: Path, root: Path) -> Path | None:
    """The first SHEET_NAME in START, START/course, or the same in each parent up to ROOT."""
    here = start.resolve()
    if here != root and root not in here.parents:
        return None
    for folder in (here, *here.parents):
        for sheet in (folder / SHEET_NAME, folder / "course" / SHEET_NAME):
            if sheet.is_file():
                return sheet
        if folder == root:
            return None
    return None


def _server_info() -> dict | None:
    """The info file (jpserver-<pid>.json: root_dir, base_url) of the Jupyter server whose kernel this
    process is, or None when it is no kernel or its parent wrote no such file (nbclient, VS Code)."""
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    pid = os.environ.get("JPY_PARENT_PID")
    if kernelapp is None or not pid or not kernelapp.IPKernelApp.initialized():
        return None
    dirs = [Path(kernelapp.IPKernelApp.instance().connection_file).parent]   # the server's runtime dir
    try:
        from jupyter_core.paths import jupyter_runtime_dir
        dirs.append(Path(jupyter_runtime_dir()))
    except ImportError:
        pass
    for folder in dirs:
        try:
            return json.loads((folder / f"jpserver-{pid}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None


def _lite_url() -> str | None:
    """In JupyterLite (Pyodide): the site's copy of the sheet, <site>/files/kernel-facts.html, where
    tools/lite.py puts it; the site is where the kernel's worker script was loaded from."""
    if sys.platform != "emscripten":
        return None
    import js  # Pyodide's bridge to the worker's globals
    href = str(js.location.href)
    cut = href.find("/extensions/")
    return f"{href[:cut]}/files/{SHEET_NAME}" if cut > 0 else None


def link_html(text: str, base: str | None = None, target: str = "_blank", rows: dict | None = None) -> str:
    """TEXT (HTML, already escaped) with every reference made a link into the sheet at BASE
    (default: sheet_base()).

    A bracketed trace row ("[§5a vm_insert_page]") links as a whole; other references
    ("§1a row 3" in a sentence) link the reference itself.
    """
    base = sheet_base() if base is None else base

    def a(ref_text: str, shown: str) -> str:
        return f'<a href="{base}#{anchor(ref_text, rows)}" target="{target}" class="vmlib-fact">{shown}</a>'

    parts, last = [], 0
    for m in _BRACKET.finditer(text):
        parts.append(_link_plain(text[last:m.start()], a))
        parts.append(f"[{a(m.group('ref'), m.group('ref'))}]")
        last = m.end()
    parts.append(_link_plain(text[last:], a))
    return "".join(parts)


_SVG_TEXT = re.compile(r"<text\b[^>]*>[^<]*</text>")


def link_svg(svg: str, base: str | None = None) -> str:
    """SVG text whose <text> lines citing a row ("... [§9b fast path]") are each wrapped in a link to
    that row in the sheet at BASE (default: sheet_base()); a tooltip, <title>, cannot hold one and
    is left as it is."""
    base = sheet_base() if base is None else base

    def wrap(m: re.Match) -> str:
        ref = _BRACKET.search(m.group(0)) or REF.search(m.group(0))
        if not ref:
            return m.group(0)
        target = anchor(ref.group("ref") if "ref" in ref.groupdict() else ref.group(0))
        return f'<a href="{base}#{target}" target="_blank" class="vmlib-fact">{m.group(0)}</a>'
    return _SVG_TEXT.sub(wrap, svg)


def _link_plain(text: str, a) -> str:
    """TEXT with each REF match wrapped by A(ref, shown)."""
    return REF.sub(lambda m: a(m.group(0), m.group(0)), text)


_MD_LINKED = re.compile(r"\[[^\]\n]*§[^\]\n]*\]\([^)\s]*\)")


def link_markdown(text: str, base: str = SHEET_NAME) -> str:
    """Markdown TEXT with each reference not yet in a link written as [§1a row 3](base#s1a-row-3).

    A link to docs/kernel-facts.md becomes a link to BASE. Idempotent: references already inside a markdown link, in code spans or after another
    document's name (DESIGN.md §3) are left alone.
    """
    text = re.sub(r"\]\((?:\.\./)*docs/kernel-facts\.md", f"]({base}", text)   # the sheet as the lessons see it
    keep = [m.span() for m in _MD_LINKED.finditer(text)] + [m.span() for m in re.finditer(r"`[^`\n]*`", text)]

    def repl(m: re.Match) -> str:
        if any(lo <= m.start() < hi for lo, hi in keep):
            return m.group(0)
        before = text[max(0, m.start() - 40):m.start()].rstrip().split()
        if before and before[-1].strip("()[]\"'").endswith(".md") and "kernel-facts" not in before[-1]:
            return m.group(0)
        return f"[{m.group(0)}]({base}#{anchor(m.group(0))})"
    return REF.sub(repl, text)


# ---------------------------------------------------------------- the sheet

def _cells(line: str) -> list[str]:
    """The cells of one markdown table line, emphasis and code marks removed."""
    return [c.strip().replace("**", "").replace("`", "") for c in line.strip().strip("|").split(" | ")]


def parse(text: str) -> dict[str, dict[int, list[str]]]:
    """{section id: {row number: cells}} of the sheet's markdown; rows run on across a section's tables."""
    sections: dict[str, dict[int, list[str]]] = {}
    current = None
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading and len(heading.group(1)) >= 2 and heading.group(2):
            current = heading.group(2)
            sections.setdefault(current, {})
            continue
        row = _ROW.match(line)
        if row and current is not None:
            sections[current][int(row.group(1))] = _cells(line)
    return sections


@lru_cache(maxsize=1)
def sheet_rows() -> dict[str, dict[int, list[str]]]:
    """The sections and rows of the rendered sheet shipped with vmlib (read from its row anchors)."""
    rows: dict[str, dict[int, list[str]]] = {}
    if not PACKAGED.exists():
        return rows
    for m in re.finditer(r'<tr id="s(\d+[a-z]?)-row-(\d+)" data-label="([^"]*)"', PACKAGED.read_text(encoding="utf-8")):
        rows.setdefault(m.group(1), {})[int(m.group(2))] = [m.group(2), html.unescape(m.group(3))]
    return rows


def anchors(page: str) -> set[str]:
    """Every id attribute of an HTML page."""
    return set(re.findall(r'\bid="([^"]+)"', page))


def _inline(text: str, rows: dict) -> str:
    """One line of the sheet's markdown as HTML: code spans, bold, and references as in-page links."""
    out = []
    for i, piece in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append(f"<code>{html.escape(piece)}</code>")
            continue
        piece = html.escape(piece, quote=False)
        piece = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", piece)
        out.append(link_html(piece, base="", target="_self", rows=rows).replace(' target="_self"', ""))
    return "".join(out)


def _table(lines: list[str], sec: str | None, rows: dict) -> str:
    """A markdown table as HTML; each numbered row gets the id s<sec>-row-<n> and its label."""
    head = _cells(lines[0])
    body = []
    for line in lines[2:]:
        raw = [c.strip() for c in line.strip().strip("|").split(" | ")]
        cells = _cells(line)
        attrs = ""
        if sec is not None and _ROW.match(line):
            label = html.escape(cells[1] if len(cells) > 1 else "")
            attrs = f' id="s{sec}-row-{cells[0]}" data-label="{label}"'
        body.append(f"<tr{attrs}>" + "".join(f"<td>{_inline(c, rows)}</td>" for c in raw) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "\n".join(body) + "</tbody></table>")


STYLE = """
:root { color-scheme: light dark; --ink: #1f1f1f; --paper: #ffffff; --rule: #c8c8c8; --mark: #fff3b0; --link: #0b5cad; }
@media (prefers-color-scheme: dark) {
  :root { --ink: #e6e6e6; --paper: #1e1e1e; --rule: #555; --mark: #5a4a00; --link: #8cc4ff; } }
body { font: 15px/1.45 system-ui, sans-serif; color: var(--ink); background: var(--paper);
       max-width: 72rem; margin: 1rem auto; padding: 0 1rem; }
a { color: var(--link); }
table { border-collapse: collapse; margin: .6rem 0 1rem; }
th, td { border: 1px solid var(--rule); padding: .2rem .4rem; vertical-align: top; text-align: left; }
tr:target, h2:target, h3:target { background: var(--mark); outline: 2px solid var(--link); }
:target { scroll-margin-top: 3rem; }   /* the row a link named: below the top edge, marked */
code { font-size: 90%; }
"""


def render(text: str) -> str:
    """The sheet's markdown TEXT as one standalone HTML page (light and dark) with row anchors."""
    out, sec, i = [], None, 0
    lines, rows = text.splitlines(), parse(text)
    title = "Kernel facts"
    while i < len(lines):
        line = lines[i]
        heading = _HEADING.match(line)
        if heading:
            level, number, words = len(heading.group(1)), heading.group(2), heading.group(3)
            if level == 1:
                title = words
            if number:
                sec = number
                ident = f"s{number}"
            else:
                ident = "h-" + re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")
            shown = f"{number}. {words}" if number else words
            out.append(f'<h{level} id="{ident}">{_inline(shown, rows)}</h{level}>')
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block, sec, rows))
        elif re.match(r"[*-] ", line):
            items = []
            while i < len(lines) and (re.match(r"[*-] ", lines[i]) or lines[i].startswith("  ")):
                if re.match(r"[*-] ", lines[i]):
                    items.append(lines[i][2:].strip())
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(it, rows)}</li>" for it in items) + "</ul>")
        elif line.strip():
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"(#|\||[*-] )", lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para), rows)}</p>")
        else:
            i += 1
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(out) + "\n</body></html>\n")
