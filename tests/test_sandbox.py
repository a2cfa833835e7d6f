"""The grading sandbox: what student code can see, write and start, and attacks on a whole class run.

Unit tests drive one sandboxed student side (vmlib.grading.sandbox.StudentSide) directly; the
slow test grades every attack of tests/fixtures/submissions/attacks.py between two honest
students with the instructor's command (tools/grade.py autograde). Under CI a machine where
bubblewrap cannot run fails these tests; elsewhere they skip, saying why.
"""

from __future__ import annotations

import ctypes
import marshal
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import ROOT, in_ci

from vmlib.grading import sandbox
from vmlib.grading.runner import run_clean

sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
import attacks

REFERENCES = ("vmlib.flags:is_cow_mapping", "vmlib.memory:vm_normal_page", "vmlib.grading.ps6:answer_key",
              "vmlib.grading.ps1:classify_mmap")


def need_sandbox() -> None:
    why = sandbox.problem()
    if why is None:
        return
    if in_ci():
        pytest.fail(f"no grading sandbox and CI is set, so this is a failure, not a skip: {why}", pytrace=False)
    pytest.skip(f"no grading sandbox here: {why}")


@pytest.fixture(scope="module")
def side():
    need_sandbox()
    with sandbox.StudentSide(REFERENCES, sandboxed=True) as s:
        yield s


def probe(side, cell: str, limit: float = 3.0):
    """Run `cell` in the sandbox and return the value it leaves in `answer`."""
    request = {"cells": [cell], "bind": {"x": {"name": "answer"}}, "prelude": "",
               "cases": [{"label": "probe", "fn": "x", "args": []}], "run_case": "vmlib.grading.suites:plain_value"}
    events, ended = side.run(request, limit, 4 * limit)
    results = [e for e in events if isinstance(e, dict) and "result" in e]
    assert ended == "ok" and results, (ended, events)
    return results[0]["result"]


def test_sees_only_its_own_processes(side):
    pids, kill = probe(side, f"""
import os
pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
try:
    os.kill({os.getpid()}, 0)
    kill = 'signalled the grader'
except OSError as e:
    kill = type(e).__name__
answer = [pids, kill]
""")
    assert max(pids) < 20 and os.getpid() not in pids, pids
    assert kill == "ProcessLookupError"


def test_cannot_read_the_course_or_the_real_vmlib(side, tmp_path):
    secret = tmp_path / "gradebook.db"
    secret.write_text("key")
    paths = [ROOT, ROOT / "solutions", ROOT / "build", ROOT / "vmlib", sandbox.VMLIB / "grading" / "ps6.py",
             secret, Path(sys.executable).parent, Path.home() / ".bash_history"]
    seen = probe(side, f"import os\nanswer = [p for p in {[str(p) for p in paths]!r} if os.path.exists(p)]")
    assert seen == []
    files = probe(side, "import os, vmlib.grading\n"
                        "answer = sorted(f for f in os.listdir(os.path.dirname(vmlib.grading.__file__)) if f.endswith('.py'))")
    assert files == ["__init__.py", "child.py", "ps1.py", "ps6.py", "sim.py", "suites.py"]


def test_writes_only_to_its_small_tmpfs(side):
    result = probe(side, """
import os
answer = {}
for path in ('/x', '/usr/x', '/grader/lib/vmlib/x', '/grader/lib/vmlib/flags.py', '/proc/sys/kernel/pid_max',
             '/proc/self/oom_score_adj', '/dev/x', '/tmp/ok'):
    try:
        with open(path, 'ab'):
            pass
        answer[path] = 'writable'
    except OSError as e:
        answer[path] = type(e).__name__
try:
    with open('/tmp/big', 'wb') as f:
        f.write(b'x' * (32 << 20))
    answer['big'] = 'written'
except OSError as e:
    answer['big'] = e.errno
""")
    assert result.pop("/tmp/ok") == "writable"
    assert result.pop("big") == 27            # EFBIG: RLIMIT_FSIZE
    assert "writable" not in result.values(), result


