"""Regenerate the rendered kernel-facts sheet, or link the references in notebooks.

    python -m vmlib.facts                 # from a checkout: docs/kernel-facts.md -> both HTML copies
    python -m vmlib.facts --check         # exit 1 when a copy is not what the sheet renders to
    python -m vmlib.facts --link NB...    # make each § in the notebooks' markdown a link (idempotent)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vmlib.facts import PACKAGED, SHEET_NAME, link_markdown, render

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "docs" / "kernel-facts.md"
COPIES = (PACKAGED, ROOT / "course" / SHEET_NAME)


def rendered() -> str:
    """The HTML page docs/kernel-facts.md renders to (needs a checkout)."""
    if not SOURCE.exists():
        raise SystemExit(f"vmlib.facts: {SOURCE} not found; run this from a checkout of the project")
    return render(SOURCE.read_text(encoding="utf-8"))


def link_notebook(path: Path) -> int:
    """Link the references in PATH's markdown cells in place; the number of cells changed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        linked = link_markdown(text)
        if linked != text:
            cell["source"] = linked.splitlines(keepends=True)
            changed += 1
    if changed:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmlib.facts", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the copies are current")
    parser.add_argument("--link", nargs="+", type=Path, metavar="NOTEBOOK", help="link § in these notebooks")
    args = parser.parse_args(argv)
    if args.link:
        for nb in args.link:
            print(f"{nb}: {link_notebook(nb)} markdown cells linked")
        return 0
    page = rendered()
    stale = [p for p in COPIES if not p.exists() or p.read_text(encoding="utf-8") != page]
    if args.check:
        for p in stale:
            print(f"{p} is not what docs/kernel-facts.md renders to: run python -m vmlib.facts", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(page, encoding="utf-8")
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
