"""SVG from DOT text, in-process through pygraphviz (its wheel bundles Graphviz) or else through
Graphviz's `dot` program (the `graphviz` package); both imported lazily, results cached."""

from __future__ import annotations

import html
import os
import platform
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from functools import lru_cache

_PROLOG = re.compile(r"^<\?xml[^>]*>\s*(<!DOCTYPE[^>]*>\s*)?(<!--.*?-->\s*)*", re.DOTALL)
_SIZE = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"')


class NoRenderer(RuntimeError):
    """Neither pygraphviz nor Graphviz's `dot` is installed; the message says what to install."""


def install_hint() -> str:
    """What to install on this platform so that Graphviz graphs render."""
    system = platform.system()
    extra = {"Darwin": " or `brew install graphviz`", "Windows": " or `winget install graphviz`"}.get(
        system, " or `sudo apt-get install graphviz` (Debian/Ubuntu)")
    return f"`pip install pygraphviz` (its wheel bundles Graphviz){extra}"


def have_pygraphviz() -> bool:
    try:
        import pygraphviz  # noqa: F401
    except ImportError:
        return False
    return True


def have_dot() -> bool:
    """True when Graphviz's `dot` program is on PATH."""
    return shutil.which("dot") is not None


@lru_cache(maxsize=256)
def svg(source: str) -> str:
    """The SVG text of a DOT graph (the same text is rendered once); NoRenderer when nothing can."""
    if have_pygraphviz():
        import pygraphviz
        with _quiet_fontconfig():
            return pygraphviz.AGraph(string=source).draw(format="svg", prog="dot").decode()
    if have_dot():
        import graphviz
        return graphviz.pipe("dot", "svg", source.encode(), quiet=True).decode()
    raise NoRenderer(f"drawing this graph needs Graphviz: install {install_hint()}, then restart the kernel. "
                     "The DOT text is in .source; the lesson goes on without the picture.")


@contextmanager
def _quiet_fontconfig():
    """Hold back what the bundled C libraries write to file descriptor 2 during a render, and
    pass on all of it except Fontconfig's warnings about the system's newer config files (stderr
    in a notebook cell reads as an error, and nbgrader scores it as one)."""
    try:
        saved = os.dup(2)
    except OSError:                      # no fd 2 (some embedded interpreters): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = [line for line in tmp.read().decode(errors="replace").splitlines()
                    if line.strip() and not line.startswith("Fontconfig warning")]
    if rest:
        sys.stderr.write("\n".join(rest) + "\n")


def inline_svg(source: str) -> str:
    """The SVG without its XML prolog, doctype and comments, at its natural size (the box around
    it scrolls in a narrow column rather than shrinking its text); lines and
    text of the "auto" theme take the colour of the text around them (JupyterLab's theme)."""
    text = _PROLOG.sub("", svg(source), count=1)
    text = text.replace('"#808080"', '"currentColor"')   # "auto" theme ink: the page's text colour
    return _SIZE.sub(lambda m: f'<svg style="max-width:none;height:auto" width="{float(m[1]) * 4 / 3:.0f}" '
                     f'height="{float(m[2]) * 4 / 3:.0f}"', text, count=1)


def no_renderer_html(err: Exception) -> str:
    """A short, visible note for a graph that cannot be drawn here."""
    return (f'<div class="vmlib-norender" style="border:1px solid #D55E00;padding:4px 8px">'
            f"<b>No picture</b>: {html.escape(str(err))}</div>")


def cache_clear() -> None:
    svg.cache_clear()
