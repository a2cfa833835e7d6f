"""vmlib.views.predict (questions a trace answers) and vmlib.views.stepper (the browser-side
Stepper) without a browser: what is asked where, that each question has one right choice, and
that the widget's state and its self-contained HTML carry every frame."""

import json
import re

import pytest

import vmlib
from vmlib import PAGE_SIZE
from vmlib.drivers import DevMem
from vmlib.views.predict import questions
from vmlib.views.stepper import Stepper
from vmlib.views.widgets import Steps


def fork_then_writes():
    """Lesson 04's story: a private page, fork, the child writes (copy), the parent writes (reuse)."""
    k = vmlib.Kernel(version="2.6.26", arch="x86", ram_pages=64)
    p = k.spawn("parent")
    a = p.mmap(PAGE_SIZE, prot="rw", flags="private")
    p.write(a, b"P")
    t = k.tracer.reset()
    c = p.fork()
    c.write(a, b"C")
    p.write(a, b"Q")
    return t


def gup_fast_on_special():
    """Lesson 07's story on 2.6.27/x86: an anon page, then 2 XIP-on-RAM pages (special ptes, as
    vm_insert_mixed makes them where pte_special exists), and get_user_pages_fast over all 3."""
    from vmlib.drivers import XipFs
    k = vmlib.Kernel(version="2.6.27", arch="x86", ram_pages=64)
    f = XipFs(k, backing="ram").create("table.db", b"D" * 2 * PAGE_SIZE)
    p = k.spawn("db2")
    buf = p.mmap(PAGE_SIZE, prot="rw", addr=0x40000000)
    p.write(buf, b"x")
    xip = p.mmap(2 * PAGE_SIZE, prot="r", flags="shared", file=f, addr=0x40001000)
    p.read(xip, 1)
    p.read(xip + PAGE_SIZE, 1)
    t = k.tracer.reset()
    p.get_user_pages_fast(buf, 3, write=False)
    return t


def test_cow_questions_copy_then_reuse():
    # do_wp_page in v2.6.26 (mm/memory.c): copy while another process maps the anon page, reuse
    # when the writer is its only user (kernel-facts §6b v2.6.26 row 3)
    t = fork_then_writes()
    qs = questions(t, Steps(t, ops_only=True).spans)
    assert [(q["step"], q["kind"]) for q in qs] == [(1, "cow"), (2, "cow")]
    answers = [next(c["label"] for c in q["choices"] if c["right"]) for q in qs]
    assert answers[0].startswith("copy") and answers[1].startswith("reuse")
    for q in qs:
        assert q["row"].startswith("§6b")
        assert [c["label"] for c in q["choices"]] == [c["label"] for c in qs[0]["choices"]], "order gives it away"
        assert all(c["why"] for c in q["choices"] if not c["right"]), "a wrong choice must say what it breaks"
        assert "copy:" not in q["prompt"] and "reuse:" not in q["prompt"] and "mapcount" not in q["prompt"]


def test_fork_question_is_asked_before_the_refcount_is_drawn():
    # copy_one_pte (v2.6.26) takes a reference and a mapcount for the child's pte (§7 per pte);
    # single-event steps draw the new count before the decision says why, so ask before that
    t = fork_then_writes()
    steps = Steps(t, ops_only=False)
    fork_q = next(q for q in questions(t, steps.spans) if q["kind"] == "fork")
    right = next(c["label"] for c in fork_q["choices"] if c["right"])
    assert right == "refcount 2, mapcount 2"
    pfn = int(re.search(r"page (\d+)", fork_q["prompt"])[1])
    before = t.state_at(steps.spans[fork_q["step"] - 1][1]).pages[pfn]
    assert (before.count, before.mapcount) == (1, 1), "the picture before the question shows the answer"


def test_gup_question_names_the_special_pte():
    # gup_pte_range (v2.6.27 x86, arch/x86/mm/gup.c) refuses a pte_special pte: no vma to ask (§9b)
    t = gup_fast_on_special()
    steps = Steps(t, ops_only=False)
    qs = [q for q in questions(t, steps.spans) if q["kind"] == "gup"]
    refused = [e for e in t.events if e.func == "gup_pte_range" and "special" in e.text]
    if not refused:
        pytest.fail(f"the scenario has no refused pte: {t.text()}")
    assert len(qs) == 1
    right = next(c["label"] for c in qs[0]["choices"] if c["right"])
    assert right == f"the pte at {refused[0].text.split(':')[0]}"
    assert 2 <= len(qs[0]["choices"]) <= 4 and sum(c["right"] for c in qs[0]["choices"]) == 1


def test_sigbus_question_from_a_fault_past_the_device():
    k = vmlib.Kernel(version="2.6.26", arch="x86", ram_pages=32)
    k.add_device_memory(start_pfn=1000, npages=2, name="nvram")
    mem = k.open(DevMem(), mode="rw")
    p = k.spawn("reader")
    a = p.mmap(PAGE_SIZE, prot="r", flags="shared", file=mem, offset=1000 * PAGE_SIZE)
    t = k.tracer.reset()
    p.read(a, 1)
    with pytest.raises(vmlib.VmError):
        p.read(a + 8 * PAGE_SIZE, 1)      # no vma: SIGSEGV, no question (nothing to predict here)
    assert all(q["kind"] != "sigbus" or "SIGBUS" in q["explain"] for q in questions(t, Steps(t, True).spans))


