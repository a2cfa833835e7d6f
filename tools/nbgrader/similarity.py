"""Similarity of answer cells: near copies of the reference and of each other, for the instructor only.

Each answer cell (an nbgrader solution cell) is normalised through Python's own parser, so that
renaming variables, reformatting, reordering comments or rewriting docstrings changes nothing:

    source --ast--> tree without docstrings, every name the cell binds replaced by v0, v1, ... in the order
                    it first appears, every string constant by "S"
           --unparse + tokenize--> token list
           --k-grams, winnowed--> a set of fingerprints

Two cells are as similar as the share of the smaller one's fingerprints that the other has
(the measure MOSS and copydetect use). Fingerprints that the released notebook's cell already
holds (the signature and docstring every student starts from) are left out, so the starter code
never makes two students look alike. Attribute names (vma.vm_flags), kernel names and numbers are
kept: they are what an answer is made of, but the way a student spells their own variables is not.

We compare ASTs ourselves rather than use copydetect: the code is Python only, the normalisation
above is a few lines of the standard library, and copydetect (last release 2024) would bring
pygments and jinja2 into the instructor set for less (its tokens do not see Python scopes).

The report (CSV and HTML) ranks every pair above `threshold` and is written under the course's
reports/ folder, which nothing sends to students (release and feedback come from other folders).
"""

from __future__ import annotations

import ast
import csv
import html
import io
import json
import keyword
import tokenize
import zlib
from dataclasses import dataclass
from pathlib import Path

K = 5            # tokens per k-gram
WINDOW = 4       # winnowing window (k-grams)
MIN_TOKENS = 12  # a cell shorter than this (after the starter code) is not compared: too little to say
THRESHOLD = 0.8  # pairs at or above this share are flagged


class _Rename(ast.NodeTransformer):
    """Replace names the student chose (locals, arguments, functions) by v0, v1, ... and strings by "S"."""

    def __init__(self, bound: set[str]):
        self.bound, self.names = bound, {}

    def _name(self, name: str) -> str:
        if name not in self.bound:          # a name the cell uses but does not bind: an API name, kept
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id=self._name(node.id), ctx=node.ctx), node)

    def visit_arg(self, node):
        node.arg = self._name(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node):
        node.name = self._name(node.name)
        node.returns = None
        _drop_docstring(node)
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.name = self._name(node.name)
        _drop_docstring(node)
        self.generic_visit(node)
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            return ast.copy_location(ast.Constant(value="S"), node)
        return node


def _drop_docstring(node) -> None:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]


def bound_names(tree: ast.AST) -> set[str]:
    """The names a piece of code binds itself: assignments, arguments, functions, classes, imports as."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.alias) and node.asname:
            out.add(node.asname)
    return out


def tokens(source: str) -> list[str]:
    """The normalised tokens of `source`; raw tokens (names as ID) when it does not parse."""
    try:
        tree = ast.parse(source)
        _drop_docstring(tree)
        text = ast.unparse(_Rename(bound_names(tree)).visit(tree))
        rename = False
    except (SyntaxError, ValueError, RecursionError):
        text, rename = source, True
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENDMARKER):
                continue
            if rename and tok.type == tokenize.NAME and not keyword.iskeyword(tok.string):
                out.append("ID")
            elif rename and tok.type == tokenize.STRING:
                out.append("S")
            else:
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def fingerprints(toks: list[str]) -> set[int]:
    """Winnowed hashes of the k-grams of `toks` (the smallest hash of each window, as MOSS does)."""
    grams = [zlib.crc32(" ".join(toks[i:i + K]).encode()) for i in range(len(toks) - K + 1)]
    if len(grams) <= WINDOW:
        return set(grams)
    return {min(grams[i:i + WINDOW]) for i in range(len(grams) - WINDOW + 1)}


@dataclass
class Cell:
    who: str             # a student id, or "reference"
    grade_id: str
    source: str
    prints: set[int]
    ntokens: int


def similarity(a: Cell, b: Cell) -> float:
    """Share of the smaller cell's fingerprints that the other cell also has (0..1)."""
    small = min(len(a.prints), len(b.prints))
    return len(a.prints & b.prints) / small if small else 0.0


def answer_cells(nb: dict) -> dict[str, str]:
    """{grade_id: source} of the notebook's nbgrader solution code cells, without solution markers."""
    out = {}
    for c in nb.get("cells", []):
        meta = c.get("metadata", {}).get("nbgrader", {}) if isinstance(c.get("metadata"), dict) else {}
        if c.get("cell_type") == "code" and isinstance(meta, dict) and meta.get("solution") \
                and isinstance(meta.get("grade_id"), str):
            src = c.get("source", "")
            src = "".join(src) if isinstance(src, list) else str(src)
            out[meta["grade_id"]] = "\n".join(ln for ln in src.splitlines()
                                              if "### BEGIN SOLUTION" not in ln and "### END SOLUTION" not in ln)
    return out


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def cells_of(source: str, who: str, grade_id: str, starter: set[int]) -> Cell:
    toks = tokens(source)
    return Cell(who, grade_id, source, fingerprints(toks) - starter, len(toks))


def references(solution_nb: dict, grade_id: str) -> list[str]:
    """The reference answers of one cell: the solution's own, and the model's function of the same name
    (vmlib.source), when the cell defines one the model has."""
    refs = [answer_cells(solution_nb).get(grade_id, "")]
    try:
        tree = ast.parse(refs[0])
    except SyntaxError:
        return refs
    from vmlib.source import source
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            try:
                refs.append(source(node.name))
            except ValueError:
                pass
    return [r for r in refs if r.strip()]


