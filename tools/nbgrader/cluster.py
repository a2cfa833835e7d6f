"""Grading a class on a Dask cluster: the workers grade, the instructor's process keeps the gradebook.

    python tools/grade.py autograde --scheduler tcp://HOST:8786 DIR   # on a cluster (workers below)
    python tools/grade.py autograde --scheduler local DIR             # an embedded LocalCluster, --workers N
    python tools/nbgrader/cluster.py scheduler [--port 8786]                 # the scheduler (any checkout)
    python tools/nbgrader/cluster.py worker tcp://HOST:8786 [--nworkers N]   # on each grading machine

One task is a batch of up to BATCH students of one assignment. It carries everything it needs as
data: the assignment's source folder, each student's submitted files (regular files only) and a
fingerprint of the grading code. A worker grades it in a private nbgrader course of its own
(`_private_course`: generate_assignment from the shipped source, once per assignment and worker
process) with the same pipeline and sandbox as tools/nbgrader/batch.py, and returns, per
student, the scores and comments nbgrader saved there, the autograded notebook and the feedback.
The worker's private gradebook is scratch. The class gradebook has ONE writer, the instructor's
process (`record`): it writes each student's scores as their task's result arrives, then
tools/grade.py exports grades.csv from it as before.

A worker lost mid-run: Dask runs its tasks again on another worker (up to `allowed-failures`
times, 3 by default). A result is recorded when its future completes, and recording is an update
of the (assignment, student) rows, so a task that ran twice is counted once and one that never
finished is named in the failures. A worker running other grading code than the instructor's
(another checkout) refuses the task with a message saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MAX_SUBMISSION_BYTES = 32 << 20     # what one student's folder may hold to be shipped to a worker
WINDOW = 2                          # tasks sent per worker ahead of their results (the rest wait here)


# ---- shipping files as data -------------------------------------------------------------------------

def code_fingerprint() -> str:
    """A hash of the grading code: vmlib, tools/nbgrader and nbgrader_config.py (workers must match)."""
    h = hashlib.sha256()
    files = sorted((ROOT / "vmlib").rglob("*.py")) + sorted(HERE.glob("*.py")) + [ROOT / "nbgrader_config.py"]
    for path in files:
        if "__pycache__" not in path.parts:
            h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def pack(folder: Path, limit: int = MAX_SUBMISSION_BYTES) -> dict[str, bytes]:
    """{relative path: bytes} of the regular files under `folder` (links and checkpoints left out,
    nothing followed); ValueError past `limit` bytes."""
    out, total = {}, 0
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if ".ipynb_checkpoints" in rel.parts or path.is_symlink() or not path.is_file():
            continue
        if any(p.is_symlink() for p in path.parents if p != folder and folder in p.parents):
            continue
        data = path.read_bytes()
        total += len(data)
        if total > limit:
            raise ValueError(f"{folder} holds more than {limit >> 20} MiB")
        out[rel.as_posix()] = data
    return out


def unpack(files: dict[str, bytes], folder: Path) -> None:
    """Write `files` (from pack) under `folder`, which is emptied first; ValueError for a path that
    would leave it."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for rel, data in files.items():
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
            raise ValueError(f"refusing to write {rel!r} outside {folder}")
        dest = folder.joinpath(*parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def tasks(course: Path, found: dict[str, list[str]], per_task: int):
    """The work, one task at a time (read when it is sent, so that a class is never all in memory):
    batches of at most `per_task` students of one assignment, with their files as data."""
    code = code_fingerprint()
    for name, students in sorted(found.items()):
        source = pack(course / "source" / name)
        key = hashlib.sha256(repr(sorted(source.items())).encode()).hexdigest()[:16]
        for i in range(0, len(students), per_task):
            batch = students[i:i + per_task]
            yield {"assignment": name, "source": source, "source_key": key, "code": code,
                   "students": {s: pack(course / "submitted" / s / name) for s in batch}}


# ---- on a worker ------------------------------------------------------------------------------------

_WORKER: dict = {}     # this worker process: its private course folder and what is generated there


def _private_course() -> Path:
    """This process's scratch nbgrader course (made once, in the Dask worker's local directory)."""
    if "course" not in _WORKER:
        sys.path.insert(0, str(HERE))
        import batch
        warnings.simplefilter("ignore")
        bin_dir = str(Path(sys.executable).parent)           # nbgrader runs `alembic` from there
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        batch.speed_up_nbgrader(scratch=True)    # its gradebook is scratch: commits need not reach the disk
        batch._say = lambda event: None          # no progress lines on a Dask worker's stdout
        try:                                     # the worker's own folder, which Dask removes with it
            from distributed import get_worker
            scratch = Path(get_worker().local_directory)
        except (ImportError, ValueError):        # not on a Dask worker
            scratch = None
        _WORKER["course"] = Path(tempfile.mkdtemp(prefix="vmlib-grading-", dir=scratch))
        _WORKER["generated"] = {}
    return _WORKER["course"]


def grade_task(task: dict, cell_timeout: float | None, unsafe: bool, budget: float | None) -> dict:
    """Grade one task (see tasks) in this process's private course; per student the scores and
    files nbgrader made, or why there are none."""
    if task["code"] != code_fingerprint():
        raise RuntimeError(f"this grading worker ({os.uname().nodename}, {ROOT}) runs other grading code than "
                           "the instructor's: give every worker the instructor's checkout of the course")
    course = _private_course()
    import batch
    name, students = task["assignment"], list(task["students"])
    config = batch.load_config(course, cell_timeout, unsafe, budget)
    if _WORKER["generated"].get(name) != task["source_key"]:
        unpack(task["source"], course / "source" / name)
        if batch.generate(config, [name]) != 0:
            raise RuntimeError(f"generate_assignment {name} failed on a grading worker")
        _WORKER["generated"][name] = task["source_key"]
    for folder in ("submitted", "autograded", "feedback"):
        shutil.rmtree(course / folder, ignore_errors=True)
    for student, files in task["students"].items():
        unpack(files, course / "submitted" / student / name)
    ok, log, seconds, status = batch.grade_batch(config, name, students)
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:      # once a task: an open costs ~20 ms
        results = {s: {"failed": status[s]} if status.get(s, "graded").startswith("not graded")
                   else _result(gb, course, name, s) for s in students}
    return {"assignment": name, "ok": ok, "log": log, "seconds": seconds, "results": results}


def _result(gb, course: Path, name: str, student: str) -> dict:
    """What the private course (its gradebook `gb`) holds for one graded student: scores, comments, files."""
    from nbgrader.api import MissingEntry
    try:
        sub = gb.find_submission(name, student)
        notebooks = {nb.name: {"late": nb.late_submission_penalty,
                               "grades": {g.name: g.auto_score for g in nb.grades},
                               "comments": {c.name: c.auto_comment for c in nb.comments}}
                     for nb in sub.notebooks}
        timestamp = sub.timestamp
    except MissingEntry:
        return {"failed": f"not graded: nbgrader saved no scores for {student} ({name})"}
    autograded = course / "autograded" / student / name
    if not autograded.is_dir():
        return {"failed": f"not graded: nbgrader wrote no autograded notebook for {student} ({name})"}
    feedback = course / "feedback" / student / name
    return {"timestamp": timestamp, "notebooks": notebooks, "autograded": pack(autograded),
            "feedback": pack(feedback) if feedback.is_dir() else {}}


# ---- on the instructor's machine ---------------------------------------------------------------------

def record(gb, course: Path, name: str, student: str, result: dict) -> None:
    """Write one student's result into the class gradebook `gb` and the course's autograded/ and
    feedback/ folders, as nbgrader's autograde would have (an update: recording twice changes nothing)."""
    gb.update_or_create_student(student)
    if result["timestamp"] is not None:
        gb.update_or_create_submission(name, student, timestamp=result["timestamp"])
    else:
        gb.update_or_create_submission(name, student)
    from nbgrader.api import Comment, Grade
    from sqlalchemy.orm import joinedload

    for nb_name, got in result["notebooks"].items():
        nb = gb.find_submission_notebook(nb_name, name, student)
        # the cells' names with the grades in one query (nb.grades would load each one's cell alone)
        for grade in gb.db.query(Grade).filter(Grade.notebook_id == nb.id).options(joinedload(Grade.cell)):
            if grade.name in got["grades"]:
                grade.auto_score = got["grades"][grade.name]
                grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
        for comment in gb.db.query(Comment).filter(Comment.notebook_id == nb.id).options(joinedload(Comment.cell)):
            if comment.name in got["comments"]:
                comment.auto_comment = got["comments"][comment.name]
        nb.late_submission_penalty = got["late"]
    gb.db.commit()
    unpack(result["autograded"], course / "autograded" / student / name)
    if result["feedback"]:
        unpack(result["feedback"], course / "feedback" / student / name)


@contextlib.contextmanager
def fast_commits(gb):
    """While recording, the gradebook in SQLite's WAL mode with synchronous=NORMAL: a commit (nbgrader
    makes several per student) no longer waits for the disk (about 50 ms each on a busy machine); a
    crash of this process loses nothing committed, a power cut at most the last commits, and the
    file goes back to nbgrader's usual rollback journal afterwards."""
    from sqlalchemy import event, text

    def pragmas(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(gb.engine, "connect", pragmas)
    gb.db.remove()
    gb.engine.dispose()                       # every connection from now on gets the pragma
    with gb.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    try:
        yield gb
    finally:
        gb.db.remove()
        event.remove(gb.engine, "connect", pragmas)
        gb.engine.dispose()
        with gb.engine.connect() as conn:
            conn.execute(text("PRAGMA journal_mode=DELETE"))


def run(course: Path, found: dict[str, list[str]], scheduler: str, workers: int, per_task: int,
        cell_timeout: float | None, unsafe: bool, budget: float | None, seconds: dict,
        progress=None, client=None) -> list[str]:
    """Grade `found` ({assignment: [student]}, already in course/submitted/) on the Dask scheduler at
    `scheduler` ("local": a LocalCluster of `workers` processes here; or `client`, a connected
    distributed.Client) in tasks of at most `per_task` students, smaller when that keeps every
    worker busy; record every result here. The failures, each naming its students; adds the
    workers' seconds by stage to `seconds`."""
    from distributed import Client, LocalCluster, as_completed
    from nbgrader.api import Gradebook

    own = None
    if client is None:
        if scheduler == "local":
            own = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
            client = Client(own)
        else:
            try:
                client = Client(scheduler, timeout="30s")
            except OSError as exc:
                raise SystemExit(f"cannot reach the Dask scheduler at {scheduler} ({exc}): start it with "
                                 "`dask scheduler` and its workers with tools/nbgrader/cluster.py worker") from None
            own = client
            try:
                client.wait_for_workers(1, timeout=120)
            except TimeoutError:
                client.close()
                raise SystemExit(f"no grading worker joined the scheduler at {scheduler} within 2 minutes: "
                                 "start them with tools/nbgrader/cluster.py worker") from None
    slots = max(1, sum(client.nthreads().values()))     # enough tasks to keep every worker busy
    size = max(1, min(per_task, -(-max(len(s) for s in found.values()) // (2 * slots))))
    work = tasks(course, found, size)
    failures: list[str] = []
    warnings.filterwarnings("ignore", module="nbgrader")      # its SQLAlchemy warnings, as in batch.py
    futures: dict = {}      # the tasks sent and not yet recorded -> (assignment, students)

    def send() -> list:
        """Send the next task, if any (at most WINDOW per worker are out at a time); [its future]."""
        task = next(work, None)
        if task is None:
            return []
        future = client.submit(grade_task, task, cell_timeout, unsafe, budget, pure=False)
        futures[future] = (task["assignment"], list(task["students"]))
        return [future]

    try:
        pending = as_completed([f for _ in range(WINDOW * slots) for f in send()])
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb, fast_commits(gb):
            for future in pending:
                name, students = futures.pop(future)
                pending.update(send())
                who = f"{name} ({', '.join(students)})"
                try:
                    done = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost or failing task is reported, the rest go on
                    failures.append(f"not graded: {who}: {type(exc).__name__}: {exc}")
                    continue
                finally:
                    future.release()      # the worker may drop the result (its pages) once it is here
                for stage, t in done["seconds"].items():
                    seconds[stage] = seconds.get(stage, 0.0) + t
                if not done["ok"]:
                    failures.append(done["log"])
                start = time.thread_time()        # CPU time of recording (steady on a busy machine)
                for student, result in done["results"].items():
                    if "failed" in result:
                        failures.append(result["failed"])
                        continue
                    try:
                        record(gb, course, done["assignment"], student, result)
                    except Exception as exc:  # noqa: BLE001 - one student's record fails, the rest go on
                        gb.db.rollback()
                        failures.append(f"not recorded: {student} ({done['assignment']}): {exc!r}")
                seconds["record (instructor, CPU)"] = (seconds.get("record (instructor, CPU)", 0.0)
                                                       + time.thread_time() - start)
                if progress is not None:
                    progress.add(len(students))
    finally:
        if own is not None:
            client.close()
            own.close()
    return failures


def _environment() -> dict:
    """Our environment with this checkout's tools/nbgrader (where `cluster` lives) and root on PYTHONPATH:
    the scheduler unpickles the tasks (a reference to cluster.grade_task), the workers run them."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]))


def scheduler_main(argv: list[str] | None = None) -> int:
    """`cluster.py scheduler [--port P]`: a Dask scheduler that can read this checkout's tasks."""
    parser = argparse.ArgumentParser(prog="cluster.py scheduler", description="the Dask scheduler of a grading cluster")
    parser.add_argument("--port", type=int, default=8786)
    args = parser.parse_args(argv)
    cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", str(args.port)]
    os.execve(sys.executable, cmd, _environment())
    return 1


def worker_main(argv: list[str] | None = None) -> int:
    """`cluster.py worker ADDRESS`: a Dask worker for this checkout (bwrap checked first)."""
    parser = argparse.ArgumentParser(prog="cluster.py worker", description="a grading worker of a Dask cluster")
    parser.add_argument("address", help="the scheduler, e.g. tcp://grader-0:8786")
    parser.add_argument("--nworkers", type=int, default=os.cpu_count() or 1, help="worker processes (one per core)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true", help="start even without bubblewrap")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from vmlib.grading.sandbox import problem
    why = problem()
    if why and not args.unsafe_no_sandbox:
        sys.exit(f"this machine cannot run the grading sandbox: {why}")
    cmd = [sys.executable, "-m", "distributed.cli.dask_worker", args.address, "--nworkers", str(args.nworkers),
           "--nthreads", "1"]
    os.execve(sys.executable, cmd, _environment())
    return 1


if __name__ == "__main__":
    commands = {"worker": worker_main, "scheduler": scheduler_main}
    if sys.argv[1:2] == [] or sys.argv[1] not in commands:
        sys.exit(__doc__)
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))