def test_stepper_state_carries_every_frame_and_question():
    t = fork_then_writes()
    w = Stepper(t, ops_only=True, predict=True)
    # a question about the first operation (the fork's counts): the state before it comes first
    assert len(w) == 4 and len(w.sides) == 1 and len(w.sides[0]["frames"]) == 4
    assert w.sides[0]["frames"][0]["headline"].startswith("Before: ")
    assert all("<svg" in f["svg"] and "width:100%" in f["big"] for f in w.sides[0]["frames"])
    assert [q["step"] for q in w.questions] == [1, 2, 3] and w.predict
    assert w.goto(99) == 3 and w.step == 3 and w.goto(-4) == 0
    with pytest.raises(TypeError, match="step must be an int"):
        w.goto("1")


def test_static_html_is_self_contained():
    t = fork_then_writes()
    w = Stepper(t, ops_only=True)
    page = w.static_html()
    state = json.loads(re.search(r'<script type="application/json" id="[^"]+">(.*?)</script>', page, re.DOTALL)[1])
    assert state["sides"] == w.sides and state["questions"] == w.questions
    assert "</script" not in re.search(r'type="application/json"[^>]*>(.*?)</script>', page, re.DOTALL)[1]
    assert "export default" not in page and "import " not in page.split('<script type="module">')[1]
    assert not re.search(r"https?://(?!www\.w3\.org)", page), "the static stepper must not load anything"
    bundle = w._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data and data["text/html"].startswith("<div")


def test_compare_has_two_sides_of_one_layout():
    def scenario(k):
        p = k.spawn("reader")
        a = p.mmap(PAGE_SIZE, prot="rw", flags="private")
        p.read(a, 1)
        p.write(a, b"w")
    w = Stepper.compare(scenario, left={"version": "2.6.26", "arch": "x86"}, right={"version": "6.12", "arch": "x86"})
    assert [s["title"] for s in w.sides] == ["2.6.26/x86", "6.12/x86"]
    sizes = {re.search(r'viewBox="([^"]+)"', f["svg"])[1] for s in w.sides for f in s["frames"]}
    assert len(sizes) == 1, f"the two sides are drawn on different layouts: {sizes}"
    width = float(re.search(r'<svg[^>]*\swidth="([\d.]+)"', w.sides[0]["frames"][0]["svg"])[1])
    assert 2 * width + 12 <= 968, f"two {width:.0f} px sides at 12 px text do not fit a 968 px column side by side"
    assert all("width:100%" in f["big"] for s in w.sides for f in s["frames"]), "presentation: column-wide"


def test_bad_input_is_refused_clearly():
    with pytest.raises(TypeError, match="expected a vmlib Trace"):
        Stepper("not a trace")
    with pytest.raises(ValueError, match="at least one side"):
        Stepper(sides=[])
    t = fork_then_writes()
    good = Stepper(t, ops_only=True)
    with pytest.raises(ValueError, match=r"question steps must be 1\.\.3"):
        Stepper(sides=good.sides, questions=[{"step": 0, "prompt": "?", "choices": []}])


def test_slides_and_practice_agree_on_the_static_export_switch():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tools import slides
    from vmlib.views.practice_static import STATIC_ENV
    assert slides.STATIC_ENV == STATIC_ENV


def test_rows_are_links_into_the_fact_sheet():
    """Every kernel-facts row a frame cites reaches the browser as a link to its anchor (vmlib.facts)."""
    w = Stepper(fork_then_writes(), ops_only=True)
    frames = [f for f in w.sides[0]["frames"] if f["row"]]
    assert frames, "the story cites no row"
    for f in frames:
        assert f["row_href"].startswith("kernel-facts.html#s")
        assert all("§" not in e or "kernel-facts.html#" in eh for e, eh in zip(f["events"], f["events_html"]))


def test_a_stepper_walks_its_trace_once_for_both_pictures(monkeypatch):
    """Issue 19 item 4: Stepper computes each step once (Steps.frames(big=True) draws the notebook
    and the presentation picture in the same pass), not the whole trace twice."""
    from vmlib.views import widgets
    t = fork_then_writes()
    made = []
    real = widgets.marks
    monkeypatch.setattr(widgets, "marks", lambda *a: made.append(1) or real(*a))   # once per frame made
    w = Stepper(t, ops_only=True)
    assert len(made) == len(w.sides[0]["frames"]), f"{len(made)} frames made for {len(w)} shown"
    assert all("width:100%" in f["big"] and "max-width:none" in f["svg"] for f in w.sides[0]["frames"])
    nb, pres = Steps(t).frames(), Steps(t).frames(presentation=True)
    assert [f["svg"] for f in w.sides[0]["frames"][-len(nb):]] == [f["svg"] for f in nb]
    assert [f["big"] for f in w.sides[0]["frames"][-len(nb):]] == [f["svg"] for f in pres]
