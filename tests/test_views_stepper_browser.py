"""The Stepper's front end (vmlib/views/stepper.js) in headless Chromium, on its self-contained
HTML (the same module the anywidget runs): predict mode asks before it reveals, says right or
wrong with the deciding row and what the wrong choice would have broken, and nothing visible
(text, picture, title, alt, aria) tells the answer before the student chose."""

import json
import tempfile

import pytest
from conftest import ROOT, find_chromium
from test_views_browser import CHROMIUM_ARGS
from test_views_stepper import fork_then_writes

from vmlib.views.stepper import Stepper

pytestmark = pytest.mark.browser
SHOTS = ROOT / "build" / "views"

VISIBLE = """root => { const out = [root.innerText];
    for (const el of root.querySelectorAll('*')) {
        for (const a of ['title', 'alt', 'aria-label', 'aria-description', 'placeholder', 'value'])
            if (el.getAttribute(a)) out.push(el.getAttribute(a));
        if (el.tagName.toLowerCase() === 'title') out.push(el.textContent);
    }
    for (const d of root.querySelectorAll('details:not([open]) pre')) out.push('CLOSED:' + d.textContent);
    return out; }"""


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=find_chromium(), headless=True,
                                                    args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


def open_stepper(page, widget, tmp_path, theme="light"):
    bg, ink = ("#fff", "#111") if theme == "light" else ("#111", "#eee")
    path = tmp_path / "stepper.html"
    path.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="background:{bg};'
                    f'color:{ink};font-family:sans-serif;max-width:1100px">{widget.static_html()}</body></html>')
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector(".vmlib-stepper .vmlib-graph svg")
    return errors


def visible_texts(page) -> list[str]:
    texts = page.locator(".vmlib-stepper").evaluate(VISIBLE)
    return [t for t in texts if not t.startswith("CLOSED:")]


def test_predict_wrong_then_right(page, tmp_path):
    w = Stepper(fork_then_writes(), ops_only=True, predict=True)
    q1, q2 = w.questions[:2]
    frames = w.sides[0]["frames"]
    errors = open_stepper(page, w, tmp_path)
    root = page.locator(".vmlib-stepper")
    forward = root.locator("button[title='forward']")

    for q in (q1, q2):
        forward.click()
        if q is q1:                                # forward again does not skip the question
            root.locator(".vmlib-ask[data-state='asking']").wait_for()
            forward.click()
        check_asking(page, root, q, frames)
        if q is q2:
            break
        page.screenshot(path=str(SHOTS / "stepper_predict_ask_light.png"))
        wrong = next(k for k, c in enumerate(q1["choices"]) if not c["right"])
        root.locator(".vmlib-choices button").nth(wrong).click()
        reveal = root.locator(".vmlib-ask[data-state='wrong']")
        reveal.wait_for()
        text = reveal.inner_text()
        assert "✘" in text and q1["row"] in text and q1["choices"][wrong]["why"] in text, text
        assert root.locator(".vmlib-graph").get_attribute("data-frame") == str(q1["step"])
        page.screenshot(path=str(SHOTS / "stepper_predict_wrong_light.png"))

    # the second question: answer it right
    right = next(k for k, c in enumerate(q2["choices"]) if c["right"])
    root.locator(".vmlib-choices button").nth(right).click()
    reveal = root.locator(".vmlib-ask[data-state='right']")
    reveal.wait_for()
    text = reveal.inner_text()
    assert "✔" in text and q2["row"] in text and "Had it been" not in text, text
    lead = w.sides[0]["lead"]                   # a lead-in frame is "before step 1", not a step: the headline
    ops = len(frames) - lead                    # counts operations as the picture's title does
    assert root.locator(".vmlib-event b").first.inner_text().startswith(f"step {q2['step'] + 1 - lead}/{ops}: ")
    assert f"step {q2['step'] + 1 - lead}/{ops}: " in frames[q2["step"]]["svg"]
    assert errors == []


