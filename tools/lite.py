"""Build the course as an offline JupyterLite site under build/lite/.

    python -m tools.lite            # then: python3 -m http.server -d build/lite 8000

Everything the site loads is vendored, so it works with no network: the Pyodide core from
the npm package `pyodide`, the wheels its kernel needs (micropip, packaging, ipython and
their dependencies, ipywidgets, anywidget) from PyPI, and vmlib as a wheel built here. The JupyterLite
tools run from their own venv, build/lite-env/. The npm package carries only Pyodide's core,
so the site's `pyodide-lock.json` is rewritten to list just the two packages the kernel loads
from it (micropip, packaging) with the hashes of the PyPI wheels used; every other package
comes from the site's own piplite index, with the PyPI fallback switched off. Graphviz runs in the page:
the npm package @viz-js/viz (WebAssembly) is served as static/vmlib/viz.js (vmlib.views.browserdot).
The site carries anywidget's lab extension (from the tools' venv), so the Stepper steps there.
Each lesson copied into the site gets a first cell installing vmlib, ipywidgets and anywidget.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
OUT = BUILD / "lite"
WORK = BUILD / "lite-work"
ENV = BUILD / "lite-env"

LITE_TOOLS = ["jupyterlite-core==0.8.6", "jupyterlite-pyodide-kernel==0.8.6", "jupyter_server",
              "jupyterlab_widgets", "anywidget==0.11.0"]    # anywidget: its lab extension runs the Stepper
VIZ_VERSION = "3.31.0"          # @viz-js/viz: Graphviz as WebAssembly, draws the vma and physical graphs
PYODIDE_VERSION = "314.0.6"     # the one jupyterlite-pyodide-kernel 0.8.6 is built for
PYODIDE_PYTHON = "3.14"
LOCKED = ["micropip", "packaging"]   # what the kernel loads through pyodide-lock.json
KERNEL_DEPS = ["ipython==9.12.0", "comm", "ipywidgets", "jedi", "anywidget==0.11.0"]
SHIMMED = ["widgetsnbextension"]     # the pyodide kernel ships its own stand-in
INSTALL_CELL = "%pip install -q vmlib ipywidgets anywidget"


def run(cmd: list, **kw) -> None:
    """Run cmd, raising with its output when it fails."""
    r = subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True, **kw)
    if r.returncode:
        raise SystemExit(f"lite: {' '.join(map(str, cmd))} failed:\n{r.stdout}\n{r.stderr}")


def lite_env() -> Path:
    """The venv with the JupyterLite tools (made once); returns its bin dir."""
    bin_dir = ENV / "bin"
    done = ENV / "tools.txt"
    if not done.exists() or done.read_text() != "\n".join(LITE_TOOLS):
        run([sys.executable, "-m", "venv", ENV])
        run([bin_dir / "pip", "install", "-q", *LITE_TOOLS])
        done.write_text("\n".join(LITE_TOOLS))
    return bin_dir


def pip_download(bin_dir: Path, dest: Path, reqs: list) -> None:
    """Download pure-Python wheels of reqs (and their dependencies) for Pyodide's Python."""
    run([bin_dir / "pip", "download", "-q", "--only-binary=:all:", "--implementation", "py",
         "--abi", "none", "--platform", "any", "--python-version", PYODIDE_PYTHON,
         "-d", dest, *reqs])


def npm_viz(static: Path) -> None:
    """Put @viz-js/viz's self-contained ES module (its WebAssembly inlined) at static/vmlib/viz.js,
    where vmlib.views.browserdot loads it from."""
    dest = WORK / "npm-viz"
    pkg = dest / "package"
    if not (pkg / "dist" / "viz.js").exists():
        dest.mkdir(parents=True, exist_ok=True)
        run(["npm", "pack", "--silent", f"@viz-js/viz@{VIZ_VERSION}"], cwd=dest)
        with tarfile.open(dest / f"viz-js-viz-{VIZ_VERSION}.tgz") as tar:
            tar.extractall(dest, filter="data")
    target = static / "vmlib"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(pkg / "dist" / "viz.js", target / "viz.js")


def npm_pyodide(dest: Path) -> Path:
    """Unpack the npm package pyodide@PYODIDE_VERSION into dest; returns its folder."""
    pkg = dest / "package"
    if not (pkg / "pyodide.mjs").exists():
        dest.mkdir(parents=True, exist_ok=True)
        run(["npm", "pack", "--silent", f"pyodide@{PYODIDE_VERSION}"], cwd=dest)
        with tarfile.open(dest / f"pyodide-{PYODIDE_VERSION}.tgz") as tar:
            tar.extractall(dest, filter="data")
    return pkg


def sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assemble_pyodide(bin_dir: Path, static: Path) -> None:
    """Put Pyodide's core and the LOCKED wheels in static/pyodide with a lock listing only them."""
    core = npm_pyodide(WORK / "npm")
    target = static / "pyodide"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(core, target, ignore=shutil.ignore_patterns("*.map", "*.d.ts", "*.md",
                                                                 "console*.html", "package.json"))
    lock = json.loads((core / "pyodide-lock.json").read_text())
    wanted = {n: lock["packages"][n] for n in LOCKED}
    pip_download(bin_dir, target, [f"{n}=={p['version']}" for n, p in wanted.items()])
    for entry in wanted.values():
        wheel = target / entry["file_name"]
        if not wheel.exists():
            raise SystemExit(f"lite: PyPI gave no {wheel.name} for Pyodide's lock")
        entry["sha256"] = sha256(wheel)
    lock["packages"] = wanted
    (target / "pyodide-lock.json").write_text(json.dumps(lock, indent=1))


def vmlib_wheel(dest: Path) -> None:
    """Build the vmlib wheel into dest."""
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dest, ROOT])


def lesson_copy(src: Path, dest: Path) -> None:
    """Copy a lesson, adding a first cell that installs vmlib and ipywidgets from the site."""
    nb = json.loads(src.read_text())
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": [INSTALL_CELL]}
    nb["cells"].insert(0, cell)
    dest.write_text(json.dumps(nb, indent=1))


def site_config(lite_dir: Path) -> None:
    """jupyter-lite.json: no PyPI fallback, and overrides that keep the lab from fetching news."""
    settings = {"@jupyterlite/pyodide-kernel-extension:kernel": {"disablePyPIFallback": True}}
    config = {"jupyter-lite-schema-version": 0,
              "jupyter-config-data": {"litePluginSettings": settings}}
    (lite_dir / "jupyter-lite.json").write_text(json.dumps(config, indent=1))
    overrides = json.loads((ROOT / "tools" / "lab-overrides.json").read_text())
    (lite_dir / "overrides.json").write_text(json.dumps(overrides, indent=1))


def build(out: Path = OUT) -> Path:
    """Build the offline site into out; returns out."""
    bin_dir = lite_env()
    lite_dir = WORK / "src"
    wheels = WORK / "wheels"
    contents = WORK / "contents"
    for d in (lite_dir, wheels, contents):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    assemble_pyodide(bin_dir, lite_dir / "static")
    pip_download(bin_dir, wheels, KERNEL_DEPS)
    for name in SHIMMED:
        for w in wheels.glob(f"{name}-*.whl"):
            w.unlink()
    vmlib_wheel(wheels)
    for nb in sorted((ROOT / "course").glob("*.ipynb")):
        lesson_copy(nb, contents / nb.name)
    shutil.copy(ROOT / "course" / "kernel-facts.html", contents)   # the sheet the lessons' § links open
    site_config(lite_dir)
    shutil.rmtree(out, ignore_errors=True)
    cmd = [bin_dir / "jupyter", "lite", "build", "--lite-dir", lite_dir, "--contents", contents,
           "--output-dir", out]
    for w in sorted(wheels.glob("*.whl")):
        cmd += ["--piplite-wheels", w]
    run(cmd, cwd=WORK)
    point_kernel_home(out)
    npm_viz(out / "static")          # the build copies no other file of lite_dir/static
    return out


def point_kernel_home(out: Path) -> None:
    """Make the site's kernel load Pyodide from static/pyodide and never fall back to PyPI.

    The build writes the piplite index list into jupyter-lite.json but (0.8.6) drops these
    two settings, so they are set here on the built file.
    """
    path = out / "jupyter-lite.json"
    config = json.loads(path.read_text())
    plugins = config["jupyter-config-data"].setdefault("litePluginSettings", {})
    kernel = plugins.setdefault("@jupyterlite/pyodide-kernel-extension:kernel", {})
    kernel["pyodideUrl"] = "./static/pyodide/pyodide.mjs"
    kernel["disablePyPIFallback"] = True
    path.write_text(json.dumps(config, indent=2))


if __name__ == "__main__":
    print(f"built {build()}")
