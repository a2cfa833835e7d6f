"""Plots of the course, drawn with matplotlib: MemmapCost and the fault costs students measure.

Each plot is a matplotlib Figure (`.figure`, for savefig and slides) shown as inline SVG whose
text and axes take the page's text colour (`currentColor`): the background is transparent and
the data colours (Okabe-Ito blue, vermillion, bluish green) read on white and on JupyterLab's
dark theme alike, so one picture serves light, dark, slides and JupyterLite (Pyodide ships
matplotlib). matplotlib is imported here only, never by `import vmlib` or `import vmlib.views`;
no pyplot, so no global figure state and no backend to choose. The offline JupyterLite site has
no matplotlib (no registry this project vendors from carries Pyodide's build): there MemmapCost
falls back to vmlib.views.plainsvg's hand-drawn SVG and the fault costs to their table.

Zoom: none. ipympl's interactive figures need a JupyterLab extension and a Pyodide build of the
widget, which the offline JupyterLite site does not have; the sliders change what is drawn instead.
"""

from __future__ import annotations

import html
import io
import re

import ipywidgets as W

from vmlib.memmap import memmap_break_even, memmap_cost

MiB = 1 << 20
SIZES_MIB = [1 << k for k in range(17)]            # the image sizes the plot spans: 1 MiB .. 64 GiB
BLUE, ORANGE, GREEN, GREY = "#0072B2", "#D55E00", "#009E73", "#808080"
INK = "#010203"                                    # a colour no data uses: becomes currentColor
# JupyterLab's text colour (light and dark); where the variable is undefined (slides, exports) the
# declaration is dropped and the colour is inherited from the page
INK_STYLE = "color: var(--jp-content-font-color1)"


def themed_svg(fig) -> str:
    """The figure as SVG text: transparent background, text and axes in currentColor, width 100%."""
    import matplotlib
    buf = io.StringIO()
    with matplotlib.rc_context(getattr(fig, "_vmlib_rc", {})):       # svg.fonttype is read when saving
        fig.savefig(buf, format="svg", transparent=True, metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]                                   # no XML prolog or doctype inline
    svg = svg.replace(INK, "currentColor")
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 width="100%"', svg, count=1)


def new_figure(width: float = 7.0, height: float = 4.0):
    """A matplotlib Figure (no pyplot) whose text, ticks and frame are drawn in INK."""
    import matplotlib
    from matplotlib.figure import Figure
    rc = {"svg.fonttype": "none", "text.color": INK, "axes.labelcolor": INK, "axes.edgecolor": INK,
          "xtick.color": INK, "ytick.color": INK, "axes.titlesize": "medium", "font.size": 11,
          "legend.frameon": False, "font.family": "sans-serif", "svg.hashsalt": "vmlib"}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(width, height), layout="constrained")
        fig.add_subplot()
    fig._vmlib_rc = rc
    return fig


def draw(fig, paint) -> None:
    """Run PAINT(ax) on the figure's axes with the figure's rc settings (INK text)."""
    import matplotlib
    with matplotlib.rc_context(fig._vmlib_rc):
        paint(fig.axes[0])
        fig.canvas.draw_idle()


class ThemedFigure:
    """A Figure that Jupyter shows as theme-coloured SVG; `.figure` is the matplotlib Figure."""

    def __init__(self, figure, css_class: str = "vmlib-plot"):
        self.figure, self.css_class = figure, css_class

    @property
    def svg(self) -> str:
        return themed_svg(self.figure)

    def _repr_html_(self) -> str:
        return f'<div class="{self.css_class}" style="max-width:720px;{INK_STYLE}">{self.svg}</div>'


# ---------------------------------------------------------------- the memmap cost

