"""Pure chart logic for the live page: smoothing, downsampling and plotly figures (no Streamlit).

Long runs stay fast because every step here is either vectorised numpy over the full series
(smoothing, once per new point) or bounded by the number of points drawn (downsampling, figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_BUCKETS = 512  # a chart is ~1,000 px wide: two points (min, max) per bucket is enough
AXIS_TITLE_PX = 50  # below the plot: tick labels and the x axis title
LEGEND_ROW_PX = 24


# --- smoothing ---------------------------------------------------------------------------------
@dataclass
class EmaState:
    """Where a debiased EMA left off: the biased average and how many finite values went in."""

    last: float = 0.0
    count: int = 0


def ema_debiased(values, weight: float, state: EmaState | None = None) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average started at 0 and divided by
    `1 - weight**n` (n = finite values seen so far), so the first points are not pulled to 0.
    Non-finite values pass through unchanged and do not move the average, as in TensorBoard.
    With `state`, the series continues from where a previous call stopped (and `state` is
    updated), so appended points cost only their own length.
    """
    y = np.asarray(values, dtype=np.float64)
    state = state if state is not None else EmaState()
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1) (got {weight})")
    out = y.copy()
    finite = np.isfinite(y)
    v = y[finite]
    if v.size == 0:
        return out
    if weight == 0.0:
        state.last, state.count = float(v[-1]), state.count + v.size
        return out
    # The recurrence a_t = w a_{t-1} + (1-w) v_t, solved in closed form block by block:
    # a_j = w^(j+1) (a_-1 + (1-w) sum_{i<=j} v_i w^-(i+1)). Blocks keep w^-j finite.
    block = max(1, min(4096, int(500 / -math.log(weight))))
    smoothed = np.empty_like(v)
    last = state.last
    for start in range(0, v.size, block):
        chunk = v[start : start + block]
        powers = weight ** np.arange(1, chunk.size + 1)  # w^1 .. w^n
        biased = powers * (last + (1 - weight) * np.cumsum(chunk / powers))
        smoothed[start : start + chunk.size] = biased
        last = float(biased[-1])
    n = state.count + np.arange(1, v.size + 1)
    out[finite] = smoothed / (1 - weight**n)
    state.last, state.count = last, state.count + v.size
    return out


# --- downsampling ------------------------------------------------------------------------------
def bucket_width(n: int, max_buckets: int = MAX_BUCKETS) -> int:
    """The smallest power of two that splits n points into at most max_buckets buckets. Bucket
    edges sit at multiples of it, so a bucket never moves as points arrive, and when the width
    doubles every new bucket is the union of two old ones."""
    width = 1
    while n > width * max_buckets:
        width *= 2
    return width


def _minmax(y: np.ndarray, offset: int, width: int) -> np.ndarray:
    """Indices (sorted, absolute) of the minimum and maximum of each width-sized bucket of y,
    whose first element is point `offset`. NaNs never win; an all-NaN bucket keeps its ends."""
    buckets = y.size // width
    if buckets == 0:
        return np.empty(0, dtype=np.int64)
    rows = y[: buckets * width].reshape(buckets, width)
    lo = np.argmin(np.where(np.isnan(rows), np.inf, rows), axis=1)
    hi = np.argmax(np.where(np.isnan(rows), -np.inf, rows), axis=1)
    base = offset + np.arange(buckets) * width
    pairs = np.sort(np.stack([lo, hi], axis=1), axis=1) + base[:, None]
    pairs = pairs.ravel()
    keep = np.ones(pairs.size, dtype=bool)
    keep[1::2] = pairs[1::2] != pairs[::2]  # a bucket whose min and max are one point
    return pairs[keep]


