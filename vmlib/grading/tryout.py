"""Replay a visible scenario of a simulator-graded suite (ps2-ps5) in this process, with your functions.

A check() cell grades in a clean process and reports the first place where your function and the
kernel part ways. Here the same scenario runs in the open, in your notebook's kernel: every step,
its outcome, what k.check() says after it, what changed in the page counts and ptes, and each
question the kernel asked your function with the answer your function gave. It never shows the
right answer to a question; run it without your function (`replay(suite, n)`) to watch what the
kernel itself does in that scenario, and compare.

    from vmlib.grading.tryout import scenarios, replay
    scenarios("ps2.vm_normal_page")                        # the visible scenarios, numbered
    replay("ps2.vm_normal_page", 3, vm_normal_page=mine)   # scenario 3 with your function
"""

from __future__ import annotations

from vmlib.grading import sim
from vmlib.grading.suites import get_suite


def _visible(suite_id: str) -> list:
    get_suite(suite_id)                       # imports the assignment module; ValueError if unknown
    if suite_id not in sim.SCENARIOS:
        raise ValueError(f"{suite_id!r} is not graded by scenarios; replay works for "
                         f"{', '.join(sorted(sim.SCENARIOS))}")
    return sim.SCENARIOS[suite_id]({})


class Printed(list):
    """A list that replay() or scenarios() has already printed: a notebook does not show it a second time
    (IPython calls _ipython_display_ instead of showing the value; this one shows nothing)."""

    def _ipython_display_(self) -> None:
        pass


def scenarios(suite_id: str) -> Printed:
    """Print the names of the visible scenarios of `suite_id`, numbered from 1; return them (as Printed)."""
    names = Printed(f"{i}. {sc.name}" + ("" if f"{sc.version}/{sc.arch}" in sc.name else f" ({sc.version}/{sc.arch})")
                    for i, sc in enumerate(_visible(suite_id), 1))
    print("\n".join(names))
    return names


def _normalised(fn: str, f):
    """The kernel unpacks do_wp_page_decision's answer as (way, why): accept a bare "reuse"/"copy"."""
    if fn != "do_wp_page_decision":
        return f

    def decide(k, vma, page, pte):
        way = f(k, vma, page, pte)
        return way if isinstance(way, tuple) else (way, "your do_wp_page_decision")
    return decide


def _changes(before: dict, after: dict) -> list[str]:
    return [f"{key}: {before.get(key, 'none')} → {after.get(key, 'none')}" for key in sim.changed_keys(before, after)]


def replay(suite_id: str, number: int, show_changes: bool = True, **functions) -> Printed:
    """Play visible scenario `number` of `suite_id` with `functions` plugged in (k.override); print it.

    `functions` are the suite's decision functions by the kernel's name, e.g.
    `vm_normal_page=my_vm_normal_page` (ps4's 6.12 part: `do_wp_page_decision=...`), or its driver
    classes by name (ps8: `NvramMixed=NvramMixed`). Without any, the kernel's own functions (the
    reference drivers) decide, and what they answered is not shown. Returns the [(step, outcome)] it printed (as Printed, which a
    notebook does not echo); ValueError for an unknown suite, scenario number or function name.
    """
    visible = _visible(suite_id)
    if not isinstance(number, int) or not 1 <= number <= len(visible):
        raise ValueError(f"{suite_id} has visible scenarios 1..{len(visible)}; got {number!r} "
                         f"(scenarios({suite_id!r}) lists them)")
    names = get_suite(suite_id).names
    unknown = sorted(set(functions) - set(names))
    if unknown:
        raise ValueError(f"{suite_id} plugs in {', '.join(names)}, not {', '.join(unknown)}")
    sc = visible[number - 1]
    world = sim.World(sc, {})
    asked: list[tuple[int, str]] = []

    def recording(fn, f):
        def decide(k, *args):
            question = f"your {fn} was asked about {sim.describe(sim.encode_call(fn, k, args))}"
            try:
                answer = f(k, *args)
            except Exception as e:
                asked.append((len(world.steps) + 1, f"{question}; it raised {type(e).__name__}: {e}"))
                raise
            shown = answer if fn != "vm_normal_page" else ("None" if answer is None else f"page {answer.pfn}")
            asked.append((len(world.steps) + 1, f"{question}; it returned {shown}"))
            return answer
        return decide

    def driver(fn, cls):
        """What the scenario's driver asks (ps8): your class if given (its calls are shown), else the
        reference's (not shown)."""
        def ask(k, *args):
            q = sc.asker.encode(fn, k, args)
            if cls is None:
                return sc.asker.reference(k, fn, args)[0]
            try:
                ans = sim.driver_answer(cls, q)
            except Exception as e:
                asked.append((len(world.steps) + 1, f"your {fn}.{q['op']} raised {type(e).__name__}: {e}"))
                raise
            asked.append((len(world.steps) + 1, sc.asker.tell({"q": q, "ans": ans})))
            return ans
        return ask

    if sc.asker.overrides:
        world.overrides = {fn: _normalised(fn, recording(fn, f)) for fn, f in functions.items()}
    else:
        world.ask = {fn: driver(fn, functions.get(fn)) for fn in names}
    try:
        sc.play(world)
    except Exception as e:  # noqa: BLE001 - outside a step: shown as one
        world.steps.append((world.text, f"{sim.FAILED}{type(e).__name__}: {e}", {}))
    print(f"scenario {number}: {sc.name} ({sc.version}/{sc.arch})")
    before: dict = {}
    for i, (text, outcome, state) in enumerate(world.steps, 1):
        print(f"step {i}: {text}: {outcome}")
        for _, line in (a for a in asked if a[0] == i):
            print(f"    {line}")
        if show_changes and state:
            for change in _changes(before, state):
                print(f"    {change}")
            before = state
    return Printed((text, outcome) for text, outcome, _ in world.steps)
