"""MemmapCost: what struct pages for a shared image cost the guests (matplotlib, lazily)."""

from __future__ import annotations

import ipywidgets as W

from vmlib.memmap import memmap_break_even, memmap_cost

MiB = 1 << 20


def memmap_figure(guests: int = 100, image_mib: int = 1024, page_size: int = 4096, sizeof_struct_page: int = 64):
    """A matplotlib Figure: the guests' memmap versus the image, over image sizes 1 MiB..64 GiB."""
    from matplotlib.figure import Figure
    sizes = [1 << k for k in range(17)]                    # MiB
    fig = Figure(figsize=(6.4, 3.6), facecolor="white")   # opaque: reads the same on light and dark pages
    ax = fig.add_subplot()
    ax.loglog(sizes, sizes, color="#0072B2", label="image itself")
    cost = [memmap_cost(guests, s * MiB, sizeof_struct_page, page_size) / MiB for s in sizes]
    ax.loglog(sizes, cost, color="#D55E00", linestyle="--", label=f"memmap of {guests} guests")
    here = memmap_cost(guests, image_mib * MiB, sizeof_struct_page, page_size) / MiB
    ax.plot([image_mib], [here], "o", color="#D55E00")
    ax.set_xlabel("image size (MiB)")
    ax.set_ylabel("MiB")
    ax.legend(loc="upper left", fontsize=9)
    n = memmap_break_even(sizeof_struct_page, page_size)
    ax.set_title(f"struct page {sizeof_struct_page} B, page {page_size} B: break-even at {n} guests",
                 fontsize=10, color="#222222")
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    """PNG bytes of a Figure built without pyplot (which would otherwise show only its repr)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


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
    """Sliders for guests, image size, page size and sizeof(struct page); a plot and the break-even."""

    def __init__(self, guests: int = 100, image_mib: int = 1024, page_size: int = 4096, sizeof_struct_page: int = 64):
        self.guests = W.IntSlider(value=guests, min=1, max=500, description="guests", continuous_update=False)
        self.image = W.SelectionSlider(options=[1 << k for k in range(17)], value=image_mib,
                                       description="image MiB", continuous_update=False)
        self.page_size = W.Dropdown(options=[4096, 8192, 16384, 65536], value=page_size, description="page size")
        self.struct_page = W.IntSlider(value=sizeof_struct_page, min=16, max=128, step=8,
                                       description="struct page", continuous_update=False)
        self.text = W.HTML()
        self.out = W.Image(format="png", layout=W.Layout(max_width="100%", width="640px"))
        for w in (self.guests, self.image, self.page_size, self.struct_page):
            w.observe(lambda _ch: self.update(), names="value")
        super().__init__([W.HBox([self.guests, self.image]), W.HBox([self.page_size, self.struct_page]),
                          self.text, self.out])
        self.add_class("vmlib-memmap-cost")
        self.update()

    @property
    def break_even(self) -> int:
        return memmap_break_even(self.struct_page.value, self.page_size.value)

    def update(self) -> None:
        args = (self.guests.value, self.image.value, self.page_size.value, self.struct_page.value)
        self.text.value = f'<div class="vmlib-memmap">{summary(*args)}</div>'
        self.figure = memmap_figure(*args)
        self.png = figure_png(self.figure)
        self.out.value = self.png

    def static_html(self) -> str:
        """The summary and the plot as plain HTML (slides and exports without a kernel)."""
        import base64
        data = base64.b64encode(self.png).decode()
        return (f'{self.text.value}<img class="vmlib-memmap-plot" alt="memmap cost plot" style="max-width:100%" '
                f'src="data:image/png;base64,{data}">')

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The widget for JupyterLab, with static HTML for exports and slides."""
        bundle = super()._repr_mimebundle_(include=include, exclude=exclude)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/html"] = self.static_html()
        return bundle