def test_memory_processes_and_syscalls_are_limited(side):
    result = probe(side, """
import os, subprocess, threading
answer = {}
try:
    hog = bytearray(6 << 30)
    answer['6 GiB'] = 'allocated'
except MemoryError:
    answer['6 GiB'] = 'MemoryError'
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    answer['fork'] = 'forked'
except OSError as e:
    answer['fork'] = type(e).__name__
try:
    subprocess.run(['true'])
    answer['exec'] = 'ran'
except OSError as e:
    answer['exec'] = type(e).__name__
t = threading.Thread(target=lambda: None)
t.start(); t.join()
answer['thread'] = 'ok'
""")
    assert result == {"6 GiB": "MemoryError", "fork": "BlockingIOError", "exec": "BlockingIOError", "thread": "ok"}


def test_no_reference_by_any_route(side):
    result = probe(side, """
import glob, importlib, importlib.util, marshal, os
import vmlib, vmlib.flags
answer = {}

def outcome(fn, *args):
    try:
        return repr(fn(*args))
    except BaseException as e:
        return str(e)

importlib.reload(vmlib.flags)
answer['reload'] = outcome(vmlib.flags.is_cow_mapping, 0x20)
spec = importlib.util.spec_from_file_location('other', vmlib.flags.__file__)
other = importlib.util.module_from_spec(spec)
spec.loader.exec_module(other)
answer['other name'] = outcome(other.is_cow_mapping, 0x20)
ns = {}
for pyc in glob.glob(os.path.dirname(vmlib.flags.__file__) + '/__pycache__/flags*.pyc'):
    exec(marshal.loads(open(pyc, 'rb').read()[16:]), ns)
answer['pyc'] = outcome(ns['is_cow_mapping'], 0x20)
answer['source'] = 'vm_flags & VM_SHARED' in vmlib.source('is_cow_mapping')
import vmlib.grading.ps6
answer['answer_key'] = outcome(vmlib.grading.ps6.answer_key, 1)
answer['memory'] = outcome(vmlib.memory.vm_normal_page, None, None, 0, None)
try:
    import vmlib.grading.runner
    answer['runner'] = 'imported'
except ImportError as e:
    answer['runner'] = type(e).__name__
""")
    missing = "is_cow_mapping is the function you are asked to write; vmlib does not provide it while grading"
    assert result["reload"] == result["other name"] == result["pyc"] == missing
    assert result["source"] is False
    assert result["answer_key"].startswith("answer_key is the function you are asked to write")
    assert result["memory"].startswith("vm_normal_page is the function")
    assert result["runner"] == "ModuleNotFoundError"


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def test_stripped_copy_holds_no_code_of_the_graded_functions():
    import importlib
    lib = sandbox.student_lib(REFERENCES)
    real = set()
    for ref in REFERENCES:
        module, name = ref.split(":")
        real |= {(c.co_code, c.co_names) for c in _code_objects(getattr(importlib.import_module(module), name).__code__)}
    stubs = set()
    for path in lib.rglob("*"):
        if path.suffix == ".py":
            code = compile(path.read_text(), str(path), "exec")
        elif path.suffix == ".pyc":
            code = marshal.loads(path.read_bytes()[16:])
        else:
            continue
        for c in _code_objects(code):
            assert (c.co_code, c.co_names) not in real, f"{path} holds the code of {c.co_name}"
            if "not_provided" in c.co_names and c.co_name != "<module>":
                stubs.add(c.co_name)
    assert stubs == {ref.split(":")[1] for ref in REFERENCES}
    assert not (lib / "vmlib" / "grading" / "runner.py").exists()
    assert "answer_key" not in (lib / "vmlib" / "grading" / "ps1.py").read_text()


def test_strip_source_removes_definitions_and_says_when_one_is_missing():
    src = "X = 1\n\ndef f(a):\n    return a + X\n\ndef g():\n    return f(2)\n"
    out = sandbox.strip_source(src, "m", {"f"})
    assert "return a + X" not in out and "return f(2)" in out and "not_provided('m.f')" in out
    with pytest.raises(ValueError, match=r"m has no top-level definition of \['h'\]"):
        sandbox.strip_source(src, "m", {"f", "h"})


