"""Grading pipeline: clean verdicts, feedback text, the release's freshness, the nbgrader round trip."""

from __future__ import annotations

import csv
import html as html_lib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vmlib.flags
from vmlib.grading import NotVerifiedHere, check
from vmlib.grading.notebook import checking_cells, parse_checks, verify
from vmlib.grading.runner import run_clean

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import plants

ASSIGNMENTS = sorted(plants.PLANTS)
WRONG_COW = "def is_cow_mapping(vm_flags):\n    return not vm_flags & VM_SHARED\n"


def _verdict(suite: str, cells: list[str], **params) -> dict:
    names = {"ps1.is_cow_mapping": ["is_cow_mapping"], "ps1.memmap": ["memmap_bytes", "break_even_guests"],
             "ps1.classify_mmap": ["classify_mmap"]}[suite]
    [v] = run_clean([{"suite": suite, "params": params, "cells": cells, "bind": {n: {"name": n} for n in names}}],
                    trusted=True)   # sandboxed where bwrap runs (CI), a plain process elsewhere
    return v


def test_feedback_names_case_and_first_divergence():
    v = _verdict("ps1.is_cow_mapping", [WRONG_COW])
    assert not v["passed"]
    assert v["first"].startswith("case 3 (MAP_SHARED, fd opened read-only")
    assert "your is_cow_mapping returned True; the kernel says False because VM_MAYWRITE is cleared" in v["first"]


def test_reference_comes_from_a_clean_process(monkeypatch):
    monkeypatch.setattr(vmlib.flags, "is_cow_mapping", lambda vm_flags: not vm_flags & vmlib.flags.VM_SHARED)
    assert not _verdict("ps1.is_cow_mapping", [WRONG_COW])["passed"]


def test_calling_the_reference_does_not_count():
    cells = [("import vmlib.flags\ndef is_cow_mapping(f):\n    try:\n        return vmlib.flags.is_cow_mapping(f)\n"
             "    except BaseException:\n        return (f & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE\n")]
    v = _verdict("ps1.is_cow_mapping", cells)
    assert not v["passed"] and "called vmlib.flags.is_cow_mapping" in v["first"]


def test_exit_and_endless_loop_cost_only_their_cases():
    cells = [("import os, sys\ndef memmap_bytes(*a):\n    os._exit(0)\ndef break_even_guests(s, p=4096):\n"
             "    while True:\n        pass\n")]
    v = _verdict("ps1.memmap", cells)
    assert "called os._exit(0)" in v["first"] and "did not finish in time" in v["text"]
    assert v["failed"] == v["cases"]


