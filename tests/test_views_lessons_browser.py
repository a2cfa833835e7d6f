"""Every lesson in a real JupyterLab (Debian Chromium through Playwright, 1400x900), as a student
sees it (issue 10, acceptance 1):

* no graph or plot is wider than its output area (a picture kept at its natural size may be
  wider only inside a box that scrolls it, which must fit);
* every stepper of every lesson, over all its steps (issue 19): at most 2 steps per operation
  of its trace; the smallest graph text at least 12 px, measured from the rendered SVG (its
  on-screen width over its viewBox width, times the text's font size), and at least 16 px in
  presentation mode; 0 px vertical movement of the picture; at least one highlighted (changed or
  examined) element in the picture at every step; nodes keep their on-screen places;
* the same at 1000x800 with the file browser open, in the dark theme (lessons 04 and 02);
* MemmapCost and lesson 02's measured fault costs show matplotlib plots readable in light and
  dark (text contrast >= 4.5:1); Compare's two sides are the same size with every node at the same x;
* in the dark theme the graph text and the quiz feedback keep 4.5:1 contrast.

Screenshots of each lesson's first graph go to build/views/<lesson>_light.png and _dark.png.
One JupyterLab serves a copy of course/ for the whole module; the lessons run one after another.
"""

import json
import tempfile
import time

import pytest
from conftest import ROOT, find_chromium
from test_views_browser import CHROMIUM_ARGS, select_kernel, serve_lab, set_theme

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LESSONS = sorted((ROOT / "course").glob("[0-9][0-9]_*.ipynb"))
SHOTS = ROOT / "build" / "views"
MIN_TEXT_PX = 12
MIN_PRESENTATION_PX = 16


@pytest.fixture(scope="module")
def lab():
    yield from serve_course()


def serve_course():
    """(base url, token) of a JupyterLab serving a copy of course/, every cell laid out in the DOM."""
    yield from serve_lab(ROOT / "course", {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}})


@pytest.fixture(scope="module")
def page(lab):
    yield from open_browser()


def open_browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=find_chromium(), headless=True,
                                                    args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


ALL_RAN = """() => { const p = Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'));
                     return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }"""


def run_lesson(page, lab, name: str) -> None:
    """Open a lesson in a fresh tab of the lab, run all its cells and wait until every one ran."""
    base, token = lab
    page.goto(f"{base}/lab/tree/{name}?token={token}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90000)
    for _attempt in range(3):              # a kernel still starting on a busy machine may drop the request
        page.wait_for_timeout(1000)
        select_kernel(page)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        page.wait_for_timeout(1000)
        select_kernel(page)
        try:
            page.wait_for_function("""() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))
                                      .some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))""", timeout=30000)
            break
        except Exception:  # noqa: BLE001, S112 - nothing started: ask again
            continue
    deadline = time.monotonic() + 180
    while True:                        # a "Select Kernel" dialog may still come (a busy machine): answer it
        if page.locator(".jp-Dialog").count():                # and run all again, since it held the run up
            select_kernel(page)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        try:
            page.wait_for_function(ALL_RAN, timeout=5000)
            break
        except Exception:  # noqa: BLE001 - not yet: look again until the deadline
            if time.monotonic() < deadline:
                continue
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"failed_{name}.png"))
        prompts = page.evaluate("Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))"
                                ".map(e => e.textContent)")
        pytest.fail(f"{name}: not every cell ran (prompts {prompts}); screenshot build/views/failed_{name}.png")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90000)
    page.wait_for_timeout(500)          # widgets render after their cell's reply


GRAPH_WIDTHS = """() => Array.from(document.querySelectorAll('.jp-OutputArea-output')).flatMap(out => {
    const area = out.getBoundingClientRect();
    return Array.from(out.querySelectorAll('svg.vg, .vmlib-graph-static svg, img')).map(g => {
        let box = g; for (let e = g.parentElement; e && e !== out; e = e.parentElement) {
            if (getComputedStyle(e).overflowX === 'auto') { box = e; break; } }
        const b = box.getBoundingClientRect(); return [g.tagName, b.width, area.width, b.right - area.right]; });
})"""

