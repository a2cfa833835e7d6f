"""Export lesson notebooks to reveal.js slides that work offline.

    .venv/bin/python -m tools.slides [notebooks...]      # default: every course/*.ipynb

Each notebook is executed (committed notebooks carry no outputs) into build/executed/, then
exported to build/slides/<name>.slides.html next to a copy of the vendored JavaScript
(build/slides/vendor/, from tools/slides-vendor.sh) and an index.html listing the decks.
A code cell with metadata ``"vmlib": {"steps": true}`` shows its outputs one at a time as
reveal.js fragments. Lecturer notes live in cell metadata ``"vmlib": {"notes": "..."}``, which
JupyterLab does not show; they (and cells with slide_type "notes") become speaker notes (press "s").
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
NODE_MODULES = BUILD / "vendor" / "node_modules"
VENDOR_SCRIPT = ROOT / "tools" / "slides-vendor.sh"
TEMPLATES = ROOT / "tools" / "templates"
TEMPLATE = "vmlib_reveal"
THEME = "white"  # white, black and serif use only bundled fonts; the others fetch web fonts

# What the decks load, relative to the deck; each must exist under build/slides/.
REVEAL = "vendor/reveal.js"
REQUIRE_JS = "vendor/requirejs/require.js"
JQUERY = "vendor/jquery/dist/jquery.min.js"
MATHJAX = "vendor/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
# (package, the part of it the decks need, names left out of a directory copy)
VENDOR_PARTS = [
    ("reveal.js", "dist", ()),
    ("reveal.js", "plugin/notes", ()),
    ("requirejs", "require.js", ()),
    ("jquery", "dist/jquery.min.js", ()),
    ("mathjax", "", ("unpacked", "test", "png", "docs", "*.md")),
]

SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STATIC_ENV = "VMLIB_STATIC_EXPORT"   # vmlib.views.practice_static.STATIC_ENV (tools/ imports no vmlib.views)


class SlideError(Exception):
    """A notebook or the environment cannot give an offline deck; the message says what to do."""


def missing_slide_metadata(nb_path) -> list[int]:
    """Indices of cells whose metadata lacks a valid slideshow.slide_type."""
    nb = nbformat.read(str(nb_path), as_version=4)
    missing = []
    for index, cell in enumerate(nb.cells):
        slideshow = cell.get("metadata", {}).get("slideshow")
        if not isinstance(slideshow, dict) or slideshow.get("slide_type") not in SLIDE_TYPES:
            missing.append(index)
    return missing


# --- vendored JavaScript ------------------------------------------------------------------


def ensure_vendor() -> None:
    """Make sure build/vendor/node_modules holds reveal.js, requirejs, jquery and mathjax."""
    if all((NODE_MODULES / pkg / part).exists() for pkg, part, _ in VENDOR_PARTS):
        return
    result = subprocess.run(["sh", str(VENDOR_SCRIPT)], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise SlideError(
            f"could not vendor the slide JavaScript ({VENDOR_SCRIPT.name} exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )


def _link_or_copy(src, dst):
    """Hard-link src to dst (cheap, same disk), or copy it when linking is not possible."""
    if os.path.exists(dst):
        return dst
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def install_vendor(out_dir: Path) -> None:
    """Give out_dir/vendor/ the parts of the vendored packages that the decks load."""
    ensure_vendor()
    for pkg, part, ignore in VENDOR_PARTS:
        src = NODE_MODULES / pkg / part
        dst = out_dir / "vendor" / pkg / part
        if src.is_dir():
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns(*ignore),
                copy_function=_link_or_copy,
                dirs_exist_ok=True,
            )
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(src, dst)


# --- executing ------------------------------------------------------------------------------


def execute(nb_path: Path, out_path: Path, timeout: int = 120):
    """Run nb_path top to bottom in a fresh python3 kernel (cwd = its folder); save and return it."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(str(nb_path), as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=True,  # False trips nbclient's output-widget hook on W.Output widgets
        resources={"metadata": {"path": str(nb_path.parent)}},
    )
    saved = os.environ.get(STATIC_ENV)
    os.environ[STATIC_ENV] = "1"      # widgets without a kernel-free front end add their static HTML
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        raise SlideError(f"{nb_path}: a cell failed while executing, fix the notebook first:\n{err}") from err
    finally:
        if saved is None:
            os.environ.pop(STATIC_ENV, None)
        else:
            os.environ[STATIC_ENV] = saved
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out_path))
    return nb


# --- exporting ------------------------------------------------------------------------------