def test_check_refuses_to_grade_inside_autograde(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(NotVerifiedHere):
        check("ps1.is_cow_mapping", vmlib.flags.is_cow_mapping)


def test_parse_checks_reads_literals_only():
    [c] = parse_checks('"""doc"""\ncheck("ps7.choice", fb, driver="fb", expected="PFNMAP")\nx = 1\n')
    assert c == {"suite": "ps7.choice", "params": {"driver": "fb", "expected": "PFNMAP"}, "answers": [{"name": "fb"}]}


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_autograded_test_cell_is_verified_outside(name):
    nb = plants.load(ROOT / "solutions" / name / f"{name}.ipynb")
    tests = [c for c in nb["cells"] if c["cell_type"] == "code" and c["metadata"].get("nbgrader", {}).get("grade")]
    assert len(checking_cells(nb)) == len(tests) > 0
    setup = plants.src(plants.cell(nb, "setup"))
    if name == "ps1_memmap":
        from vmlib.grading.ps1 import PRELUDE
        assert setup.startswith(PRELUDE), "the notebook's setup cell must give what the clean grader gives"


def _release(out: Path, course: Path) -> None:
    cmd = [sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(course), "release", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)


def _cells(path: Path) -> list:
    nb = json.loads(path.read_text())
    return [(c["cell_type"], plants.src(c), c["metadata"].get("nbgrader"), c.get("outputs")) for c in nb["cells"]]


@pytest.mark.slow
def test_exercises_are_current(tmp_path):
    """exercises/ must be what `tools/grade.py release` makes of solutions/ (run it after editing)."""
    _release(tmp_path / "out", tmp_path / "course")
    for name in ASSIGNMENTS:
        for fresh in sorted((tmp_path / "out" / name).glob("*.ipynb")):
            committed = ROOT / "exercises" / name / fresh.name
            assert committed.exists(), f"{committed} is missing: run python tools/grade.py release"
            assert _cells(fresh) == _cells(committed), f"{committed} is stale: run python tools/grade.py release"


def test_solution_cells_have_ids():
    """Every cell of solutions/ has an id, so a release gives the same exercises/ each time."""
    for name in ASSIGNMENTS:
        nb = json.loads((ROOT / "solutions" / name / f"{name}.ipynb").read_text(encoding="utf-8"))
        missing = [n for n, c in enumerate(nb["cells"], 1) if not c.get("id")]
        assert not missing, f"{name}: cells {missing} have no id; give each a stable one"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Autograde every planted submission of every assignment: two runs of tools/grade.py side by side
    (one per core), each on its own course directory; returns (plants, {assignment: course})."""
    tmp = tmp_path_factory.mktemp("grading")
    subs = plants.write_all(tmp / "all")
    groups = [ASSIGNMENTS[0::2], ASSIGNMENTS[1::2]]
    procs, courses = [], {}
    for g, names in enumerate(groups):
        folder = tmp / f"submissions{g}"
        for name in names:
            for plant in subs[name]:
                dest = folder / plant.student / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                (tmp / "all" / plant.student / name).rename(dest)
            courses[name] = tmp / f"course{g}"
        cmd = [sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(tmp / f"course{g}"), "autograde",
               str(folder), "--timeout", "5"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, out + err[-3000:]
    return subs, courses


def _scores(course: Path, name: str, student: str) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(name, name, student)
        return {g.cell.name: (g.auto_score, g.max_score) for g in nb.grades if g.cell.cell_type != "markdown"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_round_trip_scores(graded, name):
    subs, courses = graded
    course = courses[name]
    wrong = [p for p in subs[name] if p.student.startswith("w_")]
    assert len(wrong) >= 2
    for plant in subs[name]:
        scores = _scores(course, name, plant.student)
        assert plant.loses <= set(scores), plant.student
        got = {cell: auto for cell, (auto, _) in scores.items()}
        want = {cell: 0.0 if cell in plant.loses else full for cell, (_, full) in scores.items()}
        assert got == want, f"{plant.student}: {plant.why}"
        if plant in wrong:
            assert 0 < sum(got.values()) < sum(full for _, full in scores.values())


@pytest.mark.slow
def test_grades_csv_feedback_and_no_stderr(graded):
    subs, courses = graded
    for name, ps in subs.items():
        course = courses[name]
        rows = list(csv.DictReader((course / "grades.csv").open()))
        graded_students = {r["student_id"] for r in rows if r["assignment"] == name}
        assert {p.student for p in ps} <= graded_students
        for p in ps:
            html = (course / "feedback" / p.student / name / f"{name}.html").read_text()
            assert "Score" in html
            nb = json.loads((course / "autograded" / p.student / name / f"{name}.ipynb").read_text())
            for c in nb["cells"]:
                if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code":
                    assert not [o for o in c["outputs"] if o.get("name") == "stderr"], (p.student, c["source"])

    def feedback(student: str, name: str) -> str:
        return html_lib.unescape((courses[name] / "feedback" / student / name / f"{name}.html").read_text())

    html = feedback("w_cow_maywrite", "ps1_memmap")
    assert "case 4 (MAP_SHARED, fd opened read-write" in html and "the kernel says False" in html
    ps7 = courses["ps7_design"] / "autograded" / "w_framebuffer" / "ps7_design" / "ps7_design.ipynb"
    assert "you chose MIXEDMAP; the kernel needs PFNMAP" in ps7.read_text()    # hidden: not in feedback
    assert "hidden tests: 0 of 1 points" in feedback("w_framebuffer", "ps7_design")
    html = feedback("w_no_cow_rule", "ps2_pfnmap")
    assert "scenario 'shared framebuffer on RAM: touch, fork, child exits'" in html
    assert "your vm_normal_page returned page" in html and "kernel-facts §1a row 4" in html
    html = feedback("w_gup_fast_special", "ps5_special")
    assert "your gup_fast_pte_ok returned True" in html and "BadPageMap: pfn_to_page" in html
    html = feedback("t_calls_reference", "ps2_pfnmap")
    assert "called vmlib.memory.vm_normal_page, the reference you are asked to write" in html


def _selfcheck(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("NBGRADER_EXECUTION", None)
    return subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, env=env, cwd=cwd)


def test_selfcheck_command_on_release_and_solution():
    tool = [str(ROOT / "tools" / "grade.py"), "selfcheck"]
    bad = _selfcheck(*tool, str(ROOT / "exercises/ps1_memmap/ps1_memmap.ipynb"))
    good = _selfcheck(*tool, str(ROOT / "solutions/ps1_memmap/ps1_memmap.ipynb"))
    assert bad.returncode == 1 and "visible checks: 0 of 5 points" in bad.stdout
    assert good.returncode == 0 and "visible checks: 12 of 12 points" in good.stdout


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_selfcheck_command_works_as_printed(name):
    """The command each exercise prints works from the notebook's folder and from the repository root."""
    import re
    nb = plants.load(ROOT / "exercises" / name / f"{name}.ipynb")
    text = "".join(plants.src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    printed = re.findall(r"`python (-m vmlib\.grading\.selfcheck \S+\.ipynb)`", text)
    assert printed, f"{name} prints no self-check command"
    for cwd in (ROOT / "exercises" / name, ROOT):
        proc = _selfcheck(*printed[0].split(), cwd=cwd)
        assert proc.returncode == 1 and "visible checks: 0 of" in proc.stdout, (cwd, proc.stdout + proc.stderr)


def test_shape_only_checks_never_say_pass(tmp_path):
    """ps7's visible checks and ps6's shape checks look only at the form: they say so."""
    for name in ("ps6_predict", "ps7_design"):
        path = tmp_path / f"{name}.ipynb"
        path.write_text(json.dumps(plants.filled(name)))
        proc = _selfcheck(str(ROOT / "tools" / "grade.py"), "selfcheck", str(path))
        assert "[well-formed]" in proc.stdout and "well-formed; graded by the autograder" in proc.stdout, proc.stdout
        for line in proc.stdout.splitlines():
            assert not ("well-formed" in line and ("[pass]" in line or "agree with the kernel" in line)), line
    nb = plants.filled("ps7_design", choice_framebuffer='framebuffer = "MIXEDMAP"')
    verdicts = verify(nb)
    assert verdicts["test_framebuffer"]["passed"] and verdicts["test_framebuffer"]["shape_only"]
    raised = _run_one("ps6.shape", {"seed": 4}, "table = 5", "table")      # an answer that raises: no "kernel says"
    assert raised["shape_only"] and "your table raised TypeError: the table must be a list" in raised["first"]
    assert "kernel" not in raised["text"], raised["text"]


def _run_one(suite: str, params: dict, cell: str, name: str) -> dict:
    [v] = run_clean([{"suite": suite, "params": params, "cells": [cell], "bind": {name: {"name": name}}}],
                    trusted=True)
    return v


def test_check_in_a_notebook_names_the_cell_by_its_execution_count(monkeypatch, capsys):
    """In JupyterLab a cell shows as [n]: check() names the student's cell that way (IPython's In)."""
    import linecache
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    source = "import no_such_module\ndef is_cow_mapping(f):\n    return False\n"
    filename = "/tmp/ipykernel_0/cell.py"
    monkeypatch.setitem(linecache.cache, filename, (len(source), None, source.splitlines(True), filename))
    user = {"__name__": "__main__", "In": ["", "x = 1", source]}
    exec(compile("def is_cow_mapping(f):\n    return False\n", filename, "exec"), user)  # noqa: S102
    with pytest.raises(AssertionError):
        check("ps1.is_cow_mapping", user["is_cow_mapping"])
    out = capsys.readouterr().out
    assert "note: cell [2] raised ModuleNotFoundError" in out and "(cell [2], line 1)" in out, out
    assert "your cell" not in out and "your the cell" not in out, out


IPY_CELLS = ["""import errno
from vmlib import Driver
from vmlib.flags import PAGE_SHIFT, VM_MIXEDMAP, VM_FAULT_NOPAGE, VM_FAULT_SIGBUS, VM_FAULT_OOM
from vmlib.grading import check""",
             """class Base(Driver):
    def __init__(self, nv):
        self.nv = nv
""",
             """from vmlib.grading.tryout import replay, scenarios


class Blocks(Base):
    def pfn(self, i):
        return self.nv.pfn(i)


class NvramMixed(Driver):
    def __init__(self, nv):
        self.nv = nv

    def mmap(self, k, vma):
        vma.vm_flags |= VM_MIXEDMAP
        return 0

    def fault(self, k, vma, vmf):
        pfn = Blocks(self.nv).pfn(vmf.pgoff)
        if pfn is None:
            return VM_FAULT_SIGBUS
        err = k.vm_insert_mixed(vma, vmf.address, pfn)
        return VM_FAULT_OOM if err == -errno.ENOMEM else VM_FAULT_NOPAGE
""",
             'check("ps8.mixedmap", NvramMixed)']


def test_check_takes_helper_classes_from_other_cells_and_the_workbench_import(monkeypatch, capsys):
    """Issue 20: a driver using a helper class whose base sits in another cell is graded with both cells
    (in the order the notebook ran them), and an answer cell that imports vmlib.grading.tryout runs."""
    from IPython.core.interactiveshell import InteractiveShell
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    shell = InteractiveShell.instance()
    try:
        results = [shell.run_cell(c, store_history=True) for c in IPY_CELLS]
    finally:
        InteractiveShell.clear_instance()
    out = capsys.readouterr().out
    assert results[-1].success, out
    assert "ps8.mixedmap: 7 of 7 scenarios agree with the kernel" in out and "note:" not in out, out


def test_the_autograder_runs_a_helper_cell_the_student_added():
    """A code cell without nbgrader metadata that only defines things (a helper, a base class) is part
    of what the autograder runs; a cell that runs something (a replay) is not."""
    nb = plants.filled("ps8_driver", mixed_driver=IPY_CELLS[2])
    at = next(i for i, c in enumerate(nb["cells"]) if c["metadata"].get("nbgrader", {}).get("grade_id") == "mixed_driver")
    nb["cells"].insert(at, {"cell_type": "code", "metadata": {}, "source": IPY_CELLS[1], "outputs": [],
                            "execution_count": None, "id": "helper"})
    nb["cells"].insert(at, {"cell_type": "code", "metadata": {}, "source": "replay('ps2.vm_normal_page', 1)",
                            "outputs": [], "execution_count": None, "id": "demo"})
    v = verify(nb, trusted=True)["test_mixed_visible"]
    assert v["passed"] and "note:" not in v["text"], v["text"]


def test_feedback_names_cells_as_the_notebook_numbers_them():
    nb = plants.filled("ps1_memmap", classify="import no_such_module\n" + plants.answers("ps1_memmap")["classify"])
    number = 1 + next(i for i, c in enumerate(nb["cells"]) if c["metadata"].get("nbgrader", {}).get("grade_id") == "classify")
    text = verify(nb)["test_classify_visible"]["text"]
    assert f"notebook cell {number} raised ModuleNotFoundError" in text and f"(notebook cell {number}, line 1)" in text, text


# ---- simulator-graded suites (ps2-ps6), without nbgrader -------------------------------------

def _sim(suite: str, cell: str, name: str, **params) -> dict:
    [v] = run_clean([{"suite": suite, "params": params, "cells": [cell], "bind": {name: {"name": name}}}],
                    trusted=True)
    return v


def test_sim_feedback_names_scenario_step_and_consequence():
    v = _sim("ps2.vm_normal_page", plants.NP_NO_LINEAR, "vm_normal_page")
    assert not v["passed"] and v["failed"] == 2
    first = v["first"]
    assert first.startswith("scenario 'private /dev/mem of device memory: write, fork, child writes, exits' "
                            "(2.6.25/x86) step 2 (parent: write 0x40001000): for a pte (pfn 65537, device memory")
    assert "your vm_normal_page raised BadPageMap: pfn_to_page: pfn 65537 has no struct page" in first
    assert "the kernel returns NULL (special) (kernel-facts §1a row 3)" in first
    ram = v["text"].split("also: ")[1]
    assert "your vm_normal_page returned page" in ram
    assert "consequence: step 2 (parent: write 0x40001000): BadPageState: page_remove_rmap: mapcount" in ram


def test_sim_consequence_in_the_kernel_is_bad_page_map():
    v = _sim("ps5.gup_fast_pte_ok", plants.GF_IGNORES_SPECIAL, "gup_fast_pte_ok")
    assert "consequence: step 3 (parent: get_user_pages_fast(0x40000000, 1, write)): BadPageMap: pfn_to_page: " \
           "pfn 65536 has no struct page" in v["first"]
    assert "(kernel: KernelError: get_user_pages: page at 0x40000000 cannot be taken (-EFAULT))" in v["first"]


def test_sim_wrong_answer_that_derails_a_scenario_is_reported_as_its_step():
    """A remap_pfn_range_check refusing every COW vma makes mmap fail; later steps then raise
    (munmap of nothing): each is that step's outcome, never a crash of the run (sim.World.step)."""
    for params in ({}, {"cases": "hidden", "seed": 1}):
        v = _sim("ps2.remap_pfn_range_check", plants.REMAP_COW_EINVAL, "remap_pfn_range_check", **params)
        assert 0 < v["failed"] < v["cases"], v["text"]
        assert "step 1 (parent: mmap" in v["first"] and "your remap_pfn_range_check returned -EINVAL" in v["first"]


def test_sim_step_that_raises_anything_is_its_outcome():
    from vmlib.grading.sim import FAILED, Scenario, play

    def run(w):
        w.step("parent: a step that trips over a missing mapping", lambda: (_ for _ in ()).throw(ValueError("boom")))
        w.step("parent: the next step", lambda: 0)
        raise KeyError("between steps")

    w = play(Scenario("derailed", "2.6.26", "x86", run), (), None, {})
    assert [o for _, o, _ in w.steps] == [f"{FAILED}ValueError: boom", "returned 0", f"{FAILED}KeyError: 'between steps'"]


def test_sim_answers_of_the_wrong_form_are_failures_not_crashes():
    from vmlib.grading.sim import _event_answer
    for fn, forged in (("remap_pfn_range_check", [0]), ("vm_normal_page", {"page": "x"}), ("gup_fast_pte_ok", 1),
                       ("insert_mixed_decision", {"a": 1}), ("do_wp_page_decision", None)):
        assert _event_answer(fn, {"i": 0, "result": forged}, "ok") == {"failed": "sent an answer of the wrong form"}
    assert _event_answer("remap_pfn_range_check", {"i": 0, "result": -22}, "ok") == -22


def test_sim_reference_under_another_name_trips():
    for cell in (plants.NP_CALLS_REF, plants.NP_CALLS_REF_INSIDE):
        v = _sim("ps2.vm_normal_page", cell, "vm_normal_page")
        assert v["failed"] == v["cases"] and "called vmlib.memory.vm_normal_page" in v["first"]
    v = _sim("ps3.insert_mixed_decision", plants.IM_CALLS_REF, "insert_mixed_decision")
    assert v["failed"] == v["cases"] and "called vmlib.memory.insert_mixed_decision" in v["first"]


def test_sim_reference_is_computed_in_a_clean_process(monkeypatch):
    import vmlib.memory
    wrong = {}
    exec(plants.NP_NO_COW_RULE, {"VM_PFNMAP": vmlib.flags.VM_PFNMAP}, wrong)  # noqa: S102
    monkeypatch.setattr(vmlib.memory, "vm_normal_page", wrong["vm_normal_page"])
    assert not _sim("ps2.vm_normal_page", plants.NP_NO_COW_RULE, "vm_normal_page")["passed"]
    assert not _sim("ps2.vm_normal_page", plants.NP_MONKEY, "vm_normal_page")["passed"]


def test_sim_right_answers_pass_hidden_seeds():
    for name, suite, cell in (("ps2_pfnmap", "ps2.vm_normal_page", "normal_page"),
                              ("ps5_special", "ps5.gup_fast_pte_ok", "gup_fast")):
        fn = suite.split(".")[1]
        for seed in (1, 2):
            v = _sim(suite, plants.answers(name)[cell], fn, cases="hidden", seed=seed)
            assert v["passed"], v["text"]


@pytest.mark.parametrize("name", ["ps2_pfnmap", "ps3_mixedmap", "ps4_cow", "ps5_special"])
def test_sim_notebook_setup_gives_what_the_grader_gives(name):
    import importlib
    prelude = importlib.import_module(f"vmlib.grading.{name.split('_')[0]}").PRELUDE
    nb = plants.load(ROOT / "solutions" / name / f"{name}.ipynb")
    assert plants.src(plants.cell(nb, "setup")).startswith(prelude)


def test_ps6_notebook_shows_the_graded_sequences():
    from vmlib.grading.ps6 import describe
    nb = plants.load(ROOT / "solutions" / "ps6_predict" / "ps6_predict.ipynb")
    text = "".join(plants.src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    seeds = [c["params"]["seed"] for _, checks in checking_cells(nb) for c in checks]
    assert sorted(set(seeds)) == [1, 2, 4]
    for seed in set(seeds):
        assert describe(seed) in text, f"the notebook does not show sequence {seed}: regenerate it"


# ---- the instructor's workflow: nbgrader's exchange and submitted/ folder ----------------------

def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_exchange_round_trip_two_students_and_autograde_in_place(tmp_path):
    """release_assignment, fetch_assignment and submit as two students, collect, then the documented
    `tools/grade.py autograde COURSE/submitted`: both are graded and no submission is lost or changed."""
    name, course, exchange = "ps7_design", tmp_path / "course", tmp_path / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)
    grade = [sys.executable, ROOT / "tools" / "grade.py", "--course", course]
    nbgrader = [sys.executable, "-m", "nbgrader"]
    # Two students on one machine account: nbgrader names a student by the uid's login (on a
    # JupyterHub each student has their own), so the student commands take it from $USER here.
    code = ("import os, sys, nbgrader.utils as u; u.get_osusername = lambda: os.environ['USER']; "
            "from nbgrader.apps.nbgraderapp import main; sys.argv[0] = 'nbgrader'; main()")
    as_student = [sys.executable, "-c", code]
    ex = f"--Exchange.root={exchange}"
    _run(grade + ["release", "--out", tmp_path / "out", name])
    instructor = dict(os.environ, NBGRADER_EXCHANGE=str(exchange))      # nbgrader_config.py reads it
    _run(nbgrader + ["release_assignment", name, f"--CourseDirectory.root={course}"], cwd=ROOT, env=instructor)
    answers = {"alice": plants.answers(name), "bob": {**plants.answers(name), "choice_framebuffer": 'framebuffer = "MIXEDMAP"'}}
    for student, cells in answers.items():
        home = tmp_path / student
        home.mkdir()
        env = dict(os.environ, HOME=str(home), USER=student, LOGNAME=student)
        _run(as_student + ["fetch_assignment", name, "--course=vmlib-mixedmap", ex], cwd=home, env=env)
        path = home / name / f"{name}.ipynb"
        nb = json.loads(path.read_text())
        for grade_id, source in cells.items():
            plants.cell(nb, grade_id)["source"] = source
        path.write_text(json.dumps(nb))
        _run(as_student + ["submit", name, "--course=vmlib-mixedmap", ex], cwd=home, env=env)
    _run(nbgrader + ["collect", name, f"--CourseDirectory.root={course}"], cwd=ROOT, env=instructor)
    submitted = course / "submitted"
    before = _files(submitted)
    assert {k.split("/")[0] for k in before} == {"alice", "bob"} and any(k.endswith("timestamp.txt") for k in before)
    proc = _run(grade + ["autograde", submitted, "--timeout", "5"])
    assert _files(submitted) == before, "autograde changed or lost a collected submission"
    assert "graded 2 of 2 submissions" in proc.stderr
    alice, bob = (_scores(course, name, s) for s in ("alice", "bob"))
    assert all(auto == full for auto, full in alice.values()), alice
    assert bob["test_framebuffer"][0] == 0 and all(a == f for c, (a, f) in bob.items() if c != "test_framebuffer")
    again = _run(grade + ["autograde", submitted, "--timeout", "5"])      # again: nothing regenerated, same grades
    assert "generated ps7_design" not in again.stderr and _files(submitted) == before


@pytest.mark.slow
def test_autograde_leaves_an_outside_folder_as_it_was(tmp_path):
    subs = tmp_path / "subs"
    for student, plant in (("alice", "a_good"), ("bob", "w_framebuffer")):
        nb = next(p for p in plants.ps7_plants() if p.student == plant).build()
        (subs / student / "ps7_design").mkdir(parents=True)
        (subs / student / "ps7_design" / "ps7_design.ipynb").write_text(json.dumps(nb))
    before = _files(subs)
    course = tmp_path / "course"
    _run([sys.executable, ROOT / "tools" / "grade.py", "--course", course, "autograde", subs, "--timeout", "5"])
    assert _files(subs) == before
    assert _files(course / "submitted") == before
    graded_alice = (course / "autograded" / "alice" / "ps7_design" / "ps7_design.ipynb").stat().st_mtime_ns
    later = tmp_path / "later"            # a later folder with one more student: only that one is graded
    (later / "carol" / "ps7_design").mkdir(parents=True)
    (later / "carol" / "ps7_design" / "ps7_design.ipynb").write_text(json.dumps(plants.filled("ps7_design")))
    proc = _run([sys.executable, ROOT / "tools" / "grade.py", "--course", course, "autograde", later, "--timeout", "5"])
    assert "graded 1 of 1 submissions" in proc.stderr
    assert (course / "autograded" / "alice" / "ps7_design" / "ps7_design.ipynb").stat().st_mtime_ns == graded_alice
    assert _scores(course, "ps7_design", "carol")["test_framebuffer"] == (1.0, 1.0)
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(course), "autograde",
                           str(course / "autograded")], check=False, capture_output=True, text=True)
    assert proc.returncode != 0 and "give its submitted/ folder" in proc.stderr