PICTURE = """el => { const svg = el.querySelector('.vmlib-graph svg'); const r = svg.getBoundingClientRect();
    const scale = r.width / svg.viewBox.baseVal.width; let small = 1e9;
    for (const t of svg.querySelectorAll('text')) small = Math.min(small, parseFloat(getComputedStyle(t).fontSize) * scale);
    const marks = svg.querySelectorAll('g[data-vm] rect.hot, g[data-vm] rect.seen, g[data-node] rect.hot, ' +
                                       'g[data-node] rect.seen, g[data-vm] path.seenmark').length;
    const g = el.querySelector('.vmlib-graph');
    return {top: Math.round((r.top - el.getBoundingClientRect().top) * 10) / 10, height: r.height, small, marks,
            step: g.dataset.step, ops: +g.dataset.ops, style: svg.getAttribute('style')}; }"""

SMALLEST_TEXT = """el => { const svg = el.querySelector('.vmlib-graph svg');
    const vb = svg.viewBox.baseVal; const scale = svg.getBoundingClientRect().width / vb.width;
    let small = 1e9; for (const t of svg.querySelectorAll('text')) {
        small = Math.min(small, parseFloat(getComputedStyle(t).fontSize) * scale); }
    return small; }"""

NODE_PLACES = """el => { const svg = el.querySelector('.vmlib-graph svg'); const at = svg.getBoundingClientRect();
    const out = {}; for (const g of svg.querySelectorAll('g[data-node]')) { const b = g.querySelector('rect')
        .getBoundingClientRect(); out[g.dataset.node] = [b.left - at.left, b.top - at.top, b.width, b.height]
        .map(v => Math.round(v * 10) / 10); } return [out, [at.width, at.height]]; }"""

CONTRAST = """el => { const lum = c => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(x => x / 255)
        .map(x => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
        return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
    const bg = getComputedStyle(el.querySelector('rect.bg')).fill;
    const ink = getComputedStyle(el.querySelector('g[data-node^="pgd"] text, g[data-node^="pt"] text') ||
        el.querySelector('text')).fill;
    const [a, b] = [lum(bg), lum(ink)].sort((x, y) => y - x); return (a + 0.05) / (b + 0.05); }"""


TEXT_CONTRAST = """el => { const lum = c => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(x => x / 255)
        .map(x => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
        return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
    let bg = el; while (bg && ['rgba(0, 0, 0, 0)', 'transparent'].includes(getComputedStyle(bg).backgroundColor)) {
        bg = bg.parentElement; }
    const [a, b] = [lum(getComputedStyle(bg || document.body).backgroundColor), lum(getComputedStyle(el).color)]
        .sort((x, y) => y - x); return (a + 0.05) / (b + 0.05); }"""


PLOT_CONTRAST = """svg => { const lum = c => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(x => x / 255)
        .map(x => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
        return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
    let bg = svg; while (bg && ['rgba(0, 0, 0, 0)', 'transparent'].includes(getComputedStyle(bg).backgroundColor)) {
        bg = bg.parentElement; }
    const ink = getComputedStyle(svg.querySelector('[id$="-title"] text')).fill;
    const [a, b] = [lum(getComputedStyle(bg || document.body).backgroundColor), lum(ink)]
        .sort((x, y) => y - x); return (a + 0.05) / (b + 0.05); }"""


def check_memmap_plot(page, name: str, theme: str) -> None:
    """MemmapCost and the measured fault costs draw their matplotlib plots (inline SVG), large enough
    and with text in the theme's colour (contrast >= 4.5:1)."""
    for what, selector, lines in (("MemmapCost", ".vmlib-memmap-cost svg", "#memmap-image path, #memmap-memmap path"),
                                  ("fault costs", ".vmlib-fault-costs svg", "#faults-sim_off path, #faults-sim_on path")):
        plot = page.locator(selector).first
        plot.scroll_into_view_if_needed()
        box = plot.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 150, f"{name}: {what} shows no plot"
        assert plot.locator(lines).count() >= 2, f"{name}: {what}'s plot has no lines or bars"
        ratio = plot.evaluate(PLOT_CONTRAST)
        assert ratio >= 4.5, f"{name} ({theme}): {what} text contrast {ratio:.1f}:1"
        page.screenshot(path=str(SHOTS / f"{name}_{what.replace(' ', '_')}_{theme}.png"))