def memmap_figure(guests: int = 100, image_mib: int = 1024, page_size: int = 4096,
                  sizeof_struct_page: int = 64):
    """A log-log Figure: the guests' memmap and the image itself over image sizes 1 MiB..64 GiB.

    The lines have the gids memmap-image and memmap-memmap, the chosen size memmap-point, and the
    title (gid memmap-title) names the break-even number of guests.
    """
    cost = [memmap_cost(guests, s * MiB, sizeof_struct_page, page_size) / MiB for s in SIZES_MIB]
    here = memmap_cost(guests, image_mib * MiB, sizeof_struct_page, page_size) / MiB
    n = memmap_break_even(sizeof_struct_page, page_size)
    fig = new_figure(6.4, 3.6)

    def paint(ax):
        ax.loglog(SIZES_MIB, SIZES_MIB, color=BLUE, lw=2, label="image itself", gid="memmap-image")
        ax.loglog(SIZES_MIB, cost, color=ORANGE, lw=2, ls=(0, (6, 4)),
                  label=f"memmap of {guests} guest{'s' * (guests != 1)}", gid="memmap-memmap")
        ax.plot([image_mib], [here], "o", color=ORANGE, ms=7, gid="memmap-point")
        ax.set_xlabel("image size (MiB)")
        ax.set_ylabel("MiB")
        ax.set_title(f"struct page {sizeof_struct_page} B, page {page_size} B: break-even at {n} guests",
                     gid="memmap-title")
        ax.legend(loc="upper left")
    draw(fig, paint)
    return fig


def have_matplotlib() -> bool:
    """True where matplotlib can be imported (not in the offline JupyterLite site)."""
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None


def memmap_svg(guests: int = 100, image_mib: int = 1024, page_size: int = 4096,
               sizeof_struct_page: int = 64) -> str:
    """SVG text of memmap_figure (theme-coloured, transparent); without matplotlib, the same plot
    drawn by vmlib.views.plainsvg."""
    if not have_matplotlib():
        from vmlib.views.plainsvg import plain_memmap_svg
        return plain_memmap_svg(guests, image_mib, page_size, sizeof_struct_page)
    return themed_svg(memmap_figure(guests, image_mib, page_size, sizeof_struct_page))


def summary(guests: int, image_mib: int, page_size: int, sizeof_struct_page: int) -> str:
    """One paragraph: memmap cost, its share of the image, the break-even and the '100 guests' claim."""
    cost = memmap_cost(guests, image_mib * MiB, sizeof_struct_page, page_size)
    n = memmap_break_even(sizeof_struct_page, page_size)
    hundred = memmap_cost(100, image_mib * MiB, sizeof_struct_page, page_size)
    claim = "holds" if hundred > image_mib * MiB else "does not hold"
    return (f"{guests} guests × {image_mib} MiB image: memmap {cost / MiB:,.1f} MiB "
            f"({100 * cost / (image_mib * MiB):.1f} % of the image). Break-even: {n} guests. "
            f"The commit's '100 guests need more struct pages than the image' {claim} here "
            f"({100 * hundred / (image_mib * MiB):.1f} %).")


