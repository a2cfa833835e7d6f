"""What leaves the grader is safe (issue 22, items 1-4), checked with the documented commands.

* Nothing hidden leaves the grader: for every assignment, `tools/grade.py autograde` and then
  `nbgrader release_feedback` (to a temporary exchange); no line of a hidden test cell of
  solutions/, no hidden seed, ps7 reason or expected choice, no ps9 row of a mutation is in any
  file released or in feedback/, which holds only the HTML and the two files release_feedback reads.
* Submissions are data, a student can only fail itself, feedback is safe to open: the attacks of
  tests/fixtures/submissions/attacks.py:write_intake_attacks (links to a solution, to the gradebook,
  to a private file, dangling, a linked folder, a hard link, a fifo, malformed JSON, schema_version
  tampering, script/onerror/javascript: in markdown, HTML in a grade_id) graded in one class run
  between two honest students.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from vmlib.grading.notebook import parse_checks

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "submissions"))
sys.path.insert(0, str(ROOT / "tools" / "nbgrader"))
import attacks
import intake
import plants

pytestmark = pytest.mark.slow
ASSIGNMENTS = sorted(plants.PLANTS)
TIMESTAMP = "2026-12-07 12:00:00.000000 UTC"


def _grade(course: Path, folder: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "tools" / "grade.py"), "--course", str(course), "autograde", str(folder),
           "--timeout", "5"]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1200)


def _rows(course: Path) -> dict[tuple[str, str], dict]:
    with (course / "grades.csv").open(newline="") as f:
        return {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}


# ---- item 1: nothing hidden leaves the grader, for every assignment ---------------------------------

def hidden_secrets(name: str) -> tuple[list[str], list[re.Pattern]]:
    """(the lines of the hidden tests of solutions/<name>, whitespace collapsed; patterns for the
    secrets those lines hold: seeds, expected choices, reasons and ps9's rows by mutation)."""
    nb = plants.load(ROOT / "solutions" / name / f"{name}.ipynb")
    release = _flat("\n".join(plants.src(c) for c in plants.load(ROOT / "exercises" / name / f"{name}.ipynb")["cells"]))
    lines, patterns = [], []
    for c in nb["cells"]:
        text = plants.src(c)
        for part in re.findall(r"BEGIN HIDDEN TESTS\n(.*?)\n[^\n]*END HIDDEN TESTS", text, re.DOTALL):
            lines += [_flat(ln) for ln in part.splitlines() if _flat(ln)]
            for check in parse_checks(part):
                for key, value in check["params"].items():
                    if key == "seed":
                        patterns.append(re.compile(rf"seed\W{{0,3}}{value}\b"))
                    elif key == "expected":
                        patterns.append(re.compile(rf"(needs|expected\W{{0,3}}) ?{value}\b"))
                    elif key == "rows":
                        patterns += [re.compile(rf"\b{m}\W{{1,8}}§") for m in value]
                    elif isinstance(value, str) and len(value) >= 12 and _flat(value) not in release:
                        patterns.append(re.compile(re.escape(_flat(value))))
    return lines, [p for p in patterns if not p.search(release)]       # what the exercise says is no secret


def _flat(text: str) -> str:
    return " ".join(text.split())


def _text(raw: str) -> str:
    """What a page says: tags removed, entities decoded, whitespace collapsed."""
    return _flat(html.unescape(re.sub(r"<[^>]+>", "", raw)))


def _leaks(name: str, text: str, own: str = "") -> list[str]:
    """The hidden lines and secrets of `name` in `text`, but for those in `own` (what the student
    submitted: a student who copies the key into an answer gets it back, which leaks nothing)."""
    lines, patterns = hidden_secrets(name)
    flat, own = _flat(text), _flat(own)
    return ([ln for ln in lines if ln in flat and ln not in own]
            + [p.pattern for p in patterns if p.search(flat) and not p.search(own)])


def _submitted(course: Path, student: str, name: str) -> str:
    nb = json.loads((course / "submitted" / student / name / f"{name}.ipynb").read_text())
    return "\n".join(plants.src(c) for c in nb["cells"])


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Every assignment graded for an honest student, the unanswered release and two wrong
    plants (whose hidden checks fail), in one `tools/grade.py autograde` run; then
    `nbgrader release_feedback` of each assignment to an exchange. Returns (course, exchange)."""
    tmp = tmp_path_factory.mktemp("feedback")
    subs, course, exchange = tmp / "submissions", tmp / "course", tmp / "exchange"
    for name in ASSIGNMENTS:
        chosen = [p for p in plants.PLANTS[name]() if p.student == "a_release"]
        chosen += [p for p in plants.PLANTS[name]() if p.student.startswith("w_")][:2]
        chosen.append(plants.Plant("honest", lambda name=name: plants.filled(name)))
        for plant in chosen:
            work = subs / plant.student / name
            work.mkdir(parents=True)
            (work / f"{name}.ipynb").write_text(json.dumps(plant.build()))
            (work / "timestamp.txt").write_text(TIMESTAMP)            # what nbgrader submit adds
            (work / "submission_secret.txt").write_text(f"secret-{plant.student}-{name}")
    proc = _grade(course, subs)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    exchange.mkdir()
    for name in ASSIGNMENTS:
        cmd = [sys.executable, "-m", "nbgrader", "release_feedback", name, f"--CourseDirectory.root={course}",
               f"--Exchange.root={exchange}"]
        rel = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        assert rel.returncode == 0, rel.stdout + rel.stderr[-3000:]
    return course, exchange


def test_secret_finder_finds_the_hidden_tests(released):
    """The check below can fail: every assignment has hidden secrets, and nbconvert's plain HTML of
    an autograded notebook (which only the grader sees) shows every hidden line and secret."""
    from nbconvert.exporters import HTMLExporter

    course, _ = released
    for name in ASSIGNMENTS:
        lines, patterns = hidden_secrets(name)
        assert lines and (patterns or name == "ps6_predict"), name     # ps6 shows its sequences by seed
        body, _ = HTMLExporter(template_name="classic").from_filename(
            str(course / "autograded" / "w_framebuffer" / name / f"{name}.ipynb") if name == "ps7_design" else
            str(course / "autograded" / "honest" / name / f"{name}.ipynb"))
        assert len(_leaks(name, _text(body))) == len(lines) + len(patterns), (name, _leaks(name, _text(body)))


def test_released_feedback_holds_nothing_hidden(released):
    course, exchange = released
    sent = sorted(p for p in exchange.rglob("*") if p.is_file())
    per_name = len(ASSIGNMENTS) * 4
    assert len(sent) == per_name and all(p.suffix == ".html" for p in sent), sent
    checked = set()
    for name in ASSIGNMENTS:
        for student_dir in (course / "feedback").iterdir():
            folder = student_dir / name
            if not folder.is_dir():
                continue
            files = sorted(p.name for p in folder.iterdir())
            assert files == sorted([f"{name}.html", *intake_release_files()]), (folder, files)
            page = folder / f"{name}.html"
            text, own = _text(page.read_text()), _submitted(course, student_dir.name, name)
            assert _leaks(name, text, own) == [], (page, _leaks(name, text, own))
            checked.add(page.read_bytes())
    assert len(checked) == per_name
    assert {p.read_bytes() for p in sent} == checked, "the exchange holds exactly the feedback checked above"


def intake_release_files() -> tuple[str, ...]:
    from vmlib_nbgrader import RELEASE_NEEDS
    return RELEASE_NEEDS


def test_hidden_cells_show_only_their_score(released):
    """A wrong answer that only a hidden check catches (ps7's framebuffer) is scored, and its
    feedback says so without the expected choice or the reason."""
    course, _ = released
    text = _text((course / "feedback" / "w_framebuffer" / "ps7_design" / "ps7_design.html").read_text())
    assert "hidden tests: 0 of 1 points" in text
    assert "the kernel needs" not in text and "BEGIN HIDDEN" not in text
    autograded = (course / "autograded" / "w_framebuffer" / "ps7_design" / "ps7_design.ipynb").read_text()
    assert "you chose MIXEDMAP; the kernel needs PFNMAP" in autograded      # the grader keeps the verdict


# ---- items 2-4: a class with attackers between two honest students --------------------------------

@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """One `tools/grade.py autograde` run of write_intake_attacks; (course, {student: want}, run, tmp)."""
    tmp = tmp_path_factory.mktemp("intake")
    course = tmp / "course"
    want = attacks.write_intake_attacks(tmp / "submissions", course, tmp / "private")
    return course, want, _grade(course, tmp / "submissions"), tmp


def _auto_scores(course: Path, name: str, student: str) -> dict[str, tuple[float, float]]:
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(name, name, student)
        return {g.cell.name: (g.auto_score, g.max_score) for g in nb.grades if g.cell.cell_type != "markdown"}


def test_attackers_get_what_they_deserve_and_every_student_a_row(attacked):
    course, want, proc, _ = attacked
    assert proc.returncode == 1, "refused submissions make the exit status 1"      # someone to look at
    assert "submission(s) not (fully) graded" in proc.stderr
    rows = _rows(course)
    assert {s for (a, s) in rows if a == attacks.NAME} == set(want)
    for student, expect in want.items():
        row = rows[(attacks.NAME, student)]
        if expect == "full":
            assert row["status"] == "graded", (student, row)
            scores = _auto_scores(course, attacks.NAME, student)
            assert all(got == full for got, full in scores.values()), (student, scores)
            assert float(row["score"]) == float(row["max_score"]) == 12.0, row
        else:
            assert row["status"].startswith("not graded: "), (student, row)
            assert float(row["score"]) == 0.0, row
    assert "is a symbolic link" in rows[(attacks.NAME, "m_link_solution")]["status"]
    assert "is a hard link" in rows[(attacks.NAME, "m_hard_link")]["status"]
    assert "is a fifo" in rows[(attacks.NAME, "m_fifo")]["status"]
    assert "JSON" in rows[(attacks.NAME, "m_malformed")]["status"]
    assert "missing an expected key: metadata" in rows[(attacks.NAME, "m_no_metadata")]["status"]


def test_no_linked_file_is_copied_anywhere(attacked):
    course, want, _, tmp = attacked
    solution = (ROOT / "solutions" / attacks.NAME / f"{attacks.NAME}.ipynb").read_bytes()
    gradebook_names = [p for p in course.rglob("gradebook.db*") if p.parent != course]
    assert gradebook_names == []
    for stage in ("submitted", "autograded", "feedback"):
        for path in (course / stage).rglob("*"):
            assert not path.is_symlink(), path
            if path.is_file():
                data = path.read_bytes()
                assert attacks.PRIVATE.encode() not in data and data != solution, path
                assert path.lstat().st_nlink == 1, path
    for student, expect in want.items():
        if expect == "refused":
            for stage in ("autograded", "feedback"):
                assert not (course / stage / student).exists(), (stage, student)
    for student_dir in (course / "feedback").iterdir():
        assert {p.suffix for p in student_dir.rglob("*") if p.is_file()} <= {".html"}, student_dir
    assert (tmp / "private" / "secret.txt").read_text() == attacks.PRIVATE


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.bad = 0, []

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        for key, value in attrs:
            if key.startswith("on") or (value and "javascript:" in value.replace(" ", "").lower()):
                self.bad.append((tag, key, value))


def _tags(page: Path) -> _Tags:
    parser = _Tags()
    parser.feed(page.read_text())
    return parser


def test_feedback_runs_no_student_html(attacked):
    """Script, onerror and javascript: payloads in a student's markdown, and HTML in a grade_id,
    come out inert: no on* attribute, no javascript: URL, no script beyond the page's own."""
    course, _, _, _ = attacked
    honest = _tags(course / "feedback" / "a_honest" / attacks.NAME / f"{attacks.NAME}.html")
    assert honest.bad == []
    for student in ("m_xss", "m_xss_grade_id"):
        page = course / "feedback" / student / attacks.NAME / f"{attacks.NAME}.html"
        tags = _tags(page)
        assert tags.bad == [] and tags.scripts == honest.scripts, (student, tags.bad, tags.scripts)
        assert "<script>document.title" not in page.read_text()
    notes = (course / "feedback" / "m_xss" / attacks.NAME / f"{attacks.NAME}.html").read_text()
    assert "My notes" in notes and "click me" in notes           # the student's text is still shown


def test_formgrader_view_is_sanitised(attacked):
    """The formgrader renders the autograded notebook with the course's config: the same cleaning
    (its page has its own onclick handlers and scripts: the attacker's page has no more)."""
    import batch
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers

    course, _, _, _ = attacked
    config = batch.load_config(course, None, False)
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]

    def render(student: str) -> tuple[_Tags, str]:
        resources = {"assignment_id": attacks.NAME, "notebook_id": attacks.NAME, "submission_id": "x", "index": 0,
                     "total": 1, "base_url": "", "student": student, "last_name": "", "first_name": "",
                     "notebook_path": f"autograded/{student}"}           # what the formgrader's handler passes
        body, _ = HTMLExporter(config=config).from_filename(
            str(course / "autograded" / student / attacks.NAME / f"{attacks.NAME}.ipynb"), resources=resources)
        page = course / f"formgrade-{student}.html"
        page.write_text(body)
        return _tags(page), body

    honest, _ = render("a_honest")
    for student in ("m_xss", "m_xss_grade_id"):
        tags, body = render(student)
        assert (tags.bad, tags.scripts) == (honest.bad, honest.scripts), (student, tags.bad)
        assert "<script>document.title" not in body
    assert "My notes" in render("m_xss")[1]


def test_a_link_placed_in_submitted_is_refused_in_place(attacked):
    """Grading nbgrader's own submitted/ in place: a link found there is refused before nbgrader
    reads it (grade.py's intake), and the worker checks again right before nbgrader's copy."""
    course, _, _, tmp = attacked
    work = course / "submitted" / "m_late_link" / attacks.NAME
    work.mkdir(parents=True)
    (work / f"{attacks.NAME}.ipynb").write_text(json.dumps(plants.filled(attacks.NAME)))
    os.symlink(tmp / "private" / "secret.txt", work / "notes.txt")
    worker = subprocess.run([sys.executable, str(ROOT / "tools" / "nbgrader" / "batch.py"), str(course)],
                            input=json.dumps({"assignment": attacks.NAME, "students": ["m_late_link"]}) + "\n",
                            capture_output=True, text=True, check=False, cwd=ROOT, timeout=300)
    events = [json.loads(line) for line in worker.stdout.splitlines() if line.startswith("{")]
    status = next(e["status"] for e in events if "batch" in e)
    assert status == {"m_late_link": f"not graded: {attacks.NAME}/notes.txt is a symbolic link; a submission "
                                     f"holds files, not links: submit the file itself"}, worker.stderr[-2000:]
    assert not (course / "autograded" / "m_late_link").exists()
    proc = _grade(course, course / "submitted")
    assert "m_late_link/ps1_memmap: not graded:" in proc.stderr
    rows = _rows(course)
    assert rows[(attacks.NAME, "m_late_link")]["status"].startswith("not graded: ")
    assert rows[(attacks.NAME, "a_honest")]["status"] == "graded"


# ---- intake, without grading -------------------------------------------------------------------------

def test_intake_refuses_every_kind_of_non_file(tmp_path):
    import socket

    work = tmp_path / "alice" / "ps1_memmap"
    work.mkdir(parents=True)
    (work / "ps1_memmap.ipynb").write_text("{}")
    assert intake.check_tree(work) is None
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "ps1_memmap").write_text("a file where the folder should be")
    found, refused, notes = intake.discover(tmp_path, ["ps1_memmap"])
    assert found == {"ps1_memmap": ["alice"]} and notes == []
    assert refused == {"ps1_memmap": {"bob": "not graded: ps1_memmap is a file; a submission is a folder "
                                             "<student>/<assignment>/ of files"}}
    (work / "sub").mkdir()
    (work / "sub" / "data.txt").write_text("mine")
    assert intake.check_tree(work) is None
    intake.copy_tree(work, tmp_path / "copy")
    assert (tmp_path / "copy" / "sub" / "data.txt").read_text() == "mine"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(work / "sub" / "sock"))
    assert "is a socket" in intake.check_tree(work)
    sock.close()
    (work / "sub" / "sock").unlink()
    if os.geteuid() == 0:                   # a device node needs CAP_MKNOD (root, as in CI)
        os.mknod(work / "sub" / "null", 0o20600, os.makedev(1, 3))
        assert intake.check_tree(work) == "ps1_memmap/sub/null is a device; a submission holds regular files only"
        (work / "sub" / "null").unlink()
    os.symlink("ps1_memmap.ipynb", work / "sub" / "relative")
    assert intake.check_tree(work).startswith("ps1_memmap/sub/relative is a symbolic link")
    with pytest.raises(OSError):
        intake.copy_file(work / "sub" / "relative", tmp_path / "x")      # O_NOFOLLOW: never read through
    assert not (tmp_path / "x").exists()
    with pytest.raises(OSError, match="symbolic link"):
        intake.copy_tree(work, tmp_path / "copy2")