def check_widths(page, name: str) -> None:
    wide = [w for w in page.evaluate(GRAPH_WIDTHS) if w[3] > 1]
    assert not wide, f"{name}: graphs wider than their output area (tag, width, area, overflow): {wide}"


def step_count(stepper) -> int:
    """How many frames a stepper walks: the browser Stepper's counter ("1/7", a lead-in frame included),
    or an ipywidgets stepper's headline ("step 1/7: ...")."""
    count = stepper.locator(".vmlib-count")
    if count.count():
        return int(count.first.inner_text().split("/")[1])
    return int(stepper.locator(".vmlib-event b").first.inner_text().split("/")[1].split(":")[0])


def click_and_wait(page, stepper, button: str) -> bool:
    """Click a stepper button and wait until it shows another step; False if it stayed (15 s), and
    False at once, without a click, when the button cannot move it: "first" on the first step,
    "forward" on the last (the slider's max is the step count)."""
    shown = stepper.locator(".vmlib-graph").get_attribute("data-step")
    slider = stepper.locator(".vmlib-slider")             # the browser-side Stepper's; an ipywidgets
    last = int(slider.get_attribute("max")) - 1 if slider.count() else None   # stepper has none
    if (button == "first" and int(shown) == 0) or (button == "forward" and last is not None and int(shown) >= last):
        return False
    stepper.locator(f"button[title='{button}']").click()
    try:
        page.wait_for_function("([el, s]) => el.querySelector('.vmlib-graph').dataset.step !== s",
                               arg=[stepper.element_handle(), shown], timeout=15000)
    except Exception:  # noqa: BLE001 - at the end of the trace the step stays
        return False
    return True


def check_every_step(page, name: str, stepper, presentation_px: float = MIN_PRESENTATION_PX) -> dict:
    """Walk a stepper from its first step to its last: step count, text size, stillness, a
    highlight per step; then its presentation mode's text size (at least presentation_px: 16 px
    in a 1400 px window; in a narrow column it may not shrink below 12). Returns what it measured."""
    stepper.scroll_into_view_if_needed()
    if stepper.locator(".vmlib-predict-toggle").count():     # predict mode asks before it steps: its own
        stepper.locator(".vmlib-predict-toggle").uncheck()   # test is tests/test_views_stepper_browser.py
    click_and_wait(page, stepper, "first")
    first = stepper.evaluate(PICTURE)
    total = step_count(stepper)
    assert total <= 2 * max(1, first["ops"]), f"{name}: {total} steps for {first['ops']} operations"
    seen = [first]
    while click_and_wait(page, stepper, "forward"):
        seen.append(stepper.evaluate(PICTURE))
    assert len(seen) == total, f"{name}: walked {len(seen)} of {total} steps"
    for p in seen:
        where = f"{name} step {int(p['step']) + 1}/{total}"
        assert p["small"] >= MIN_TEXT_PX - 0.05, f"{where}: smallest text {p['small']:.1f} px"
        assert p["marks"] >= 1, f"{where}: nothing highlighted in the picture"
        assert p["top"] == first["top"] and p["height"] == first["height"], \
            f"{where}: the picture moved ({first['top']}, {first['height']}) -> ({p['top']}, {p['height']})"
    stepper.locator("button[title='presentation']").click()
    page.wait_for_function("el => el.querySelector('.vmlib-graph svg').getAttribute('style').includes('width:100%')",
                           arg=stepper.element_handle(), timeout=15000)
    big = stepper.evaluate(PICTURE)
    assert big["small"] >= presentation_px - 0.05, f"{name}: presentation text {big['small']:.1f} px"
    stepper.locator(".vmlib-graph").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}_presentation.png"))
    stepper.locator("button[title='presentation']").click()
    page.wait_for_function("el => el.querySelector('.vmlib-graph svg').getAttribute('style').includes('none')",
                           arg=stepper.element_handle(), timeout=15000)
    return {"steps": total, "ops": first["ops"], "small": min(p["small"] for p in seen),
            "presentation": big["small"]}