def _descendants(pid: int) -> set[int]:
    parents = {}
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                parents[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            pass
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        found.add(p)
        todo += [c for c, pp in parents.items() if pp == p and c not in found]
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _spin(stop_server: bool) -> dict:
    """A check whose case ignores every signal it can and spins (and first stops the server, if asked)."""
    cell = ("import os, signal\ndef answer():\n"
            "    for s in (signal.SIGALRM, signal.SIGINT, signal.SIGTERM, signal.SIGXCPU):\n"
            "        signal.signal(s, signal.SIG_IGN)\n"
            + ("    os.kill(os.getppid(), signal.SIGSTOP)\n" if stop_server else "")
            + "    while True:\n        pass\n")
    return {"cells": [cell], "bind": {"x": {"name": "answer"}}, "prelude": "", "run_case": None,
            "cases": [{"label": "probe", "fn": "x", "args": []}]}


def test_a_step_that_ignores_every_signal_is_stopped_by_the_server_and_the_sandbox_goes_on():
    """The server in the sandbox kills a worker whose step outlives its alarm (child.STEP_GRACE past
    it): the check ends as "timeout" and the same sandbox serves the next check."""
    need_sandbox()
    with sandbox.StudentSide(REFERENCES, sandboxed=True) as s:
        assert probe(s, "answer = 1") == 1
        _events, ended = s.run(_spin(stop_server=False), 1.0, 4.0)
        assert ended == "timeout"
        assert probe(s, "answer = 2") == 2
        assert s.starts == 1


def test_a_step_that_also_stops_the_server_is_killed_from_outside_with_all_its_processes():
    need_sandbox()
    with sandbox.StudentSide(REFERENCES, sandboxed=True) as s:
        assert probe(s, "answer = 1") == 1
        before = _descendants(s.proc.pid)
        assert len(before) >= 3                   # bwrap, its init in the namespace, the server
        _events, ended = s.run(_spin(stop_server=True), 1.0, 4.0)
        assert ended in ("timeout", "ok"), ended    # ok: stopped before it passed the cell's event on, the
                                                    # server made the cell look stuck: run again without it
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in before) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in before if _alive(p)]
        assert probe(s, "answer = 2") == 2        # a fresh sandbox for what follows
        assert s.starts == 2


def _request(cell: str, cases: int = 1) -> dict:
    return {"cells": [cell], "bind": {"x": {"name": "answer"}}, "prelude": "", "run_case": "vmlib.grading.suites:plain_value",
            "cases": [{"label": f"probe {i}", "fn": "x", "args": []} for i in range(cases)]}


FLOODS = {   # what a worker can write into its own event pipe (the only pipe it holds)
    "big events": 'event = (\'{"i": 0, "result": "\' + "x" * 900_000 + \'"}\\n\').encode()\n',
    "many events": 'event = b\'{"i": 0, "result": 1}\\n\' * 10_000\n',
}


@pytest.mark.parametrize("flood", sorted(FLOODS))
def test_an_event_flood_is_cut_and_held_to_a_bounded_size(side, flood):
    """Issue 22: well-formed result events written into the worker's own pipe grew the grader to 3 GiB.
    A check returns at most one event per cell and case (+2), MAX_EVENT_BYTES each, MAX_CHECK_BYTES
    in all; past that it is killed as "flood", and the runner held no more than that."""
    in_case = "def answer():\n" + _flooding(flood, "    ") + "    return answer\n"     # a case floods
    events, ended = side.run({**_request(in_case, cases=3), "run_case": None}, 5.0, 20.0)
    assert ended == "flood", (ended, len(events))
    assert len(events) <= 1 + 3 + 2 and sum(len(repr(e)) for e in events) <= sandbox.MAX_CHECK_BYTES
    assert probe(side, "answer = 4") == 4


def _flooding(flood: str, indent: str = "") -> str:
    """Code that writes FLOODS[flood] into every pipe it holds, then sets `answer`."""
    code = FLOODS[flood] + ("import os, stat\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n"
                            "        if stat.S_ISFIFO(os.fstat(int(fd)).st_mode):\n"
                            "            for _ in range(3000):\n                os.write(int(fd), event)\n"
                            "    except OSError:\n        pass\nanswer = 1\n")
    return "".join(indent + line + "\n" for line in code.splitlines())