class Downsampler:
    """Min/max downsampling that remembers finished buckets: a refresh after appending points
    only looks at the buckets the new points touch, so its cost does not grow with the run."""

    def __init__(self, max_buckets: int = MAX_BUCKETS):
        self.max_buckets = max_buckets
        self._width = 0
        self._done = 0  # complete buckets already in _cache
        self._cache = np.empty(0, dtype=np.int64)

    def indices(self, y) -> np.ndarray:
        """Sorted indices of the points to draw from the full series y (which only ever grows
        between calls; a shorter y starts over). Spikes survive as their bucket's min or max,
        the newest point is always included, and there are at most 2 * max_buckets + 1."""
        y = np.asarray(y, dtype=np.float64)
        n = y.size
        width = bucket_width(n, self.max_buckets)
        if width != self._width or n < self._done * self._width:
            self._width, self._done, self._cache = width, 0, np.empty(0, dtype=np.int64)
        full = n // width
        if full > self._done:
            start = self._done * width
            new = _minmax(y[start : full * width], start, width)
            self._cache = np.concatenate([self._cache, new])
            self._done = full
        parts = [self._cache]
        if n > full * width:  # the unfinished bucket: recomputed each time, it is small
            parts.append(_minmax(y[full * width :], full * width, n - full * width))
        out = np.concatenate(parts)
        # Buckets are disjoint and in order, so the result is sorted; add the newest point
        # unless the last bucket already chose it.
        if n and (not out.size or out[-1] != n - 1):
            out = np.append(out, n - 1)
        return out


# --- figures -----------------------------------------------------------------------------------
@dataclass
class Trace:
    """One line on a chart. `style` is 'raw' (faint, behind), 'smooth', 'line', 'markers' (val
    points), 'copy' (a percentage on the right axis) or 'best' (one starred point); `yaxis` is
    'y' (left) or 'y2' (right). 'dash' is a second line in the same colour."""

    x: np.ndarray
    y: np.ndarray
    name: str
    color: str
    style: str = "line"
    uid: str = ""
    group: str = ""
    hover: str = ""
    yaxis: str = "y"


@dataclass
class HLine:
    """A horizontal reference line (target loss, clip threshold) with its label."""

    y: float
    label: str
    color: str = "#7f7f7f"


@dataclass
class VLine:
    """A vertical marker across the plot (a resume point) with a label at its top (none when
    the label is empty)."""

    x: float
    label: str
    color: str = "#7f7f7f"


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


_STYLES = {
    "markers": lambda c: dict(
        mode="lines+markers",
        line=dict(color=c, width=1.5, dash="dot"),
        marker=dict(color=c, size=6, symbol="diamond"),
    ),
    "copy": lambda c: dict(
        mode="lines+markers",
        line=dict(color=c, width=1.5, dash="dash"),
        marker=dict(color=c, size=6, symbol="square-open"),
    ),
    "dash": lambda c: dict(mode="lines", line=dict(color=c, width=1.5, dash="dash")),
    "best": lambda c: dict(
        mode="markers",
        marker=dict(color=c, size=15, symbol="star", line=dict(color="#ffffff", width=1)),
    ),
}


