"""Student side of grading: the interpreter that runs student code, one forked worker per check.

`serve(req_fd, resp_fd, sandboxed)` is started by vmlib.grading.sandbox.StudentSide, normally
inside bubblewrap, with a stripped vmlib on sys.path (the functions being graded are stubs that
call `not_provided`). It has vmlib loaded and reads one check request per line on req_fd; for
each it forks a worker, which sets its limits (`limit`), runs the student's cells and cases and
writes one JSON event per step on a pipe of its own; the server relays well-formed events to
resp_fd, kills whatever the worker left behind and writes the end line of the check. Nothing here is trusted: the runner compares these answers with
references it computed itself, and enforces the wall time from outside.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback
import types

from vmlib.grading.suites import Case, as_json, default_run_case

MEMORY_LIMIT = 1 << 30      # bytes of address space per worker (a 6 GiB allocation fails)
FILE_LIMIT = 16 << 20       # bytes a worker may write to one file (its /tmp is a small tmpfs too)
FILES_OPEN = 64
MAX_EVENT = 1 << 20         # longer lines from a worker are dropped
STEP_GRACE = 0.25           # seconds past a step's alarm before the server kills a worker that ignores it


class CellTimeout(BaseException):
    """The student's code ran longer than the time allowed for one cell or case."""


class NotProvided(BaseException):
    """The student's code called a function it is asked to write: vmlib has only a stub of it."""


_called: list[str] = []


def not_provided(qualname: str):
    """What a stub of a graded function does: record the call and raise with what to do instead."""
    _called.append(qualname)
    name = qualname.rsplit(".", 1)[1]
    raise NotProvided(f"{name} is the function you are asked to write; vmlib does not provide it while grading")


def _no_exit(status=0):
    raise SystemExit(f"os._exit({status!r})")


def _on_alarm(signum, frame):
    raise CellTimeout()


def describe(exc: BaseException) -> str:
    """A one-line account of what the student's code raised, with its cell line if known."""
    if isinstance(exc, SystemExit):
        code = exc.code
        what = f"called {code}" if str(code).startswith("os._exit(") else f"called sys.exit({code!r})"
        what = "called sys.exit()" if code is None else what
    elif isinstance(exc, CellTimeout):
        what = (f"did not finish in time ({round(exc.args[0], 2):g} s; an endless loop?)" if exc.args
                else "did not finish in time (an endless loop?)")
    elif isinstance(exc, NotProvided):
        what = f"called a graded function: {exc}"
    else:
        what = f"raised {type(exc).__name__}: {exc}"[:300]
    where = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
    return f"{what} ({where[-1].filename[1:-1]}, line {where[-1].lineno})" if where else what


def guarded(fn, seconds: float):
    """Run fn() with an alarm; return (value, None) or (None, exception)."""
    _called.clear()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(), None
    except BaseException as exc:  # noqa: BLE001 - the student's code may raise anything, SystemExit too
        if isinstance(exc, CellTimeout) and not exc.args:
            exc.args = (seconds,)          # the limit it ran out of, for describe()
        return None, exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _resolve(spec: str | None):
    """The student-side case runner "module:name" (None: call the function on the case's args)."""
    if not spec:
        return default_run_case
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _bind(how: dict, ns: dict):
    """The student's answer as `how` names it; KeyError if it is not there."""
    if "value" in how:
        return how["value"]
    if "import" in how:
        module, _, attr = how["import"].partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            raise KeyError(how["import"]) from None
    return ns[how["name"]]


def _workbench() -> types.ModuleType:
    """vmlib.grading.tryout while grading: an answer cell may import replay and scenarios (the notebooks'
    setup does), but the grader shows no one their output, so here they do nothing."""
    mod = types.ModuleType("vmlib.grading.tryout", "the notebooks' workbench: does nothing while grading")

    def quiet(*args, **kwargs) -> None:
        return None
    mod.replay = mod.scenarios = quiet
    return mod


