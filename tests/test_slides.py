"""Offline reveal.js export (tools/slides.py): metadata check, offline check, and every deck opened
in headless Chromium with the network blocked."""

import functools
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from conftest import find_chromium, missing_tool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools/ is not an installed package
from tools import slides

FIXTURE = ROOT / "tests" / "fixtures" / "slides_demo.ipynb"
COURSE = sorted((ROOT / "course").glob("*.ipynb"))
DECKS = [FIXTURE, *COURSE]
SHOTS = ROOT / "build" / "screenshots" / "slides"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _nb(*slide_types):
    nb = nbformat.v4.new_notebook()
    for kind in slide_types:
        cell = nbformat.v4.new_markdown_cell("text")
        if kind is not None:
            cell.metadata["slideshow"] = {"slide_type": kind}
        nb.cells.append(cell)
    return nb


# --- no browser needed ------------------------------------------------------------------------


def test_missing_slide_metadata_finds_bad_cells(tmp_path):
    path = tmp_path / "bad.ipynb"
    nbformat.write(_nb("slide", None, "-", "sideways", "notes"), str(path))
    assert slides.missing_slide_metadata(path) == [1, 3]
    assert slides.missing_slide_metadata(FIXTURE) == []


@pytest.mark.parametrize("nb_path", DECKS, ids=lambda p: p.stem)
def test_every_cell_has_slide_type(nb_path):
    missing = slides.missing_slide_metadata(nb_path)
    assert not missing, f"{nb_path.name}: cells {missing} have no valid metadata.slideshow.slide_type"


def test_check_offline_lists_what_would_be_fetched(tmp_path):
    (tmp_path / "local.js").write_text("")
    body = """<html><head>
    <script src="https://cdn.example/reveal.js"></script>
    <script src="local.js"></script>
    <link rel="stylesheet" href="//fonts.example/font.css">
    <style>@import "https://fonts.example/a.css"; p { background: url(http://img.example/b.png) }</style>
    <script>require(["http://cdn.example/notes.js"], function () {}); // see https://docs.example
    </script>
    <script type="text/x-mathjax-config">MathJax.Ajax.config.path.x = "https://cdn.example/x";</script>
    <script type="application/json">{"homepage": "https://ok.example"}</script>
    </head><body>
    <a href="https://reading.example/">a link is not a fetch</a>
    <svg xmlns="http://www.w3.org/2000/svg"></svg>
    <img src="missing.png"> <img src="data:image/png;base64,AAAA">
    </body></html>"""
    problems = "\n".join(slides.check_offline(body, tmp_path))
    for url in (
        "https://cdn.example/reveal.js",
        "//fonts.example/font.css",
        "https://fonts.example/a.css",
        "http://img.example/b.png",
        "http://cdn.example/notes.js",
        "https://cdn.example/x",
        "missing.png",
    ):
        assert url in problems
    for url in ("local.js", "docs.example", "ok.example", "reading.example", "w3.org", "data:"):
        assert url not in problems
    assert len(problems.splitlines()) == 7


def test_export_refuses_network_images(tmp_path):
    nb = _nb("slide")
    nb.cells[0].source = '<img src="https://example.org/pte.png">'
    with pytest.raises(slides.SlideError, match="https://example.org/pte.png"):
        slides.export(nb, "online", tmp_path)
    assert not (tmp_path / "online.slides.html").exists()


def test_build_rejects_non_notebooks(tmp_path, capsys):
    with pytest.raises(slides.SlideError, match="not a notebook"):
        slides.build([tmp_path / "nope.ipynb"], out_dir=tmp_path)
    assert slides.main([str(tmp_path / "nope.txt"), "--out", str(tmp_path)]) == 1
    assert "nope.txt: not a notebook" in capsys.readouterr().err


def test_prepare_drops_widgets_and_honours_tags():
    nb = nbformat.v4.new_notebook()
    widget = nbformat.v4.new_output(
        "display_data", {slides.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "W"}
    )
    svg = nbformat.v4.new_output("display_data", {"image/svg+xml": "<svg/>"})
    cells = [nbformat.v4.new_code_cell("w", outputs=[widget, svg]) for _ in range(4)]
    cells[1].metadata["tags"] = ["remove_cell"]
    cells[2].metadata["tags"] = ["remove_input"]
    cells[3].metadata["jupyter"] = {"outputs_hidden": True}
    nb.cells = cells
    nb.metadata["widgets"] = {"state": {}}
    assert slides.prepare(nb) == 2
    assert len(nb.cells) == 3 and "widgets" not in nb.metadata
    assert [len(c.outputs) for c in nb.cells] == [1, 1, 0]
    assert [c.metadata.get("transient", {}).get("remove_source", False) for c in nb.cells] == [
        False,
        True,
        False,
    ]