class MemmapCost(W.VBox):
    """Sliders for guests, image size, page size and sizeof(struct page); a plot and the break-even.

    `.figure` is the matplotlib Figure now shown, `.svg` its SVG text (in the `.plot` HTML widget).
    """

    def __init__(self, guests: int = 100, image_mib: int = 1024, page_size: int = 4096, sizeof_struct_page: int = 64):
        self.guests = W.IntSlider(value=guests, min=1, max=500, description="guests", continuous_update=False)
        self.image = W.SelectionSlider(options=SIZES_MIB, value=image_mib,
                                       description="image MiB", continuous_update=False)
        self.page_size = W.Dropdown(options=[4096, 8192, 16384, 65536], value=page_size, description="page size")
        self.struct_page = W.IntSlider(value=sizeof_struct_page, min=16, max=128, step=8,
                                       description="struct page", continuous_update=False)
        self.text = W.HTML()
        self.plot = W.HTML()
        for w in (self.guests, self.image, self.page_size, self.struct_page):
            w.observe(lambda _ch: self.update(), names="value")
        super().__init__([W.HBox([self.guests, self.image]), W.HBox([self.page_size, self.struct_page]),
                          self.text, self.plot])
        self.add_class("vmlib-memmap-cost")
        self.update()

    @property
    def break_even(self) -> int:
        return memmap_break_even(self.struct_page.value, self.page_size.value)

    def update(self) -> None:
        args = (self.guests.value, self.image.value, self.page_size.value, self.struct_page.value)
        self.text.value = f'<div class="vmlib-memmap">{summary(*args)}</div>'
        self.figure = memmap_figure(*args) if have_matplotlib() else None
        self.svg = themed_svg(self.figure) if self.figure is not None else memmap_svg(*args)
        self.plot.value = f'<div style="max-width:720px;{INK_STYLE}">{self.svg}</div>'

    def static_html(self) -> str:
        """The summary and the plot as plain HTML (slides and exports without a kernel)."""
        return (f'{self.text.value}<div class="vmlib-memmap-plot" style="max-width:720px;{INK_STYLE}">'
                f'{self.svg}</div>')

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The widget for JupyterLab, with static HTML for exports and slides."""
        from vmlib.views.practice_static import with_static_html
        return with_static_html(super()._repr_mimebundle_(include=include, exclude=exclude), self.static_html)


# ---------------------------------------------------------------- measured fault costs

def fault_cost_plot(rows: list[dict]):
    """Bars of microseconds per fault for each kind: the simulator with tracing off and on, and the
    live kernel where it was measured (a ThemedFigure). ROWS as vmlib.measure.fault_costs returns
    them. Without matplotlib (the offline JupyterLite site) a note saying so, the table is the data."""
    if not rows or not all({"kind", "sim_off", "sim_on", "live"} <= set(r) for r in rows):
        raise ValueError("fault_cost_plot: give the rows of vmlib.measure.fault_costs() "
                         "(dicts with kind, sim_off, sim_on, live)")
    if not have_matplotlib():
        return FaultCostTable(rows)
    fig = new_figure(6.4, 3.4)
    kinds = [r["kind"] for r in rows]
    series = [("simulator", "sim_off", BLUE, ""), ("simulator, traced", "sim_on", ORANGE, "//"),
              ("live kernel", "live", GREEN, "..")]

    def paint(ax):
        width = 0.26
        for i, (label, key, colour, hatch) in enumerate(series):
            xs = [j + (i - 1) * width for j, r in enumerate(rows) if r[key] is not None]
            ys = [r[key] for r in rows if r[key] is not None]
            if ys:
                ax.bar(xs, ys, width, color=colour, hatch=hatch, edgecolor=INK, linewidth=0.5,
                       label=label, gid=f"faults-{key}")
        ax.set_yscale("log")
        top = max(r[k] for r in rows for k in ("sim_off", "sim_on", "live") if r[k] is not None)
        ax.set_ylim(top=top * 6)                    # room for the legend above the bars
        ax.set_xticks(range(len(kinds)), [k.replace("_", " ") for k in kinds])
        ax.set_ylabel("µs per fault (CPU time)")
        ax.set_title("What one page fault costs", gid="faults-title")
        ax.legend(loc="upper left", ncols=3, fontsize="small")
    draw(fig, paint)
    return ThemedFigure(fig, "vmlib-plot vmlib-fault-costs")


def fault_cost_table(rows: list[dict]) -> str:
    """The rows as an HTML table (what the plot shows, with the reason a live figure is missing)."""
    def us(v):
        return f"{v:.2f}" if v is not None else "–"
    body = "".join(f"<tr><td>{html.escape(r['kind'])}</td><td>{us(r['sim_off'])}</td><td>{us(r['sim_on'])}</td>"
                   f"<td>{us(r['live'])}</td><td>{html.escape(r.get('why') or '')}</td></tr>" for r in rows)
    return ("<table><tr><th>kind</th><th>simulator µs</th><th>traced µs</th><th>live kernel µs</th>"
            f"<th>note</th></tr>{body}</table>")


class FaultCostTable:
    """What fault_cost_plot shows where matplotlib is missing: a note; `.figure` is None."""

    figure = None

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def _repr_html_(self) -> str:
        return ('<div class="vmlib-plot vmlib-fault-costs"><i>No plot: matplotlib is not installed in '
                "this Python (the offline JupyterLite site cannot carry it); the table below has the "
                "figures.</i></div>")