def check_stepper(page, name: str) -> int:
    for i in range(page.locator(".vmlib-stepper").count()):
        MEASURED[f"{name}#{i}"] = check_every_step(page, f"{name}#{i}", page.locator(".vmlib-stepper").nth(i))
    stepper = page.locator(".vmlib-stepper").first
    stepper.scroll_into_view_if_needed()
    click_and_wait(page, stepper, "first")
    small = stepper.evaluate(SMALLEST_TEXT)
    assert small >= MIN_TEXT_PX - 0.05, f"{name}: the stepper's smallest text is {small:.1f} px"
    places, size = stepper.evaluate(NODE_PLACES)
    if stepper.locator(".vmlib-predict-toggle").count():     # predict mode asks before it steps
        stepper.locator(".vmlib-predict-toggle").uncheck()
    forward = stepper.locator("button[title='forward']")
    steps = 0
    last = int(stepper.locator(".vmlib-slider").get_attribute("max")) - 1
    for _ in range(5):
        shown = stepper.locator(".vmlib-graph").get_attribute("data-step")
        if int(shown) >= last:             # the trace ended: forward would not move it
            break
        forward.click()
        try:
            page.wait_for_function("([el, s]) => el.querySelector('.vmlib-graph').dataset.step !== s",
                                   arg=[stepper.element_handle(), shown], timeout=15000)
        except Exception:  # noqa: BLE001 - the trace may have ended: that is fine after the first steps
            break
        steps += 1
        now, now_size = stepper.evaluate(NODE_PLACES)
        assert now_size == size, f"{name}: the picture changed size at step {shown}"
        moved = {n: (places[n], now[n]) for n in set(places) & set(now) if places[n] != now[n]}
        assert not moved, f"{name}: nodes moved while stepping: {moved}"
        places.update(now)
    total = step_count(stepper)
    assert steps >= min(5, total - 1), f"{name}: only {steps} of {total} steps forward"
    return steps


MEASURED: dict = {}


def check_playground(page, name: str) -> None:
    """Labels are whole, and spawn, mmap, write show a result, a log and a graph."""
    pg = page.locator(".vmlib-playground").first
    pg.scroll_into_view_if_needed()
    cut = pg.locator(".widget-label").evaluate_all(
        "ls => ls.filter(l => l.scrollWidth > l.clientWidth + 1).map(l => l.textContent)")
    assert not cut, f"{name}: Playground labels cut: {cut}"
    for button in ("spawn", "mmap", "write"):
        pg.locator("button", has_text=button).first.click()
        page.wait_for_function("([el, b]) => (el.querySelector('.vmlib-ok') || {}).textContent?.startsWith(b)",
                               arg=[pg.element_handle(), button], timeout=15000)
    assert "P1" in pg.locator(".vmlib-ok").inner_text() or "wrote" in pg.locator(".vmlib-ok").inner_text()
    assert pg.locator(".vmlib-log").count() and pg.locator(".vmlib-graph svg").count()
    page.screenshot(path=str(SHOTS / f"{name}_playground_light.png"))


def check_compare(page, name: str) -> None:
    cmp = page.locator(".vmlib-compare").first
    left = cmp.locator(".vmlib-side-left").evaluate(NODE_PLACES.replace("el.querySelector('.vmlib-graph svg')",
                                                                        "el.querySelector('svg')"))
    right = cmp.locator(".vmlib-side-right").evaluate(NODE_PLACES.replace("el.querySelector('.vmlib-graph svg')",
                                                                          "el.querySelector('svg')"))
    assert left[1] == right[1], f"{name}: Compare's sides differ in size: {left[1]} vs {right[1]}"
    off = {n for n in set(left[0]) & set(right[0]) if left[0][n][0] != right[0][n][0]}
    assert not off, f"{name}: Compare's sides do not line up at {sorted(off)}"
    check_compare_steps(page, name, cmp)