def test_collect_copies_a_link_as_a_link(tmp_path):
    """nbgrader collect (as patched by vmlib_nbgrader) never reads through a link a student left in
    the exchange, and leaves fifos out; grade.py then refuses the link."""
    import types

    from vmlib_nbgrader import _collect_keeps_links

    inbound = tmp_path / "inbound" / "alice+ps1_memmap+2026"
    inbound.mkdir(parents=True)
    (inbound / "ps1_memmap.ipynb").write_text("{}")
    os.symlink(ROOT / "solutions" / "ps1_memmap" / "ps1_memmap.ipynb", inbound / "solution.ipynb")
    os.mkfifo(inbound / "pipe")
    coursedir = types.SimpleNamespace(max_dir_size=1000, ignore=[".ipynb_checkpoints"], include=["*"],
                                      max_file_size=100000, groupshared=True)
    fake = types.SimpleNamespace(coursedir=coursedir, log=None, get_size=lambda path: 1)
    dest = tmp_path / "submitted" / "alice" / "ps1_memmap"
    _collect_keeps_links(fake, str(inbound), str(dest))
    assert sorted(p.name for p in dest.iterdir()) == ["ps1_memmap.ipynb", "solution.ipynb"]
    assert (dest / "solution.ipynb").is_symlink()
    assert intake.check_tree(dest) == ("ps1_memmap/solution.ipynb is a symbolic link; a submission holds "
                                       "files, not links: submit the file itself")


