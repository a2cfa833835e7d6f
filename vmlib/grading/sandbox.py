"""Where student code runs: a bubblewrap sandbox holding a stripped vmlib, one per submission.

The runner (vmlib.grading.runner, the clean side) starts ONE student-side interpreter per
submission (`StudentSide`) and sends it one check at a time; that interpreter
(vmlib.grading.child.serve) has vmlib loaded and forks a fresh worker per check, so a check
costs a fork (~2 ms), not an interpreter start (~70 ms). Only the runner holds the two pipes;
what comes back is untrusted answers, which the runner judges against references it computed
itself. Nothing the student side writes is ever taken as a verdict.

Isolation (`bwrap_command`): Debian's bubblewrap, run with every namespace unshared (user, pid,
mount, net, ipc, uts, cgroup), as uid/gid 65534 inside, with no capabilities, a new session
(setsid: no terminal to inject into) and --die-with-parent. Its file system is a read-only
view of only the interpreter, the C libraries, the standard library (site-packages hidden)
and the stripped vmlib, plus a private size-limited tmpfs at /tmp; its /proc shows only its
own processes. Resource limits are set in each worker (vmlib.grading.child.limit): address
space, file size, open files, CPU time, no core files, and a seccomp filter that refuses to
create processes (threads are allowed). Wall time: each step has an alarm in the worker, the
server inside kills a worker whose step outlives it (vmlib.grading.child.STEP_GRACE), and it is
enforced from OUTSIDE too: the runner waits for each step with a deadline and, when it passes,
SIGKILLs bwrap; its pid namespace then dies with every process in it, whatever signals the
student ignored or sent. Between checks the
server SIGKILLs every other process of the namespace (kill(-1)), so a daemon does not outlive
the check that started it.

Grading as root (CI), bwrap is started as user nobody (65534; `outside_user`), so the sandbox
is an unprivileged user outside its namespaces too, whenever nobody can read the interpreter (a
system Python). If it cannot (an interpreter under /root, e.g. pyenv's), bwrap runs as root and
maps the sandbox's uid 65534 to root outside. Those processes hold no capabilities, but
root-without-capabilities still owns root's files and sysctls and escapes RLIMIT_NPROC, so in
both cases: nothing writable is bound, /proc and /dev are read-only (no sysctl writes), the pid
namespace hides and shields every other process, and the seccomp filter (not RLIMIT_NPROC) stops
new processes and refuses ptrace, keyrings, bpf, mounts and namespaces. Each worker writes to
its own pipe, which the server relays, re-encoding every event, to the runner's pipe; so a
worker cannot end a check early or write into the next one.

Why bubblewrap rather than unshare(1) with a dedicated user: bwrap does in one exec what a
sandbox needs and unshare cannot: it builds a new root from explicit read-only binds (unshare
only unshares the mount namespace, the host file system stays visible unless we script
pivot_root ourselves), drops capabilities, sets PR_SET_NO_NEW_PRIVS, mounts a fresh /proc for
the pid namespace, and ties the sandbox's life to its parent. It needs no setuid helper and no
dedicated user account on the grading machine (as root it maps uid 65534 inside the user
namespace; as a normal user it uses unprivileged user namespaces), and it is one apt package
(bubblewrap) in Debian and Ubuntu, the same tool Flatpak uses. unshare would need a user
created by the installer, root to switch to it, and our own mount and /proc plumbing.

Nothing to copy (`student_lib`): the student side imports a copy of vmlib in which the
functions being graded are removed from the source (AST) and replaced by a stub that raises
"X is the function you are asked to write; vmlib does not provide it while grading". The
copy has no grading modules besides the student side (child, suites, sim) and stubs for the
graded names of the assignment modules (ps1's functions, ps6's answer_key), so reload,
re-import under another name, reading the files and vmlib.source() find only the stubs.
Its bytecode is compiled from the stripped sources (so no reference .pyc exists in it);
copies are kept per (vmlib sources, graded names) in a private temp folder.
"""

from __future__ import annotations

import ast
import compileall
import glob
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

