"""Charts of the report pages as SVG drawn on the server: no script, no library, no CDN.

Each function returns one ``<svg>`` element as ``Markup``; every text in it that came from a
user (variable names, function names, group keys) is escaped here. Marks carry
``class="mark verdict-<name>"`` and ``data-*`` attributes so that a browser test can read what
was drawn. Colours are ``VERDICT_COLOURS``, one per verdict of verifier/core/judge/verdict.py.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from verifier.api.ui.ticks import linear_axis, log_axis
from verifier.core.judge.verdict import VERDICT_ORDER, VERDICTS, Verdict
from verifier.service.pages import HistogramBin, PlotPoint

VERDICT_COLOURS: dict[str, str] = {str(verdict): info.colour for verdict, info in VERDICTS.items()}
"""The colour of each verdict on every chart, from the verdict table."""
PENDING_COLOUR = "#ced4da"
MAX_DRAWN_MARKS = 4000
"""Marks one scatter plot draws at most: every non-passing entry first, then passes evenly
spread; the caption says how many were left out."""
MAX_PAGE_MARKS = 8000
"""Marks all the scatter plots of one page draw together at most (each draws its share, up
to ``MAX_DRAWN_MARKS``): a mark is about 230 bytes of HTML."""


def marks_per_plot(plots: int) -> int:
    """The marks each of ``plots`` scatter plots of one page may draw."""
    return min(MAX_DRAWN_MARKS, MAX_PAGE_MARKS // max(1, plots))


WIDTH = 600
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 64, 40, 28, 44
"""Margins around a plot, in px: RIGHT leaves room for half of the last x tick's label,
which is centred on the plot's right edge."""


def colour(verdict: str) -> str:
    """The colour of ``verdict`` (pending and unknown names: grey)."""
    return VERDICT_COLOURS.get(verdict, PENDING_COLOUR)


def _number(value: float) -> str:
    return f"{value:.1f}"


def _label(value: float) -> str:
    return f"{value:.3g}"


def _halo(text: str) -> str:
    """``text`` (an SVG ``<text>``) outlined in white, readable over the marks."""
    return text.replace("<text ", '<text paint-order="stroke" stroke="#fff" stroke-width="3" ', 1)


MARKER_SHAPES: dict[str, str] = {"gradient": "circle", "hessian": "square"}
"""The shape of an entry's mark on a scatter plot, by its kind; any other kind (a node's
gradient, a value) is a triangle. Colour says the verdict, shape the kind."""
OTHER_SHAPE = "triangle"
MARK_RADIUS = 2.6
"""Half the size of a mark, in px."""


def marker_shape(kind: str) -> str:
    """The shape of the marks of entries of ``kind``."""
    return MARKER_SHAPES.get(kind, OTHER_SHAPE)


def _marker(shape: str, cx: float, cy: float, r: float, attributes: str) -> str:
    """One mark of ``shape`` centred on (cx, cy) with ``attributes`` (already escaped); the
    centre of its box is the centre given, rounded to 0.1 px, whatever the shape."""
    cx, cy = round(cx, 1), round(cy, 1)
    if shape == "circle":
        return f'<circle {attributes} cx="{_number(cx)}" cy="{_number(cy)}" r="{r}"/>'
    half = round(0.9 * r, 1)
    if shape == "square":
        return (
            f'<rect {attributes} x="{_number(cx - half)}" y="{_number(cy - half)}" '
            f'width="{_number(2 * half)}" height="{_number(2 * half)}"/>'
        )
    half = round(1.1 * r, 1)
    return (
        f'<path {attributes} d="M{_number(cx)} {_number(cy - half)}L{_number(cx + half)} '
        f'{_number(cy + half)}L{_number(cx - half)} {_number(cy + half)}Z"/>'
    )


LEGEND_FILL = 'fill="#495057"'
"""The legend's marker shapes are grey: their colour is not a verdict."""


def scatter_legend(points: Sequence[PlotPoint]) -> Markup:
    """What the marks of a scatter plot mean, as an HTML list beside it: a shape per kind of
    entry drawn, a colour per verdict drawn."""
    kinds = sorted({point.kind for point in points}, key=lambda k: (k not in MARKER_SHAPES, k))
    drawn = {point.verdict for point in points}
    items = [
        f'<li data-kind="{escape(kind)}"><svg class="marker" viewBox="0 0 10 10" width="10" '
        f'height="10">{_marker(marker_shape(kind), 5, 5, 4, LEGEND_FILL)}</svg>'
        f"{escape(kind)}</li>"
        for kind in kinds
    ]
    items += [
        f'<li data-verdict="{verdict}"><span class="swatch" '
        f'style="background: {colour(str(verdict))}"></span>{verdict}</li>'
        for verdict in VERDICT_ORDER
        if str(verdict) in drawn
    ]
    return Markup(f'<ul class="legend">{"".join(items)}</ul>')