def _trace_dict(t: Trace) -> dict:
    d = dict(
        type="scatter",
        x=t.x,
        y=t.y,
        name=t.name,
        uid=t.uid or None,
        legendgroup=t.group or t.name,
        hovertemplate=t.hover or None,
        yaxis=t.yaxis if t.yaxis != "y" else None,
    )
    if t.style == "raw":
        d.update(
            mode="lines",
            line=dict(color=_rgba(t.color, 0.25), width=1),
            showlegend=False,
            hoverinfo="skip",
            hovertemplate=None,
        )
    elif t.style in _STYLES:
        d.update(_STYLES[t.style](t.color))
    else:
        d.update(mode="lines", line=dict(color=t.color, width=2))
    if d.get("mode") == "lines" and t.x is not None and len(t.x) == 1:
        d["mode"] = "lines+markers"  # a line through one point draws nothing: show the point
    return {k: v for k, v in d.items() if v is not None}


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick values and short labels ('0.2', '1', '5', no '10.0000') for a log axis from lo to hi:
    1-2-5 per decade, finer when the range spans less than a decade or two. Empty when fewer
    than two such ticks fall in the range (the caller lets plotly choose)."""
    if not (0 < lo < hi and math.isfinite(hi)):
        return [], []
    decades = math.log10(hi / lo)
    mantissas = (
        (1,)
        if decades > 4
        else (1, 2, 5)
        if decades > 1.5
        else (1, 1.5, 2, 3, 5, 7)
        if decades > 0.6
        else (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)
    )
    values = [
        float(f"{m * 10.0**e:.6g}")
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for m in mantissas
    ]
    values = [v for v in values if lo <= v <= hi]
    if len(values) < 2:
        return [], []
    return values, [f"{v:g}" for v in values]


def log_range(values: list[np.ndarray], pad: float = 0.04) -> tuple[float, float] | None:
    """A log axis range (in log10 units, as plotly wants it) that fits the positive finite
    values with a little room; None when there are none."""
    parts = [np.asarray(v, dtype=np.float64) for v in values]
    finite = np.concatenate([p[np.isfinite(p) & (p > 0)] for p in parts]) if parts else np.empty(0)
    if not finite.size:
        return None
    lo, hi = math.log10(float(finite.min())), math.log10(float(finite.max()))
    room = max(pad * (hi - lo), 0.02)
    return lo - room, hi + room


def _log_axis(values: list) -> dict:
    """Range and ticks of a log y axis that fits the values (plotly's own when none fit)."""
    span = log_range(values)
    if not span:
        return {}
    axis = {"range": list(span)}
    ticks, labels = log_ticks(10 ** span[0], 10 ** span[1])
    if ticks:
        axis.update(tickvals=ticks, ticktext=labels)
    return axis


def _reference_lines(hlines: list[HLine], vlines: list[VLine], log_y: bool) -> tuple[list, list]:
    """Shapes and labels of the reference lines. On a log axis, plotly places shapes in data
    units but annotations in log10 units: the label is converted so it sits on its line."""
    shapes, annotations = [], []
    for h in hlines:
        shapes.append(_line_shape("paper", 0, 1, "y", h.y, h.y, h.color, "dash"))
        annotations.append(
            dict(
                xref="paper",
                x=0,
                xanchor="left",
                yref="y",
                y=math.log10(h.y) if log_y and h.y > 0 else h.y,
                yanchor="bottom",
                text=h.label,
                showarrow=False,
                font=dict(size=11, color=h.color),
            )
        )
    labelled = 0
    for v in sorted(vlines, key=lambda v: v.x):
        shapes.append(_line_shape("x", v.x, v.x, "paper", 0, 1, v.color, "dot"))
        if v.label:  # staggered down the top of the plot, so neighbours' labels never collide
            annotations.append(
                dict(
                    xref="x",
                    x=v.x,
                    xanchor="left",
                    yref="paper",
                    y=1 - 0.07 * (labelled % 3),
                    yanchor="top",
                    text=v.label,
                    showarrow=False,
                    font=dict(size=10, color=v.color),
                )
            )
            labelled += 1
    return shapes, annotations


def _line_shape(xref, x0, x1, yref, y0, y1, color: str, dash: str) -> dict:
    return dict(
        type="line",
        xref=xref,
        x0=x0,
        x1=x1,
        yref=yref,
        y0=y0,
        y1=y1,
        line=dict(color=color, width=1.5, dash=dash),
    )


def _y_axes(traces, hlines, *, y_title, y2_title, y_format, log_y) -> tuple[dict, dict | None]:
    """The left y axis (log with a range from its own data, or linear) and the right one for
    the traces on 'y2' (None without y2_title)."""
    yaxis = dict(
        title=dict(text=y_title),
        type="log" if log_y else "linear",
        showgrid=True,
        zeroline=False,
        **({"hoverformat": y_format} if y_format else {}),
    )
    if log_y:
        yaxis.update(_log_axis([t.y for t in traces if t.yaxis == "y"] + [[h.y for h in hlines]]))
    if not y2_title:
        return yaxis, None
    # Its own round ticks (not synced to the left axis's grid, which gives 12, 180, 347).
    return yaxis, dict(
        title=dict(text=y2_title),
        overlaying="y",
        side="right",
        showgrid=False,
        zeroline=False,
        rangemode="tozero",
        tickmode="auto",
        nticks=6,
    )


def line_figure(
    traces: list[Trace],
    *,
    x_title: str,
    y_title: str,
    title: str = "",
    uirevision: str = "",
    log_y: bool = False,
    hlines: list[HLine] | None = None,
    vlines: list[VLine] | None = None,
    y2_title: str = "",
    y_format: str = "",
    height: int = 320,
    legend_per_row: int = 3,
):
    """A plotly line chart of the traces with labelled axes and reference lines. A log y axis
    gets its range from the data on it (never stretched to a far reference line) and short
    tick labels; y2_title adds a right-hand axis for the traces with yaxis 'y2'. The legend
    sits under the x axis title, clear of the chart title however many runs it lists, and the
    figure grows by its rows (about legend_per_row entries each). uirevision keeps the
    user's zoom and legend choices while the data under them is refreshed. Built without
    plotly's per-property validation (our inputs are known-good), the slow part of building
    a figure with thousands of points."""
    import plotly.graph_objects as go

    hlines, vlines = hlines or [], vlines or []
    shapes, annotations = _reference_lines(hlines, vlines, log_y)
    yaxis, yaxis2 = _y_axes(
        traces, hlines, y_title=y_title, y2_title=y2_title, y_format=y_format, log_y=log_y
    )
    entries = sum(t.style != "raw" for t in traces)
    layout = dict(
        title=dict(text=title, x=0, xanchor="left", font=dict(size=15)) if title else None,
        uirevision=uirevision or None,
        hovermode="x unified",
        **_legend_layout(entries, legend_per_row, height, bool(title)),
        xaxis=dict(title=dict(text=x_title), showgrid=True, zeroline=False, exponentformat="SI"),
        yaxis=yaxis,
        yaxis2=yaxis2,
        shapes=shapes,
        annotations=annotations,
        # No Python-side template: Streamlit's theme styles the chart in the browser, and
        # plotly's default template is a large dict copied and serialised with every figure.
        template={},
    )
    return go.Figure(
        data=[_trace_dict(t) for t in traces],
        layout={k: v for k, v in layout.items() if v is not None},
        _validate=False,
    )


def _legend_layout(entries: int, per_row: int, height: int, titled: bool) -> dict:
    """Height, margins and legend: the legend sits at the bottom of the figure, in a margin of
    its own under the x axis title (above the plot, a legend of several runs wrapped into the
    title), and the figure grows by its rows. A legend of one line says nothing the title
    doesn't: it is hidden."""
    # An estimate of the legend's rows: one too many only leaves a gap.
    legend_px = LEGEND_ROW_PX * -(-entries // per_row) if entries > 1 else 0
    return dict(
        height=height + legend_px,
        margin=dict(
            l=10, r=10, t=40 if titled else 10, b=AXIS_TITLE_PX + legend_px if legend_px else 10
        ),
        legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", xanchor="left", x=0),
        showlegend=entries > 1,
    )


def empty_note(figure_text: str, *, height: int = 320):
    """A blank figure that says why there is nothing to draw (no points yet)."""
    import plotly.graph_objects as go

    return go.Figure(
        layout=dict(
            height=height,
            template={},
            margin=dict(l=10, r=10, t=10, b=10),
            xaxis=dict(visible=False),
            yaxis=dict(visible=False),
            annotations=[
                dict(
                    text=figure_text,
                    showarrow=False,
                    xref="paper",
                    yref="paper",
                    x=0.5,
                    y=0.5,
                    font=dict(size=14, color="#7f7f7f"),
                )
            ],
        ),
        _validate=False,
    )
