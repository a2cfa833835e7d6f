"""The memmap plot as plain SVG text, for a Python without matplotlib.

The offline JupyterLite site cannot carry matplotlib (Pyodide's build of it is on no package
registry this project vendors from), so there MemmapCost falls back to this hand-drawn log-log
plot: same lines, ids and title as vmlib.views.plots.memmap_figure, text in the page's colour.
Everywhere else matplotlib draws it.
"""

from __future__ import annotations

import html
import math

from vmlib.memmap import memmap_break_even, memmap_cost

MiB = 1 << 20
SIZES_MIB = [1 << k for k in range(17)]            # the image sizes the plot spans: 1 MiB .. 64 GiB
WIDTH, HEIGHT = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 24, 30, 44          # margins around the plot area
GREY, BLUE, ORANGE = "#808080", "#0072B2", "#D55E00"


def _decades(lo: float, hi: float) -> tuple[int, int]:
    """The powers of ten just below LO and just above HI (the axis range of a log axis)."""
    return math.floor(math.log10(lo)), math.ceil(math.log10(hi))


def _axis_label(exp: int) -> str:
    """Tick label for 10**EXP MiB: 1, 10, 100, 1000, then 10⁴, 10⁵, ... (and 10⁻¹, ... below 1)."""
    if 0 <= exp <= 3:
        return str(10 ** exp)
    return "10" + str(exp).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _scale(lo_exp: int, hi_exp: int, start: float, length: float, flip: bool):
    """A function mapping a positive value onto [START, START+LENGTH] of a log axis."""
    def at(value: float) -> float:
        frac = (math.log10(value) - lo_exp) / (hi_exp - lo_exp)
        return start + length * ((1 - frac) if flip else frac)
    return at


def plain_memmap_svg(guests: int = 100, image_mib: int = 1024, page_size: int = 4096,
               sizeof_struct_page: int = 64) -> str:
    """SVG text of a log-log plot: the guests' memmap and the image itself over image sizes 1 MiB..64 GiB.

    The lines have the ids memmap-image and memmap-memmap, the chosen size memmap-point; the
    title (in <g id="memmap-title">) names the break-even number of guests.
    """
    cost = [memmap_cost(guests, s * MiB, sizeof_struct_page, page_size) / MiB for s in SIZES_MIB]
    here = memmap_cost(guests, image_mib * MiB, sizeof_struct_page, page_size) / MiB
    x_lo, x_hi = _decades(SIZES_MIB[0], SIZES_MIB[-1])
    y_lo, y_hi = _decades(min(cost + SIZES_MIB), max(cost + SIZES_MIB))
    px = _scale(x_lo, x_hi, LEFT, WIDTH - LEFT - RIGHT, flip=False)
    py = _scale(y_lo, y_hi, TOP, HEIGHT - TOP - BOTTOM, flip=True)
    n = memmap_break_even(sizeof_struct_page, page_size)
    title = f"struct page {sizeof_struct_page} B, page {page_size} B: break-even at {n} guests"
    parts = _frame(html.escape(title))
    parts += _ticks(px, py, x_lo, x_hi, y_lo, y_hi)
    parts.append(_polyline("memmap-image", SIZES_MIB, SIZES_MIB, px, py, BLUE, ""))
    parts.append(_polyline("memmap-memmap", SIZES_MIB, cost, px, py, ORANGE, ' stroke-dasharray="6 4"'))
    parts.append(f'<circle id="memmap-point" cx="{px(image_mib):.1f}" cy="{py(here):.1f}" r="4" fill="{ORANGE}"/>')
    parts += _legend(guests)
    parts.append("</svg>")
    return "\n".join(parts)


def _frame(title: str) -> list[str]:
    """The opening <svg> tag, the plot's frame, the title and both axis names."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    mid_x, mid_y = LEFT + plot_w / 2, TOP + plot_h / 2
    # drawn at 1.25x (11 px text shows as ~14 px), in the page's text colour where JupyterLab
    # defines one (light and dark themes), else a dark grey that reads on white slides
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'style="max-width:{WIDTH * 5 // 4}px; fill: var(--jp-content-font-color1, #333)" '
           f'font-family="sans-serif" font-size="11">')
    frame = (f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" '
             f'fill="none" stroke="{GREY}"/>')
    return [svg, frame,
            f'<g id="memmap-title"><text x="{WIDTH / 2}" y="18" text-anchor="middle">{title}</text></g>',
            f'<text x="{mid_x}" y="{HEIGHT - 8}" text-anchor="middle">image size (MiB)</text>',
            f'<text x="14" y="{mid_y}" text-anchor="middle" transform="rotate(-90 14 {mid_y})">MiB</text>']


def _polyline(cls: str, xs, ys, px, py, color: str, extra: str) -> str:
    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    return f'<polyline id="{cls}" points="{points}" fill="none" stroke="{color}" stroke-width="2"{extra}/>'


def _ticks(px, py, x_lo: int, x_hi: int, y_lo: int, y_hi: int) -> list[str]:
    """Tick marks and labels at each power of ten on both axes (at most about six on the y axis)."""
    out = []
    bottom = HEIGHT - BOTTOM
    for e in range(x_lo, x_hi + 1):
        x = f"{px(10.0 ** e):.1f}"
        out.append(f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}" stroke="{GREY}"/>')
        out.append(f'<text x="{x}" y="{bottom + 16}" text-anchor="middle">{_axis_label(e)}</text>')
    for e in range(y_lo, y_hi + 1, max(1, (y_hi - y_lo + 5) // 6)):
        y = py(10.0 ** e)
        out.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="{GREY}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_axis_label(e)}</text>')
    return out


def _legend(guests: int) -> list[str]:
    """The legend in the upper left corner: a solid blue line for the image, a dashed one for the memmap."""
    x, y = LEFT + 10, TOP + 14
    memmap = f"memmap of {guests} guest{'s' * (guests != 1)}"
    out = []
    for dy, color, dash, label in ((0, BLUE, "", "image itself"), (16, ORANGE, ' stroke-dasharray="6 4"', memmap)):
        out.append(f'<line x1="{x}" y1="{y + dy}" x2="{x + 24}" y2="{y + dy}" stroke="{color}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 30}" y="{y + dy + 4}">{label}</text>')
    return out