def test_export_explains_all_hidden_notebook(tmp_path):
    with pytest.raises(slides.SlideError, match="slide_type other than skip/notes"):
        slides.export(_nb("skip", "notes"), "hidden", tmp_path)


# --- in the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """A persistent Chromium context whose every non-file request is aborted and recorded."""
    vendored = all((slides.NODE_MODULES / pkg / part).exists() for pkg, part, _ in slides.VENDOR_PARTS)
    if not vendored and not shutil.which("npm"):
        missing_tool("npm")  # tools/slides-vendor.sh fetches reveal.js and friends with it
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=find_chromium(),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        context.network = []

        def block(route):
            if route.request.url.startswith("file:"):
                route.continue_()
            else:
                context.network.append(route.request.url)
                route.abort()

        context.route("**/*", block)
        yield context
        context.close()


def open_deck(context, path: Path):
    """Open path; return (page, problems) where problems collects console errors and failed requests."""
    context.network.clear()
    page = context.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})"))
    page.goto(path.as_uri())
    return page, problems


@pytest.mark.browser
def test_browser_harness_sees_network_requests(browser, tmp_path):
    page_path = tmp_path / "online.html"
    page_path.write_text('<html><body><img src="https://example.org/x.png"></body></html>')
    page, problems = open_deck(browser, page_path)
    page.wait_for_load_state("load")
    assert browser.network == ["https://example.org/x.png"]
    assert any("example.org" in p for p in problems)
    page.close()


@functools.cache
def built(nb_path: Path) -> Path:
    """Execute and export nb_path once per test session; return the deck. The test fixture's
    deck goes to its own folder, so that build/slides/index.html lists only the lessons."""
    out = slides.BUILD / ("slides-fixture" if nb_path == FIXTURE else "slides")
    (slides.BUILD / "slides" / f"{FIXTURE.stem}.slides.html").unlink(missing_ok=True)  # from older builds
    return slides.build([nb_path], out_dir=out, log=lambda *a, **k: None)[0]


FIT = """() => { const slide = Reveal.getCurrentSlide(); const area = document.querySelector('.reveal .slides')
    .getBoundingClientRect(); let over = [0, 0, '']; for (const el of slide.querySelectorAll('*')) {
    if (el.closest('aside.notes')) continue; const css = getComputedStyle(el);
    if (css.display === 'none') continue; const b = el.getBoundingClientRect(); if (!b.width && !b.height) continue;
    const right = b.right - area.right, bottom = b.bottom - area.bottom;
    if (Math.max(right, bottom) > Math.max(over[0], over[1])) over = [right, bottom, el.tagName + '.' + el.className];
    } return over; }"""


SETTLED = """async () => { await document.fonts.ready;
    await Promise.all(Array.from(document.images).map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
    const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    await frame(); window.vmlibFit(); await frame(); }"""


def measure_settled(page):
    """FIT once fonts and images have loaded, the slide was fitted again after them, and two
    measurements in a row agree (a measuring test waits for what it measures)."""
    last = None
    for _ in range(20):
        page.evaluate(SETTLED)
        now = page.evaluate(FIT)
        if now == last:
            return now
        last = now
    return last


def check_fit(page, deck: str) -> None:
    """No slide's content reaches past the slide's right or bottom edge (1 px tolerance)."""
    page.wait_for_function("window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0", timeout=45000)
    places = page.evaluate("Reveal.getSlides().map(s => Reveal.getIndices(s))")
    bad = []
    for ix in places:
        page.evaluate(f"Reveal.slide({ix['h']}, {ix.get('v') or 0})")
        page.wait_for_function("Reveal.getCurrentSlide().dataset.vmlibFit !== undefined", timeout=5000)
        right, bottom, what = measure_settled(page)
        if right > 1 or bottom > 1:
            bad.append(f"slide {ix['h']}/{ix.get('v') or 0}: {what} runs {right:.0f} px right, {bottom:.0f} px down")
    assert not bad, f"{deck}: content overflows its slide:\n" + "\n".join(bad)