VMLIB = Path(__file__).resolve().parent.parent          # the real vmlib (never shown to students)
LIB_IN_SANDBOX = "/grader/lib"                           # where the stripped copy is mounted
NOBODY = 65534                                           # the sandbox's user inside (and outside, as root)
TMPFS_BYTES = 64 << 20                                   # the student's private /tmp
STARTUP = 30.0                                           # seconds the student side may take to start
GRACE = 1.0                                              # seconds the runner waits beyond a step's limit
STEP_SHARE = 0.25                                        # of a submission's budget, one cell or case may use
MAX_CHECK_BYTES = 1 << 20                                # what one check may send back (honest: < 16 KiB)
MAX_EVENT_BYTES = 64 << 10                               # one event of it (honest: < 200 bytes)
STUDENT_GRADING = ("child.py", "suites.py", "sim.py")    # the grading modules the student side needs
LEFT_OUT = ("views", "real", "grading", "__pycache__")   # vmlib folders not in the copy (grading: see above)
INSTALL = ("install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; "
           "or run ./setup.sh env as root)")


EOF = b""                                                # what _line returns at end of file
FLOOD = b"flood"                                         # ... when the check sent more than MAX_CHECK_BYTES
UNFINISHED = {   # why a case has no answer, by how its check ended (StudentSide.run)
    "timeout": "your code did not finish in time (an endless loop?)",
    "died": "your code ended the grading process (os._exit or a crash) before this case finished",
    "flood": ("your code sent the grader too much output (more events or bytes than a check may return); "
              "the rest of this check was not run"),
    "budget": ("time budget used: your submission's checks took all the time one submission may take, "
               "so the rest were not run"),
}


STOPPED = {      # what a cell that was stopped did, as its later checks say (StudentSide.run)
    "timeout": "did not finish in time ({seconds} s)",
    "flood": "sent the grader too much output",
}


class SandboxUnavailable(RuntimeError):
    """No sandbox here, and the work to grade is not trusted: the message says what to install."""


# ---- is there a sandbox? ------------------------------------------------------------------------

_PROBED: dict = {}     # "result": problem(), "user": outside_user()


def problem() -> str | None:
    """None if bwrap can start a sandbox here, else why not and what to do (probed once)."""
    if "result" not in _PROBED:
        _PROBED["result"] = _probe()
    return _PROBED["result"]


def outside_user() -> int | None:
    """The uid to start bwrap as: NOBODY when we are root and nobody can read all it binds, else None
    (ourselves). Then the sandbox is an unprivileged user outside its namespace too (probed once)."""
    if "user" not in _PROBED:
        _PROBED["user"] = None
        binds = [_prefix(), _python(), *_hidden_package_dirs()]
        if os.geteuid() == 0 and all(_world_readable(p) for p in binds) and _probe(NOBODY) is None:
            _PROBED["user"] = NOBODY
    return _PROBED["user"]


def _world_readable(path: str) -> bool:
    """Whether any user can read `path` (and list it, for a folder) through its parent folders."""
    try:
        p = Path(path)
        if not all(parent.stat().st_mode & 0o001 for parent in p.parents):
            return False
        mode = p.stat().st_mode
        return bool(mode & 0o004) and (not p.is_dir() or bool(mode & 0o001))
    except OSError:
        return False


def _as_user(uid: int | None) -> dict:
    return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


def _probe(uid: int | None = None) -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL}"
    cmd = bwrap_command(bwrap, None, [_python(), "-I", "-S", "-c", "pass"])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False, **_as_user(uid))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not start ({exc})"
    if proc.returncode != 0:
        return (f"bwrap cannot create its namespaces here: {proc.stderr.strip()[:300]}. Allow unprivileged "
                "user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 "
                "kernel.apparmor_restrict_unprivileged_userns=0) or grade as root")
    return None


def require(trusted: bool, unsafe_no_sandbox: bool) -> bool:
    """Whether to sandbox: True if possible; False only for trusted work or an explicit opt-out.

    Untrusted work (autograde) without a sandbox raises SandboxUnavailable naming what to install.
    """
    why = problem()
    if why is None:
        return True
    if trusted or unsafe_no_sandbox:
        return False
    raise SandboxUnavailable(f"grading untrusted submissions needs a sandbox, and {why}. To grade anyway "
                             "with student code running as you, unisolated, pass --unsafe-no-sandbox")


# ---- the stripped vmlib ----------------------------------------------------------------------------