def run(request: dict, out) -> None:
    """Run the student's cells, then each case, writing one event line per step to `out`."""
    def emit(event: dict) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    limit = float(request.get("cell_timeout", 5))
    run_case = _resolve(request.get("run_case"))
    signal.signal(signal.SIGALRM, _on_alarm)
    os._exit = _no_exit  # so that one os._exit costs the case it is in, not every check
    sys.modules["vmlib.grading.tryout"] = _workbench()
    ns: dict = {"__name__": "__main__"}
    exec(compile(request.get("prelude", ""), "<prelude>", "exec"), ns)  # noqa: S102 - running student code is the point
    errors = []
    stopped = request.get("skip_cells") or {}          # cell -> what it did when it first ran (not finish...)
    for k, source in enumerate(request["cells"], 1):
        if str(k) in stopped:
            errors.append(f"cell {k} {stopped[str(k)]} when it first ran, so it was not run again")
            emit({"cell": k})
            continue
        before = dict(ns)
        code, exc = guarded(lambda s=source, k=k: compile(s, f"<cell {k}>", "exec"), limit)
        if exc is None:
            _, exc = guarded(lambda c=code: exec(c, ns), limit)  # noqa: S102
        if exc is not None:
            errors.append(f"cell {k} {describe(exc)}")
        if isinstance(exc, CellTimeout):   # it defines nothing, as in the later checks that do not run it
            ns.clear()
            ns.update(before)
            emit({"cell": k, "timeout": True})
        else:
            emit({"cell": k})
    bound, missing = {}, {}
    for name, how in request["bind"].items():
        try:
            bound[name] = _bind(how, ns)
        except KeyError:
            missing[name] = how.get("name") or how.get("import")
    emit({"setup": {"errors": errors, "missing": missing}})
    hung: set[str] = set()
    earlier = request.get("skip_fns") or {}          # function -> the seconds it had when it did not finish
    for i, raw in enumerate(request["cases"]):
        case = Case(raw["label"], raw["fn"], raw["args"])
        if case.fn in missing:
            emit({"i": i, "missing": missing[case.fn]})
            continue
        if case.fn in earlier:
            emit({"i": i, "raised": f"was not called: it did not finish in time ({round(float(earlier[case.fn]), 2):g} s) "
                                    "in an earlier check"})
            continue
        if case.fn in hung:
            emit({"i": i, "raised": "was not run: an earlier case of it did not finish in time"})
            continue
        value, exc = guarded(lambda c=case: as_json(run_case(bound, c)), limit)
        if _called:
            emit({"i": i, "reference": _called[0]})
        elif isinstance(exc, CellTimeout):
            hung.add(case.fn)
            emit({"i": i, "raised": describe(exc), "timeout": True})
        elif exc is not None:
            emit({"i": i, "raised": describe(exc)})
        else:
            emit({"i": i, "result": value})


# ---- limits of a worker ---------------------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 1, 4, 38, 22
SECCOMP_MODE_FILTER = 2
# per machine: seccomp audit arch, syscalls refused (clone only without CLONE_THREAD: threads are fine)
_DENIED_X86_64 = {"fork": 57, "vfork": 58, "clone3": 435, "ptrace": 101, "process_vm_readv": 310,
                  "process_vm_writev": 311, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
                  "perf_event_open": 298, "userfaultfd": 323, "unshare": 272, "setns": 308, "mount": 165,
                  "umount2": 166, "pivot_root": 155, "io_uring_setup": 425, "personality": 135}
_ARCHES = {"x86_64": (0xC000003E, _DENIED_X86_64, 56),
           "aarch64": (0xC00000B7, {"clone3": 435}, 220)}
CLONE_THREAD = 0x00010000


def _prctl(*args) -> None:
    """prctl(2) on Linux (OSError if it fails); nothing elsewhere (a laptop's unsandboxed selfcheck)."""
    if not sys.platform.startswith("linux"):
        return
    if _LIBC.prctl(*[ctypes.c_ulong(a) if isinstance(a, int) else a for a in args]) != 0:
        raise OSError(ctypes.get_errno(), f"prctl{args[:1]} failed")


def _seccomp_program(audit_arch: int, calls: dict, clone: int) -> bytes:
    """A classic BPF program refusing `calls` and clone without CLONE_THREAD (no new processes, EAGAIN);
    clone3 says ENOSYS so that the C library falls back to clone; a foreign syscall ABI kills."""
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000

    def errno(e):
        return 0x00050000 | e

    def op(code, k, jt=0, jf=0):
        return struct.pack("HBBI", code, jt, jf, k)

    prog = [op(ld, 4), op(jeq, audit_arch, 1, 0), op(ret, kill), op(ld, 0)]
    if audit_arch == 0xC000003E:                                 # x32 syscalls: not for us
        prog += [op(0x35, 0x40000000, 0, 1), op(ret, kill)]     # jge
    for name, nr in calls.items():
        e = {"clone3": 38, "fork": 11, "vfork": 11}.get(name, 1)                       # ENOSYS, EAGAIN, EPERM
        prog += [op(jeq, nr, 0, 1), op(ret, errno(e))]
    prog += [op(jeq, clone, 0, 4), op(ld, 16), op(jset, CLONE_THREAD, 0, 1), op(ret, allow),
             op(ret, errno(11)), op(ret, allow)]
    return b"".join(prog)


def no_new_processes() -> bool:
    """Install the seccomp filter in this process: no new processes, no ptrace, keyrings, bpf, mounts or
    namespaces (the x86-64 list; aarch64: no new processes). False on a machine we have no table for."""
    arch = _ARCHES.get(os.uname().machine)
    if arch is None:
        return False
    code = _seccomp_program(*arch)

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    prog = Fprog(len(code) // 8, code)
    _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0)
    return True