def expected_slides(nb) -> int:
    """Reveal slides (horizontal and vertical) the notebook's metadata asks for."""
    kinds = [c.metadata.get("slideshow", {}).get("slide_type", "-") for c in nb.cells]
    visible = [k for k in kinds if k not in ("skip", "notes")]
    return 1 + sum(k in ("slide", "subslide") for k in visible[1:])


VISIBLE_STEPS = """el => Array.from(el.querySelectorAll(':scope > .jp-OutputArea > .vmlib-step'))
    .map((s, i) => [i, getComputedStyle(s)])
    .filter(([i, css]) => css.visibility !== 'hidden' && parseFloat(css.opacity) > 0)
    .map(([i, css]) => [i, parseFloat(css.opacity)])"""


def wait_for_step(page, steps, index: int) -> None:
    """Wait until step index is the only visible output of the steps cell, fully faded in."""
    handle = steps.element_handle()
    try:
        page.wait_for_function(
            f"el => {{ const v = ({VISIBLE_STEPS})(el); "
            f"return v.length === 1 && v[0][0] === {index} && v[0][1] === 1; }}",
            arg=handle,
            timeout=15000,
        )
    except Exception:  # noqa: BLE001 - report what was visible instead of a bare timeout
        pytest.fail(f"expected only step {index} visible, saw {page.evaluate(VISIBLE_STEPS, handle)}")


def walk_steps(page, steps, deck: str) -> int:
    """Go to the steps cell's slide, step forward and back; return the number of steps."""
    count = steps.locator(":scope > .jp-OutputArea > .vmlib-step").count()
    first = int(steps.locator(".vmlib-step").first.get_attribute("data-fragment-index"))
    page.evaluate(
        "([el, f]) => { const i = Reveal.getIndices(el.closest('section')); Reveal.slide(i.h, i.v, f); }",
        [steps.element_handle(), first - 1],
    )
    for index in range(count):
        if index:
            page.evaluate("Reveal.next()")
        wait_for_step(page, steps, index)
        if index == 1:
            page.screenshot(path=str(SHOTS / f"{deck}-steps.png"))
    page.evaluate("Reveal.prev()")
    wait_for_step(page, steps, count - 2)
    return count