def prepare(nb) -> int:
    """Shape an executed notebook for static slides; return how many widget outputs were dropped.

    Widget outputs need a live kernel: one that also carries a static text/html version (a
    Quiz, MemmapCost, and a Stepper, whose text/html runs its stepping and predictions in the
    deck itself) keeps that; the others are left out, and a code cell left with nothing to
    show (a FaultStepper, whose steps the next cell shows as fragments) leaves the deck, passing
    its slide start to the next cell. Tags remove_cell, remove_input and remove_output
    (nbconvert's names) and JupyterLab's source_hidden/outputs_hidden are honoured, except that
    speaker notes (hidden from students in the notebook) keep their text.
    """
    dropped = 0
    nb.cells = [cell for cell in nb.cells if "remove_cell" not in cell.metadata.get("tags", [])]
    speaker_notes(nb)
    keep = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        hidden = cell.metadata.get("jupyter", {})
        notes = cell.metadata.get("slideshow", {}).get("slide_type") == "notes"
        if "remove_input" in tags or (hidden.get("source_hidden") and not notes):
            cell.metadata["transient"] = {"remove_source": True}
        if cell.cell_type == "code":
            if is_steps(cell):   # its pictures carry their captions
                cell.metadata["transient"] = {"remove_source": True}
            lost = _static_outputs(cell, tags, hidden)
            dropped += lost
            if lost and not cell.outputs:
                _pass_slide_start(cell, nb.cells)
                continue
        keep.append(cell)
    nb.cells = split_tall(keep)
    nb.metadata.pop("widgets", None)
    return dropped


def is_steps(cell) -> bool:
    """Whether `cell` is a steps cell (metadata vmlib.steps): its outputs are shown one at a time."""
    vm = cell.metadata.get("vmlib")
    return isinstance(vm, dict) and bool(vm.get("steps"))


def speaker_notes(nb) -> None:
    """After each cell with lecturer notes (metadata vmlib.notes) put a notes cell holding them."""
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        vm = cell.metadata.get("vmlib")
        notes = vm.get("notes") if isinstance(vm, dict) else None
        if notes:
            cells.append(nbformat.v4.new_markdown_cell(notes, metadata={"slideshow": {"slide_type": "notes"}}))
    nb.cells = cells


# --- fitting slides -------------------------------------------------------------------------
# Estimated heights in px of a 960x700 slide at nbconvert's reveal sizes (20 px text, 19 px
# code). A slide that would run over starts a new subslide; a code cell too tall by itself
# shows its code on one subslide and its output on the next. What still does not fit is
# scaled down in the browser by the template.

SLIDE_HEIGHT = 700
TEXT_LINE, CODE_LINE, OUT_LINE = 32, 29, 26
CHARS_PER_LINE = 80
SVG_SIZE = re.compile(r'<svg[^>]*?width="([\d.]+)(?:pt|px)?"[^>]*?height="([\d.]+)(?:pt|px)?"')


