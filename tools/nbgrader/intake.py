"""Submissions are data, not paths: find them, check them and copy them without following anything.

A submission is the folder <student>/<assignment>/ of regular files (and sub-folders of them).
Whatever a student (or an unpacked zip) can put there that is not a file of their own is refused
before any copy reads it:

* a symbolic link (to a solution notebook, to gradebook.db, to a private file, or dangling): a copy
  that follows it hands the target to the grader and, through autograded/ and feedback/, back to
  the student;
* a hard link (a regular file with more than one name): the same file as one outside the folder;
* a device, fifo or socket: reading one blocks or reads what is not a submission.

Checks use lstat and copies open with O_NOFOLLOW and check the opened file again (fstat), so a
file swapped for a link between the check and the copy is refused, not followed. A refused
submission is not graded at all ("not graded: <reason>" in grades.csv); every other student is.

status.json in the course directory keeps, per assignment and student, "graded" or "not graded:
<reason>" from the last run that saw the submission; vmlib_nbgrader.StatusCsvExport writes it into
grades.csv.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

SKIP = {".ipynb_checkpoints"}       # JupyterLab's own copies: never graded, never copied
GRADED = "graded"


def refusal(entry: Path, root: Path) -> str | None:
    """Why the path `entry` (a file or folder of the submission at `root`) cannot be graded, from
    its lstat; None if it is a plain folder or a regular file with one name."""
    name = entry.relative_to(root.parent).as_posix()
    try:
        st = entry.lstat()
    except OSError as exc:
        return f"{name} cannot be read ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return f"{name} is a symbolic link; a submission holds files, not links: submit the file itself"
    if stat.S_ISDIR(st.st_mode):
        return None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a fifo" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        return f"{name} is {kind}; a submission holds regular files only"
    if st.st_nlink > 1:
        return f"{name} is a hard link (one of {st.st_nlink} names of the same file); submit a copy of the file"
    return None


def check_tree(folder: Path) -> str | None:
    """The first reason the submission `folder` cannot be graded (the folder itself included), or
    None. Never follows a link; skips .ipynb_checkpoints."""
    problem = refusal(folder, folder)
    if problem:
        return problem
    if not folder.is_dir():
        return f"{folder.name} is a file; a submission is a folder <student>/<assignment>/ of files"
    for dirpath, dirnames, filenames in os.walk(folder):       # os.walk does not follow links
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
        for name in sorted(dirnames) + sorted(filenames):
            problem = refusal(Path(dirpath) / name, folder)
            if problem:
                return problem
    return None


def discover(folder: Path, known: list[str]) -> tuple[dict[str, list[str]], dict[str, dict[str, str]], list[str]]:
    """Read folder/<student>/<assignment>/ without following links: ({assignment: [student, ...]} to
    grade, {assignment: {student: "not graded: reason"}} refused, notes on what is not a submission).

    A student folder or an assignment folder that is a link is refused like a linked file."""
    found: dict[str, list[str]] = {}
    refused: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    for student_dir in sorted(folder.iterdir()):
        if student_dir.name.startswith(".") or student_dir.name in SKIP:
            continue
        st = student_dir.lstat()
        if not stat.S_ISDIR(st.st_mode):
            why = refusal(student_dir, student_dir)
            notes.append(f"{student_dir}: not a student folder ({why or 'a file'}); skipped")
            continue
        for work in sorted(student_dir.iterdir()):
            if work.name in SKIP:
                continue
            if work.name not in known:
                notes.append(f"{work}: not an assignment of this course ({', '.join(known)}); not graded")
                continue
            problem = check_tree(work)
            if problem is None and not any(p.suffix == ".ipynb" for p in work.iterdir()):
                problem = f"{work.name}/ holds no notebook"
            if problem:
                refused.setdefault(work.name, {})[student_dir.name] = f"not graded: {problem}"
            else:
                found.setdefault(work.name, []).append(student_dir.name)
    return found, refused, notes


def copy_file(src: Path, dest: Path) -> None:
    """Copy the regular file `src` to `dest` (replaced) without following a link at `src`; OSError
    if `src` is not, when opened, a regular file with one name."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise OSError(f"{src} changed into something that is not a regular file with one name")
        with os.fdopen(os.dup(fd), "rb") as fin:
            data = fin.read()
    finally:
        os.close(fd)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(out, "wb") as fout:
        fout.write(data)
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))


def copy_tree(src: Path, dest: Path) -> None:
    """Copy the checked submission folder `src` to `dest` (made anew): folders and regular files
    only, .ipynb_checkpoints left out. OSError if anything in it is not what check_tree accepted."""
    problem = check_tree(src)
    if problem:
        raise OSError(problem)
    dest.mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d not in SKIP]
        here = dest / Path(dirpath).relative_to(src)
        for d in dirnames:
            (here / d).mkdir()
        for f in filenames:
            copy_file(Path(dirpath) / f, here / f)


def read_status(course: Path) -> dict[str, dict[str, str]]:
    """{assignment: {student: status}} from the course's status.json ({} if there is none)."""
    try:
        return json.loads((course / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def write_status(course: Path, statuses: dict[str, dict[str, str]]) -> None:
    """Merge `statuses` into the course's status.json (this run's word on a submission wins)."""
    merged = read_status(course)
    for name, by_student in statuses.items():
        merged.setdefault(name, {}).update(by_student)
    course.mkdir(parents=True, exist_ok=True)
    tmp = course / "status.json.tmp"
    tmp.write_text(json.dumps(merged, indent=1, sort_keys=True))
    tmp.replace(course / "status.json")