COMPARE_SIDES = """el => { const top = el.getBoundingClientRect().top;
    const room = el.querySelector('.vmlib-sides').getBoundingClientRect().width;
    return [room, Array.from(el.querySelectorAll('.vmlib-side')).map(s => {
        const svg = s.querySelector('.vmlib-graph svg'); const r = svg.getBoundingClientRect();
        const scale = r.width / svg.viewBox.baseVal.width; let small = 1e9;
        for (const t of svg.querySelectorAll('text')) small = Math.min(small, parseFloat(getComputedStyle(t).fontSize) * scale);
        const nat = parseFloat(svg.getAttribute('width'));
        return {left: r.left, right: r.right, top: Math.round((r.top - top) * 10) / 10, height: r.height, small, nat}; })]; }"""


def check_compare_steps(page, name: str, cmp) -> dict:
    """A Compare over all its operations: its sides next to each other when the column holds both
    at their natural size (text 12 px), stacked otherwise; smallest text >= 12 px; neither picture
    moves. Returns what it measured."""
    cmp.scroll_into_view_if_needed()
    count = cmp.locator(".vmlib-count")
    if not count.count():                      # the ipywidgets Compare: the browser Stepper.compare only
        return {}
    cmp.locator("button[title='first']").click()
    page.wait_for_function("el => el.querySelector('.vmlib-count').textContent.startsWith('operation 1/')",
                           arg=cmp.element_handle(), timeout=15000)
    total = int(count.inner_text().split("/")[1])
    room, first = cmp.evaluate(COMPARE_SIDES)
    fits = sum(s["nat"] for s in first) + 12 <= room
    for i in range(total):
        if i:
            cmp.locator("button[title='forward']").click()
            page.wait_for_function("([el, t]) => el.querySelector('.vmlib-count').textContent === t",
                                   arg=[cmp.element_handle(), f"operation {i + 1}/{total}"], timeout=15000)
        _room, now = cmp.evaluate(COMPARE_SIDES)
        for side, (a, b) in enumerate(zip(first, now)):
            where = f"{name}: Compare side {side + 1}, operation {i + 1}/{total}"
            assert b["small"] >= MIN_TEXT_PX - 0.05, f"{where}: smallest text {b['small']:.1f} px"
            assert (a["top"], a["height"]) == (b["top"], b["height"]), f"{where}: the picture moved {a} -> {b}"
        left, right = now
        if fits:
            assert right["left"] >= left["right"] and right["top"] == left["top"], \
                f"{name}: Compare's sides fit side by side ({room:.0f} px) but stack: {now}"
        else:
            assert right["top"] >= left["top"] + left["height"], f"{name}: Compare's sides overlap: {now}"
    MEASURED[f"{name} compare"] = {"room": room, "side by side": fits, "widths": [s["nat"] for s in first],
                                   "small": min(s["small"] for s in first)}
    return MEASURED[f"{name} compare"]


def assert_no_output_errors(page, name: str) -> None:
    """No cell printed to stderr, and no output failed to render: JupyterLab shows a renderer that
    threw (e.g. one rewriting a link inside an SVG) as "Javascript Error: ..." in the output area."""
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0, f"{name}: {errors.first.inner_text()[:500]}"
    broken = page.locator(".jp-OutputArea-output", has_text="Javascript Error")
    assert broken.count() == 0, f"{name}: an output did not render: {broken.first.inner_text()[:500]}"