@pytest.mark.browser
@pytest.mark.parametrize("nb_path", DECKS, ids=lambda p: p.stem)
def test_deck_works_offline(browser, nb_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    deck = built(nb_path)
    nb = nbformat.read(str(slides.BUILD / "executed" / nb_path.name), as_version=4)
    lost = [c.source.strip().splitlines()[-1] for c in nb.cells if c.cell_type == "code"
            and any(slides.WIDGET_VIEW in o.get("data", {}) and "text/html" not in o["data"] for o in c.outputs)]
    # every Stepper, Compare and Practice works in the deck; a Playground shows its picture and says
    # that pressing its buttons needs a kernel: no widget output is left out
    assert lost == [], f"widget outputs left out of the deck: {lost}"
    slides.prepare(nb)          # the deck's cells: widget-only cells gone, tall slides split

    page, problems = open_deck(browser, deck)
    page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=45000)
    page.wait_for_function("window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0", timeout=45000)
    assert page.evaluate("Reveal.getTotalSlides()") == expected_slides(nb)
    page.wait_for_timeout(300)  # let the first slide settle for the screenshot
    page.screenshot(path=str(SHOTS / f"{nb_path.stem}.png"))

    # prepare() put a notes cell after each cell whose metadata holds lecturer notes
    notes_cells = [c for c in nb.cells if c.metadata.get("slideshow", {}).get("slide_type") == "notes"]
    assert notes_cells or not any((c.metadata.get("vmlib") or {}).get("notes") for c in nb.cells)
    assert page.locator("aside.notes").count() == len(notes_cells)

    steps_cells = [
        c
        for c in nb.cells
        if c.cell_type == "code"
        and c.metadata.get("vmlib", {}).get("steps")
        and len(c.outputs) > 1
        and c.metadata["slideshow"]["slide_type"] not in ("skip", "notes")
    ]
    steps = page.locator(".vmlib-steps")
    assert steps.count() == len(steps_cells)
    if nb_path != FIXTURE and "FaultStepper(" in nb_path.read_text():
        shown = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("vmlib", {}).get("steps")
                 and c.metadata["slideshow"]["slide_type"] not in ("skip", "notes")]
        assert shown, f"{nb_path.name} steps through a fault but its deck shows no steps"
        assert all("<svg" in o["data"]["text/html"] for c in shown for o in c.outputs), "a step without a graph"
    for number, cell in enumerate(steps_cells):
        assert walk_steps(page, steps.nth(number), nb_path.stem) == len(cell.outputs)
        pictures = steps.nth(number).locator(":scope > .jp-OutputArea > .vmlib-step").evaluate_all(
            "els => els.map(e => e.querySelectorAll('svg').length)")
        if nb_path != FIXTURE:
            assert pictures == [1] * len(cell.outputs), f"one graph per step fragment, got {pictures}"
    practice = page.locator(".vmlib-practice-static")
    assert practice.count() == nb_path.read_text().count("Practice("), "a Practice left the deck"
    for number in range(practice.count()):
        box = practice.nth(number)
        page.evaluate("el => { const i = Reveal.getIndices(el.closest('section')); Reveal.slide(i.h, i.v); }",
                      box.element_handle())
        box.locator("button", has_text="check").click()
        assert "Answer at least one question first" in box.inner_text()
    steppers = page.locator(".vmlib-stepper-js")
    made = nb_path.read_text().count("Stepper(") + nb_path.read_text().count("Stepper.compare(")
    assert steppers.count() == made, "a Stepper or Compare left the deck"
    for number in range(steppers.count()):
        click_stepper(page, steppers.nth(number))
    if "MemmapCost(" in nb_path.read_text():
        plot = page.locator(".vmlib-memmap-plot svg")
        assert plot.count() == 1 and plot.locator("#memmap-image path, #memmap-memmap path").count() >= 2, \
            "no memmap plot"
    if nb_path != FIXTURE:
        check_fit(page, nb_path.stem)
        assert FIXTURE.stem not in (deck.parent / "index.html").read_text(), "the test deck is not a lesson"

    assert browser.network == [], f"{nb_path.name} tried the network: {browser.network}"
    assert problems == []
    page.close()


def click_stepper(page, stepper) -> None:
    """On its slide, a deck's Stepper (or Compare) steps forward with no kernel: the picture changes."""
    page.evaluate("el => { const i = Reveal.getIndices(el.closest('section')); Reveal.slide(i.h, i.v); }",
                  stepper.element_handle())
    toggle = stepper.locator(".vmlib-predict-toggle")
    if toggle.count():
        toggle.uncheck()                       # predict mode is tested in test_views_stepper_browser
    graph = stepper.locator(".vmlib-graph").first
    if stepper.locator(".vmlib-slider").get_attribute("max") == "1":    # a story of one operation: one picture
        assert graph.locator("svg").count() == 1
        return
    before = graph.get_attribute("data-step")
    stepper.locator("button[title='forward']").click()
    page.wait_for_function("([g, s]) => g.dataset.step !== s && g.querySelector('svg')",
                           arg=[graph.element_handle(), before], timeout=5000)
    stepper.locator("button[title='first']").click()


@pytest.mark.browser
def test_fixture_has_math_notes_and_steps(browser):
    deck = built(FIXTURE)
    page, problems = open_deck(browser, deck)
    page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=45000)
    page.wait_for_function("window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0", timeout=45000)
    assert page.locator(".MathJax_CHTML").count() >= 2, "MathJax did not typeset $..$ and $$..$$"
    page.evaluate("Reveal.slide(0, 0)")
    assert "SPEAKER-NOTE" in page.evaluate("Reveal.getSlideNotes()")
    assert page.locator(".vmlib-steps").count() == 1
    assert browser.network == [] and problems == []
    page.close()


@pytest.mark.browser
def test_index_links_every_deck(browser):
    deck = built(FIXTURE)
    page, problems = open_deck(browser, deck.parent / "index.html")
    links = page.locator("a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert sorted(links) == sorted(p.name for p in deck.parent.glob("*.slides.html"))
    page.click(f"a[href='{deck.name}']")
    page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=45000)
    assert browser.network == [] and problems == []
    page.close()
