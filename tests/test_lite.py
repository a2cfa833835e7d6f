"""The course as a JupyterLite site (issue 13, item 4), in headless Debian Chromium, offline.

`tools/lite.py` builds build/lite/; a static server on localhost serves it and the browser
has every request to any other host aborted (and counted: the test fails if there was one).
Lesson 05 opens, its first cells run in the Pyodide kernel (the added `%pip install`, the
imports, the /dev/mem mapping) and their printed output must appear. Lessons 02 and 03 run
whole: their physical-memory and vma graphs are drawn in the page by @viz-js/viz (served by the
site, no Graphviz in Python) and their Stepper (anywidget) steps.
"""

import contextlib
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


@contextlib.contextmanager
def offline_context(blocked: list):
    """A Chromium context at 1400x900 without service workers in which every request to a host other
    than this one is refused and its URL appended to `blocked` (the site must work offline)."""
    from playwright.sync_api import sync_playwright

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
            yield ctx
        finally:
            ctx.close()


def test_lesson_runs_offline_in_jupyterlite(site):
    blocked = []
    with offline_context(blocked) as ctx:
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


GRAPH_LESSONS = ["02_struct_page_and_memmap.ipynb", "03_vmas_and_faults.ipynb"]


@pytest.mark.parametrize("lesson", GRAPH_LESSONS)
def test_lesson_graphs_and_stepper_in_jupyterlite(site, lesson):
    shots = ROOT / "build" / "views"
    shots.mkdir(parents=True, exist_ok=True)
    blocked = []
    with offline_context(blocked) as ctx:
        page = ctx.new_page()
        console = []
        page.on("console", lambda m: console.append(m.text[:300]))
        page.goto(f"{site}/lab/index.html?path={lesson}")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell .jp-InputArea-editor", timeout=90000)
        accept_kernel_dialog(page)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        try:
            page.wait_for_selector(".vmlib-graph-browser svg", timeout=240000)
            page.wait_for_selector(".vmlib-stepper .vmlib-graph svg", timeout=120000)
        except Exception:  # noqa: BLE001 - show what the page says
            shot = ROOT / "build" / f"lite-failed-{lesson}.png"
            page.screenshot(path=str(shot))
            outputs = page.evaluate("Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
                                    ".map(e => e.innerText.slice(0, 200))")
            pytest.fail(f"{lesson}: no browser-drawn graph or stepper; outputs {outputs}; screenshot {shot};"
                        f" console {console[-25:]}")
        graph = page.locator(".vmlib-graph-browser svg").first
        graph.scroll_into_view_if_needed()
        assert graph.locator("text").count() > 3, "the Graphviz picture has no text"
        page.screenshot(path=str(shots / f"lite_{lesson[:2]}_graph_light.png"))
        stepper = page.locator(".vmlib-stepper").first
        stepper.scroll_into_view_if_needed()
        toggle = stepper.locator(".vmlib-predict-toggle")
        if toggle.count():
            toggle.uncheck()
        stepper.locator("button[title='forward']").click()
        page.wait_for_function("el => el.querySelector('.vmlib-graph').dataset.step === '1'",
                               arg=stepper.element_handle(), timeout=15000)
        page.screenshot(path=str(shots / f"lite_{lesson[:2]}_stepper_light.png"))
        text = page.evaluate(f"() => {OUTPUTS}")
    assert "pip install pygraphviz" not in text and "apt-get install graphviz" not in text, text
    assert "Traceback" not in text, text
    assert blocked == [], f"the site asked for other hosts: {sorted(set(blocked))}"


def test_site_serves_the_fact_sheet_beside_the_lessons(site):
    """The lessons' `§` links (kernel-facts.html#s1a-row-3) resolve in the site: the sheet is there."""
    import urllib.request
    with urllib.request.urlopen(f"{site}/files/kernel-facts.html", timeout=10) as r:
        page = r.read().decode()
    assert 'id="s1a-row-3"' in page and 'id="s9b"' in page, page[:300]
    assert page == (ROOT / "course" / "kernel-facts.html").read_text(encoding="utf-8")


def test_fact_link_in_a_lesson_output_opens_the_row_in_jupyterlite(site):
    """A row link of lesson 05's show_steps output opens <site>/files/kernel-facts.html#row in a tab
    that scrolls to the row and marks it (tests/test_facts_browser.py does the same in JupyterLab)."""
    from test_facts_browser import assert_lands_on_row
    blocked = []
    with offline_context(blocked) as ctx:
        page = ctx.new_page()
        page.goto(f"{site}/lab/index.html?path=05_vm_pfnmap.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell .jp-InputArea-editor", timeout=90000)
        accept_kernel_dialog(page)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        link = page.locator(".jp-RenderedHTMLCommon a.vmlib-fact[href*='-row-']").first
        link.wait_for(state="attached", timeout=240000)
        href = link.get_attribute("href")
        assert href.startswith(f"{site}/files/kernel-facts.html#"), href
        link.scroll_into_view_if_needed()
        with ctx.expect_page(timeout=30000) as opened:
            link.click()
        assert_lands_on_row(opened.value, href.split("#", 1)[1], "lite_facts_target")
    assert blocked == [], f"the site asked for other hosts: {sorted(set(blocked))}"