def _stub(qualname: str, name: str) -> ast.FunctionDef:
    """A function `name` that reports, when called, that the reference is not provided."""
    src = (f"def {name}(*args, **kwargs):\n"
           f"    \"\"\"Not provided while grading: {name} is the function you are asked to write.\"\"\"\n"
           f"    import vmlib.grading.child\n"
           f"    return vmlib.grading.child.not_provided({qualname!r})\n")
    return ast.parse(src).body[0]


def strip_source(source: str, module: str, names: set[str]) -> str:
    """`source` with the top-level definitions of `names` replaced by stubs; ValueError if one is missing."""
    tree = ast.parse(source)
    found = set()
    for i, node in enumerate(tree.body):
        targets = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        hit = [t for t in targets if t in names]
        if hit:
            tree.body[i] = _stub(f"{module}.{hit[0]}", hit[0])
            found |= set(hit)
    if found != names:
        raise ValueError(f"{module} has no top-level definition of {sorted(names - found)} to remove")
    return ast.unparse(tree) + "\n"


def _stub_module(module: str, names: set[str]) -> str:
    """A stand-in for a grading module (ps1, ps6, ...): only stubs of its graded names."""
    body = [ast.Expr(ast.Constant(f"{module} while grading: its answers are not here."))]
    body += [_stub(f"{module}.{n}", n) for n in sorted(names)]
    return ast.unparse(ast.Module(body=body, type_ignores=[])) + "\n"


def _by_module(references) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ref in references:
        module, _, attr = ref.partition(":")
        if not module.startswith("vmlib.") or not attr.isidentifier():
            raise ValueError(f"a graded reference is 'vmlib.module:name', got {ref!r}")
        out.setdefault(module, set()).add(attr)
    return out


def _copied_files() -> list[Path]:
    """The vmlib source files of the student side, relative to vmlib's parent."""
    files = []
    for path in sorted(VMLIB.rglob("*.py")):
        rel = path.relative_to(VMLIB)
        if rel.parts[0] in LEFT_OUT and not (rel.parts[0] == "grading" and rel.name in STUDENT_GRADING):
            continue
        files.append(path)
    return files


GRADING_INIT = '''"""vmlib.grading while grading: only the student side is here."""


def check(*args, **kwargs):
    raise RuntimeError("check() does not run inside the grader: the grader runs your functions itself")
'''


def build_student_lib(dest: Path, references) -> None:
    """Write the stripped vmlib for `references` ("vmlib.module:name") into dest/vmlib, compiled."""
    by_module = _by_module(references)
    for path in _copied_files():
        rel = path.relative_to(VMLIB.parent)
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        text = path.read_text(encoding="utf-8")
        if module in by_module:
            text = strip_source(text, module, by_module.pop(module))
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    (dest / "vmlib" / "grading" / "__init__.py").write_text(GRADING_INIT, encoding="utf-8")
    for module, names in by_module.items():
        if not module.startswith("vmlib.grading.") or module.count(".") != 2:
            raise ValueError(f"cannot remove {sorted(names)} from {module}: not a module of the student side")
        (dest / "vmlib" / "grading" / f"{module.rsplit('.', 1)[1]}.py").write_text(
            _stub_module(module, names), encoding="utf-8")
    compileall.compile_dir(str(dest), quiet=2, invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH)


def _cache_root() -> Path:
    """A folder only we can write (others may pass through it), for the stripped copies."""
    root = Path(tempfile.gettempdir()) / f"vmlib-student-{os.getuid()}"
    root.mkdir(mode=0o711, exist_ok=True)
    st = root.lstat()
    if not root.is_dir() or root.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise RuntimeError(f"{root} is not a private folder of this user; remove it and grade again")
    if st.st_mode & 0o777 != 0o711:
        root.chmod(0o711)
    return root


def _prune(root: Path, days: float = 7) -> None:
    """Remove stripped copies not used for `days` (older vmlib versions)."""
    for old in root.iterdir():
        try:
            if old.is_dir() and not old.is_symlink() and time.time() - old.stat().st_mtime > days * 86400:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


_LIBS: dict[tuple, Path] = {}     # references -> the stripped copy, once per process (which has its vmlib loaded)


def student_lib(references) -> Path:
    """A folder holding the stripped vmlib for `references` (built once per vmlib version, looked up once
    per process: the sources are not read and hashed again for every submission)."""
    key = tuple(sorted(set(references)))
    if key not in _LIBS or not _LIBS[key].is_dir():
        _LIBS[key] = _student_lib(references, _copied_files())
    return _LIBS[key]