def test_every_lesson_reads_in_jupyterlab(page, lab):
    SHOTS.mkdir(parents=True, exist_ok=True)
    checked = {"stepper": 0, "compare": 0, "memmap": 0}
    for nb in LESSONS:
        name = nb.stem
        shut_down_kernels(lab)              # the previous lesson's
        run_lesson(page, lab, nb.name)
        assert_no_output_errors(page, name)
        check_widths(page, name)
        if page.locator(".vmlib-stepper").count():
            checked["five steps"] = max(checked.get("five steps", 0), check_stepper(page, name))
            checked["stepper"] += 1
        if page.locator(".vmlib-compare").count():
            check_compare(page, name)
            checked["compare"] += 1
        if page.locator(".vmlib-memmap-cost").count():
            check_memmap_plot(page, name, "light")
            checked["memmap"] += 1
        if page.locator(".vmlib-playground").count():
            check_playground(page, name)
            checked["playground"] = 1
        first = page.locator(".vmlib-stepper, .vmlib-compare, .vmlib-graph-static").first
        if first.count():
            first.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / f"{name}_light.png"))
    assert checked["stepper"] >= 8 and checked["compare"] >= 2 and checked["memmap"] == 1, checked
    beside = [k for k, v in MEASURED.items() if k.endswith(" compare") and v["side by side"]]
    assert {"03_vmas_and_faults compare", "04_fork_and_cow compare"} <= set(beside), \
        f"Compare's sides stack at 1400x900 in lessons 03/04: {MEASURED}"
    assert checked["five steps"] >= 5, "no stepper was followed over five steps"
    assert checked.get("playground"), "no lesson has a Playground"
    set_theme(page, "JupyterLab Dark")
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached", timeout=30000)
    page.wait_for_timeout(500)
    stepper = page.locator(".vmlib-stepper").first
    stepper.scroll_into_view_if_needed()
    ratio = stepper.locator(".vmlib-graph").evaluate(CONTRAST)
    assert ratio >= 4.5, f"dark theme: graph text contrast {ratio:.1f}:1"
    page.screenshot(path=str(SHOTS / f"{LESSONS[-1].stem}_dark.png"))
    quiz = page.locator(".widget-radio-box input").first
    quiz.scroll_into_view_if_needed()
    quiz.check()
    page.locator(".widget-button", has_text="check").first.click()
    feedback = page.locator(".vmlib-feedback").first
    feedback.wait_for(timeout=15000)
    ratio = feedback.evaluate(TEXT_CONTRAST)
    assert ratio >= 4.5, f"dark theme: quiz feedback contrast {ratio:.1f}:1"
    page.screenshot(path=str(SHOTS / f"{LESSONS[-1].stem}_quiz_dark.png"))
    for name in ("04_fork_and_cow", "02_struct_page_and_memmap"):
        shut_down_kernels(lab)
        run_lesson(page, lab, f"{name}.ipynb")
        page.locator(".vmlib-stepper, .vmlib-compare").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"{name}_dark.png"))
        if page.locator(".vmlib-memmap-cost").count():
            check_memmap_plot(page, name, "dark")
        page.set_viewport_size({"width": 1000, "height": 800})      # a laptop, the file browser open
        was_open = page.locator(".jp-FileBrowser").first.is_visible()
        if not was_open:
            page.locator(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']").first.click()
        page.wait_for_selector(".jp-FileBrowser", state="visible", timeout=15000)
        page.wait_for_timeout(500)
        for i in range(page.locator(".vmlib-stepper").count()):
            MEASURED[f"{name}#{i} 1000x800 dark"] = check_every_step(page, f"{name}#{i} (1000x800, dark)",
                                                                      page.locator(".vmlib-stepper").nth(i),
                                                                      MIN_TEXT_PX)
        check_widths(page, f"{name} (1000x800)")
        if page.locator(".vmlib-compare").count():
            check_compare_steps(page, f"{name} (1000x800, dark)", page.locator(".vmlib-compare").first)
        page.locator(".vmlib-stepper").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"{name}_1000x800_dark.png"))
        if not was_open:
            page.locator(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']").first.click()
        page.set_viewport_size({"width": 1400, "height": 900})
    print("steppers measured:", json.dumps(MEASURED, indent=1))
    shut_down_kernels(lab)


def shut_down_kernels(lab) -> None:
    """Stop the lesson kernels the lab started (each lesson opens its own)."""
    import urllib.request
    base, token = lab
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10) as r:
        sessions = json.load(r)
    for s in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{s['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).close()


# -- the problem sets' steppers (issue 19: "every stepper in every lesson and in ps8/ps9") ----------

PROBLEM_SETS = ("ps8_driver", "ps9_debug")
MAKES_A_PICTURE = r"\b(Stepper|FaultStepper|Compare|show_steps|Playground)\b"


def student_part(name: str) -> tuple[dict, int]:
    """(notebook, steppers): the released exercises/<name> cut before its first answer cell: the
    cells a student runs before writing anything, which make every stepper the notebook shows.
    Fails if a cell from the first answer on makes a picture (this test would have to answer it)."""
    import re
    nb = json.loads((ROOT / "exercises" / name / f"{name}.ipynb").read_text())
    cells = nb["cells"]
    cut = next((i for i, c in enumerate(cells) if c.get("metadata", {}).get("nbgrader", {}).get("solution")),
               len(cells))
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    later = [s for c in cells[cut:] if c["cell_type"] == "code" and re.search(MAKES_A_PICTURE, s := "".join(c["source"]))]
    assert not later, f"{name}: a cell after the first answer makes a picture; give this test an answer for it: {later}"
    kept = [c for c in cells[:cut] if c["cell_type"] == "code"]
    steppers = sum(len(re.findall(r"\b(Stepper|FaultStepper)\(", "".join(c["source"]))) for c in kept)
    assert code, f"{name}: no code cells"
    return {**nb, "cells": cells[:cut]}, steppers


def upload(lab, nb: dict, path: str) -> None:
    """Put a notebook into the lab's root (its contents API), next to the lessons' copy."""
    import urllib.request
    base, token = lab
    body = json.dumps({"type": "notebook", "format": "json", "content": nb}).encode()
    req = urllib.request.Request(f"{base}/api/contents/{path}?token={token}", data=body, method="PUT",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).close()


def test_problem_set_steppers_read_in_jupyterlab(page, lab):
    """ps8 and ps9 as released: every stepper a student sees before answering, walked at 1400x900
    and at 1000x800 with the file browser open, in the light and the dark theme (check_every_step:
    steps per operation, smallest text, stillness, a highlight per step, presentation text)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    walked = 0
    for name in PROBLEM_SETS:
        nb, steppers = student_part(name)
        if not steppers:                       # ps8 shows no stepper: nothing to walk (no kernel started)
            MEASURED[name] = "no stepper in the notebook"
            continue
        upload(lab, nb, f"{name}.ipynb")
        shut_down_kernels(lab)
        run_lesson(page, lab, f"{name}.ipynb")
        assert_no_output_errors(page, name)
        assert page.locator(".vmlib-stepper").count() == steppers, f"{name}: {steppers} steppers made, " \
            f"{page.locator('.vmlib-stepper').count()} shown"
        for theme, light in (("JupyterLab Light", "true"), ("JupyterLab Dark", "false")):
            set_theme(page, theme)
            page.wait_for_selector(f"body[data-jp-theme-light='{light}']", state="attached", timeout=30000)
            page.wait_for_timeout(300)
            tag = "light" if light == "true" else "dark"
            for width, height, files in ((1400, 900, False), (1000, 800, True)):
                page.set_viewport_size({"width": width, "height": height})
                browser = page.locator(".jp-FileBrowser").first
                if browser.is_visible() != files:
                    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']").first.click()
                    page.wait_for_selector(".jp-FileBrowser", state="visible" if files else "hidden", timeout=15000)
                    page.wait_for_timeout(300)
                where = f"{name} {width}x{height}{' files' if files else ''} {tag}"
                for i in range(steppers):
                    stepper = page.locator(".vmlib-stepper").nth(i)
                    if stepper.locator(".vmlib-graph").get_attribute("data-step") == "0":
                        click_and_wait(page, stepper, "forward")        # so that its "first" shows a change
                    MEASURED[f"{where} #{i}"] = check_every_step(page, f"{where} #{i}", stepper,
                                                                 MIN_PRESENTATION_PX if width >= 1400 else MIN_TEXT_PX)
                    walked += 1
                check_widths(page, where)
                page.locator(".vmlib-stepper").first.locator(".vmlib-graph").scroll_into_view_if_needed()
                page.screenshot(path=str(SHOTS / f"{name}_{width}x{height}_{tag}.png"))
        if page.locator(".jp-FileBrowser").first.is_visible():
            page.locator(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']").first.click()
        page.set_viewport_size({"width": 1400, "height": 900})
    assert walked >= 4, f"ps9's stepper was not walked in all four settings ({walked})"
    print("problem-set steppers measured:", json.dumps(MEASURED, indent=1))
    shut_down_kernels(lab)
