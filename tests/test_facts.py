"""vmlib.facts: the rendered fact sheet and `§` references as links to its rows (issue 21, item 4).

1. The two rendered copies (vmlib/facts/ for the wheel, course/ beside the lessons) are what
   docs/kernel-facts.md renders to; every section and every row has its anchor.
2. Every `§` in the lessons' markdown is a link whose anchor the sheet has.
3. The nine lessons, executed: every `§` in their outputs (text, HTML, widget state) names an
   anchor of the sheet, and every `§` shown as HTML sits in a link to that anchor.
4. Every `§` in grading feedback (the wrong answers of test_assignment_coverage) names an anchor.
5. url(), link_html() and link_markdown() on made-up text: these show the checks can fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vmlib import facts
from vmlib.facts.__main__ import COPIES, SOURCE

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "course" / "kernel-facts.html")
LESSONS = sorted((ROOT / "course").glob("[0-9][0-9]_*.ipynb"))
SECTION_REF = re.compile(r"§\d+[a-z]?")
LINK = re.compile(r'<a href="(?:kernel-facts\.html)?#([^"]+)"[^>]*>((?:<text\b[^>]*>)?[^<]*(?:</text>)?)</a>')


def page_anchors() -> set[str]:
    return facts.anchors(PAGE.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- 1. the rendered sheet

def test_rendered_copies_are_current():
    page = facts.render(SOURCE.read_text(encoding="utf-8"))
    stale = [str(p.relative_to(ROOT)) for p in COPIES if p.read_text(encoding="utf-8") != page]
    assert not stale, f"{stale} differ from docs/kernel-facts.md rendered: run python -m vmlib.facts"


def test_every_section_and_row_has_an_anchor():
    sections = facts.parse(SOURCE.read_text(encoding="utf-8"))
    have = page_anchors()
    want = {f"s{sec}" for sec in sections} | {f"s{sec}-row-{n}" for sec, rows in sections.items() for n in rows}
    assert sum(len(r) for r in sections.values()) > 200, "the sheet parsed to almost no rows"
    assert not want - have, f"anchors missing from the page: {sorted(want - have)[:20]}"


def test_the_sheets_own_references_link_in_page():
    page = PAGE.read_text(encoding="utf-8")
    links = LINK.findall(page)
    assert len(links) > 40
    assert not [a for a, _ in links if a not in facts.anchors(page)]


# ---------------------------------------------------------------- 2. lesson text

@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: p.stem)
def test_every_reference_in_lesson_text_is_a_link_to_its_anchor(nb):
    have = page_anchors()
    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        assert facts.link_markdown(text) == text, \
            f"{nb.name} cell {cell['id']}: a § is not a link; run python -m vmlib.facts --link {nb.relative_to(ROOT)}"
        for target in re.findall(r"\]\(kernel-facts\.html#([^)]+)\)", text):
            assert target in have, f"{nb.name} cell {cell['id']}: #{target} is not an anchor of the sheet"


# ---------------------------------------------------------------- 3. executed lessons

@pytest.fixture(scope="module")
def lesson_outputs(executed) -> dict:
    """Each lesson's output texts by kind: plain (stream, text/plain) and html (text/html, HTML
    widget values), and its errors; from the one execution of the lessons that tests/test_course.py
    checks too (the session fixture `executed` in conftest.py: course/ as working directory)."""
    return {name: {"plain": r["plain"], "html": r["html"], "errors": r["errors"]}
            for name, r in executed["notebooks"].items()}


def unresolved(texts: list[str]) -> list[str]:
    """The references in TEXTS whose anchor the sheet lacks."""
    have = page_anchors()
    bad = []
    for text in texts:
        for m in facts.REF.finditer(text):
            if facts.anchor(m.group(0)) not in have:
                bad.append(m.group(0))
    return bad


def unlinked(html: str) -> list[str]:
    """References in HTML not inside a fact link, and links to anchors the sheet lacks."""
    have = page_anchors()
    bad = [f"#{a} ({shown})" for a, shown in LINK.findall(html) if a not in have]
    rest = LINK.sub("", html)
    rest = re.sub(r"<title>.*?</title>", "", rest, flags=re.DOTALL)   # an SVG tooltip cannot hold a link
    # a browser stepper's frames are data its script draws (rows as links, tests/test_views_stepper.py)
    rest = re.sub(r'<script type="application/json"[^>]*>.*?</script>', "", rest, flags=re.DOTALL)
    rest = re.sub(r"<code>\[§[^<\]]*\]</code>", "", rest)   # the lesson text's own `[§..]` samples
    bad += [m.group(0) for m in SECTION_REF.finditer(rest)]
    return bad


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("nb", LESSONS, ids=lambda p: p.stem)
def test_lesson_outputs_reference_rows_of_the_sheet(lesson_outputs, nb):
    out = lesson_outputs[nb.name]
    assert not out["errors"], out["errors"]
    assert not unresolved(out["plain"] + out["html"]), unresolved(out["plain"] + out["html"])
    bad = [b for h in out["html"] for b in unlinked(h)]
    assert not bad, f"{nb.name}: § shown as HTML but not a link to the sheet: {bad[:10]}"


@pytest.mark.notebook
@pytest.mark.slow
def test_lessons_show_linked_references(lesson_outputs):
    """Guard: the lessons do show references as links (the checks above are not vacuous)."""
    links = [a for out in lesson_outputs.values() for h in out["html"] for a, _ in LINK.findall(h)]
    assert len(links) >= 10, links


# ---------------------------------------------------------------- 4. grading feedback

def test_grading_feedback_references_rows_of_the_sheet():
    from test_assignment_coverage import WRONG, grade_here
    texts = [grade_here(suite_id, source)["text"] for suite_id, source in WRONG]
    assert sum(t.count("§") for t in texts) >= 3, "the feedback cites no kernel-facts rows: the check is vacuous"
    assert not unresolved(texts), unresolved(texts)


# ---------------------------------------------------------------- 5. the helpers

def test_url_and_anchor_forms():
    assert facts.url("§1a row 3") == "kernel-facts.html#s1a-row-3"
    assert facts.anchor("§1a rows 3-5") == "s1a-row-3"
    assert facts.anchor("§4 row 'COW vma'") == facts.anchor("§4 row &#x27;COW vma&#x27;") == "s4-row-1"
    assert facts.anchor("§6b v2.6.26 row 1") == "s6b-row-1"
    assert facts.anchor("§5a vm_insert_pfn") == "s5a-row-2"
    assert facts.anchor("§9b no such label") == "s9b"
    absolute = facts.url("§2 row 9", absolute=True)
    assert absolute.startswith("file://") and absolute.endswith("#s2-row-9")
    assert Path(absolute[len("file://"):].split("#")[0]).is_file()
    with pytest.raises(ValueError, match="not a kernel-facts reference"):
        facts.anchor("row 3")


def test_link_html_and_markdown_on_made_up_text():
    html = facts.link_html("vm_normal_page: linear [§1a row 3]; see §2 row 9")
    assert html.count('class="vmlib-fact"') == 2 and 'href="kernel-facts.html#s2-row-9"' in html
    assert unlinked(html) == [] and unlinked("a bare §2") == ["§2"]
    nowhere = "§" + "99"          # spelled in two parts: test_kernel_facts scans this file for references
    assert unlinked(f'<a href="#s99">{nowhere}</a>') == [f"#s99 ({nowhere})"]
    svg = facts.link_svg('<svg><title>t [§9b]</title><text x="1">step 1: gup [§9b fast path]</text><text>no ref</text></svg>')
    assert svg.count("<a ") == 1 and 'href="kernel-facts.html#s9b"' in svg and unlinked(svg) == []
    md = "As §1a row 3 says (DESIGN.md §3), `[§6a]` is code; [sheet](../docs/kernel-facts.md)."
    once = facts.link_markdown(md)
    assert once == ("As [§1a row 3](kernel-facts.html#s1a-row-3) says (DESIGN.md §3), `[§6a]` is code; "
                    "[sheet](kernel-facts.html).")
    assert facts.link_markdown(once) == once


def test_served_url_is_the_nearest_sheet_below_the_server_root(tmp_path):
    """In a kernel a Jupyter server started, links point at the sheet as that server serves it
    (/files/..., which JupyterLab leaves to the browser); a course copied anywhere below the root."""
    root = tmp_path / "home"
    (root / "my class" / "course").mkdir(parents=True)
    (root / "my class" / "course" / facts.SHEET_NAME).write_text("sheet")
    (root / "my class" / "exercises" / "ps1").mkdir(parents=True)
    (root / "elsewhere").mkdir()
    server = {"root_dir": str(root), "base_url": "/user/ann/"}
    lesson = str(root / "my class" / "course" / "05_vm_pfnmap.ipynb")
    assert facts.served_url(server, lesson) == "/user/ann/files/my%20class/course/kernel-facts.html"
    exercise = "my class/exercises/ps1/ps1.ipynb"        # older servers name it relative to the root
    assert facts.served_url({**server, "base_url": "/"}, exercise) == "/files/my%20class/course/kernel-facts.html"
    assert facts.served_url(server, str(root / "elsewhere" / "x.ipynb")) is None
    assert facts.served_url(server, str(tmp_path / "x.ipynb")) is None      # not below the root
    assert facts.served_url(None, lesson) is None
    assert facts.sheet_base() == facts.SHEET_NAME        # pytest is no kernel: links stay relative