def test_a_flood_from_a_case_ends_its_check_and_one_from_a_cell_is_not_run_again():
    """A flood while a case runs ends that check as "flood"; a cell that floods is remembered like one
    that does not finish: the check is run again without it, later checks skip it (no more restarts),
    and what it defines is missing with the reason."""
    need_sandbox()
    from vmlib.grading.runner import clean_events, explain_stopped
    in_case = "def answer():\n" + _flooding("big events", "    ") + "    return answer\n"
    cells = ["def f():\n    return 1\n", _flooding("many events") + "def g():\n    return 2\n"]
    with sandbox.StudentSide(REFERENCES, sandboxed=True, budget=20.0) as s:
        request = {**_request(in_case), "run_case": None}
        assert s.run(request, 5.0, 20.0)[1] == "flood" and s.stopped == {}
        for _ in range(2):
            events, ended = s.run(_checks(cells, ["f", "g"]), 5.0, 25.0)
            assert ended == "ok"
            got = {e["i"]: e for e in explain_stopped(clean_events(events), cells, s.stopped) if "i" in e}
            assert got[0]["result"] == 1 and "cell 2 sent the grader too much output" in got[1]["stopped"], got
        assert s.starts == 3         # the first start, after the case's flood, after the cell's: no more


def test_a_submission_shares_one_time_budget_between_its_checks():
    """Issue 22: a submission sleeping to the limit in every check made a class run 26x longer. Its
    checks share `budget` seconds of running, one step at most STEP_SHARE of it; a check that passes
    the budget, and every later one, ends as "budget" (feedback: time budget used), and an honest
    check still runs within it."""
    need_sandbox()
    budget = 4.0
    sleep = f"import time\ntime.sleep({0.9 * sandbox.STEP_SHARE * budget})\nanswer = 5\n"   # just inside a step
    with sandbox.StudentSide(REFERENCES, sandboxed=True, budget=budget) as s:
        assert s.step(5.0) == sandbox.STEP_SHARE * budget
        assert s.run(_request("answer = 5"), 5.0, 20.0)[1] == "ok"
        ends = [s.run(_request(sleep), 5.0, 20.0)[1] for _ in range(int(1 / sandbox.STEP_SHARE) + 1)]
        assert ends[0] == "ok" and ends[-1] == "budget" and ends.count("budget") <= 2, ends
        assert s.run(_request("answer = 5"), 5.0, 20.0) == ([], "budget")
        assert budget <= s.spent < budget + 0.5, s.spent           # cut at the budget, not a step later
        assert s.stopped == {} and s.stopped_fns == {}              # a step that finished is not remembered
    assert "time budget used" in sandbox.UNFINISHED["budget"] and "too much output" in sandbox.UNFINISHED["flood"]


def _checks(cells: list[str], fns: list[str]) -> dict:
    return {"cells": cells, "bind": {f: {"name": f} for f in fns}, "prelude": "", "run_case": None,
            "cases": [{"label": f, "fn": f, "args": []} for f in fns]}


LOOPING_CELLS = ["def f():\n    return 1\n",
                 "while True:\n    pass\ndef g():\n    return 2\n",                       # obeys its alarm
                 ("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ndef h():\n    return 3\n"
                 "while True:\n    pass\n")]                                              # ignores it


def test_a_cell_that_does_not_finish_costs_its_time_once():
    """Issue 22: a loop at the top of a cell timed out in every check until the budget was used, so the
    student lost every cell. Now the cell defines nothing, is remembered, and no later check runs it;
    what it defines is missing (and says why), the other cells' answers are graded as usual."""
    need_sandbox()
    from vmlib.grading.runner import clean_events, explain_stopped
    budget = 8.0
    with sandbox.StudentSide(REFERENCES, sandboxed=True, budget=budget) as s:
        for n in range(3):
            events, ended = s.run(_checks(LOOPING_CELLS, ["f", "g", "h"]), 5.0, 25.0)
            assert ended == "ok", (n, ended)
            got = {e["i"]: e for e in explain_stopped(clean_events(events), LOOPING_CELLS, s.stopped) if "i" in e}
            assert got[0] == {"i": 0, "result": 1}
            for i, k in ((1, 2), (2, 3)):
                assert got[i]["stopped"].startswith(f"is not defined: your cell {k} did not finish in time"), got
            setup = next(e["setup"] for e in events if "setup" in e)
            assert [e.split(" did not")[0] for e in setup["errors"]] == ["cell 2", "cell 3"], setup
            assert all("not run again" in e for e in setup["errors"]), setup      # the first check ran again
        assert set(s.stopped) == {2, 3} and s.starts == 1                       # without the cell that hung
        other = ["def f():\n    return 1\n", "def g():\n    return 2\n", "def h():\n    return 3\n"]
        events, ended = s.run(_checks(other, ["f", "g", "h"]), 5.0, 25.0)          # other sources: run
        assert ended == "ok" and [e.get("result") for e in events if "i" in e] == [1, 2, 3]