def _svg(body: list[str], title: str, width: int = WIDTH, height: int = HEIGHT) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def verdict_bars(counts: dict[str, int], title: str) -> Markup:
    """Horizontal bars: the number of each verdict (and ``pending``) in ``counts``."""
    rows = [(name, count) for name, count in counts.items() if count > 0]
    height = TOP + 26 * max(1, len(rows)) + 12
    body: list[str] = []
    most = max((count for _, count in rows), default=1)
    span = WIDTH - 140 - RIGHT - 60
    for number, (name, count) in enumerate(rows):
        y = TOP + 26 * number
        length = max(2.0, span * count / most)
        body.append(
            f'<text x="132" y="{y + 15}" text-anchor="end" class="axis">{escape(name)}</text>'
            f'<rect class="mark verdict-{escape(name)}" data-verdict="{escape(name)}" '
            f'data-count="{count}" x="140" y="{y + 3}" width="{_number(length)}" height="18" '
            f'fill="{colour(name)}"/>'
            f'<text x="{_number(146 + length)}" y="{y + 16}" class="value">{count}</text>'
        )
    if not rows:
        body.append(f'<text x="140" y="{TOP + 15}" class="axis">no checks</text>')
    return _svg(body, title, height=height)


def stacked_bars(groups: Sequence[tuple[str, dict[str, int]]], title: str) -> Markup:
    """One horizontal bar per group (a function, a dtype), split by verdict."""
    height = TOP + 24 * max(1, len(groups)) + 12
    body: list[str] = []
    most = max((sum(counts.values()) for _, counts in groups), default=1) or 1
    span = WIDTH - 150 - RIGHT - 50
    for number, (key, counts) in enumerate(groups):
        y = TOP + 24 * number
        body.append(
            f'<text x="142" y="{y + 14}" text-anchor="end" class="axis">{escape(key)}</text>'
        )
        x = 150.0
        known = [str(verdict) for verdict in VERDICT_ORDER]
        for name in [*known, *(other for other in counts if other not in known)]:
            count = counts.get(name, 0)
            if count <= 0:
                continue
            length = span * count / most
            body.append(
                f'<rect class="mark verdict-{escape(name)}" data-group="{escape(key)}" '
                f'data-verdict="{escape(name)}" data-count="{count}" x="{_number(x)}" '
                f'y="{y + 3}" width="{_number(max(1.0, length))}" height="16" '
                f'fill="{colour(name)}"/>'
            )
            x += length
        body.append(
            f'<text x="{_number(x + 6)}" y="{y + 15}" class="value">{sum(counts.values())}</text>'
        )
    return _svg(body, title, height=height)


def verdict_legend() -> Markup:
    """The verdicts' colours as an HTML list beside a chart: the browser lays out and wraps
    its text, which an SVG legend would have to guess the width of."""
    items = "".join(
        f'<li data-verdict="{verdict}"><span class="swatch" '
        f'style="background: {colour(str(verdict))}"></span>{verdict}</li>'
        for verdict in VERDICT_ORDER
    )
    return Markup(f'<ul class="legend">{items}</ul>')


def _decades(low: float, high: float) -> tuple[int, int]:
    bottom = math.floor(math.log10(low))
    top = math.ceil(math.log10(high))
    return bottom, max(top, bottom + 1)


def _thin(points: Sequence[PlotPoint], most: int) -> list[PlotPoint]:
    if len(points) <= most:
        return list(points)
    failing = [point for point in points if point.verdict != Verdict.PASS][:most]
    passing = [point for point in points if point.verdict == Verdict.PASS]
    room = most - len(failing)
    if room <= 0 or not passing:
        return failing
    step = len(passing) / room
    return failing + [passing[int(number * step)] for number in range(room)]


def drawn_marks(points: Sequence[PlotPoint], max_marks: int = MAX_DRAWN_MARKS) -> list[PlotPoint]:
    """The entries a scatter plot of ``points`` draws: those with an error in ulps, at most
    ``max_marks`` (every non-passing one first, then passes evenly spread)."""
    return _thin([point for point in points if point.ulps is not None], max_marks)


CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula: a text cell starting
with one is sent with a ``'`` before it (numbers are sent as numbers)."""


def _csv_text(value: str) -> str:
    return f"'{value}" if value.startswith(CSV_FORMULA_STARTS) else value


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(value)


