"""docs/kernel-facts.md is complete for the project: every `§` reference resolves, every row cites a source.

A reference is `§6b` (a section), `§1a row 3`, `§1a rows 3-5` / `rows 5 and 6` (rows of that
section) or `§4 row 'COW vma'` (the row whose label, its second cell, starts with that text).
References that follow another document's name (`DESIGN.md §3`) belong to that document and are
skipped. Notebooks are read as JSON (their text stores `§` as `\\u00a7`).
"""

import json
import re
from pathlib import Path

from vmlib.facts import parse as parse_sheet  # the one reader of the sheet

ROOT = Path(__file__).resolve().parent.parent
SHEET = ROOT / "docs" / "kernel-facts.md"
SCANNED = ("vmlib", "course", "solutions", "exercises", "tools", "docs", "tests", "README.md")
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".txt", ".json", ".html", ".j2", ".tpl", ".cfg", ".toml", ".css", ".js"}
VERSIONS = ("v2.6.25", "v2.6.26", "v2.6.27", "v6.12")

_REF = re.compile(
    r"(?P<before>\S+\s+)?§(?P<sec>\d+[a-z]?)"
    r"(?:\s+rows?\s+(?P<rows>\d+(?:\s*(?:-|–|,|and|or)\s*\d+)*)"
    r"|\s+row\s+'(?P<label>[^'\n]+))?"
)
_CITATION = re.compile(r"[\w./*-]+(?::\w+)? @ (v[\d.]+)|`?\b[0-9a-f]{10}\b`?|[\w./*-]+ @ (v[\d.]+)")


def _row_numbers(spec: str) -> list[int]:
    """`3`, `3-6`, `5 and 6`, `1, 4` → the row numbers they name."""
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|and|or)\s*", spec):
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2:
            numbers.extend(range(int(bounds[0]), int(bounds[1]) + 1))
        else:
            numbers.append(int(bounds[0]))
    return numbers


def dangling(text: str, sections: dict[str, dict[int, list[str]]]) -> list[tuple[int, str, str]]:
    """(line, reference, why) for every kernel-facts reference in `text` the sheet does not have."""
    bad = []
    for m in _REF.finditer(text):
        before = (m.group("before") or "").strip().strip("()[]\"'")
        if before.endswith(".md") and "kernel-facts" not in before:
            continue                                   # DESIGN.md §3 and the like
        line = text.count("\n", 0, m.start()) + 1
        ref = m.group(0)[len(m.group("before") or ""):]
        sec = m.group("sec")
        if sec not in sections:
            bad.append((line, ref, f"no section §{sec}"))
        elif m.group("rows"):
            missing = [n for n in _row_numbers(m.group("rows")) if n not in sections[sec]]
            if missing:
                bad.append((line, ref, f"§{sec} has no row {', '.join(map(str, missing))}"))
        elif m.group("label"):
            label = m.group("label").strip()
            if not any(len(cells) > 1 and cells[1].startswith(label) for cells in sections[sec].values()):
                bad.append((line, ref, f"§{sec} has no row labelled {label!r}"))
    return bad


def project_texts():
    """(where, text) of every scanned text file; a notebook gives one text per cell ("path [cell N]")."""
    for name in SCANNED:
        top = ROOT / name
        paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in paths:
            if path.suffix not in TEXT_SUFFIXES or path == Path(__file__).resolve():
                continue
            if any(part in {".ipynb_checkpoints", "__pycache__", "build"} for part in path.parts):
                continue
            text = path.read_text(encoding="utf-8")
            where = path.relative_to(ROOT)
            if path.suffix == ".ipynb":
                for number, cell in enumerate(json.loads(text)["cells"]):
                    yield f"{where} [cell {number}]", "".join(cell["source"])
            else:
                yield str(where), text