def test_a_function_that_does_not_finish_is_not_called_in_later_checks():
    need_sandbox()
    cells = ["def f():\n    return 1\n", "def g():\n    while True:\n        pass\n",
             ("import signal\ndef h():\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n"
             "        pass\n")]
    with sandbox.StudentSide(REFERENCES, sandboxed=True, budget=8.0) as s:
        events, ended = s.run(_checks(cells, ["f", "g"]), 5.0, 25.0)
        assert ended == "ok" and "did not finish in time" in events[-1]["raised"]
        events, ended = s.run(_checks(cells, ["h", "f"]), 5.0, 25.0)
        assert ended == "timeout"                        # stopped by the server; f's case is lost with it
        assert s.starts == 1 and {fn for fn, _ in s.stopped_fns} == {"g", "h"}
        events, ended = s.run(_checks(cells, ["g", "h", "f"]), 5.0, 25.0)
        assert ended == "ok"
        got = [e for e in events if "i" in e]
        assert all(e["raised"].startswith("was not called: it did not finish in time") for e in got[:2]), got
        assert got[2]["result"] == 1


def _world_readable_python() -> str | None:
    """This Python, or a system python3 of the same version, if any user can run it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for exe in (sandbox._python(), f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if os.path.exists(exe) and sandbox._world_readable(exe) and \
                sandbox._world_readable(os.path.dirname(os.path.dirname(os.path.realpath(exe)))):
            return exe
    return None


def test_as_root_the_sandbox_is_an_unprivileged_user_outside_too(monkeypatch):
    need_sandbox()
    if os.geteuid() != 0:
        pytest.skip("grading as a normal user: bwrap runs as that user already")
    exe = _world_readable_python()
    if exe is None:
        pytest.skip(f"no {sys.version_info.major}.{sys.version_info.minor} interpreter that user {sandbox.NOBODY} "
                    "can read: the sandbox runs as root outside its namespace (see vmlib/grading/sandbox.py)")
    monkeypatch.setattr(sandbox, "INTERPRETER", exe)
    monkeypatch.setattr(sandbox, "_PROBED", {})
    assert sandbox.outside_user() == sandbox.NOBODY
    with sandbox.StudentSide(REFERENCES, sandboxed=True) as s:
        fds = probe(s, "import os\nanswer = os.access('/proc/2/fd', os.R_OK)")
        uids = set()
        for pid in _descendants(s.proc.pid):
            with open(f"/proc/{pid}/status") as f:
                uids |= {int(line.split()[1]) for line in f if line.startswith("Uid:")}
    assert uids == {sandbox.NOBODY} and fds is False


def test_a_crash_costs_only_its_check(side):
    request = {"cells": ["import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"], "bind": {"x": {"value": 1}},
               "prelude": "", "cases": [{"label": "probe", "fn": "x", "args": []}], "run_case": None}
    probe(side, "answer = 2")
    starts = side.starts
    assert side.run(request, 2.0, 8.0) == ([], "died")
    assert probe(side, "answer = 3") == 3 and side.starts == starts


def _always_true_verdict() -> str:
    """How the visible ps1.is_cow_mapping check judges an answer that is always True."""
    from vmlib.grading.suites import get_suite
    cases = get_suite("ps1.is_cow_mapping").make_cases({})
    return f"ps1.is_cow_mapping: {sum(c.expected is True for c in cases)} of {len(cases)} cases agree"


ALWAYS_TRUE_VERDICT = _always_true_verdict()


def test_forged_output_is_only_an_answer():
    need_sandbox()
    [v] = run_clean([{"suite": "ps1.is_cow_mapping", "params": {}, "cells": [attacks.FORGE],
                      "bind": {"is_cow_mapping": {"name": "is_cow_mapping"}}}], 2.0)
    assert not v["passed"] and v["text"].startswith(ALWAYS_TRUE_VERDICT), v["text"]


def test_untrusted_work_needs_a_sandbox(monkeypatch):
    monkeypatch.setitem(sandbox._PROBED, "result", "bubblewrap (bwrap) is not installed: " + sandbox.INSTALL)
    checks = [{"suite": "ps1.is_cow_mapping", "params": {},
               "cells": ["import vmlib.flags\ndef is_cow_mapping(f):\n    return vmlib.flags.is_cow_mapping(f)\n"],
               "bind": {"is_cow_mapping": {"name": "is_cow_mapping"}}}]
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap.*--unsafe-no-sandbox"):
        run_clean(checks)
    for kwargs in ({"trusted": True}, {"unsafe_no_sandbox": True}):
        [v] = run_clean(checks, 2.0, **kwargs)      # a plain process, still without the reference
        assert "called vmlib.flags.is_cow_mapping, the reference you are asked to write" in v["first"]


def test_run_check_in_process_opens_a_sandbox_or_refuses(monkeypatch):
    from vmlib.grading.runner import run_check
    need_sandbox()
    check = {"suite": "ps1.is_cow_mapping", "params": {}, "bind": {"is_cow_mapping": {"name": "is_cow_mapping"}},
             "cells": ["def is_cow_mapping(vm_flags):\n    return True\n"]}
    assert run_check(check, 2.0)["text"].startswith(ALWAYS_TRUE_VERDICT)
    monkeypatch.setitem(sandbox._PROBED, "result", "bubblewrap (bwrap) is not installed")
    with pytest.raises(sandbox.SandboxUnavailable):
        run_check(check, 2.0)


def test_autograde_refuses_without_bwrap_and_touches_nothing(tmp_path):
    subs = tmp_path / "submissions" / "alice" / "ps1_memmap"
    subs.mkdir(parents=True)
    (subs / "ps1_memmap.ipynb").write_text("{}")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(tmp_path / "course"),
                           "autograde", str(tmp_path / "submissions")], env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode != 0
    assert "bubblewrap (bwrap) is not installed" in proc.stderr and "--unsafe-no-sandbox" in proc.stderr
    assert not (tmp_path / "course").exists() and (subs / "ps1_memmap.ipynb").read_text() == "{}"


# ---- a class with attackers, graded with the instructor's command -----------------------------------

def _scores(course: Path, name: str, student: str) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(name, name, student)
        return {g.cell.name: (g.auto_score, g.max_score) for g in nb.grades if g.cell.cell_type != "markdown"}


def _leftovers(before: frozenset = frozenset()) -> list[str]:
    """Processes an attack or a sandbox left: our new children and orphans (we are their subreaper),
    and 'atk-' names; `before` lists our children from before (other tests' sandboxes)."""
    out = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if fields[0] != "Z" and (int(fields[1]) == os.getpid() or comm.startswith("atk-")) and d not in before:
            out.append(f"{d} {comm}")
    return out


@pytest.mark.slow
def test_attacks_earn_nothing_and_honest_students_keep_full_marks(tmp_path):
    need_sandbox()
    import json
    plants = attacks.attack_plants()
    for plant in plants:
        path = tmp_path / "submissions" / plant.student / attacks.NAME / f"{attacks.NAME}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(plant.build()))
    before = frozenset(x.split()[0] for x in _leftovers())
    libc = ctypes.CDLL(None)
    libc.prctl(36, 1, 0, 0, 0)                     # PR_SET_CHILD_SUBREAPER: orphans come to us
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(tmp_path / "course"),
                               "autograde", str(tmp_path / "submissions"), "--timeout", "5"],
                              capture_output=True, text=True, timeout=900, check=False)
        time.sleep(0.5)
        left = _leftovers(before)
    finally:
        libc.prctl(36, 0, 0, 0, 0)
        for pid in [int(x.split()[0]) for x in _leftovers(before)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert left == [], left
    for plant in plants:    # attackers earn nothing they attack and lose nothing else: a function that hangs
        scores = _scores(tmp_path / "course", attacks.NAME, plant.student)     # costs its time once
        got = {cell: auto for cell, (auto, _) in scores.items()}
        want = {cell: 0.0 if cell in plant.loses else full for cell, (_, full) in scores.items()}
        assert got == want, f"{plant.student} ({plant.why})"


def _test_cells(name: str) -> list[str]:
    """The grade ids of `name`'s autograded test cells, in notebook order (the order of its checks)."""
    import json
    nb = json.loads((ROOT / "solutions" / name / f"{name}.ipynb").read_text())
    return [c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"]
            if c["metadata"].get("nbgrader", {}).get("grade") and not c["metadata"]["nbgrader"].get("solution")]


def _verdict_texts(course: Path, name: str, student: str) -> dict[str, str]:
    """{grade_id: the verdict text the autograder gave that test cell} (autograded/, the grader's copy)."""
    import json
    nb = json.loads((course / "autograded" / student / name / f"{name}.ipynb").read_text())
    return {c["metadata"]["nbgrader"]["grade_id"]: "".join("".join(o.get("text", "")) + str(o.get("evalue", ""))
                                                            for o in c.get("outputs", []))
            for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")}


PEAK_MEMORY = 512 << 20     # bytes: the largest process of a class run under a flood (measured: see below)
MEASURE = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
           "print('maxrss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def test_a_flood_and_a_sleeper_cost_the_class_little(tmp_path):
    """Issue 22, items 5: an event flood (1 MiB events into its own pipe, 2 GiB in all) and a sleeper
    (to just before the limit in every cell of every check), between two honest students, graded with
    `tools/grade.py autograde DIR`: the honest students keep full marks, the flood loses every checked
    cell, every student has a grades.csv row, and no process of the run (the grading workers, nbgrader,
    the sandboxes) grew past PEAK_MEMORY. Measured on 2 loaded cores (load 10): 126 MiB.

    What the sleeper costs is bounded by its budget, which is what the run's time means here (no
    wall-clock limit, which a loaded machine would break): a step may take a quarter of the budget
    (sandbox.STEP_SHARE), so a check of ps1 whose three answer cells sleep to just before the limit
    takes three quarters of it; at most the first check fits, and every later one must say "time
    budget used" without running (a loaded machine only makes the sleeps longer, so fewer fit)."""
    need_sandbox()
    import csv
    import json
    import re
    plants = attacks.bounded_plants()
    for plant in plants:
        path = tmp_path / "submissions" / plant.student / attacks.NAME / f"{attacks.NAME}.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(plant.build()))
    cmd = [sys.executable, "-c", MEASURE, sys.executable, str(ROOT / "tools" / "grade.py"), "--course",
           str(tmp_path / "course"), "autograde", str(tmp_path / "submissions"), "--timeout", "5"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    peak = int(re.search(r"maxrss (\d+)", proc.stderr).group(1)) << 10
    print(f"peak memory of a process of the run: {peak >> 20} MiB")
    assert peak < PEAK_MEMORY, peak
    checked = [g for g in _test_cells(attacks.NAME) if g in attacks.checked_cells(attacks.NAME)]
    texts = _verdict_texts(tmp_path / "course", attacks.NAME, "m_sleep")
    assert all("time budget used" in texts[g] for g in checked[1:]), texts       # only the first check may run
    for plant in plants:
        scores = _scores(tmp_path / "course", attacks.NAME, plant.student)
        got = {cell: auto for cell, (auto, _) in scores.items()}
        want = {cell: 0.0 if cell in plant.loses else full for cell, (_, full) in scores.items()}
        if plant.student == "m_sleep" and got[checked[0]] == scores[checked[0]][1]:
            want[checked[0]] = got[checked[0]]     # its first check ran within the budget: right answers
        assert got == want, f"{plant.student} ({plant.why})"
    rows = list(csv.DictReader((tmp_path / "course" / "grades.csv").open()))
    assert sorted(r["student_id"] for r in rows) == sorted(p.student for p in plants)
    for student, why in (("m_flood", "too much output"), ("m_sleep", "time budget used")):
        html = (tmp_path / "course" / "feedback" / student / attacks.NAME / f"{attacks.NAME}.html").read_text()
        assert why in html, student