def _student_lib(references, files: list[Path]) -> Path:
    h = hashlib.sha256(json.dumps([sorted(set(references)), sys.version]).encode())
    for path in files:
        h.update(str(path.relative_to(VMLIB)).encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(GRADING_INIT.encode() + Path(__file__).read_bytes())
    root = _cache_root()
    final = root / h.hexdigest()[:24]
    if final.is_dir():
        os.utime(final)
        return final
    _prune(root)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        build_student_lib(tmp, references)
        for folder in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)                  # readable by the sandbox's user (see outside_user)
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---- the sandbox ----------------------------------------------------------------------------------

INTERPRETER: str | None = None      # the sandbox's Python; None: the base interpreter of this one


def _python() -> str:
    """The base interpreter (not a venv's wrapper, which lives in the course folder)."""
    return os.path.realpath(INTERPRETER or getattr(sys, "_base_executable", None) or sys.executable)


def _prefix() -> str:
    """The installation folder of the sandbox's Python (bin/ and lib/ under it)."""
    return os.path.dirname(os.path.dirname(_python()))


def _hidden_package_dirs() -> list[str]:
    """Folders of installed packages under the interpreter: hidden in the sandbox."""
    paths = sysconfig.get_paths(vars={"base": _prefix(), "platbase": _prefix()})
    found = {paths["purelib"], paths["platlib"]}
    for pattern in ("/usr/lib/python3*/dist-packages", "/usr/local/lib/python3*/dist-packages",
                    "/usr/local/lib/python3*/site-packages", "/usr/lib/python3*/site-packages"):
        found.update(glob.glob(pattern))
    return sorted(p for p in found if os.path.isdir(p))


