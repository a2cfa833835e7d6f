"""A `§` link in a lesson's output lands on its row of the fact sheet, in JupyterLab (issue 21, item 4).

JupyterLab opens a relative link (kernel-facts.html#s1a-row-3) in its own HTML viewer, at the
top: the viewer drops the #fragment. A kernel the server started therefore links to the sheet as
the server serves it (/files/..., vmlib.facts.sheet_base), which JupyterLab leaves to the browser.
Here lesson 05, copied into a folder whose name has a space, runs in a real JupyterLab; a click
on a row link of its show_steps output opens a browser tab whose :target is that row, in view
and marked. Screenshots of the sheet there: build/facts_target_light.png, build/facts_target_dark.png.
The same click in JupyterLite: tests/test_lite.py.
"""

import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import ROOT, find_chromium
from test_views_browser import BUILD, CHROMIUM_ARGS, serve_lab

pytestmark = [pytest.mark.browser]

LESSON = "05_vm_pfnmap.ipynb"   # its show_steps output links [§6b v2.6.26 row 2]
FOLDER = "my class/course"            # where the course was copied, below the server's root
# where a fact link points, whether it is in view, and whether the page marks it
TARGET = """() => { const t = document.querySelector(':target'); if (!t) return null;
  const r = t.getBoundingClientRect();
  return {id: t.id, inView: r.top >= 0 && r.bottom <= innerHeight, mark: getComputedStyle(t).backgroundColor}; }"""


@pytest.fixture
def lab():
    """(base url, token) of a JupyterLab whose root holds my class/course/ with lesson 00 and the sheet."""
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp) / "root" / FOLDER
        course.mkdir(parents=True)
        for name in (LESSON, "kernel-facts.html"):
            shutil.copy(ROOT / "course" / name, course / name)
        yield from serve_lab(Path(tmp) / "root")


def accept_kernel_dialog(page) -> None:
    """Accept JupyterLab's "Select Kernel" dialog (Python 3) when it comes within a few seconds."""
    try:
        page.wait_for_selector(".jp-Dialog .jp-mod-accept", timeout=8000)
    except Exception:  # noqa: BLE001 - no dialog: the kernel started by itself
        return
    page.locator(".jp-Dialog .jp-mod-accept").click()


def assert_lands_on_row(sheet, anchor: str, shots: str) -> None:
    """SHEET (a page) shows the fact sheet with ANCHOR as :target, in view and marked; screenshots."""
    sheet.wait_for_load_state()
    sheet.wait_for_function("() => document.querySelector(':target') !== null", timeout=15000)
    target = sheet.evaluate(TARGET)
    assert target["id"] == anchor, f"the tab opened {sheet.url}; its :target is {target['id']}, not {anchor}"
    assert target["inView"], f"#{anchor} is not in the viewport of {sheet.url}"
    assert target["mark"] not in ("rgba(0, 0, 0, 0)", "transparent"), "the row is not highlighted"
    BUILD.mkdir(exist_ok=True)
    sheet.screenshot(path=str(BUILD / f"{shots}_light.png"))
    sheet.emulate_media(color_scheme="dark")
    sheet.screenshot(path=str(BUILD / f"{shots}_dark.png"))


def test_fact_link_in_a_lesson_output_opens_the_row_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright
    base, token = lab
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=find_chromium(), headless=True,
                                                    args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900})
        try:
            page = ctx.new_page()
            page.goto(f"{base}/lab/tree/{quote(FOLDER)}/{LESSON}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90000)
            accept_kernel_dialog(page)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
            # a row link of show_steps' HTML output (rendered by JupyterLab, which handles its links)
            link = page.locator(".jp-RenderedHTMLCommon a.vmlib-fact[href*='-row-']").first
            try:        # attached: JupyterLab skips painting cells out of view
                link.wait_for(state="attached", timeout=120000)
            except Exception:  # noqa: BLE001 - show what the page shows instead of a bare timeout
                page.screenshot(path=str(BUILD / "facts_failure.png"))
                pytest.fail("no row link in the outputs (screenshot build/facts_failure.png)")
            hrefs = page.eval_on_selector_all("a.vmlib-fact", "as => as.map(a => a.getAttribute('href'))")
            sheet_url = f"/files/{quote(FOLDER)}/kernel-facts.html#"
            assert hrefs and all(h.startswith(sheet_url) for h in hrefs), hrefs[:5]
            anchor = link.get_attribute("href").split("#", 1)[1]
            link.scroll_into_view_if_needed()
            with ctx.expect_page(timeout=30000) as opened:
                link.click()
            assert_lands_on_row(opened.value, anchor, "facts_target")
        finally:
            ctx.close()