def test_a_batch_nbgrader_stops_is_graded_again_one_by_one(tmp_path):
    """A student can only fail itself: when nbgrader's converter stops a batch at one student (as a
    schema_version it did not know did), everyone it left out is converted again alone, and only
    the one that fails alone too is "not graded: <reason>"."""
    import logging

    import batch
    from traitlets.config import Config

    course = tmp_path / "course"
    students = ["alice", "bob", "carol"]
    for s in students:
        (course / "submitted" / s / "ps1_memmap").mkdir(parents=True)
    config = Config()
    config.CourseDirectory.root = str(course)
    runs = []

    class Stops:
        """Converts the batch in order and stops the whole run at bob."""

        def __init__(self, coursedir, config):
            self.coursedir, self.log = coursedir, logging.getLogger("stops")

        def start(self):
            left_out = set(self.coursedir.student_id_exclude.split(","))
            todo = [s for s in students if s not in left_out]
            runs.append(todo)
            for s in todo:
                if s == "bob":
                    raise ValueError("bob's notebook stops nbgrader")
                out = course / "autograded" / s / "ps1_memmap"
                out.mkdir(parents=True, exist_ok=True)
                (out / "ps1_memmap.ipynb").write_text("{}")

    status = {}
    done = batch._isolated(config, "ps1_memmap", students, Stops, "autograded", ".ipynb", [], {"autograde": 0.0},
                           status)
    assert done == ["alice", "carol"]
    assert status == {"bob": "not graded: ValueError: bob's notebook stops nbgrader"}
    assert runs == [students, ["bob"], ["carol"]]
