"""The course as a JupyterLite site (issue 13, item 4), in headless Debian Chromium, offline.

`tools/lite.py` builds build/lite/; a static server on localhost serves it and the browser
has every request to any other host aborted (and counted: the test fails if there was one).
Lesson 05 opens, its first cells run in the Pyodide kernel (the added `%pip install`, the
imports, the /dev/mem mapping) and their printed output must appear.
"""

import functools
import http.server
import shutil
import sys
import tempfile
import threading
from urllib.parse import urlparse

import pytest
from conftest import ROOT, find_chromium, missing_tool
from test_views_browser import CHROMIUM_ARGS

sys.path.insert(0, str(ROOT))  # tools/ is not an installed package
from tools import lite

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LESSON = "05_vm_pfnmap.ipynb"
CELLS_TO_RUN = 5                 # install, title, imports, a markdown cell, the /dev/mem cell
OUTPUTS = "Array.from(document.querySelectorAll('.jp-OutputArea-output')).map(e => e.innerText).join('\\n')"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    """(base url of a localhost server of the freshly built site)."""
    if not shutil.which("npm"):
        missing_tool("npm")
    out = lite.build()
    handler = functools.partial(QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_lesson_runs_offline_in_jupyterlite(site):
    from playwright.sync_api import sync_playwright
    blocked = []

    def only_localhost(route):
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=find_chromium(), headless=True,
                                                    args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900},
                                                    service_workers="block")
        try:
            ctx.route("**/*", only_localhost)
            page = ctx.new_page()
            console = []
            page.on("console", lambda m: console.append(m.text[:300]))
            page.on("worker", lambda w: w.on("console", lambda m: console.append("worker: " + m.text[:300])))
            page.goto(f"{site}/lab/index.html?path={LESSON}")
            page.wait_for_selector(".jp-Notebook .jp-CodeCell .jp-InputArea-editor", timeout=90000)
            accept_kernel_dialog(page)
            page.locator(".jp-Notebook .jp-Cell").first.click()
            for _ in range(CELLS_TO_RUN):
                page.keyboard.press("Shift+Enter")
                page.wait_for_timeout(200)
            try:
                page.wait_for_function(f"() => ({OUTPUTS}).includes('VM_PFNMAP')", timeout=120000)
            except Exception:  # noqa: BLE001 - show what the outputs say
                shot = ROOT / "build" / "lite-failed.png"
                page.screenshot(path=str(shot))
                outputs = page.evaluate("Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
                                        ".map(e => e.innerText.slice(0, 300))")
                pytest.fail(f"the /dev/mem cell printed nothing in time; outputs {outputs}; screenshot {shot};"
                            f" console {console[-25:]}")
            text = page.evaluate(f"() => {OUTPUTS}")
        finally:
            ctx.close()
    assert "VM_PFNMAP" in text and "b'hello from NVRAM'" in text, text
    assert "Traceback" not in text and "Error" not in text, text
    assert blocked == [], f"the site asked for other hosts: {sorted(set(blocked))}"


def accept_kernel_dialog(page) -> None:
    """Accept a 'Select Kernel' dialog if the lab shows one (the lessons name kernel python3)."""
    try:
        page.wait_for_selector(".jp-Dialog .jp-mod-accept", timeout=5000)
        page.locator(".jp-Dialog .jp-mod-accept").click()
    except Exception:  # noqa: BLE001, S110 - no dialog: the kernel started by itself
        pass


def test_site_serves_the_fact_sheet_beside_the_lessons(site):
    """The lessons' `§` links (kernel-facts.html#s1a-row-3) resolve in the site: the sheet is there."""
    import urllib.request
    with urllib.request.urlopen(f"{site}/files/kernel-facts.html", timeout=10) as r:
        page = r.read().decode()
    assert 'id="s1a-row-3"' in page and 'id="s9b"' in page, page[:300]
    assert page == (ROOT / "course" / "kernel-facts.html").read_text(encoding="utf-8")