def check_asking(page, root, q, frames) -> None:
    """The question is asked over the step before it, and nothing visible tells its answer."""
    ask = root.locator(".vmlib-ask[data-state='asking']")
    ask.wait_for()
    assert q["prompt"] in ask.inner_text()
    assert root.locator(".vmlib-graph").get_attribute("data-frame") == str(q["step"] - 1)
    shown = "\n".join(visible_texts(page))
    decided = q["explain"].split(": ", 1)[1].rstrip(".")
    headline = frames[q["step"]]["headline"]     # secret unless it only names the operation asked about
    for secret in (decided, "" if headline in q["prompt"] else headline, "✔", "✘", "Right", "Not this time"):
        assert not secret or secret not in shown, f"{secret!r} is visible before the student answered"
    labels = root.locator(".vmlib-choices button").all_inner_texts()
    assert labels == [c["label"] for c in q["choices"]]


def test_dark_theme_and_no_prediction_mode(page, tmp_path):
    w = Stepper(fork_then_writes(), ops_only=True, predict=False)
    errors = open_stepper(page, w, tmp_path, theme="dark")
    root = page.locator(".vmlib-stepper")
    for i in range(1, len(w)):
        root.locator("button[title='forward']").click()
        page.wait_for_function(f"() => document.querySelector('.vmlib-graph').dataset.step === '{i}'")
        assert root.locator(".vmlib-ask").inner_text() == "", "no question outside predict mode"
    page.screenshot(path=str(SHOTS / "stepper_dark.png"))
    assert errors == []


def test_stepper_widget_in_jupyterlab(page, tmp_path, monkeypatch):
    """The anywidget in a real JupyterLab: it steps, the kernel's `step` follows the browser,
    and it keeps stepping after the kernel is shut down (no round trip per click)."""
    import functools
    import urllib.request

    import nbformat
    import test_views_browser
    from test_views_browser import run_all, serve_lab
    # a loaded machine may take longer than 40 s to start a lab: wait for it
    monkeypatch.setattr(test_views_browser, "wait_for_server",
                        functools.partial(test_views_browser.wait_for_server, timeout=180))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys; sys.path.insert(0, 'tests')\n"
                                          "from test_views_stepper import fork_then_writes\n"
                                          "from vmlib.views import Stepper\n"
                                          "w = Stepper(fork_then_writes(), ops_only=False)\nw"),
                nbformat.v4.new_code_cell("print('STEP', w.step)")]
    folder = tmp_path / "lab"
    (folder / "tests").mkdir(parents=True)
    nbformat.write(nb, str(folder / "stepper.ipynb"))
    (folder / "tests" / "test_views_stepper.py").write_text((ROOT / "tests" / "test_views_stepper.py").read_text())
    (folder / "tests" / "conftest.py").write_text("")
    lab = serve_lab(folder)
    base, token = next(lab)
    tab = page.context.new_page()
    try:
        tab.goto(f"{base}/lab/tree/stepper.ipynb?token={token}")
        tab.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90000)
        tab.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90000)
        run_all(tab)
        root = tab.locator(".vmlib-stepper")
        root.locator(".vmlib-graph svg").wait_for(timeout=90000)
        assert root.locator(".vmlib-controls").count() == 1
        for i in (1, 2, 3):
            root.locator("button[title='forward']").click()
            tab.wait_for_function(f"() => document.querySelector('.vmlib-graph').dataset.step === '{i}'",
                                  timeout=30000)
        # the kernel saw the browser's step: run the second cell again
        tab.locator(".jp-Notebook .jp-Cell").nth(1).click()
        tab.keyboard.press("Shift+Enter")
        tab.wait_for_function("() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
                              ".some(e => e.innerText.includes('STEP 3'))", timeout=90000)
        tab.screenshot(path=str(SHOTS / "stepper_jupyterlab_light.png"))
        # stop the kernel: stepping goes on in the browser
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=30) as r:
            kernels = json.load(r)
        assert kernels, "no kernel to stop"
        for k in kernels:
            req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
            urllib.request.urlopen(req, timeout=30).close()
        root.locator("button[title='forward']").click()
        tab.wait_for_function("() => document.querySelector('.vmlib-graph').dataset.step === '4'", timeout=30000)
    finally:
        tab.close()
        lab.close()