def scatter_csv(
    points: Sequence[PlotPoint], variable: str, max_marks: int = MAX_DRAWN_MARKS
) -> str:
    """The data of the scatter plot of ``points`` against ``variable`` as CSV: a header, then
    one row per mark the plot draws (the same bounded sample, :func:`drawn_marks`); numbers
    printed with ``repr`` so that they read back as the same floats."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [_csv_text(variable), "entry", "autograd", "exact", "ulps", "err/allowed", "verdict"]
    )
    for point in drawn_marks(points, max_marks):
        writer.writerow(
            [
                repr(point.x),
                _csv_text(point.entry),
                _csv_number(point.autograd),
                _csv_number(point.exact),
                _csv_number(point.ulps),
                _csv_number(point.ratio),
                _csv_text(point.verdict),
            ]
        )
    return out.getvalue()


def error_scatter(
    points: Sequence[PlotPoint],
    variable: str,
    title: str,
    allowed_ulps: float | None,
    max_marks: int = MAX_DRAWN_MARKS,
    x_scale: str = "linear",
) -> Markup:
    """Error in ulps (log scale) against ``variable``'s value, one mark per entry coloured by
    its verdict (at most ``max_marks``); a dashed line at the tolerance in ulps
    (``allowed_ulps``); non-finite errors on a band at the top. With ``x_scale="log"`` the
    variable's axis is logarithmic, ticked at powers of ten (every value must be above 0:
    verifier/api/ui/scales.py decides)."""
    drawn = [point for point in points if point.ulps is not None]
    marks = drawn_marks(drawn, max_marks)
    finite = [point.ulps for point in drawn if point.ulps is not None and math.isfinite(point.ulps)]
    levels = [*finite, *([allowed_ulps] if allowed_ulps else [])] or [1.0]
    bottom, top = _decades(min(levels), max(levels))
    xs = [point.x for point in drawn] or [0.0]
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    band = 14.0  # the band of non-finite errors above the plot
    x_ticks: list[tuple[float, str, str]] = []  # position, label, value
    if x_scale == "log":
        log_x = log_axis(min(xs), max(xs))

        def sx(x: float) -> float:
            return LEFT + log_x.fraction(x) * plot_w

        # A tick's value is its label: 10**k may underflow to 0 or overflow to inf as a float.
        x_ticks = [
            (LEFT + log_x.decade_fraction(k) * plot_w, log_x.label(k), log_x.label(k))
            for k in log_x.decades
        ]
        axis_name = f"{variable} (log scale)"
    elif x_scale == "linear":
        x_axis = linear_axis(min(xs), max(xs))
        x_low, x_high = x_axis.low, x_axis.high

        def sx(x: float) -> float:
            return LEFT + (x - x_low) / (x_high - x_low) * plot_w

        x_ticks = [(sx(x), x_axis.label(x), repr(x)) for x in x_axis.ticks]
        axis_name = variable
    else:
        raise ValueError(f"x_scale is linear or log, not {x_scale!r}")

    def sy(ulps: float) -> float:
        if not math.isfinite(ulps):
            return TOP - band / 2 + band
        return TOP + band + (top - math.log10(ulps)) / (top - bottom) * (plot_h - band)

    body = [
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" '
        f'class="axis x-axis" data-scale="{x_scale}">{escape(axis_name)}</text>',
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">error (ulps)</text>',
    ]
    step = max(1, math.ceil((top - bottom) / 8))
    for decade in range(bottom, top + 1, step):
        y = sy(10.0**decade)
        body.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{_number(y)}" y2="{_number(y)}" '
            f'class="grid"/><text x="{LEFT - 4}" y="{_number(y + 4)}" text-anchor="end" '
            f'class="tick">1e{decade}</text>'
        )
    for x, label, value in x_ticks:
        body.append(
            f'<line x1="{_number(x)}" x2="{_number(x)}" y1="{TOP}" '
            f'y2="{TOP + plot_h}" class="grid"/>'
            f'<text x="{_number(x)}" y="{TOP + plot_h + 16}" text-anchor="middle" '
            f'class="tick x-tick" data-value="{value}">{label}</text>'
        )
    if any(point.ulps is not None and not math.isfinite(point.ulps) for point in drawn):
        body.append(
            f'<text x="{LEFT - 4}" y="{TOP + band / 2 + 8}" text-anchor="end" '
            'class="tick">inf</text>'
        )
    if allowed_ulps:
        y = sy(allowed_ulps)
        body.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{_number(y)}" y2="{_number(y)}" '
            f'class="allowed" data-ulps="{allowed_ulps:g}"/>'
        )
    for point in sorted(marks, key=lambda p: p.verdict == Verdict.PASS, reverse=True):
        assert point.ulps is not None
        attributes = (
            f'class="mark verdict-{escape(point.verdict)} kind-{escape(point.kind)}" '
            f'data-verdict="{escape(point.verdict)}" data-kind="{escape(point.kind)}" '
            f'data-x="{point.x!r}" data-ulps="{point.ulps!r}" fill="{colour(point.verdict)}"'
        )
        body.append(
            _marker(marker_shape(point.kind), sx(point.x), sy(point.ulps), MARK_RADIUS, attributes)
        )
    if allowed_ulps:
        # After the marks, outlined: the label must not sit under the data.
        body.append(
            _halo(
                f'<text x="{LEFT + plot_w - 4}" y="{_number(sy(allowed_ulps) - 4)}" '
                f'text-anchor="end" class="tick">tolerance {allowed_ulps:g} ulps</text>'
            )
        )
    caption = f"{len(marks)} entries drawn"
    if len(marks) < len(drawn):
        caption += f" of {len(drawn)} (every non-passing one first)"
    body.append(f'<text x="{LEFT}" y="{TOP - 8}" class="legend">{escape(caption)}</text>')
    return _svg(body, title)


def error_histogram(bins: Sequence[HistogramBin], title: str) -> Markup:
    """Entries per decade of error in ulps, each bar split by verdict."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    body = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>']
    most_count = max((sum(b.counts.values()) for b in bins), default=1) or 1
    count_axis = linear_axis(0, most_count, integer=True)
    most = count_axis.high
    for count in count_axis.ticks:
        y = TOP + plot_h - plot_h * count / most
        body.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{_number(y)}" y2="{_number(y)}" '
            f'class="grid"/><text x="{LEFT - 4}" y="{_number(y + 4)}" text-anchor="end" '
            f'class="tick y-tick" data-value="{count!r}">{count_axis.label(count)}</text>'
        )
    width = plot_w / max(1, len(bins))
    for number, bin_ in enumerate(bins):
        x = LEFT + number * width
        y = float(TOP + plot_h)
        for name, count in bin_.counts.items():
            height = plot_h * count / most
            y -= height
            body.append(
                f'<rect class="mark verdict-{escape(name)}" data-verdict="{escape(name)}" '
                f'data-count="{count}" data-low="{bin_.low:g}" x="{_number(x + 2)}" '
                f'y="{_number(y)}" width="{_number(max(1.0, width - 4))}" '
                f'height="{_number(height)}" fill="{colour(name)}"/>'
            )
        label = "inf" if not math.isfinite(bin_.low) else f"1e{int(bin_.low)}"
        body.append(
            f'<text x="{_number(x + width / 2)}" y="{TOP + plot_h + 16}" text-anchor="middle" '
            f'class="tick">{label}</text>'
        )
    body.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" class="axis">'
        "error (ulps), by decade</text>"
    )
    if not bins:
        body.append(f'<text x="{LEFT + 10}" y="{TOP + 20}" class="axis">no errors to draw</text>')
    return _svg(body, title)


