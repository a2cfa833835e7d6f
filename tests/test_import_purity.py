"""`import vmlib` loads only the standard library and vmlib itself (DESIGN section 2)."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = ("ipywidgets", "graphviz", "matplotlib", "IPython", "numpy")

PROBE = """
import json, sys
before = set(sys.modules)
import vmlib
new = sorted(set(sys.modules) - before)
print(json.dumps({"all": sorted(sys.modules), "new": new, "file": vmlib.__file__}))
"""


def loaded_by_import_vmlib() -> dict:
    """Import vmlib in a fresh interpreter run from the repo root; report the modules loaded."""
    proc = subprocess.run([sys.executable, "-c", PROBE], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"`import vmlib` failed in a fresh interpreter:\n{proc.stderr}"
    return json.loads(proc.stdout.splitlines()[-1])


def is_allowed(module: str) -> bool:
    """True for standard-library modules and vmlib's own."""
    top = module.split(".")[0]
    return top == "vmlib" or top in sys.stdlib_module_names or top in sys.builtin_module_names


def test_import_vmlib_loads_no_view_or_science_library():
    loaded = loaded_by_import_vmlib()
    bad = [m for m in loaded["all"] if m.split(".")[0] in FORBIDDEN]
    assert not bad, f"import vmlib loaded {bad}; views must import these lazily (vmlib.views only)"


def test_import_vmlib_loads_only_stdlib_and_vmlib():
    loaded = loaded_by_import_vmlib()
    assert loaded["file"], "vmlib has no __init__.py (it imported as a namespace package)"
    assert Path(loaded["file"]).resolve().is_relative_to(ROOT / "vmlib"), loaded["file"]
    outsiders = [m for m in loaded["new"] if not is_allowed(m)]
    assert not outsiders, f"import vmlib loaded non-stdlib modules: {outsiders}"


def test_probe_sees_a_third_party_import():
    """The check itself can fail: a third-party module imported alongside vmlib is caught."""
    code = PROBE.replace("import vmlib\n", "import vmlib\nimport pytest\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    new = json.loads(proc.stdout.splitlines()[-1])["new"]
    assert [m for m in new if not is_allowed(m)], "pytest import was not detected as non-stdlib"


def test_import_vmlib_views_and_facts_load_no_plotting_library():
    """The views package and the fact-sheet helpers import matplotlib only when a plot is drawn."""
    code = PROBE.replace("import vmlib\n", "import vmlib, vmlib.views, vmlib.facts, vmlib.measure\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.splitlines()[-1])["all"]
    bad = [m for m in loaded if m.split(".")[0] in ("matplotlib", "ipywidgets", "numpy")]
    assert not bad, f"import vmlib.views / vmlib.facts / vmlib.measure loaded {bad[:5]}"


def test_views_name_the_course_extra_when_a_library_is_missing():
    code = ("import sys; sys.modules['ipywidgets'] = None\n"
            "try:\n    from vmlib.views import Practice\n"
            "except ModuleNotFoundError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True,
                         timeout=60).stdout
    assert "vmlib.views.Practice needs ipywidgets" in out and "pip install 'vmlib[course]'" in out, out


def test_version_is_the_packages():
    import vmlib
    text = (ROOT / "pyproject.toml").read_text()       # no tomllib: it is 3.11+
    assert 'dynamic = ["version"]' in text and 'version = {attr = "vmlib.__version__"}' in text
    assert re.fullmatch(r"\d+\.\d+\.\d+", vmlib.__version__), vmlib.__version__
