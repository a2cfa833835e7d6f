"""vmlib.measure (fault costs, simulator and live kernel) and their plot (issue 21, item 1)."""

import sys

import pytest

from vmlib import measure


@pytest.mark.parametrize("args, message", [
    (("anon_wrte", 8), "unknown fault kind 'anon_wrte'"),
    (("anon_write", 0), "npages must be an int from 1"),
    (("anon_write", 8.5), "npages must be an int from 1"),
])
def test_bad_arguments_say_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        measure.sim_fault_cost(*args)
    with pytest.raises(ValueError, match=message):
        measure.live_fault_cost(*args)


def test_simulator_costs_are_positive_and_cow_costs_more_than_a_plain_write():
    plain = measure.sim_fault_cost("anon_write", 64, reps=3)
    cow = measure.sim_fault_cost("cow_write", 64, reps=3)
    assert 0 < plain < cow, (plain, cow)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the live side is measured on Linux here")
def test_live_costs_are_measured_on_linux_and_plausible():
    for kind in measure.LIVE_KINDS:
        cost, why = measure.live_fault_cost(kind, 2048, 3)
        assert why == "" and cost is not None, why
        assert 0.001 < cost < 1000, f"{kind}: {cost} us per fault is not a page fault's cost"
    cost, why = measure.live_fault_cost("cow_write", 64, 1)
    assert cost is None and "fork()" in why


def test_live_side_says_why_not_in_a_browser(monkeypatch):
    monkeypatch.setattr(measure.sys, "platform", "emscripten")
    cost, why = measure.live_fault_cost("anon_write", 64, 1)
    assert cost is None and "emscripten" in why


def test_fault_cost_plot_is_a_themed_matplotlib_figure():
    pytest.importorskip("matplotlib")
    from vmlib.views.plots import fault_cost_plot, fault_cost_table
    rows = [{"kind": "anon_write", "sim_off": 3.0, "sim_on": 4.0, "live": 2.0, "why": ""},
            {"kind": "cow_write", "sim_off": 15.0, "sim_on": 25.0, "live": None, "why": "needs fork()"}]
    plot = fault_cost_plot(rows)
    html = plot._repr_html_()
    assert "currentColor" in html and 'id="faults-live"' in html and 'id="faults-sim_off"' in html
    assert len(plot.figure.axes[0].patches) == 5, "two simulator bars per kind, one live bar"
    assert "needs fork()" in fault_cost_table(rows)
    with pytest.raises(ValueError, match="fault_costs"):
        fault_cost_plot([{"kind": "anon_write"}])


def test_without_matplotlib_memmap_cost_and_the_fault_plot_fall_back(monkeypatch):
    """The offline JupyterLite site has no matplotlib: MemmapCost draws the plain SVG plot, the fault
    costs say there is no plot (their table has the figures)."""
    from vmlib.views import plots
    monkeypatch.setattr(plots, "have_matplotlib", lambda: False)
    m = plots.MemmapCost(guests=200)
    assert m.figure is None and 'id="memmap-title"' in m.svg and "break-even at 64 guests" in m.svg
    assert "<polyline" in m.svg and m.svg in m.static_html()
    note = plots.fault_cost_plot([{"kind": "anon_write", "sim_off": 3.0, "sim_on": 4.0, "live": None}])
    assert note.figure is None and "matplotlib is not installed" in note._repr_html_()
