// The vmlib stepper in the browser (anywidget front end, also run by the static HTML fallback).
// Model keys: sides [{title, ops, frames: [{svg, big, headline, row, events, note}]}] (ops: operations in
// the trace; big: the presentation
// picture, drawn at the column's width with large text), questions
// [{step, prompt, choices: [{label, right, why}], explain, row}], step, predict, answers {step: i}.
// Every frame is in the model from the start: a click repaints from it, with no kernel round trip.
// Nothing that would tell a question's answer is put in the page before the student chooses.

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const kid of kids) if (kid) el.append(kid);
  return el;
}

function svgSize(svg, what) {
  const m = new RegExp(`<svg[^>]*?\\s${what}="([\\d.]+)(pt|px)?"`).exec(svg || "");
  return m ? parseFloat(m[1]) * (m[2] === "pt" ? 4 / 3 : 1) : 0;
}
const svgHeight = (svg) => svgSize(svg, "height");

function render({ model, el }) {
  const sides = model.get("sides");
  const n = Math.max(...sides.map((s) => s.frames.length));
  const questions = {};
  for (const q of model.get("questions") || []) questions[q.step] = q;
  const compare = sides.length > 1;
  let answers = Object.assign({}, model.get("answers") || {});
  let timer = null;

  const root = h("div", { class: compare ? "vmlib-compare vmlib-stepper-js" : "vmlib-stepper vmlib-stepper-js" });
  const button = (label, tip, fn) => h("button", { class: "vmlib-btn", title: tip, type: "button", onclick: fn },
    label);
  const slider = h("input", { type: "range", min: "1", max: String(n), value: "1", class: "vmlib-slider",
    "aria-label": compare ? "operation" : "step" });
  const count = h("span", { class: "vmlib-count" });
  const play = button("▶ play", "play", () => (timer ? stop() : start()));
  const predictBox = h("input", { type: "checkbox", class: "vmlib-predict-toggle" });
  let big = false;                       // presentation mode: the big pictures
  const present = button("presentation", "presentation", () => { big = !big; present.classList.toggle("vmlib-on", big);
    sizeBoxes(); panels.forEach((p) => { p.frame = -1; }); paintFrame(shown()); });
  const controls = h("div", { class: "vmlib-controls" },
    button("« first", "first", () => go(0)), button("‹ back", "back", () => go(shown() - 1)),
    button("forward ›", "forward", () => go(shown() + 1)), button("last »", "last", () => go(n - 1)),
    play, slider, count);
  if (sides.every((side) => side.frames.every((f) => f.big))) controls.append(present);
  if (Object.keys(questions).length) {
    controls.append(h("label", { class: "vmlib-predict-label" }, predictBox, " predict before each key step"));
  }
  const ask = h("div", { class: "vmlib-ask", role: "group", "aria-live": "polite" });
  const panels = sides.map((side, i) => {
    const p = {
      title: h("div", { class: "vmlib-title" }, side.title ? h("b", { text: side.title }) : null),
      event: h("div", { class: "vmlib-event", "data-step": "0" }),
      note: h("div", { class: "vmlib-note" }),
      graph: h("div", { class: "vmlib-graph", "data-step": "0", "data-ops": String(side.ops ?? "") }),
      log: h("pre", { class: "vmlib-log" }),
      summary: h("summary", {}),
    };
    p.details = h("details", { class: "vmlib-events" }, p.summary, p.log);
    // the picture first: nothing above it changes height from step to step, so it never moves
    p.box = h("div", { class: `vmlib-side vmlib-side-${i ? "right" : "left"}` },
      p.title, p.graph, p.event, p.note, p.details);
    p.frame = -1;
    return p;
  });
  // the question and its reveal go under the pictures, for the same reason
  root.append(controls, h("div", { class: "vmlib-sides" }, ...panels.map((p) => p.box)), ask);
  el.replaceChildren(root);

  function sizeBoxes() {                  // reserve the tallest picture of the mode shown
    sides.forEach((side, s) => {
      const g = panels[s].graph;
      // Compare: a side asks for its picture's natural width (text 12 px), so the two stand side by
      // side where the column holds both and stack where it does not; presentation stacks them
      if (compare) panels[s].box.style.flex = big ? "1 1 100%"
        : `1 1 ${Math.ceil(Math.max(...side.frames.map((f) => svgSize(f.svg, "width"))))}px`;
      if (big) { g.style.minHeight = ""; return; }
      const tallest = Math.max(...side.frames.map((f) => svgHeight(f.svg)));
      g.style.minHeight = tallest ? `${Math.ceil(tallest) + 18}px` : "";
    });
  }
  sizeBoxes();

  // What is on screen: `shownStep` (the frame drawn) and `pending` (a question asked before it).
  let shownStep = Math.max(0, Math.min(model.get("step") || 0, n - 1));
  let pending = null;
  const shown = () => (pending === null ? shownStep : pending);

  // Each frame's picture is parsed once (ahead of time, when the browser is idle) and kept, so a
  // step only swaps one element for another.
  const parsed = sides.map(() => new Map());
  function picture(s, j) {
    const key = big ? `b${j}` : j;
    let node = parsed[s].get(key);
    if (!node) {
      node = document.createElement("div");
      node.className = "vmlib-frame";
      node.innerHTML = big ? sides[s].frames[j].big : sides[s].frames[j].svg;
      parsed[s].set(key, node);
    }
    return node;
  }
  const idle = window.requestIdleCallback || ((f) => setTimeout(() => f({ timeRemaining: () => 8 }), 50));
  let ahead = 0;
  function parseAhead(deadline) {
    while (ahead < n * sides.length && deadline.timeRemaining() > 2) {
      const s = ahead % sides.length, j = Math.floor(ahead / sides.length);
      if (j < sides[s].frames.length) picture(s, j);
      ahead++;
    }
    if (ahead < n * sides.length) idle(parseAhead);
  }
  idle(parseAhead);

  function paintFrame(i) {
    sides.forEach((side, s) => {
      const p = panels[s];
      const j = Math.min(i, side.frames.length - 1);
      const f = side.frames[j];
      if (p.frame !== j) {
        p.graph.replaceChildren(picture(s, j));
        p.frame = j;
        p.graph.dataset.frame = String(j);
        fillEvent(p, side, j);
        p.summary.textContent = `kernel events of this step (${f.events.length})`;
        if (f.events_html) p.log.innerHTML = f.events_html.join("\n");   // escaped in Python, rows linked
        else p.log.textContent = f.events.join("\n");
      }
      p.note.textContent = noteText(side, i);
      p.event.dataset.step = String(i);
      p.graph.dataset.step = String(i);
    });
    count.textContent = compare ? `operation ${i + 1}/${n}` : `${i + 1}/${n}`;
    slider.value = String(i + 1);
  }

  function fillEvent(p, side, j) {          // the headline of frame j, with its kernel-facts row
    const f = side.frames[j];
    const row = f.row ? ` [${f.row}]` : "";
    const lead = side.lead || 0;             // a lead-in frame (the state before step 1) is not a step
    const text = j < lead ? f.headline : `step ${j + 1 - lead}/${side.frames.length - lead}: ${f.headline}`;
    p.event.replaceChildren(h("b", { text }));
    if (row) p.event.append(f.row_href ? h("a", { class: "vmlib-row vmlib-fact", href: f.row_href,
      target: "_blank", text: row }) : h("span", { class: "vmlib-row", text: row }));
  }

  function noteText(side, i) {              // the note under a side at step i
    const j = Math.min(i, side.frames.length - 1);
    const notes = [];
    if (j < i) notes.push(`this side has only ${side.frames.length} operations`);
    if (side.frames[j].note) notes.push(side.frames[j].note);
    return notes.join("; ");
  }

  // Compare: where the sides stack, the second side's picture sits under the first side's headline
  // and note; give each the height of its tallest text at the present width, so it never moves.
  let reservedFor = "";
  function reserveText() {
    const widths = panels.map((p) => Math.round(p.box.getBoundingClientRect().width)).join(" ");
    if (!compare || widths === reservedFor || widths.split(" ").includes("0")) return;
    reservedFor = widths;
    panels.forEach((p, s) => {
      const side = sides[s];
      p.event.style.minHeight = p.note.style.minHeight = "";
      let event = 0, note = 0;
      for (let i = 0; i < n; i++) {
        fillEvent(p, side, Math.min(i, side.frames.length - 1));
        p.note.textContent = noteText(side, i);
        event = Math.max(event, p.event.getBoundingClientRect().height);
        note = Math.max(note, p.note.getBoundingClientRect().height);
      }
      p.event.style.minHeight = `${Math.ceil(event)}px`;
      p.note.style.minHeight = `${Math.ceil(note)}px`;
      p.frame = -1;                         // repaint the frame shown
    });
    paintFrame(shown());
  }
  const resized = compare && window.ResizeObserver ? new ResizeObserver(reserveText) : null;
  if (resized) panels.forEach((p) => resized.observe(p.box));

  function askQuestion(q) {
    ask.replaceChildren(h("div", { class: "vmlib-question" }, h("b", { text: "Predict: " }), q.prompt),
      h("div", { class: "vmlib-choices" }, ...q.choices.map((c, k) =>
        button(c.label, "your prediction", () => choose(q, k)))));
    ask.dataset.state = "asking";
  }

  function reveal(q) {
    const k = answers[q.step];
    const c = q.choices[k];
    const row = q.row ? ` [${q.row}]` : "";
    const mark = c.right ? "✔ Right." : "✘ Not this time.";
    const lines = [h("div", { class: c.right ? "vmlib-right" : "vmlib-wrong" }, h("b", { text: mark }),
      ` You said “${c.label}”. ${q.explain}${row}`)];
    if (!c.right && c.why) lines.push(h("div", { class: "vmlib-why", text: `Had it been “${c.label}”: ${c.why}` }));
    ask.replaceChildren(...lines);
    ask.dataset.state = c.right ? "right" : "wrong";
  }

  function show(i) {
    shownStep = i;
    paintFrame(i);
    const q = questions[i];
    if (predictOn() && q && answers[i] !== undefined) reveal(q);
    else {
      ask.replaceChildren();
      if (predictOn()) ask.append(h("span", { class: "vmlib-hint", text: "step forward: at a key step you "
        + "are asked what the kernel will do before it is shown" }));
      ask.dataset.state = "idle";
    }
    if (model.get("step") !== i) {
      model.set("step", i);
      model.save_changes();
    }
  }

  const predictOn = () => Boolean(model.get("predict"));

  function go(target) {
    target = Math.max(0, Math.min(target, n - 1));
    pending = null;
    if (predictOn() && target > shownStep) {
      for (let i = shownStep + 1; i <= target; i++) {
        if (questions[i] && answers[i] === undefined) {
          if (i - 1 !== shownStep) show(i - 1);
          pending = i;
          slider.value = String(i + 1);
          askQuestion(questions[i]);
          stop();
          return;
        }
      }
    }
    show(target);
  }

  function choose(q, k) {
    if (pending !== q.step) return;
    answers = Object.assign({}, answers, { [q.step]: k });
    model.set("answers", answers);
    pending = null;
    show(q.step);
    reveal(q);
  }

  function start() {
    play.textContent = "❚❚ pause";
    timer = setInterval(() => {
      if (shown() >= n - 1 || pending !== null) stop();
      else go(shown() + 1);
    }, 900);
  }

  function stop() {
    if (timer) clearInterval(timer);
    timer = null;
    play.textContent = "▶ play";
  }

  slider.addEventListener("input", () => go(parseInt(slider.value, 10) - 1));
  predictBox.checked = predictOn();
  predictBox.addEventListener("change", () => {
    model.set("predict", predictBox.checked);
    model.save_changes();
  });
  const onStep = () => {
    const i = model.get("step");
    if (i !== shownStep && pending === null) go(i);
  };
  const onPredict = () => {
    predictBox.checked = predictOn();
    pending = null;
    show(shownStep);
  };
  model.on("change:step", onStep);
  model.on("change:predict", onPredict);
  show(shownStep);
  return () => {
    stop();
    if (resized) resized.disconnect();
    model.off("change:step", onStep);
    model.off("change:predict", onPredict);
  };
}

export default { render };