def test_every_reference_resolves():
    sections = parse_sheet(SHEET.read_text(encoding="utf-8"))
    problems = [f"{path}:{line}: {ref!r}: {why}"
                for path, text in project_texts()
                for line, ref, why in dangling(text, sections)]
    assert not problems, "references that docs/kernel-facts.md does not have:\n" + "\n".join(problems)


def test_every_row_cites_its_source():
    sections = parse_sheet(SHEET.read_text(encoding="utf-8"))
    assert sum(len(rows) for rows in sections.values()) > 200, "the sheet parsed to almost no rows"
    problems = []
    for sec, rows in sections.items():
        for number, cells in rows.items():
            source = cells[-1]
            if not _CITATION.search(source):
                problems.append(f"§{sec} row {number}: no 'file:function @ tag' or commit id in {source!r}")
            for tag in re.findall(r"@ (v[\d.]+)", source):
                if tag not in VERSIONS:
                    problems.append(f"§{sec} row {number}: {tag} is not a version this sheet was checked in")
    assert not problems, "\n".join(problems)


def test_rows_are_numbered_in_order():
    """Within a section rows run 1, 2, 3, … so that an id such as `§6b row 9` is easy to find."""
    sections = parse_sheet(SHEET.read_text(encoding="utf-8"))
    for sec, rows in sections.items():
        assert list(rows) == list(range(1, len(rows) + 1)), f"§{sec} rows are numbered {list(rows)}"


# The resolver itself, on made-up text: these show the tests above can fail.

_TOY = parse_sheet("## 1. One\n### 1a. Part\n| row | label | source |\n|---|---|---|\n"
                   "| 1 | COW vma | mm/memory.c:f @ v2.6.26 |\n| 2 | other | `42172d751b` |\n"
                   "## 2. Two\n| row | x | source |\n| 1 | y | nothing here |\n")


def test_resolver_accepts_good_references():
    text = ("see §1, §1a, §1a row 2, §1a rows 1-2, §1a rows 1 and 2, §1a row 'COW vma', §2 row 1, "
            "DESIGN.md §9, ([DESIGN](../DESIGN.md) §9), [sheet](../docs/kernel-facts.md) §1a")
    assert dangling(text, _TOY) == []


def test_resolver_rejects_bad_references():
    text = "a §3 b\nc §1a row 3 d\ne §1a rows 1–4 f\ng §1a row 'private vma' h\n[sheet](kernel-facts.md) §1b"
    assert [(line, why) for line, _, why in dangling(text, _TOY)] == [
        (1, "no section §3"),
        (2, "§1a has no row 3"),
        (3, "§1a has no row 3, 4"),
        (4, "§1a has no row labelled 'private vma'"),
        (5, "no section §1b"),
    ]


def test_citation_check_rejects_a_row_without_source():
    assert _CITATION.search(_TOY["1a"][1][-1]) and _CITATION.search(_TOY["1a"][2][-1])
    assert not _CITATION.search(_TOY["2"][1][-1])


def test_the_citation_checker_reads_the_commit_table_through_the_sheet_reader():
    """tools/check_kernel_facts.py takes the §0 "in release" claims from vmlib.facts.parse."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("check_kernel_facts", ROOT / "tools" / "check_kernel_facts.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    toy = ("## 0. Commits\n| row | commit | date | title | in release | source |\n|---|---|---|---|---|---|\n"
           "| 1 | `0123456789` | d | t | v2.6.26 | `0123456789` |\n"
           "| 2 | `abcdefabcd` | d | t | v2.6.27 (not v2.6.26) | `abcdefabcd` |\n"
           "| 3 | `abcdef0000` | d | t | v2.6.24 (an aside; not in v2.6.23) | `abcdef0000` |\n")
    assert tool.commit_claims(toy) == [("0123456789", "v2.6.26", None), ("abcdefabcd", "v2.6.27", "v2.6.26")]
    claims = tool.commit_claims(SHEET.read_text(encoding="utf-8"))
    assert len(claims) == 20 and ("21cc199baa", "v2.6.27", "v2.6.26") in claims