def limit(cpu_seconds: int, strict: bool = True) -> None:
    """This worker's limits: memory, file size, open files, CPU time, no core, no new processes.

    `strict` (in the sandbox): a limit that cannot be set is an error; otherwise it is skipped.
    """
    for res, value in ((resource.RLIMIT_AS, MEMORY_LIMIT), (resource.RLIMIT_FSIZE, FILE_LIMIT),
                       (resource.RLIMIT_NOFILE, FILES_OPEN), (resource.RLIMIT_CPU, cpu_seconds),
                       (resource.RLIMIT_CORE, 0)):
        hard = resource.getrlimit(res)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            if strict:
                raise
    try:
        no_new_processes()
    except OSError:
        if strict:
            raise


# ---- the server --------------------------------------------------------------------------------------

def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _worker(request: dict, resp_fd: int, sandboxed: bool) -> None:
    """The forked child of one check: limits, then the student's code; never returns."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        limit(int(request.get("cpu_limit", 60)), strict=sandboxed)
        with open(resp_fd, "w", closefd=False) as out:
            run(request, out)
        status = 0
    except BaseException:  # noqa: BLE001 - whatever the student's code did, end this process
        status = 1
    _REAL_EXIT(status)


_REAL_EXIT = os._exit


def _sweep(pid: int, sandboxed: bool) -> None:
    """Kill whatever a finished worker left behind (daemons, children)."""
    if sandboxed:
        try:
            os.kill(-1, signal.SIGKILL)       # every process of our pid namespace but us and its init
        except ProcessLookupError:
            pass
    else:
        try:
            os.killpg(pid, signal.SIGKILL)    # the worker's process group (not sandboxed: best effort)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _relay(r: int, resp_fd: int, pid: int, sandboxed: bool, step: float) -> int | None:
    """Pass the worker's events from pipe `r` to the runner until the worker is gone; its wait status,
    or None if it was stopped because a step sent nothing for `step` + STEP_GRACE seconds.

    Only well-formed event objects go on, one per line, re-encoded here: nothing the worker
    writes can end a check or reach the runner's pipe as it was written. A worker whose step
    outlives its alarm (it ignores SIGALRM, or blocks it) is killed here, with whatever it
    started, so the check ends at once without the runner having to kill the whole sandbox.
    """
    try:
        watch = os.pidfd_open(pid)
    except (AttributeError, OSError):           # Linux < 5.3: wait for the pipe's end instead
        watch = None
    buf, status, stopped = b"", None, False
    deadline = time.monotonic() + step + STEP_GRACE
    while True:
        left = deadline - time.monotonic()
        ready = select.select([r] + ([watch] if watch is not None and status is None else []), [], [],
                              max(0.0, left))[0]
        if not ready:                            # a step that outlived its alarm: stop the worker
            if status is None:
                _kill_worker(pid, sandboxed)
                stopped = True
            break
        if watch in ready:
            status = os.waitpid(pid, 0)[1]
            _sweep(pid, sandboxed)               # nothing else may hold the pipe now
            continue
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        buf = b"" if len(buf) > MAX_EVENT else buf
        for line in lines:
            try:
                event = json.loads(line) if len(line) <= MAX_EVENT else None
            except ValueError:
                continue
            if isinstance(event, dict) and "end" not in event and "ready" not in event:
                _write(resp_fd, json.dumps(event).encode() + b"\n")
                deadline = time.monotonic() + step + STEP_GRACE       # the next step's time starts
    os.close(r)
    if watch is not None:
        os.close(watch)
    if stopped:
        return None
    if status is None:
        status = os.waitpid(pid, 0)[1]
        _sweep(pid, sandboxed)
    return status


def _kill_worker(pid: int, sandboxed: bool) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    _sweep(pid, sandboxed)


def serve(req_fd: int, resp_fd: int, sandboxed: bool) -> None:
    """Answer check requests from req_fd, one worker each, until the runner closes it."""
    import vmlib
    import vmlib.grading.sim  # noqa: F401
    _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)    # no other process of the sandbox may read our fds or memory
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if sandboxed and os.getpid() > 2:
        raise SystemExit("serve(sandboxed=True) must run as the first process of its own pid namespace")
    reader = os.fdopen(req_fd, "rb")
    _write(resp_fd, b'{"ready": true}\n')
    for line in reader:
        request = json.loads(line)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            reader.close()
            os.close(resp_fd)
            os.close(r)
            if not sandboxed:
                os.setpgid(0, 0)
            _worker(request, w, sandboxed)
            os.kill(os.getpid(), signal.SIGKILL)
        os.close(w)
        status = _relay(r, resp_fd, pid, sandboxed, float(request.get("cell_timeout", 5)))
        end = "timeout" if status is None else "ok" if status == 0 else "died"
        _write(resp_fd, json.dumps({"end": end, "id": request.get("id")}).encode() + b"\n")
