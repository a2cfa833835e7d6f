"""Predict, then reveal: questions a trace answers, asked before the step that answers them.

    questions(trace, spans) -> [{"step", "prompt", "choices": [{"label", "right", "why"}],
                                 "explain", "row", "kind"}, ...]

`spans` are the (first, last) event indexes of each step (Steps.spans). A step gets at most one
question, from the first of its events that a rule below recognises; a question already asked
(same rule, same answer, same kernel-facts row) is not asked again. Each question has 2-4
choices in a fixed order that does not depend on the answer, exactly one of them right; the
prompt names the operation and what the kernel is about to decide, never the outcome. `explain`
(shown after the student chose) is the kernel's own decision with its kernel-facts row, and
each wrong choice says what it would have broken. Pure Python: reads the trace, draws nothing.
"""

from __future__ import annotations

import re
from bisect import bisect_right

GUP_CALL = re.compile(r"get_user_pages_fast\((0x[0-9a-f]+), (\d+)")
PAGE_SIZE = 4096


def _choice(label: str, right: bool, why: str = "") -> dict:
    return {"label": label, "right": right, "why": "" if right else why}


def _question(kind: str, prompt: str, choices: list[dict], event) -> dict:
    assert sum(c["right"] for c in choices) == 1 and 2 <= len(choices) <= 4, (prompt, choices)
    return {"kind": kind, "prompt": prompt, "choices": choices, "row": event.row,
            "explain": f"The kernel decided, in {event.func}: {event.text}."}


def _op_words(op) -> str:
    """'P2 write(0x40000000, b'C')' from an op event (the operation about to run)."""
    return f"{op.func}: {op.text}" if op is not None else "the next operation"


def _sigbus(e, op):
    """A user access that ends in SIGBUS, or a driver fault that maps a page: which one?"""
    if e.kind == "error" and "SIGBUS" in e.text:
        answer = "sigbus"
    elif e.kind == "decision" and e.func == "__do_fault" and e.text.startswith("map "):
        answer = "page"
    else:
        return None
    choices = [
        _choice("a page: the access gets the data", answer == "page",
                "the driver's fault handler gave no page for this offset and returned VM_FAULT_SIGBUS: "
                "there is nothing the kernel could map, so it cannot invent data"),
        _choice("SIGBUS: the process gets a bus error", answer == "sigbus",
                "the process would be killed although the driver has a page to map at this offset"),
        _choice("SIGSEGV: no vma covers the address", False,
                "a vma does cover the address, so the fault goes to the vma's driver; SIGSEGV is for an "
                "address with no vma or an access its protection forbids"),
    ]
    return _question("sigbus", f"{_op_words(op)} touches a page of a driver's mapping that has no pte yet. "
                     "What does the access get?", choices, e)


def _cow(e, op):
    """do_wp_page: copy or reuse; __do_fault's early COW of a private write."""
    if e.kind != "decision":
        return None
    if e.func == "do_wp_page" and e.text.startswith(("copy:", "reuse:")):
        answer = e.text.split(":", 1)[0]
        prompt = (f"{_op_words(op)} writes through a write-protected pte, so the fault goes to do_wp_page. "
                  "Does it copy the page or reuse it?")
    elif e.func == "__do_fault" and "early COW into" in e.text:
        answer = "copy"
        prompt = (f"{_op_words(op)} is a write to a private mapping of a driver's page that is not mapped yet. "
                  "Does __do_fault map the driver's page writable, or give the process a copy?")
    else:
        return None
    choices = [
        _choice("copy: a new anonymous page", answer == "copy",
                "a new page, a copy and a freed or orphaned old page for nothing: no one else can see "
                "this page, so writing in place was safe"),
        _choice("reuse: write in place", answer == "reuse",
                "the write would land in a page that someone else still sees (another process after "
                "fork, or the file or device behind a private mapping): private memory would leak into it"),
    ]
    return _question("cow", prompt, choices, e)


def _gup_refusal(e, op):
    """gup_pte_range falls back at a special pte: which address?"""
    if e.kind != "decision" or e.func != "gup_pte_range" or "special" not in e.text:
        return None
    m = GUP_CALL.search(op.text if op is not None else "")
    if m is None or not e.examined.ptes:
        return None
    start, nr, bad = int(m[1], 16), int(m[2]), e.examined.ptes[0][1]     # the pte the walk refused
    addrs = [start + i * PAGE_SIZE for i in range(nr)]
    if bad not in addrs:
        return None
    keep = sorted(set(addrs[max(0, addrs.index(bad) - 1):addrs.index(bad) + 2]) | {addrs[0]})[:3]
    choices = [_choice(f"the pte at {a:#x}", a == bad,
                       "that pte maps a page with a struct page: the lockless walk may take a reference on it "
                       "(refusing it would only cost the slow path)") for a in keep]
    choices.append(_choice(f"none: it takes all {nr}", False,
                           "taking a special pte would touch the struct page of a pfn that has none, or that "
                           "the driver owns: with no vma at hand, the special bit is the only warning"))
    return _question("gup", f"{_op_words(op)}: the lockless walk reads each pte with interrupts off and "
                     "no vma. Which pte does it refuse, falling back to the slow path?", choices, e)