def _grade_tool():
    """tools/grade.py as a module (tools/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("grade_tool", ROOT / "tools" / "grade.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_autograde_exports_the_grades_of_the_batches_that_went_through(tmp_path, monkeypatch, capsys):
    """tools/grade.py autograde: one failed batch makes the exit status 1, but grades.csv is still
    exported for everyone else (docs/instructors.md step 5), and the output never names a csv that
    was not written."""
    from vmlib.grading import sandbox
    tool = _grade_tool()
    monkeypatch.setattr(sandbox, "require", lambda trusted, unsafe_no_sandbox: True)
    monkeypatch.setattr(tool, "find_submissions", lambda folder, known: {"ps7_design": ["alice", "bob"]})
    monkeypatch.setattr(tool, "collect_into", lambda course, folder, found: None)
    monkeypatch.setattr(tool, "prepare", lambda course, names: None)
    monkeypatch.setattr(tool, "run_workers", lambda *args: ["a grading worker died grading ps7_design (bob)"])
    csv_path, calls = tmp_path / "grades.csv", []
    for export_rc in (0, 1):
        calls.clear()
        monkeypatch.setattr(tool, "nbgrader", lambda course, *args, rc=export_rc:
                            calls.append(args) or subprocess.CompletedProcess(args, rc))
        assert tool.autograde(tmp_path / "course", tmp_path / "subs", csv_path, None) == 1
        assert calls == [("export", f"--to={csv_path}")]
        out = capsys.readouterr().out
        assert (f"grades: {csv_path}" in out) == (export_rc == 0), out


def test_autograde_names_the_batches_no_worker_was_left_to_grade(tmp_path, monkeypatch):
    """run_workers: when every worker ends early (here none starts), the batches still queued are
    failures that name their students, not silently dropped."""
    import io

    tool = _grade_tool()

    class NoWorker:
        def __init__(self, *args, **kwargs):
            self.stdin, self.stdout = io.StringIO(), io.StringIO("")

        def wait(self):
            return 1

    monkeypatch.setattr(tool.subprocess, "Popen", NoWorker)
    items = tool.batches({"ps1_memmap": ["alice", "bob", "carol"], "ps7_design": ["dave"]}, 2)
    failures = tool.run_workers(tmp_path, items, tool.Progress(4), 2, None, False, {})
    assert failures.count("a grading worker did not start (tools/nbgrader/batch.py; see above)") == 2
    assert sorted(f for f in failures if f.startswith("not graded")) == [
        "not graded (no grading worker left): ps1_memmap (alice, bob)",
        "not graded (no grading worker left): ps1_memmap (carol)",
        "not graded (no grading worker left): ps7_design (dave)"]


@pytest.mark.slow
def test_autograde_writes_the_misconception_report_and_similarity_finds_the_copies(graded):
    _, courses = graded
    course = courses["ps2_pfnmap"]
    page = course / "reports" / "ps2_pfnmap" / "misconceptions.html"
    rows = list(csv.DictReader((page.parent / "misconceptions.csv").open()))
    places = {r["place"]: int(r["students"]) for r in rows}
    assert places.get("§1a row 4", 0) >= 2, places      # w_no_cow_rule and t_monkeypatch diverge there
    assert "kernel-facts.html#s1a-row-4" in page.read_text()
    assert not list((course / "feedback").rglob("misconceptions*")), "reports never go to students"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(course), "similarity",
                          "ps2_pfnmap"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    pairs = list(csv.DictReader((course / "reports" / "ps2_pfnmap" / "similarity.csv").open()))
    top = {(r["a"], r["b"]) for r in pairs if r["grade_id"] == "normal_page" and r["flagged"] == "True"}
    assert ("a_solution", "reference") in top


def _sim_suites() -> list[str]:
    from vmlib.grading import sim
    from vmlib.grading.suites import get_suite
    for n in range(2, 12):
        try:
            get_suite(f"ps{n}.?")
        except ValueError:
            pass
    return sorted(sim.SCENARIOS)


@pytest.mark.parametrize("suite_id", _sim_suites())
def test_sim_a_run_answered_as_the_reference_answers_is_the_reference_run(suite_id):
    """sim.grade does not play a scenario again when the student's answers give every question of its
    reference run the reference's answer (sim.same_answers); that is sound only if such a run asks the
    same questions and takes the same steps, which this checks for every simulator suite, visible and
    hidden, against a run played with those answers."""
    from vmlib.grading import sim
    from vmlib.grading.suites import get_suite
    fns = get_suite(suite_id).names
    for params in ({}, {"cases": "hidden", "seed": 7}):
        for sc in sim.SCENARIOS[suite_id](params):
            ref = sim.play(sc, fns, None, {})
            answers = {sim.key_of(c["q"]): c["ref"] for c in ref.calls}
            unknown: dict = {}
            got = sim.play(sc, fns, answers, unknown)
            assert sim.same_answers(ref, answers) and not unknown, sc.name
            assert got.steps == ref.steps and got.calls == ref.calls, sc.name
            if ref.calls:     # one answer changed: the run must be played again
                key = sim.key_of(ref.calls[0]["q"])
                assert not sim.same_answers(ref, {**answers, key: {"failed": "raised ValueError"}})
                assert not sim.same_answers(ref, {k: v for k, v in answers.items() if k != key})


def test_sim_a_question_asked_twice_with_two_reference_answers_is_never_taken_as_answered():
    from vmlib.grading import sim
    w = sim.World(sim.Scenario("twice", "2.6.26", "x86", lambda w: None), {})
    q = {"fn": "vm_normal_page", "addr": 0}
    w.calls = [{"q": q, "ref": None}, {"q": q, "ref": {"page": 3}}]
    assert not sim.same_answers(w, {sim.key_of(q): None})
    assert not sim.same_answers(w, {sim.key_of(q): {"page": 3}})
    assert not sim.same_answers(w, {})                        # a missing answer is not the answer None


def test_sim_ps9_fix_runs_answered_as_the_reference_answers_are_the_reference_runs():
    """The same for ps9's fix check (sim.grade over fix_scenarios), for every mutation's own and hidden runs."""
    from vmlib.grading import ps9, sim
    from vmlib.grading.ps9_mutations import MUTATIONS
    for m in MUTATIONS:
        for sc in ps9.fix_scenarios(m, {"cases": "hidden", "seed": 3}):
            ref = sim.play(sc, (m.fn,), None, {})
            answers = {sim.key_of(c["q"]): c["ref"] for c in ref.calls}
            got = sim.play(sc, (m.fn,), answers, {})
            assert sim.same_answers(ref, answers), (m.id, sc.name)
            assert got.steps == ref.steps and got.calls == ref.calls, (m.id, sc.name)
