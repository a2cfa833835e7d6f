"""SVG from DOT text through the `graphviz` package (imported lazily), with an LRU cache."""

from __future__ import annotations

import re
import shutil
from functools import lru_cache

_PROLOG = re.compile(r"^<\?xml[^>]*>\s*(<!DOCTYPE[^>]*>\s*)?(<!--.*?-->\s*)*", re.DOTALL)


def have_dot() -> bool:
    """True when Graphviz's `dot` program is on PATH."""
    return shutil.which("dot") is not None


@lru_cache(maxsize=256)
def svg(source: str) -> str:
    """The SVG text of a DOT graph (rendered by `dot`; the same text is rendered once)."""
    try:
        import graphviz
    except ImportError as e:       # pragma: no cover - the venv has it
        raise RuntimeError("rendering needs the Python package 'graphviz' (pip install graphviz)") from e
    if not have_dot():
        raise RuntimeError("Graphviz's `dot` program is not installed: run `apt-get install -y graphviz` "
                           "(the DOT text is still available as .source)")
    out = graphviz.pipe("dot", "svg", source.encode(), quiet=True)
    return out.decode()


def inline_svg(source: str) -> str:
    """The SVG without its XML prolog, doctype and comments, for embedding in HTML."""
    text = _PROLOG.sub("", svg(source), count=1)
    return text.replace("<svg ", '<svg style="max-width:100%;height:auto" ', 1)


def cache_clear() -> None:
    svg.cache_clear()

