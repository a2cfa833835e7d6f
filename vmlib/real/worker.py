"""The process that runs one scenario on the live kernel: `python -m vmlib.real.worker`.

It reads {"scenario": ..., "proc": ...} as JSON on stdin and prints one JSON run on stdout.
It is a coordinator only: it forks the scenario's "parent", which performs the steps with real
anonymous mmap (through libc, so partial munmap and madvise work), real kernel rings (MmapRing:
a packet socket bound to no protocol with a TPACKET_V2 RX ring, or an io_uring's SQ ring, mmapped
MAP_SHARED), real fork and real loads and stores. After every step each live scenario process
reads its own /proc/self/pagemap and smaps and sends the raw entries and VmFlags back through a
pipe; the coordinator adds kpagecount and kpageflags.
Nothing is written to /proc or to any process we did not start. Every scenario process exits:
on "exit", when its command pipe closes, after an idle timeout, or by SIGKILL in cleanup.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback

from vmlib import scenarios as sc
from vmlib.real.probe import PAGE_SIZE, Probe, decode_kpageflags, decode_pagemap

PROT = {"none": 0, "r": 1, "rw": 3}
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MADV_NOHUGEPAGE = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4
SOL_PACKET, PACKET_RX_RING, PACKET_VERSION, TPACKET_V2 = 263, 5, 10, 1
RING_FRAME_SIZE = 2048       # two TPACKET_V2 frames per 4 KiB block
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
STEP_TIMEOUT = 10.0          # seconds a scenario process may take for one command
IDLE_TIMEOUT = 60.0          # a scenario process with no command for this long exits by itself
ALLOW_USERNS = True          # without CAP_NET_RAW, try a new user+network namespace for a ring

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.syscall.restype = ctypes.c_long
SYS_io_uring_setup = 425     # x86-64, i386, arm64 and the other arches of the common table (not alpha: 535)
IO_URING_PARAMS_SIZE = 120   # sizeof(struct io_uring_params)


class NotPermitted(Exception):
    """This machine does not let the runner do a step (a permission, not a kernel behaviour)."""


# ---------------------------------------------------------------- messages over pipes

def send(fd: int, obj) -> None:
    """Write one length-prefixed JSON message."""
    data = json.dumps(obj).encode()
    os.write(fd, struct.pack("<I", len(data)) + data)


def recv(fd: int, timeout: float, pidfd: int | None = None):
    """Read one message; None if the writer died (pidfd readable) or the pipe closed.

    TimeoutError after `timeout` seconds without a message.
    """
    head = _read_exact(fd, 4, timeout, pidfd)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<I", head)[0], timeout, pidfd)
    return None if body is None else json.loads(body)


def _read_exact(fd: int, n: int, timeout: float, pidfd: int | None) -> bytes | None:
    buf = b""
    deadline = time.monotonic() + timeout
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer within {timeout:.0f} s")
        ready, _, _ = select.select([fd] + ([pidfd] if pidfd is not None else []), [], [], left)
        if fd in ready:
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                return None
            buf += chunk
        elif ready:                      # the process died and its pipe is empty
            return None
    return buf


# ---------------------------------------------------------------- one scenario process

class Actor:
    """The state of one scenario process: its mappings (name -> address, pages, unmapped)."""

    def __init__(self, probe: Probe):
        self.probe = probe
        self.maps: dict[str, dict] = {}
        self.sockets: list[socket.socket] = []     # kept open: a ring lives as long as its socket
        self.fds: list[int] = []                   # io_uring fds, kept open likewise

    def do(self, step) -> dict:
        """Perform one step in this process; the result dict goes back to the coordinator."""
        if isinstance(step, sc.Mmap):
            return self.mmap(step)
        if isinstance(step, sc.MmapRing):
            return self.mmap_ring(step)
        addr = self.maps[step.name]["addr"] + step.page * PAGE_SIZE if hasattr(step, "name") else 0
        if isinstance(step, sc.Read):
            return {"data": ctypes.string_at(addr, 1).hex()}
        if isinstance(step, sc.Write):
            ctypes.memmove(addr, step.data, len(step.data))
            return {}
        if isinstance(step, sc.Munmap):
            return self.munmap(step, addr)
        if isinstance(step, sc.LookSpecial):
            return {"special": self.look_special()}
        raise ValueError(f"worker: step {step!r} is not performed by Actor.do")

    def mmap(self, step: sc.Mmap) -> dict:
        flags = MAP_ANONYMOUS | (MAP_SHARED if step.flags == "shared" else MAP_PRIVATE)
        size = step.npages * PAGE_SIZE
        addr = _libc.mmap(None, size, PROT[step.prot], flags, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap: {os.strerror(ctypes.get_errno())}")
        _libc.madvise(addr, size, MADV_NOHUGEPAGE)   # small pages only, like the simulator
        self.maps[step.name] = {"addr": addr, "npages": step.npages, "unmapped": []}
        return {}

    def mmap_ring(self, step: sc.MmapRing) -> dict:
        """A TPACKET_V2 RX ring of step.npages 4 KiB blocks (or an io_uring SQ ring), mmapped
        whole, shared, read-write."""
        if step.kind == "io_uring":
            return self.mmap_uring(step)
        sock, how = packet_socket()
        self.sockets.append(sock)
        blocks = step.npages
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING,
                        struct.pack("4I", PAGE_SIZE, blocks, RING_FRAME_SIZE,
                                    blocks * PAGE_SIZE // RING_FRAME_SIZE))
        size = blocks * PAGE_SIZE
        addr = _libc.mmap(None, size, PROT["rw"], MAP_SHARED, sock.fileno(), 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap of the packet ring: {os.strerror(ctypes.get_errno())}")
        self.maps[step.name] = {"addr": addr, "npages": blocks, "unmapped": []}
        return {"note": how} if how else {}

    def mmap_uring(self, step: sc.MmapRing) -> dict:
        """io_uring_setup(4 entries), then mmap its SQ ring (offset IORING_OFF_SQ_RING = 0)."""
        params = (ctypes.c_uint8 * IO_URING_PARAMS_SIZE)()
        fd = _libc.syscall(SYS_io_uring_setup, 4, params)
        if fd < 0:
            e = ctypes.get_errno()
            if e in (errno.EPERM, errno.ENOSYS):
                raise NotPermitted(f"io_uring_setup failed with {errno.errorcode[e]}: io_uring is "
                                   "switched off here (sysctl kernel.io_uring_disabled, a seccomp "
                                   "filter such as a container's, or a kernel without "
                                   "CONFIG_IO_URING)")
            raise OSError(e, f"io_uring_setup: {os.strerror(e)}")
        self.fds.append(fd)
        addr = _libc.mmap(None, step.npages * PAGE_SIZE, PROT["rw"], MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap of the io_uring SQ ring: "
                                              f"{os.strerror(ctypes.get_errno())}")
        self.maps[step.name] = {"addr": addr, "npages": step.npages, "unmapped": []}
        return {}

    def munmap(self, step: sc.Munmap, addr: int) -> dict:
        m = self.maps[step.name]
        n = m["npages"] - step.page if step.npages is None else step.npages
        if _libc.munmap(addr, n * PAGE_SIZE) != 0:
            raise OSError(ctypes.get_errno(), f"munmap: {os.strerror(ctypes.get_errno())}")
        m["unmapped"] = sorted(set(m["unmapped"]) | set(range(step.page, step.page + n)))
        return {}

    def observe(self) -> dict:
        """Raw pagemap entries per mapping (None for pages this process unmapped)."""
        out = {}
        for name, m in self.maps.items():
            entries = self.probe.pagemap(m["addr"], m["npages"])
            out[name] = [None if i in m["unmapped"] else e for i, e in enumerate(entries)]
        return out

    def observe_vmflags(self) -> dict:
        """Mapping -> per page the smaps VmFlags codes of its vma, e.g. 'rd wr sh mr mw ms mm'."""
        try:
            vmas = self.probe.smaps()
        except OSError:
            return {}
        out = {}
        for name, m in self.maps.items():
            pages = []
            for i in range(m["npages"]):
                addr = m["addr"] + i * PAGE_SIZE
                vma = next((v for v in vmas if v["start"] <= addr < v["end"]), None)
                pages.append(None if vma is None or i in m["unmapped"] else " ".join(vma["vmflags"]))
            out[name] = pages
        return out

    def look_special(self) -> list[dict]:
        """This process's vmas whose VmFlags has pf, io or mm, with their raw pagemap entries."""
        for clock in (time.CLOCK_MONOTONIC, time.CLOCK_REALTIME):
            time.clock_gettime(clock)            # the vDSO reads [vvar], so its pte is present
        found = []
        for vma in self.probe.smaps():
            codes = [c for c in vma["vmflags"] if c in ("pf", "io", "mm")]
            if not codes and vma["name"] != "[vdso]":    # [vdso]: a special mapping of normal pages
                continue
            n = min((vma["end"] - vma["start"]) // PAGE_SIZE, 16)
            try:
                entries = self.probe.pagemap(vma["start"], n)
            except OSError as e:
                entries, vma["error"] = [], str(e)
            found.append({**vma, "special_codes": codes, "entries": entries})
        return found


def packet_socket() -> tuple[socket.socket, str]:
    """An AF_PACKET raw socket bound to no protocol (it never receives a packet), and a note.

    A packet socket needs CAP_NET_RAW. Without it, a normal user can usually still get one in
    a new user and network namespace of its own (unshare, no root and nothing written to
    /proc); the note says so. NotPermitted if neither works.
    """
    try:
        return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0), ""
    except PermissionError:
        pass
    if not ALLOW_USERNS:
        raise NotPermitted("socket(AF_PACKET, SOCK_RAW) failed with EPERM: a packet socket needs "
                           "CAP_NET_RAW (run as root), and this run was told not to try a user "
                           "namespace, so the ring scenarios cannot run here")
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        err = os.strerror(ctypes.get_errno())
        raise NotPermitted(
            "socket(AF_PACKET, SOCK_RAW) failed with EPERM: a packet socket needs CAP_NET_RAW "
            f"(run as root), and a new user namespace was refused too ({err}), so the ring "
            "scenarios cannot run on this machine") from None
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise NotPermitted("socket(AF_PACKET, SOCK_RAW) failed with EPERM even in a new user and "
                           "network namespace: a packet socket needs CAP_NET_RAW (run as "
                           "root)") from None
    return sock, ("no CAP_NET_RAW here: the ring was made in a new user and network namespace "
                  "(unshare), where this process has it; the memory manager is the same")


