"""A real browser drives a FaultStepper: JupyterLab on a free port with a token, Debian's Chromium
through Playwright; runs the demo notebook, clicks forward three times, checks that the SVG and
the event text change each time and match the trace, and writes light and dark screenshots
to build/ (views_light.png, views_dark.png)."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, find_chromium

pytestmark = [pytest.mark.browser]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
NOTEBOOK = ROOT / "tests" / "fixtures" / "views_demo.ipynb"
BUILD = ROOT / "build"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, proc, timeout: float = 40) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout} s")


def serve_lab(files, overrides: dict | None = None):
    """(base url, token) of a JupyterLab serving a copy of `files` (a notebook or a folder),
    with the news pop-up off and `overrides` added to its settings; all its state in a temp dir."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, settings = tmp / "root", tmp / "app-settings"
        if files.is_dir():
            shutil.copytree(files, root)
        else:
            root.mkdir()
            shutil.copy(files, root / files.name)
        settings.mkdir()
        (settings / "overrides.json").write_text(json.dumps({
            "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
            **(overrides or {})}))
        port, token = free_port(), secrets.token_hex(16)
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
               "JUPYTER_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(ROOT), "HOME": str(tmp)}
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
               f"--LabApp.app_settings_dir={settings}", f"--LabApp.user_settings_dir={tmp / 'user-settings'}",
               f"--LabApp.workspaces_dir={tmp / 'workspaces'}", "--ServerApp.open_browser=False"]
        log = open(tmp / "lab.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_server(f"{base}/api/status?token={token}", proc)
            yield base, token
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


@pytest.fixture
def lab():
    """(base url, token) of a JupyterLab serving a copy of the demo notebook."""
    yield from serve_lab(NOTEBOOK)


def stepper_state(page) -> tuple[str, str, str]:
    """(data-step, event text, svg markup) of the stepper on the page."""
    ev = page.locator(".vmlib-stepper .vmlib-event").first
    svg = page.locator(".vmlib-stepper .vmlib-graph svg").first
    return ev.get_attribute("data-step"), ev.inner_text(), svg.evaluate("e => e.outerHTML")


def select_kernel(page) -> None:
    """Answer JupyterLab's "Select Kernel" dialog, when it asks, with the default (Python 3)."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        dialog.locator("button.jp-mod-accept").first.click()
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90000)


def run_all(page) -> None:
    """Run every cell from the top (Shift+Enter per cell), waiting for each to finish."""
    page.wait_for_timeout(1000)
    select_kernel(page)
    cells = page.locator(".jp-Notebook .jp-Cell")
    cells.first.click()
    page.keyboard.press("Escape")
    for i in range(cells.count()):
        page.keyboard.press("Shift+Enter")
        if "jp-CodeCell" in (cells.nth(i).get_attribute("class") or ""):
            prompt = cells.nth(i).locator(".jp-InputPrompt")
            deadline = time.monotonic() + 90
            while True:
                if page.locator(".jp-Dialog").count():   # "Select Kernel" came late (a busy machine) and
                    select_kernel(page)                  # swallowed the run: answer it, run the cell again
                    prompt.click()
                    page.keyboard.press("Escape")
                    page.keyboard.press("Shift+Enter")
                try:
                    page.wait_for_function("e => /\\[\\d+\\]/.test(e.textContent)", arg=prompt.element_handle(),
                                           timeout=5000)
                    break
                except Exception:                  # not yet: look again until the deadline
                    if time.monotonic() > deadline:
                        raise


def set_theme(page, name: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Theme", exact=True).hover()
    page.locator(".lm-Menu-itemLabel").get_by_text(name, exact=True).click()


def test_fault_stepper_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright
    base, token = lab
    BUILD.mkdir(exist_ok=True)
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=find_chromium(), headless=True,
                                                    args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = ctx.new_page()
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90000)
            run_all(page)
            try:
                page.wait_for_selector(".vmlib-stepper .vmlib-graph svg", timeout=90000)
            except Exception:  # noqa: BLE001 - report what was visible instead of a bare timeout
                page.screenshot(path=str(BUILD / "views_failure.png"))
                outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
                pytest.fail(f"no stepper appeared (screenshot build/views_failure.png); outputs: {outputs}")
            out = page.locator(".jp-OutputArea-output", has_text="EXPECTED ").first.inner_text()
            expected = json.loads(out.split("EXPECTED ", 1)[1].strip().splitlines()[0])
            assert len(expected) >= 4
            step, text, svg = stepper_state(page)
            assert step == "0" and expected[0] in text
            forward = page.locator(".vmlib-stepper button[title='forward']")
            for i in range(1, 4):
                forward.click()
                page.wait_for_selector(f".vmlib-stepper .vmlib-event[data-step='{i}']", timeout=30000)
                page.wait_for_selector(f".vmlib-stepper .vmlib-graph[data-step='{i}'] svg", timeout=30000)
                new_step, new_text, new_svg = stepper_state(page)
                assert new_step == str(i)
                assert new_text != text and new_svg != svg, f"forward click {i} changed nothing"
                assert expected[i] in new_text, f"step {i} shows {new_text!r}, the trace says {expected[i]!r}"
                assert f"step {i + 1}/{len(expected)}" in new_svg, "the graph is the one of this step"
                text, svg = new_text, new_svg
            page.locator(".vmlib-stepper").first.scroll_into_view_if_needed()
            page.screenshot(path=str(BUILD / "views_light.png"))
            set_theme(page, "JupyterLab Dark")
            page.wait_for_selector("body[data-jp-theme-light='false']", state="attached", timeout=30000)
            page.wait_for_timeout(500)  # let the theme's colours settle before the screenshot
            page.locator(".vmlib-stepper").first.scroll_into_view_if_needed()
            page.screenshot(path=str(BUILD / "views_dark.png"))
        finally:
            ctx.close()
    for name in ("views_light.png", "views_dark.png"):
        assert (BUILD / name).stat().st_size > 10000