def _fork_counts(e, op, trace, span_end):
    """copy_one_pte at fork: the page's refcount and mapcount after the fork."""
    if e.kind != "decision" or e.func != "copy_one_pte":
        return None
    if not e.examined.pfns:
        return None
    pfn = e.examined.pfns[0]                                # the pfn of the pte it copied
    before = trace.state_at(op.seq if op is not None else 0).pages.get(pfn)   # as the operation began
    after = trace.state_at(span_end).pages.get(pfn)
    if before is None or after is None or (before.count, before.mapcount) == (after.count, after.mapcount):
        return None
    shown = lambda c, mc: f"refcount {c}, mapcount {mc}"
    options = sorted({(before.count, before.mapcount), (after.count, after.mapcount),
                      (after.count + 1, after.mapcount)})
    choices = []
    for c, mc in options:
        if (c, mc) == (before.count, before.mapcount):
            why = ("the child's pte would map the page without holding a reference: when the parent lets "
                   "go, the page is freed while the child still maps it")
        else:
            why = "the page would hold a reference that nobody drops: it could never be freed"
        choices.append(_choice(shown(c, mc), (c, mc) == (after.count, after.mapcount), why))
    return _question("fork", f"{_op_words(op)} copies the parent's pte for page {pfn} into the child. "
                     f"Before, page {pfn} has {shown(before.count, before.mapcount)}. After the fork?", choices, e)


def _normal_page(e, op):
    """vm_normal_page on a VM_PFNMAP / VM_MIXEDMAP / special pte: a struct page or NULL?"""
    if e.kind != "decision" or e.func != "vm_normal_page" or e.text.startswith("normal mapping"):
        return None
    special = "→ special" in e.text
    choices = [
        _choice("a struct page", not special,
                "the kernel would count a mapping of, or take a reference on, a struct page that this pfn "
                "does not have (device memory) or that the driver owns: a corrupted page or a crash"),
        _choice("NULL: a raw pfn, no struct page to touch", special,
                "this pte maps a page the kernel manages (a COWed anonymous page): left uncounted, it "
                "would leak, or be freed while still mapped"),
    ]
    return _question("normal_page", f"During {_op_words(op)}, vm_normal_page is asked about a pte of this "
                     "vma. Does it return a struct page?", choices, e)


def questions(trace, spans: list[tuple[int, int]], lead_in: bool = False) -> list[dict]:
    """The questions of a stepper over `trace` whose steps cover `spans` (see module doc).

    A question is asked before the first step that shows any of its answer: the step holding the
    decision, or an earlier one of the same operation that already changes the state (a stepper
    of single events draws the new refcount before copy_one_pte says why). Within a step the
    earlier rule wins: SIGBUS, gup refusal, COW, fork counts, vm_normal_page. A question about the
    first step is kept only with `lead_in` (the stepper then shows the state before it first)."""
    firsts = [first for first, _ in spans]
    ops = trace.ops()
    found = {}                             # step -> (rank, key, question)
    op, changed = None, None               # the current operation; its first state change
    for e in trace.events[firsts[0]:spans[-1][1] + 1]:
        if e.kind == "op":
            op, changed = e, None
            continue
        if e.delta is not None and changed is None:
            changed = e.seq
        end = next((s - 1 for s in ops if s > e.seq), len(trace) - 1)   # the end of e's operation
        rules = (_sigbus, _gup_refusal, _cow, lambda e, op, end=end: _fork_counts(e, op, trace, end), _normal_page)
        for rank, rule in enumerate(rules):
            q = rule(e, op)
            if q is None:
                continue
            shown_at = e.seq if changed is None else min(changed, e.seq)
            step = bisect_right(firsts, shown_at) - 1
            key = (q["kind"], q["row"], next(c["label"] for c in q["choices"] if c["right"]))
            if (step > 0 or lead_in) and (step not in found or rank < found[step][0]):
                found[step] = (rank, key, q)
            break
    out, asked = [], set()
    for step in sorted(found):
        _, key, q = found[step]
        if key not in asked:
            asked.add(key)
            out.append({"step": step, **q})
    return out