def bwrap_command(bwrap: str, lib: Path | None, argv: list[str]) -> list[str]:
    """The bwrap command line running `argv` with `lib` (the stripped vmlib) at LIB_IN_SANDBOX."""
    cmd = [bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
           "--hostname", "grader", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
           "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    prefix = _prefix()
    if not (prefix + "/").startswith("/usr/") and prefix != "/":
        cmd += ["--ro-bind", prefix, prefix]
    for hidden in _hidden_package_dirs():
        cmd += ["--tmpfs", hidden, "--remount-ro", hidden]
    if lib is not None:
        cmd += ["--ro-bind", str(lib), LIB_IN_SANDBOX]
    cmd += ["--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--remount-ro", "/", "--chdir", "/tmp",
            "--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8", "--", *argv]
    return cmd


def _server_argv(lib: str, req: int, resp: int, sandboxed: bool) -> list[str]:
    code = (f"import sys; sys.path[:0] = [{lib!r}]; from vmlib.grading.child import serve; "
            f"serve({req}, {resp}, {sandboxed})")
    return [_python(), "-I", "-S", "-B", "-c", code]


class StudentSide:
    """One student-side interpreter (sandboxed or not) for one submission; restarted after a kill.

    `run(request, step_limit, check_limit)` sends one check and returns (events, ended), ended
    being "ok", "died" (the worker crashed or the server vanished), "timeout", "flood" (it sent
    more than a check may) or "budget" (the side's `budget` seconds are used up).
    """

    def __init__(self, references, sandboxed: bool, budget: float | None = None):
        self.lib = student_lib(references)
        self.sandboxed = sandboxed
        self.budget, self.spent, self.received = budget, 0.0, 0
        self.stopped: dict[int, tuple[str, float]] = {}   # cell that did not finish -> (its source's hash, seconds)
        self.stopped_fns: dict[tuple[str, str], float] = {}   # (function, hash of the cells) that did not finish
        self.proc: subprocess.Popen | None = None
        self.next_id = 0
        self.starts = 0

    def start(self) -> None:
        req_r, self.req_w = os.pipe()
        self.resp_r, resp_w = os.pipe()
        if self.sandboxed:
            bwrap = shutil.which("bwrap")
            cmd = bwrap_command(bwrap, self.lib, _server_argv(LIB_IN_SANDBOX, req_r, resp_w, True))
        else:
            cmd = _server_argv(str(self.lib), req_r, resp_w, False)
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed once the side is ready, or by kill()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                     pass_fds=(req_r, resp_w), cwd="/" if self.sandboxed else tempfile.gettempdir(),
                                     start_new_session=True, env={} if self.sandboxed else {"LANG": "C.UTF-8"},
                                     **_as_user(self._user()))
        os.close(req_r)
        os.close(resp_w)
        os.set_blocking(self.req_w, False)
        os.set_blocking(self.resp_r, False)
        self.buf = b""
        self.starts += 1
        self.errors, self.ready = errors, False

    def _user(self) -> int | None:
        """Whom to start as: see outside_user (the stripped copy must be reachable for that user too)."""
        if not self.sandboxed or not _world_readable(str(self.lib)):
            return None
        return outside_user()

    def _wait_ready(self) -> None:
        if self._line(time.monotonic() + STARTUP) != b'{"ready": true}':
            self.errors.seek(0)
            why = self.errors.read()[-2000:].decode(errors="replace")
            self.kill()
            raise RuntimeError("the student-side interpreter did not start:\n" + why)
        self.errors.close()
        self.ready = True

    def kill(self) -> None:
        """SIGKILL the sandbox (its pid namespace takes every process in it along) and reap it."""
        if self.proc is None:
            return
        try:
            if self.sandboxed:
                self.proc.kill()
            else:
                os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for fd in (self.req_w, self.resp_r):
            os.close(fd)
        if not self.errors.closed:
            self.errors.close()
        self.proc = None

    close = kill

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    def _send(self, data: bytes, deadline: float) -> bool:
        while data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [self.req_w], [], left)[1]:
                return False
            try:
                data = data[os.write(self.req_w, data):]
            except (BrokenPipeError, BlockingIOError):
                return False
        return True

    def _line(self, deadline: float) -> bytes | None:
        """The next non-empty line from the student side, EOF at end of file, None at the deadline,
        FLOOD once the check has sent more than MAX_CHECK_BYTES, or a line longer than MAX_EVENT_BYTES
        (read in 64 KiB chunks: never more than that much past either limit is held)."""
        while True:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.resp_r], [], [], left)[0]:
                    return None
                try:
                    chunk = os.read(self.resp_r, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    return EOF
                self.received += len(chunk)
                self.buf += chunk
                if self.received > MAX_CHECK_BYTES or (b"\n" not in self.buf and len(self.buf) > MAX_EVENT_BYTES):
                    self.buf = b""
                    return FLOOD
            line, _, self.buf = self.buf.partition(b"\n")
            if len(line) > MAX_EVENT_BYTES:
                self.buf = b""
                return FLOOD
            if line.strip():
                return line

    def run(self, request: dict, step_limit: float, check_limit: float) -> tuple[list, str]:
        """Run one check on the student side; (untrusted events, how it ended: "ok", "timeout", "died",
        "flood" or "budget"; UNFINISHED says each to a student).

        Bounded clean side: a check may send back one event per cell and per case, the setup event
        and one more, each of at most MAX_EVENT_BYTES, MAX_CHECK_BYTES in all; beyond that it is
        killed as "flood" (the attack: a worker writing well-formed 1 MiB events into its own pipe
        grew the grader to 3 GiB).
        Bounded time: with a `budget`, the checks of this side share that many seconds of running
        (starting the sandbox is not counted, restarting it after a kill is); a check that would pass
        it ends as "budget", and one cell or case may run at most STEP_SHARE of it (`step`).
        What does not finish costs its time once. A cell that did not finish in time or flooded the
        grader is remembered (`stopped`, by its number and source, with what it did); it defines
        nothing (the student side drops what it bound), the later checks of this side do not run it,
        and a check cut while it ran is run again without it. A function one of whose cases did not
        finish (`stopped_fns`, by name and the cells) is not called by the later checks. Only this
        side's own observations and its own student's events decide this.
        """
        step_limit = self.step(step_limit)
        cells = request.get("cells", [])
        code = _digest(json.dumps(cells))
        fns = {fn: seconds for (fn, digest), seconds in self.stopped_fns.items() if digest == code}
        while True:
            skip = {str(k): why for k, (digest, why) in self.stopped.items()
                    if k <= len(cells) and _digest(cells[k - 1]) == digest}
            events, ended = self._timed({**request, "skip_cells": skip, "skip_fns": fns}, step_limit, check_limit)
            for fn in _hung_functions(events, ended, request.get("cases", [])):
                self.stopped_fns[(fn, code)] = step_limit
            stopped = _stopped_cells(events, ended, len(cells), skip)
            for k, kind in stopped:
                why = STOPPED[kind].format(seconds=f"{round(step_limit, 2):g}")
                self.stopped[k] = (_digest(cells[k - 1]), why)
            if not stopped or ended not in STOPPED:     # the student side went on without what they define
                return events, ended

    def step(self, step_limit: float) -> float:
        """The seconds one cell or case may run: `step_limit`, and at most STEP_SHARE of the budget."""
        return step_limit if self.budget is None else min(step_limit, STEP_SHARE * self.budget)

    def _timed(self, request: dict, step_limit: float, check_limit: float) -> tuple[list, str]:
        if self.budget is not None and self.spent >= self.budget:
            return [], "budget"
        restart, start = self.proc is None, time.monotonic()
        if restart:
            self.start()
        if not self.ready:
            self.received = 0
            self._wait_ready()
        if restart:      # after this submission's code got its sandbox killed: its cost (not the first start)
            self.spent += time.monotonic() - start
        start = time.monotonic()
        try:
            events, ended = self._run(request, step_limit, self._limit(check_limit))
        finally:
            self.spent += time.monotonic() - start
        if ended == "timeout" and self.budget is not None and self.spent >= self.budget:
            ended = "budget"
        return events, ended

    def _limit(self, check_limit: float) -> float:
        return check_limit if self.budget is None else min(check_limit, self.budget - self.spent)

    def _run(self, request: dict, step_limit: float, check_limit: float) -> tuple[list, str]:
        self.next_id += 1
        ident = self.next_id
        start = time.monotonic()
        end_by = start + check_limit
        data = json.dumps({**request, "id": ident, "cell_timeout": step_limit,
                           "cpu_limit": int(check_limit) + 1}).encode() + b"\n"
        if not self._send(data, min(end_by, start + step_limit + GRACE + 5)):
            self.kill()
            return [], "died"
        events: list = []
        most = len(request.get("cells", ())) + len(request.get("cases", ())) + 2
        self.received = 0
        step_by = time.monotonic() + step_limit + GRACE
        while True:
            line = self._line(min(step_by, end_by))
            ended = "timeout" if line is None else "died" if line is EOF else "flood" if line is FLOOD else None
            if ended:
                self.kill()
                return events, ended
            step_by = time.monotonic() + step_limit + GRACE
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and "end" in msg:
                if msg.get("id") == ident:     # the server's word: the worker ended, or it stopped a step
                    return events, msg["end"] if msg["end"] in ("ok", "timeout") else "died"
                continue
            if len(events) >= most:
                self.kill()
                return events, "flood"
            events.append(msg)


def _digest(source) -> str:
    return hashlib.sha256(str(source).encode(errors="replace")).hexdigest()


def _stopped_cells(events: list, ended: str, cells: int, skip: dict) -> list[tuple[int, str]]:
    """The cells (1, 2, ...) stopped in this run of a check, each with why ("timeout", "flood"): those
    whose alarm the student side reports, and the one running when the check was cut (before its
    setup event). The events are untrusted: they can only cost this submission its own cells."""
    out, last, setup = [], 0, False
    for e in events:
        if not isinstance(e, dict):
            continue
        setup = setup or "setup" in e
        k = e.get("cell")
        if isinstance(k, int) and not isinstance(k, bool) and 0 < k <= cells:
            if e.get("timeout") is True and str(k) not in skip and (k, "timeout") not in out:
                out.append((k, "timeout"))
            last = max(last, k)
    if ended in STOPPED and not setup and last < cells and str(last + 1) not in skip:
        out.append((last + 1, ended))
    return out


def _hung_functions(events: list, ended: str, cases: list) -> list[str]:
    """The functions one of whose cases did not finish in this run of a check: those whose alarm the
    student side reports, and the one asked when the check was cut ("timeout" after its setup event)."""
    hung, answered, setup = [], 0, False
    for e in events:
        if not isinstance(e, dict):
            continue
        setup = setup or "setup" in e
        i = e.get("i")
        if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(cases):
            answered += 1
            if e.get("timeout") is True:
                hung.append(cases[i].get("fn"))
    if ended == "timeout" and setup and answered < len(cases):
        hung.append(cases[answered].get("fn"))
    return [fn for fn in dict.fromkeys(hung) if isinstance(fn, str)]