def _lines(text: str) -> int:
    return sum(1 + len(line) // CHARS_PER_LINE for line in text.splitlines()) if text else 0


def input_height(cell) -> int:
    if cell.cell_type == "markdown":
        return 20 + TEXT_LINE * _lines(cell.source)
    if cell.metadata.get("transient", {}).get("remove_source"):
        return 0
    return 24 + CODE_LINE * _lines(cell.source)


def output_height(cell) -> int:
    """The tallest picture for a steps cell (its outputs take turns), else the sum."""
    heights = [_output_height(out) for out in cell.get("outputs", [])]
    return max(heights, default=0) if is_steps(cell) else sum(heights)


STEPPER = re.compile(r'class="vmlib-stepper-static" data-vmlib-height="(\d+)" data-vmlib-sides="(\d+)"')


def _output_height(out) -> int:
    if out.get("output_type") == "stream":
        return 12 + OUT_LINE * _lines(out.get("text", ""))
    data = out.get("data", {})
    markup = data.get("text/html") or data.get("image/svg+xml") or ""
    stepper = STEPPER.search(markup)
    if stepper:       # a Stepper: controls, question, headline, note, the tallest picture, events
        return 250 + min(int(stepper[1]), 540)
    size = SVG_SIZE.search(markup)
    if size:
        w, h = float(size[1]), float(size[2])
        return int(min(h * min(1.0, 940 / w), 540)) + 30
    if "image/png" in data or "<img" in markup:
        return 420
    if markup:
        return 20 + OUT_LINE * (markup.count("<tr") + markup.count("<li") + markup.count("<p") + markup.count("<br"))
    return 12 + OUT_LINE * _lines(data.get("text/plain", ""))


def _slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def split_tall(cells) -> list:
    """Cells with new subslide starts wherever a slide would run over SLIDE_HEIGHT."""
    out, used = [], 0
    for cell in cells:
        kind = _slide_type(cell)
        if kind in ("skip", "notes"):
            out.append(cell)
            continue
        need_in, need_out = input_height(cell), output_height(cell)
        if kind in ("slide", "subslide") or not out:
            used = 0
        elif used + need_in + need_out > SLIDE_HEIGHT and used > 0:
            cell.metadata.setdefault("slideshow", {})["slide_type"] = "subslide"
            used = 0
        if cell.cell_type == "code" and need_in and need_out and need_in + need_out > SLIDE_HEIGHT:
            out.extend(_split_code(cell))
            used = need_out
            continue
        out.append(cell)
        used += need_in + need_out
    return out


def _split_code(cell) -> list:
    """The code on its own, then its output on a new subslide."""
    import copy
    code = copy.deepcopy(cell)
    code.outputs = []
    code.metadata.pop("vmlib", None)
    shown = copy.deepcopy(cell)
    shown.metadata.setdefault("slideshow", {})["slide_type"] = "subslide"
    shown.metadata["transient"] = {"remove_source": True}
    if shown.get("id"):
        shown["id"] = f"{shown['id']}-out"
    return [code, shown]


def _static_outputs(cell, tags, hidden) -> int:
    """Keep a code cell's outputs that need no kernel; return how many widget outputs went."""
    # a steps cell may be collapsed in JupyterLab (its outputs are for the slides)
    if "remove_output" in tags or (hidden.get("outputs_hidden") and not is_steps(cell)):
        cell.outputs = []
    kept, lost = [], 0
    for out in cell.outputs:
        data = out.get("data", {})
        if WIDGET_VIEW in data:
            if "text/html" not in data:
                lost += 1
                continue
            out["data"] = {"text/html": data["text/html"]}
        kept.append(out)
    cell.outputs = kept
    return lost


def _pass_slide_start(cell, cells) -> None:
    """A slide or subslide that starts at a dropped cell starts at the next shown cell instead."""
    kind = cell.metadata.get("slideshow", {}).get("slide_type")
    if kind not in ("slide", "subslide"):
        return
    for nxt in cells[cells.index(cell) + 1:]:
        show = nxt.metadata.setdefault("slideshow", {})
        if show.get("slide_type") in ("skip", "notes"):
            continue
        if show.get("slide_type") in ("-", "fragment", None) or (kind == "slide" and show["slide_type"] == "subslide"):
            show["slide_type"] = kind
        return


def mark_steps(nb, resources):
    """Preprocessor (after nbconvert's reveal one): number the fragments of every subslide and
    give each steps cell with 2+ outputs vmlib_step_base, the fragment index of its 2nd output."""
    counter = 0
    for cell in nb.cells:
        meta = cell.metadata
        if meta.get("subslide_start"):
            counter = 0
        if meta.get("slide_type") in ("skip", "notes"):
            continue
        if meta.get("fragment_start"):
            meta.setdefault("slideshow", {}).setdefault("data", {})["fragment_index"] = counter
            counter += 1
        if cell.cell_type == "code" and is_steps(cell) and len(cell.get("outputs", [])) > 1:
            meta["vmlib_step_base"] = counter
            counter += len(cell.outputs) - 1
    return nb, resources


def make_exporter():
    """A SlidesExporter that uses the offline template and the vendored URLs."""
    from nbconvert import SlidesExporter

    exporter = SlidesExporter(
        template_name=TEMPLATE,
        extra_template_basedirs=[str(TEMPLATES)],
        reveal_url_prefix=REVEAL,
        reveal_theme=THEME,
        reveal_transition="none",
        reveal_scroll=False,  # the template scales a slide that is too big to fit instead
        require_js_url=REQUIRE_JS,
        jquery_url=JQUERY,
        mathjax_url=MATHJAX,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exporter.register_preprocessor(mark_steps, enabled=True)
    return exporter


def export(nb, name: str, out_dir: Path, exporter=None) -> Path:
    """Write out_dir/<name>.slides.html from an executed notebook; refuse if it would go online."""
    exporter = exporter or make_exporter()
    try:
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    except ValueError as err:  # nbconvert: "All cells are hidden, cannot create slideshow"
        raise SlideError(f"{name}: {err}; give some cell a slide_type other than skip/notes") from err
    problems = check_offline(body, out_dir)
    if problems:
        listing = "\n  ".join(problems)
        raise SlideError(
            f"{name}: the deck would load from the network or miss files:\n  {listing}\n"
            "Put the file next to the notebook or embed it, and use no http(s) URL for it."
        )
    path = out_dir / f"{name}.slides.html"
    path.write_text(body, encoding="utf-8")
    return path


# --- the offline check ----------------------------------------------------------------------

FETCH_ATTRS = {"src", "href", "xlink:href", "data", "poster", "srcset", "background"}
SCRIPT_TYPES = {"", "text/javascript", "application/javascript", "module", "text/x-mathjax-config"}
NETWORK = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])((?:https?:)?//[^'")\s]+)""", re.IGNORECASE)
JS_URL = re.compile(r"""['"`]((?:https?:)?//[\w.-]+[^'"`\s]*)""", re.IGNORECASE)


class _FetchFinder(HTMLParser):
    """Collects what a browser would fetch: (where, url) for tag attributes, styles and scripts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = []
        self._in = None  # "script" or "style" while inside one whose text gets run

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name, value in attrs.items():
            if value and name in FETCH_ATTRS and not (tag in ("a", "area") and name == "href"):
                self.found.append((f"<{tag} {name}>", value))
            if value and name == "style":
                self.found += [(f"<{tag} style>", url) for url in CSS_URL.findall(value)]
        script_type = (attrs.get("type") or "").lower()
        if tag == "script" and script_type in SCRIPT_TYPES:
            self._in = "script"
        elif tag == "style":
            self._in = "style"

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.found += [("<script> text", url) for url in JS_URL.findall(data)]
        elif self._in == "style":
            self.found += [("<style> text", url) for url in CSS_URL.findall(data)]


def check_offline(body: str, deck_dir: Path) -> list[str]:
    """Problems that stop the deck working offline: network URLs it would fetch, missing local files."""
    finder = _FetchFinder()
    finder.feed(body)
    finder.close()
    problems = []
    for where, url in finder.found:
        if NETWORK.match(url):
            problems.append(f"{where}: {url}")
        elif not url.startswith(("data:", "#", "blob:", "about:", "javascript:")):
            local = html.unescape(url).split("?")[0].split("#")[0]
            if local and not (deck_dir / local).exists():
                problems.append(f"{where}: {url} (no such file under {deck_dir})")
    return problems


# --- the command ----------------------------------------------------------------------------


def write_index(out_dir: Path) -> Path:
    """Write out_dir/index.html with a link to every deck in out_dir (this run's and earlier ones)."""
    decks = out_dir.glob("*.slides.html")
    items = "\n".join(
        f'<li><a href="{html.escape(d.name)}">{html.escape(d.name.removesuffix(".slides.html"))}</a></li>'
        for d in sorted(decks)
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Lesson slides</title>\n'
        "<style>body{font-family:sans-serif;margin:2em}li{margin:.4em 0}</style></head>\n"
        "<body><h1>Lesson slides</h1>\n<p>Open a deck; press <kbd>s</kbd> for speaker notes, "
        "<kbd>Esc</kbd> for the overview. Works offline.</p>\n"
        f"<ul>\n{items}\n</ul>\n</body></html>\n"
    )
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def build(
    notebooks,
    out_dir: Path = BUILD / "slides",
    executed_dir: Path = BUILD / "executed",
    timeout: int = 120,
    run: bool = True,
    log=print,
) -> list[Path]:
    """Execute (unless run is False) and export each notebook; return the deck paths."""
    notebooks = [Path(nb) for nb in notebooks]
    for nb_path in notebooks:
        if not nb_path.is_file() or nb_path.suffix != ".ipynb":
            raise SlideError(f"{nb_path}: not a notebook file (expected an existing *.ipynb)")
    out_dir.mkdir(parents=True, exist_ok=True)
    install_vendor(out_dir)
    shutil.copy(ROOT / "course" / "kernel-facts.html", out_dir)   # the sheet the decks' § links open
    exporter = make_exporter()
    decks = []
    for number, nb_path in enumerate(notebooks, start=1):
        name = nb_path.stem
        start = time.monotonic()
        prefix = f"[{number}/{len(notebooks)}] {name}:"
        if run:
            log(f"{prefix} executing…", flush=True)
            nb = execute(nb_path, executed_dir / nb_path.name, timeout)
        else:
            nb = nbformat.read(str(nb_path), as_version=4)
        dropped = prepare(nb)
        log(f"{prefix} exporting…", flush=True)
        decks.append(export(nb, name, out_dir, exporter))
        note = f" ({dropped} widget outputs left out: slides are static)" if dropped else ""
        log(f"{prefix} done in {time.monotonic() - start:.1f} s{note}", flush=True)
    write_index(out_dir)
    return decks


def main(argv=None) -> int:
    """Command line: export the given notebooks (default course/*.ipynb) to build/slides/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to export (default: course/*.ipynb)")
    parser.add_argument("--out", type=Path, default=BUILD / "slides", help="deck folder")
    parser.add_argument("--timeout", type=int, default=120, help="seconds allowed per cell")
    parser.add_argument("--no-execute", action="store_true", help="export the notebooks as they are")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "course").glob("*.ipynb"))
    if not notebooks:
        print("slides: no notebooks given and none in course/", file=sys.stderr)
        return 2
    try:
        decks = build(notebooks, args.out, timeout=args.timeout, run=not args.no_execute)
    except SlideError as err:
        print(f"slides: {err}", file=sys.stderr)
        return 1
    print(f"slides: {len(decks)} deck(s) and index.html in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