def serve(name: str, fds: dict, probe: Probe, actor: Actor | None = None) -> None:
    """Loop of one scenario process: answer commands until told to exit. Never returns."""
    cmd_r, rep_w = fds[name]
    actor = actor or Actor(probe)
    try:
        while True:
            try:
                msg = recv(cmd_r, IDLE_TIMEOUT)
            except TimeoutError:
                break
            if msg is None or msg["op"] == "exit":
                break
            send(rep_w, answer(actor, msg, fds, probe))
    finally:
        os._exit(0)


def answer(actor: Actor, msg: dict, fds: dict, probe: Probe) -> dict:
    """Run one command; errors come back as {'ok': False, 'error': ...}, never as a crash."""
    try:
        if msg["op"] == "observe":
            return {"ok": True, "maps": actor.observe(), "vmflags": actor.observe_vmflags()}
        step = sc.step_from_dict(msg["step"])
        if isinstance(step, sc.Fork):
            pid = os.fork()
            if pid == 0:
                serve(step.child, fds, probe, actor)   # the child inherits the mappings
            return {"ok": True, "pid": pid, "maps": actor.maps}
        return {"ok": True, **actor.do(step)}
    except Exception as e:  # noqa: BLE001 - reported to the coordinator, never lost
        return {"ok": False, "error": f"{type(e).__name__}: {e}",
                "not_permitted": isinstance(e, NotPermitted)}