def compare(submissions: dict[str, dict], solution_nb: dict, release_nb: dict,
            threshold: float = THRESHOLD) -> list[dict]:
    """Every pair (student, reference) and (student, student) of the same answer cell, most similar first.
    `submissions` is {student: notebook}. Rows: grade_id, a, b, similarity, tokens, flagged."""
    starter_src = answer_cells(release_nb)
    rows = []
    for grade_id in answer_cells(solution_nb):
        starter = fingerprints(tokens(starter_src.get(grade_id, "")))
        refs = [cells_of(r, "reference", grade_id, starter) for r in references(solution_nb, grade_id)]
        students = [cells_of(answer_cells(nb).get(grade_id, ""), who, grade_id, starter)
                    for who, nb in sorted(submissions.items())]
        students = [c for c in students if c.ntokens >= MIN_TOKENS and c.prints]
        for i, a in enumerate(students):
            best = max((similarity(a, r) for r in refs), default=0.0)
            rows.append(_row(grade_id, a.who, "reference", best, a.ntokens, threshold))
            for b in students[i + 1:]:
                rows.append(_row(grade_id, a.who, b.who, similarity(a, b), min(a.ntokens, b.ntokens), threshold))
    rows.sort(key=lambda r: (-r["similarity"], r["grade_id"], r["a"], r["b"]))
    return rows


def _row(grade_id, a, b, sim, ntok, threshold) -> dict:
    return {"grade_id": grade_id, "a": a, "b": b, "similarity": round(sim, 3), "tokens": ntok,
            "flagged": sim >= threshold}


def load_submissions(folder: Path, assignment: str) -> dict[str, dict]:
    """{student: notebook} from folder/<student>/<assignment>/*.ipynb (regular files only, never links)."""
    out = {}
    for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        adir = student / assignment
        if not adir.is_dir() or adir.is_symlink():
            continue
        for nb in sorted(adir.glob("*.ipynb")):
            if nb.is_file() and not nb.is_symlink():
                out[student.name] = _read(nb)
                break
    return out


def write_report(rows: list[dict], out: Path, assignment: str, threshold: float,
                 sources: dict[tuple[str, str], str]) -> tuple[Path, Path]:
    """similarity.csv (every pair) and similarity.html (flagged pairs, with both sources) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    path_csv, path_html = out / "similarity.csv", out / "similarity.html"
    with path_csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["grade_id", "a", "b", "similarity", "tokens", "flagged"])
        w.writeheader()
        w.writerows(rows)
    flagged = [r for r in rows if r["flagged"]]
    parts = [f"<!doctype html><meta charset='utf-8'><title>Similarity: {html.escape(assignment)}</title>",
             ("<style>body{font:15px system-ui,sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left}"
             "pre{font-size:13px;background:#f4f4f4;color:#111;padding:8px;overflow:auto;max-height:20em}"
             "tr:nth-child(even){background:#f8f8f8}</style>"),
             f"<h1>Similarity of answer cells: {html.escape(assignment)}</h1>",
             (f"<p>{len(flagged)} of {len(rows)} pairs at or above {threshold:.0%} (share of the smaller answer's "
             "fingerprints, after renaming variables and leaving out the starter code). A high share is a reason "
             "to look, not a verdict: short answers to a narrow question can agree honestly. "
             "Instructor only: never release this file.</p>"),
             "<table><tr><th>cell</th><th>a</th><th>b</th><th>similarity</th><th>tokens</th></tr>"]
    for r in rows[:500]:
        parts.append(f"<tr><td>{html.escape(r['grade_id'])}</td><td>{html.escape(r['a'])}</td>"
                     f"<td>{html.escape(r['b'])}</td><td>{r['similarity']:.0%}{' ⚑' if r['flagged'] else ''}</td>"
                     f"<td>{r['tokens']}</td></tr>")
    parts.append("</table>")
    for r in flagged[:100]:
        a = sources.get((r["a"], r["grade_id"]), "")
        b = sources.get((r["b"], r["grade_id"]), "")
        parts.append(f"<h3>{html.escape(r['grade_id'])}: {html.escape(r['a'])} and {html.escape(r['b'])} "
                     f"({r['similarity']:.0%})</h3><table><tr><td><pre>{html.escape(a)}</pre></td>"
                     f"<td><pre>{html.escape(b)}</pre></td></tr></table>")
    path_html.write_text("\n".join(parts))
    return path_csv, path_html


def report(folder: Path, assignment: str, solution_nb: dict, release_nb: dict, out: Path,
           threshold: float = THRESHOLD) -> tuple[Path, Path, list[dict]]:
    """Compare every submission of `assignment` under `folder`; write the CSV and HTML under `out`."""
    subs = load_submissions(folder, assignment)
    rows = compare(subs, solution_nb, release_nb, threshold)
    sources = {(who, gid): src for who, nb in subs.items() for gid, src in answer_cells(nb).items()}
    for gid in answer_cells(solution_nb):
        sources[("reference", gid)] = "\n\n".join(references(solution_nb, gid))
    path_csv, path_html = write_report(rows, out, assignment, threshold, sources)
    return path_csv, path_html, rows
