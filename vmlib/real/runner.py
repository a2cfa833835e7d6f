"""Run scenarios on the live Linux kernel, or fall back to a recorded run off Linux.

`run_live(scenario)` starts `python -m vmlib.real.worker` in its own session (a fresh,
single-threaded interpreter, so forking is safe even from a Jupyter kernel), feeds it the
scenario and returns the run as a dict. A timeout kills the whole session, so no scenario
process outlives the call. Off Linux it returns the recorded run, labelled as recorded.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import platform as _platform
import signal
import subprocess
import sys
from pathlib import Path

from vmlib import scenarios as sc
from vmlib.real.probe import Probe

RECORDED_DIR = Path(__file__).with_name("recorded")
CONFIG_KEYS = ("CONFIG_PAGE_MAPCOUNT", "CONFIG_NO_PAGE_MAPCOUNT", "CONFIG_TRANSPARENT_HUGEPAGE",
               "CONFIG_MEM_SOFT_DIRTY", "CONFIG_PROC_PAGE_MONITOR", "CONFIG_KSM")


def environment(probe: Probe) -> dict:
    """What kernel this is and the settings that change what the scenarios show."""
    env = {"platform": probe.platform, "kernel": _platform.release(), "machine": _platform.machine(),
           "euid": os.geteuid() if hasattr(os, "geteuid") else None,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if probe.proc == "/proc":       # a fake /proc has no /sys next to it
        env["thp"] = _read_first("/sys/kernel/mm/transparent_hugepage/enabled")
    env["config"] = _kernel_config(probe.path("config.gz"))
    return env


def _read_first(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return None


def _kernel_config(path: str) -> dict:
    """The CONFIG_KEYS of /proc/config.gz that are set or explicitly unset; {} if unreadable."""
    try:
        with gzip.open(path, "rt") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError):
        return {}
    out = {}
    for line in lines:
        for key in CONFIG_KEYS:
            if line.startswith(key + "="):
                out[key] = line.split("=", 1)[1]
            elif line == f"# {key} is not set":
                out[key] = "n"
    return out


def run_live(scenario: sc.Scenario | str, proc: str = "/proc", platform: str | None = None,
             timeout: float = 60.0, as_user: int | None = None, fallback: bool = False,
             userns: bool = True) -> dict:
    """Run `scenario` on this kernel; off Linux return the recorded run (world 'recorded').

    as_user=uid runs the scenario processes without root (to see what a normal user sees).
    Without CAP_NET_RAW a packet ring is made in a new user and network namespace, unless
    userns=False. A run this machine does not permit (no packet socket, io_uring switched off)
    has 'blocked' set to the reason; fallback=True returns the recorded run instead, with that
    reason in its notes.

    The result always has 'world', 'scenario', 'env', 'capabilities', 'steps', 'notes' and
    'error' (None or a message); it never raises for a kernel that cannot show something.
    """
    scenario = sc.get(scenario) if isinstance(scenario, str) else scenario
    probe = Probe(proc=proc, platform=platform)
    caps = probe.capabilities()
    if not caps.linux:
        return recorded_run(scenario, reason=caps.missing[0])
    run = {"world": "live", "scenario": sc.to_dict(scenario), "env": environment(probe),
           "notes": [f"run as uid {as_user}, not root"] if as_user is not None else []}
    worker = _spawn_worker(scenario, proc, timeout, as_user, userns)
    run["notes"] += worker.pop("notes", [])
    run.update(worker)
    run.setdefault("capabilities", caps.as_dict())      # the worker's own, if it got that far
    run["notes"] += run["capabilities"].get("missing", [])
    if run.get("blocked"):
        run["notes"].append(f"cannot run here: {run['blocked']}")
    run.setdefault("steps", [])
    run.setdefault("error", None)
    if fallback and run.get("blocked"):
        return recorded_run(scenario, reason=f"this machine cannot run {scenario.name!r} live: "
                                             f"{run['blocked']}; showing the recorded run instead")
    return run


def _spawn_worker(scenario: sc.Scenario, proc: str, timeout: float, as_user: int | None,
                  userns: bool = True) -> dict:
    """Run the worker in a new session; kill the session on timeout. Returns its JSON."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    p = subprocess.Popen([sys.executable, "-m", "vmlib.real.worker"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env=env)
    try:
        out, err = p.communicate(json.dumps({"scenario": sc.to_dict(scenario), "proc": proc,
                                            "as_user": as_user, "userns": userns}),
                                 timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return {"error": f"the live run of {scenario.name!r} took longer than {timeout:.0f} s and "
                         "was killed with all its processes"}
    finally:
        _kill_session(p.pid)
    try:
        return {**json.loads(out), "worker_pid": p.pid}
    except json.JSONDecodeError:
        return {"error": f"the worker for {scenario.name!r} exited with status {p.returncode} "
                         f"without a result; its stderr ends: {err[-300:]!r}"}


def _kill_session(sid: int) -> None:
    """SIGKILL anything left in the worker's session (normally nothing is)."""
    try:
        os.killpg(sid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_all(scenarios=None, **kw) -> dict:
    """Run every (or the given) scenario live; {'env':..., 'runs': {name: run}}."""
    scenarios = scenarios or sc.SCENARIOS
    runs = {s.name: run_live(s, **kw) for s in scenarios}
    first = next(iter(runs.values()))
    return {"env": first.get("env"), "runs": runs}


def record(path: Path | None = None) -> Path:
    """Run every scenario live and store the runs as JSON (for machines without Linux)."""
    data = run_all()
    if any(r["world"] != "live" for r in data["runs"].values()):
        raise RuntimeError("record: this is not a live Linux kernel; nothing to record")
    path = path or RECORDED_DIR / f"linux-{data['env']['kernel']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def recorded_runs() -> dict:
    """The newest recording in vmlib/real/recorded/ (by its env date) as loaded JSON; {} if none."""
    loaded = [json.loads(f.read_text()) for f in sorted(RECORDED_DIR.glob("*.json"))]
    return max(loaded, key=lambda d: (d.get("env") or {}).get("date", ""), default={})


def recorded_run(scenario: sc.Scenario | str, reason: str = "") -> dict:
    """The recorded live run of `scenario`, labelled 'recorded on Linux <release> on <date>'."""
    scenario = sc.get(scenario) if isinstance(scenario, str) else scenario
    data = recorded_runs()
    run = data.get("runs", {}).get(scenario.name)
    if run is None:
        return {"world": "recorded", "scenario": sc.to_dict(scenario), "env": data.get("env", {}),
                "capabilities": {}, "steps": [], "notes": [reason] if reason else [],
                "error": f"no recorded run of {scenario.name!r}: record one on Linux with "
                         "python -m vmlib.real --record"}
    run = json.loads(json.dumps(run))
    env = run.get("env") or data.get("env", {})
    run["world"] = "recorded"
    run["label"] = f"recorded on Linux {env.get('kernel', '?')} on {env.get('date', '?')}"
    run["notes"] = ([reason] if reason else []) + [run["label"]] + run.get("notes", [])
    return run