def hessian_matrix(
    variables: Sequence[str], cells: dict[tuple[str, str], tuple[float | None, str]], title: str
) -> Markup:
    """The worst error in ulps of each Hessian element over the points: one square per
    (row, column) variable, filled with its worst entry's verdict colour."""
    size = 76
    left, top = 90, 40
    width = max(WIDTH // 2, left + size * len(variables) + 20)
    height = top + size * len(variables) + 20
    body: list[str] = []
    for column, name in enumerate(variables):
        body.append(
            f'<text x="{left + column * size + size / 2}" y="{top - 8}" text-anchor="middle" '
            f'class="axis">{escape(name)}</text>'
        )
    for row, first in enumerate(variables):
        body.append(
            f'<text x="{left - 8}" y="{top + row * size + size / 2 + 4}" text-anchor="end" '
            f'class="axis">{escape(first)}</text>'
        )
        for column, second in enumerate(variables):
            cell = cells.get((first, second))
            x, y = left + column * size, top + row * size
            if cell is None:
                body.append(
                    f'<rect x="{x}" y="{y}" width="{size - 2}" height="{size - 2}" class="empty"/>'
                )
                continue
            ulps, verdict = cell
            text = "n/a" if ulps is None else "inf" if not math.isfinite(ulps) else _label(ulps)
            body.append(
                f'<rect class="mark verdict-{escape(verdict)}" data-verdict="{escape(verdict)}" '
                f'data-row="{escape(first)}" data-column="{escape(second)}" '
                f'data-ulps="{"" if ulps is None else repr(ulps)}" x="{x}" y="{y}" '
                f'width="{size - 2}" height="{size - 2}" fill="{colour(verdict)}"/>'
                f'<text x="{x + size / 2 - 1}" y="{y + size / 2 + 4}" text-anchor="middle" '
                f'class="cell">{text}</text>'
            )
    return _svg(body, title, width=width, height=height)