def test_practice_without_a_kernel(page, tmp_path, monkeypatch):
    """A deck's Practice (its static HTML): nothing of an answer before "check"; then right/wrong
    per answered question, compared as vmlib.practice.normalise compares."""
    from vmlib.practice import normalise
    from vmlib.views import Practice
    from vmlib.views.practice_static import STATIC_ENV
    monkeypatch.setenv(STATIC_ENV, "1")
    w = Practice("cow", seed=5)
    bundle = w._repr_mimebundle_()
    body = (bundle[0] if isinstance(bundle, tuple) else bundle)["text/html"]
    monkeypatch.delenv(STATIC_ENV)
    plain = w._repr_mimebundle_()
    assert "text/html" not in (plain[0] if isinstance(plain, tuple) else plain), "answers in a live notebook"
    path = tmp_path / "practice.html"
    path.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{body}</body></html>')
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    root = page.locator(".vmlib-practice-static")
    root.locator("button", has_text="check").wait_for()
    solution = {a.question.qid: a.value for a in w.problem.solve().answers}
    shown = root.inner_text()
    assert "§" not in shown and "right" not in shown and "not quite" not in shown
    for q in w.problem.questions:
        if q.choices:
            assert root.locator("select, input").nth(list(solution).index(q.qid)).evaluate(
                "s => Array.from(s.options).map(o => o.text)") == ["(choose)", *q.choices]
    first, second = w.problem.questions[:2]
    boxes = root.locator("select, input")
    typed = {first.qid: f"  {solution[first.qid].upper()} ", second.qid: "certainly not this"}
    for i, q in enumerate((first, second)):
        box = boxes.nth(i)
        if q.choices:
            choice = solution[q.qid] if q is first else next(c for c in q.choices if c != solution[q.qid])
            box.select_option(choice)
            typed[q.qid] = choice
        else:
            box.fill(typed[q.qid])
    root.locator("button", has_text="check").click()
    result = root.locator(".vmlib-practice-result").inner_text()
    assert f"{first.qid}: right" in result, result
    assert f"{second.qid}: not quite" in result and "not answered" in result, result
    for q in w.problem.questions[2:]:
        assert f"{q.qid}:" not in result, "an unanswered question's answer was shown"
    samples = ["  3 Pages", "b'p'", "'x' / 'y'", "--2", "Refcount  2 / mapcount 1", "ref 1 page"]
    assert errors == []
    # the page's own normalise against Python's
    got = page.evaluate("s => s.map(x => window.vmlibNormalise ? window.vmlibNormalise(x) : null)", samples)
    assert got == [normalise(s) for s in samples], got


@pytest.mark.notebook
def test_stepper_works_in_exported_html(page, tmp_path):
    """nbconvert's HTML of an executed notebook (no widget state saved, JupyterLab's default) shows
    the Stepper's self-contained HTML: it steps offline, with nothing fetched from the network."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
                                          "from test_views_stepper import fork_then_writes\n"
                                          "from vmlib.views import Stepper\n"
                                          "Stepper(fork_then_writes(), ops_only=True)")]
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False).execute()
    body, _ = HTMLExporter().from_notebook_node(nb)
    path = tmp_path / "exported.html"
    path.write_text(body, encoding="utf-8")
    fetched = []
    page.context.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                       else (fetched.append(r.request.url), r.abort()))
    try:
        page.goto(path.as_uri())
        root = page.locator(".vmlib-stepper")
        root.locator(".vmlib-graph svg").wait_for(timeout=15000)
        root.locator("button[title='forward']").click()
        page.wait_for_function("() => document.querySelector('.vmlib-graph').dataset.step === '1'")
    finally:
        page.context.unroute("**/*")
    assert not [u for u in fetched if "widget" in u or "anywidget" in u], fetched