# ---------------------------------------------------------------- the coordinator

class Coordinator:
    """Drives the scenario processes step by step and collects observations."""

    def __init__(self, scenario: sc.Scenario, probe: Probe):
        self.scenario = scenario
        self.probe = probe
        self.caps = probe.capabilities()
        self.fds = {}                       # process -> (cmd_r, rep_w) for its side
        self.mine = {}                      # process -> (cmd_w, rep_r) for the coordinator
        for name in sc.processes(scenario):
            cr, cw = os.pipe()
            rr, rw = os.pipe()
            self.fds[name], self.mine[name] = (cr, rw), (cw, rr)
        self.pids: dict[str, int] = {}
        self.pidfds: dict[str, int] = {}
        self.alive: list[str] = []
        self.blocked: str | None = None    # why this machine cannot run the scenario, if so

    def start(self) -> None:
        pid = os.fork()
        if pid == 0:
            for cw, rr in self.mine.values():
                os.close(cw)
                os.close(rr)
            serve("parent", self.fds, self.probe)
        self._track("parent", pid)

    def _track(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.pidfds[name] = os.pidfd_open(pid)
        self.alive.append(name)

    def ask(self, name: str, msg: dict) -> dict:
        cmd_w, rep_r = self.mine[name]
        send(cmd_w, msg)
        reply = recv(rep_r, STEP_TIMEOUT, self.pidfds[name])
        if reply is None:
            self.alive.remove(name)
            raise RuntimeError(f"process {name!r} died during {msg.get('step', msg)['op']} "
                               "(a signal such as SIGSEGV, e.g. from touching a PROT_NONE page)")
        return reply

    def run(self) -> list[dict]:
        records = []
        for i, step in enumerate(self.scenario.steps):
            rec = {"index": i, "step": sc.step_to_dict(step), "text": sc.describe(step),
                   "result": {}, "error": None}
            records.append(rec)
            try:
                rec["result"] = self.perform(step)
            except Exception as e:  # noqa: BLE001 - the run records it and stops
                rec["error"] = f"{type(e).__name__}: {e}"
            rec["procs"] = self.observe_all()
            if rec["error"]:
                break
        return records

    def perform(self, step) -> dict:
        if isinstance(step, sc.Exit):
            return self.exit(step.who)
        reply = self.ask(step.who, {"op": "step", "step": sc.step_to_dict(step)})
        if not reply.pop("ok"):
            if reply.get("not_permitted"):
                self.blocked = reply["error"].split(": ", 1)[-1]
            raise RuntimeError(reply["error"])
        if isinstance(step, sc.Fork):
            self._track(step.child, reply.pop("pid"))
            reply.pop("maps", None)
        for vma in reply.get("special", []):
            vma["pages"] = [self.page(e) for e in vma.pop("entries")]
        return reply

    def exit(self, name: str) -> dict:
        """Tell `name` to exit and wait until it is gone (its mm is torn down before that)."""
        send(self.mine[name][0], {"op": "exit"})
        ready, _, _ = select.select([self.pidfds[name]], [], [], STEP_TIMEOUT)
        if not ready:
            raise TimeoutError(f"process {name!r} did not exit within {STEP_TIMEOUT:.0f} s")
        self.alive.remove(name)
        self.reap()
        return {}

    def observe_all(self) -> dict:
        """pname -> mapping -> [page observation] for every live process."""
        out = {}
        for name in list(self.alive):
            try:
                reply = self.ask(name, {"op": "observe"})
            except (RuntimeError, TimeoutError) as e:
                out[name] = {"error": str(e)}
                continue
            if not reply.get("ok"):
                out[name] = {"error": reply.get("error")}
                continue
            flags = reply.get("vmflags") or {}
            out[name] = {m: [self.page(e, (flags.get(m) or [None] * len(entries))[j])
                             for j, e in enumerate(entries)] for m, entries in reply["maps"].items()}
        return out

    def page(self, entry: int | None, vmflags: str | None = None) -> dict:
        """One page observation: a raw pagemap entry, kpagecount, kpageflags, the vma's VmFlags."""
        if entry is None:
            return {"present": False, "mapped": False, "vmflags": None}
        obs = decode_pagemap(entry)
        obs["vmflags"] = vmflags
        obs["kpagecount"] = obs["flags"] = None
        if obs["present"] and obs["pfn"] is not None:
            if self.caps.kpagecount:
                obs["kpagecount"] = self.probe.kpagecount(obs["pfn"])
            if self.caps.kpageflags:
                obs["flags"] = decode_kpageflags(self.probe.kpageflags(obs["pfn"]))
        return obs

    def reap(self) -> None:
        """Collect exited children (we are their subreaper), never blocking."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def cleanup(self) -> None:
        """Ask every live process to exit, SIGKILL whoever does not, reap, close fds."""
        for name in list(self.alive):
            try:
                send(self.mine[name][0], {"op": "exit"})
            except OSError:
                pass
        deadline = time.monotonic() + 5
        for name, pidfd in self.pidfds.items():
            left = max(0.0, deadline - time.monotonic())
            if not select.select([pidfd], [], [], left)[0]:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                select.select([pidfd], [], [], 5)
        self.reap()
        for fd in [*self.pidfds.values(), *[f for p in self.mine.values() for f in p],
                   *[f for p in self.fds.values() for f in p]]:
            try:
                os.close(fd)
            except OSError:
                pass


def run_scenario(scenario: sc.Scenario, probe: Probe) -> dict:
    """Run one scenario here (must be a fresh single-threaded process) and return the run."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})           # one CPU: per-CPU LRU batches drain where we fault
    co = Coordinator(scenario, probe)
    out = {"capabilities": co.caps.as_dict(), "pinned_cpu": cpu, "steps": [], "error": None}
    try:
        co.start()
        out["steps"] = co.run()
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        co.cleanup()
    if co.blocked:
        out["blocked"] = co.blocked
    out["notes"] = [r["result"]["note"] for r in out["steps"] if (r.get("result") or {}).get("note")]
    return out


def main() -> None:
    global ALLOW_USERNS
    req = json.loads(sys.stdin.read())
    ALLOW_USERNS = req.get("userns", True)
    try:
        if req.get("as_user") is not None:     # drop root before anything is opened
            os.setgroups([])
            os.setgid(req["as_user"])
            os.setuid(req["as_user"])
            _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)   # as a normal user's process would be
        run = run_scenario(sc.from_dict(req["scenario"]), Probe(proc=req.get("proc", "/proc")))
    except Exception as e:  # noqa: BLE001 - the caller gets a message, not a traceback
        run = {"error": f"worker failed: {type(e).__name__}: {e}",
               "detail": traceback.format_exc(limit=3)}
    sys.stdout.write(json.dumps(run))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
