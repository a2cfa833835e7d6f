"""Practice without a kernel: the self-contained HTML that exported HTML and slide decks show for
a Practice widget. A few seeded problems (the widget's and the next ones of its sequence) are
solved here, in Python, by vmlib.practice; the page shows one at a time with its answer boxes,
and "check" compares in the browser with the same loose comparison (vmlib.practice.normalise,
ported below). As in predict mode, this is practice, not grading: the answers sit in the page's
data, and nothing of an answer is shown until the student presses "check", and then only for
the questions they answered. Only a static export asks for it (STATIC_ENV set, as tools/slides.py
does while it executes a lesson), so a notebook a student runs keeps no answer in its outputs.
"""

from __future__ import annotations

import html
import json
import os
import uuid

from vmlib.views.quiz import feedback_html

GIVEN = "\u0000GIVEN\u0000"     # stands for what the student typed in a wrong-answer verdict
STATIC_ENV = "VMLIB_STATIC_EXPORT"    # set while executing a notebook for slides or exported HTML
PROBLEMS = 4                    # problems in a deck's Practice ("another one" walks through them)



def with_static_html(bundle, make_html, export_only: bool = False):
    """A widget's mime bundle with make_html() as its text/html: what a page without a kernel (exported
    HTML, a slide deck) shows in place of the widget. export_only: only while a static export runs
    (STATIC_ENV set), so that a notebook a student runs keeps that HTML out of its outputs."""
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    if data is not None and (not export_only or os.environ.get(STATIC_ENV)):
        data["text/html"] = make_html()
    return bundle

_SCRIPT = """const root = document.getElementById(%(id)s);
const data = JSON.parse(document.getElementById(%(id)s + "-state").textContent);
function normalise(text) {                 // vmlib.practice.normalise
  let t = String(text).toLowerCase().split(/\\s+/).filter(Boolean).join(" ");
  t = t.replace(/^b(['"])(.)\\1$/, "$2");
  t = t.replace(/['"]/g, "").replace(/\\s*\\/\\s*/g, "/").replace(/^-+/, "");
  if (t.endsWith(" pages")) t = t.slice(0, -6);
  if (t.endsWith(" page")) t = t.slice(0, -5);
  return t;
}
window.vmlibNormalise = normalise;         // the same everywhere on the page; tests compare it
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
let at = 0;
function show() {
  const p = data.problems[at];
  root.innerHTML = p.head;
  const boxes = {};
  for (const q of p.questions) {
    const row = document.createElement("div");
    row.innerHTML = q.label;
    let box;
    if (q.choices.length) {
      box = document.createElement("select");
      for (const c of ["(choose)", ...q.choices]) box.append(new Option(c, c === "(choose)" ? "" : c));
    } else {
      box = document.createElement("input");
      box.placeholder = q.hint;
      box.size = 40;
    }
    box.style.font = "inherit";
    boxes[q.qid] = box;
    row.append(box);
    root.append(row);
  }
  const result = document.createElement("div");
  result.className = "vmlib-practice-result";
  const check = document.createElement("button");
  check.textContent = "check";
  check.title = "score your answers and show the rows that decide them";
  check.onclick = () => {
    const parts = [];
    let given = 0;
    for (const q of p.questions) {
      const v = boxes[q.qid].value.trim();
      if (!v) continue;
      given++;
      parts.push(normalise(v) === normalise(q.answer) ? q.right : q.wrong.replace(%(given)s, esc(v)));
    }
    const left = p.questions.length - given;
    if (!given) parts.push("<i>Answer at least one question first.</i>");
    else if (left) parts.push(`<p><i>${left} question(s) not answered: their answers stay hidden.</i></p>`);
    result.innerHTML = parts.join("");
  };
  const another = document.createElement("button");
  another.textContent = "another one";
  another.title = "a new problem";
  another.onclick = () => { at = (at + 1) %% data.problems.length; show(); };
  check.style.font = another.style.font = "inherit";
  const bar = document.createElement("div");
  bar.append(check, " ", another);
  root.append(bar, result);
}
show();"""


def _problem(topic: str, seed: int) -> dict:
    """One problem as the page needs it: its heading HTML and, per question, the label, the
    choices, the answer and the two verdict HTMLs (right; wrong with GIVEN for the typed text)."""
    from vmlib.practice import generate
    p = generate(topic, seed)
    solution = {a.question.qid: a for a in p.solve().answers}
    head = _head(p, seed)
    questions = []
    for q in p.questions:
        a = solution[q.qid]
        rows = "".join(f"<li><code>[{html.escape(r)}]</code> {html.escape(why)}</li>" for r, why in a.rows)
        rows = f"<ul>{rows}</ul>" if rows else ""
        questions.append({
            "qid": q.qid, "label": f"<b>{html.escape(q.qid)}.</b> {html.escape(q.text)} ",
            "choices": list(q.choices or ()), "hint": q.hint, "answer": a.value,
            "right": feedback_html(f"{q.qid}: right: {a.value}", True) + rows,
            "wrong": feedback_html(f"{q.qid}: not quite (you said {GIVEN}): {a.value}", False) + rows})
    return {"seed": seed, "head": head, "questions": questions}


def _head(p, seed: int) -> str:
    from vmlib.practice import RAM_PAGES, describe
    steps = "".join(f"<li><code>{html.escape(describe(op))}</code></li>" for op in p.ops)
    setup = "".join(f"<div>{html.escape(line)}</div>" for line in p.setup_lines())
    return (f'<div class="vmlib-practice"><b>Practice ({html.escape(p.topic)}), seed {seed}</b>: kernel '
            f"<code>{html.escape(p.profile)}</code>, {RAM_PAGES} pages of RAM.{setup}<ol>{steps}</ol></div>")


def practice_html(widget) -> str:
    """The self-contained HTML of a Practice widget: its problem and the next PROBLEMS - 1 of its
    seeded sequence, checked in the page."""
    import random

    from vmlib.practice import MAX_SEED
    seeds, rng = [widget.seed], random.Random(widget.seed)
    while len(seeds) < PROBLEMS:
        s = rng.randrange(MAX_SEED + 1)
        if s not in seeds:
            seeds.append(s)
    data = json.dumps({"problems": [_problem(widget.topic, s) for s in seeds]}).replace("</", "<\\/")
    uid = f"vmlib-practice-{uuid.uuid4().hex[:12]}"
    script = _SCRIPT % {"id": json.dumps(uid), "given": json.dumps(GIVEN)}
    return (f'<div class="vmlib-practice-static" id="{uid}"></div>\n'
            f'<script type="application/json" id="{uid}-state">{data}</script>\n'
            f'<script type="module">\n{script}\n</script>')
