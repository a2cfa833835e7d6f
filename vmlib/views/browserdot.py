"""Graphviz in the browser, for JupyterLite: where Python has no Graphviz (Pyodide has no `dot`
and no pygraphviz wheel), a vma or physical-memory graph is drawn by @viz-js/viz, Graphviz
compiled to WebAssembly, which tools/lite.py serves from the site (static/vmlib/viz.js): the
output is the DOT text and a small module script that renders it in the page, offline. Outside
Pyodide this gives None and the usual note says what to install.
"""

from __future__ import annotations

import html
import json
import sys
import uuid

VIZ_PATH = "static/vmlib/viz.js"     # where tools/lite.py puts @viz-js/viz's dist/viz.js

_SCRIPT = """const el = document.getElementById(%(id)s);
const cfg = document.getElementById("jupyter-config-data");
let base = "/";
try { base = (cfg && JSON.parse(cfg.textContent).baseUrl) || "/"; } catch (e) { base = "/"; }
const url = new URL(base.replace(/\\/?$/, "/") + %(path)s, window.location.href).href;
try {
  const { instance } = await import(url);
  const viz = await instance();
  let svg = viz.renderString(%(dot)s, { format: "svg" });
  svg = svg.replace(/^<\\?xml[^>]*>\\s*(<!DOCTYPE[^>]*>\\s*)?(<!--[\\s\\S]*?-->\\s*)*/, "")
    .replaceAll('"#808080"', '"currentColor"')
    .replace(/<svg width="([\\d.]+)pt" height="([\\d.]+)pt"/, (m, w, h) =>
      `<svg style="max-width:100%%;height:auto" width="${Math.round(w * 4 / 3)}" height="${Math.round(h * 4 / 3)}"`);
  el.innerHTML = svg;
} catch (err) {
  el.textContent = "No picture: Graphviz in the browser (" + url + ") failed: " + err;
}"""


def in_pyodide() -> bool:
    return sys.platform == "emscripten"


def browser_graph_html(source: str) -> str | None:
    """HTML that draws DOT `source` with @viz-js/viz in the page (JupyterLite), or None when not
    running in Pyodide. The text shown until it is drawn says what is happening."""
    if not in_pyodide():
        return None
    uid = f"vmlib-dot-{uuid.uuid4().hex[:12]}"
    script = _SCRIPT % {"id": json.dumps(uid), "path": json.dumps(VIZ_PATH),
                        "dot": json.dumps(source).replace("</", "<\\/")}
    return (f'<div class="vmlib-graph-static vmlib-graph-browser" id="{uid}" '
            f'style="color:var(--jp-content-font-color1,#111)">{html.escape("drawing the graph…")}</div>'
            f'<script type="module">\n{script}\n</script>')
