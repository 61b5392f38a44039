"""The Live page's figures (no Streamlit): loss with val loss, copy rate, best-val star and
target line; learning rate, gradient norm, throughput, step time; process resources. Built from
dashboard.live_series's RunSeries with dashboard.charts's plotly helpers.
"""

from __future__ import annotations

import numpy as np

from core.store.metrics import RunSummary
from dashboard.charts import MAX_BUCKETS, HLine, Trace, VLine, empty_note, line_figure
from dashboard.live_series import X_AXES, RunSeries

OVERLAYS = {
    "val": "val loss",
    "copy": "copied %",
    "best": "best val",
    "resumes": "stop/resume",
    "baselines": "baselines",
    "forecast": "forecast",
    "epochs": "epochs",
    "spikes": "spikes",
}
NEAR_TARGET = 4.0  # the target line is drawn once the lowest loss is within this factor of it
SIDE_CHARTS = (  # column, title, y axis title, hover format, smoothed
    ("lr", "Learning rate", "learning rate", ".3e", False),
    ("grad_norm", "Gradient norm", "gradient norm (L2, before clipping)", ".3f", True),
    ("tokens_per_sec", "Throughput", "throughput (tokens/s)", ",.0f", True),
    ("dt_ms", "Step time", "step time (ms)", ",.1f", True),
)
# Process resources from `system` records: (title, [(column, name, axis)], left title, right title)
SYSTEM_CHARTS = {
    "system": (
        "CPU and memory",
        [("cpu_percent", "CPU %", "y"), ("rss_mb", "memory", "y2")],
        "CPU (% of one core)",
        "resident memory (MiB)",
    ),
    "gpu": (
        "GPU",
        [("gpu_mem_mb", "GPU memory", "y"), ("gpu_util", "GPU util %", "y2")],
        "GPU memory allocated (MiB)",
        "GPU utilisation (%)",
    ),
}


# --- traces and figures ------------------------------------------------------------------------
def train_traces(
    series: RunSeries,
    column: str,
    *,
    axis: str,
    weight: float,
    color: str,
    label: str,
    x_scale: float = 1.0,
    smooth: bool = True,
    max_buckets: int = MAX_BUCKETS,
) -> list[Trace]:
    """The traces of one train column of one run: the smoothed curve over a faint raw one
    (just the raw curve when weight is 0 or smooth is False), each min/max-downsampled."""
    y = series.train[column]
    if not y.size:
        return []
    x = series.x_values(axis) / x_scale
    uid = f"{series.run.run_id}:{column}"
    idx = series.draw_indices((column, "raw"), y, max_buckets=max_buckets)
    if not smooth or weight <= 0:
        return [Trace(x[idx], y[idx], label, color, "line", uid=uid, group=label)]
    ys = series.smoothed(column, weight)
    sidx = series.draw_indices((column, "smooth"), ys, version=weight, max_buckets=max_buckets)
    return [
        Trace(x[idx], y[idx], f"{label} (raw)", color, "raw", uid=uid + ":raw", group=label),
        Trace(x[sidx], ys[sidx], label, color, "smooth", uid=uid, group=label),
    ]


def eval_trace(
    series: RunSeries, *, axis: str, color: str, label: str, x_scale: float = 1.0
) -> list[Trace]:
    """The validation loss points of one run (few: every one is drawn)."""
    if not len(series.eval):
        return []
    return [
        Trace(
            series.x_values(axis, "eval") / x_scale,
            series.eval["val_loss"],
            label,
            color,
            "markers",
            uid=f"{series.run.run_id}:val_loss",
            group=label,
        )
    ]


def copy_trace(
    series: RunSeries, *, axis: str, color: str, label: str, x_scale: float = 1.0
) -> list[Trace]:
    """The eval copy rate of one run in percent, on the right-hand axis (none before the
    engine measured it)."""
    rate = series.eval["copy_rate"]
    keep = np.isfinite(rate)
    if not keep.any():
        return []
    x = series.x_values(axis, "eval")[keep] / x_scale
    return [
        Trace(
            x,
            rate[keep] * 100,
            label,
            color,
            "copy",
            uid=f"{series.run.run_id}:copy",
            group=label,
            hover="%{y:.1f}%",
            yaxis="y2",
        )
    ]


def best_trace(
    series: RunSeries,
    summary: RunSummary | None,
    *,
    axis: str,
    color: str,
    prefix: str,
    x_scale: float = 1.0,
) -> list[Trace]:
    """A star on the best val loss, named 'best val at step X' (from the run's summary)."""
    if summary is None or summary.best_val_step is None:
        return []
    step = summary.best_val_step
    x = series.x_at([step], axis) / x_scale
    return [
        Trace(
            x,
            np.array([summary.best_val_loss]),
            f"{prefix}best val at step {step:,}",
            color,
            "best",
            uid=f"{series.run.run_id}:best",
            hover=f"best val loss %{{y:.4f}} at step {step:,}",
        )
    ]


def resume_lines(
    all_series: list[RunSeries], *, axis: str, x_scale: float, color_of, labels: bool
) -> list[VLine]:
    """A dotted vertical line where each run was resumed after a stop (labelled or bare); runs
    resumed at the same x share one line and one label."""
    one = len(all_series) == 1
    at: dict[float, list[tuple[str, int]]] = {}
    for s in all_series:
        steps = s.resume_steps()
        for step, x in zip(steps, s.x_at(steps, axis) / x_scale):
            if np.isfinite(x):
                at.setdefault(float(x), []).append((s.run.run_id, int(step)))
    lines = []
    for x, runs in at.items():
        steps = ", ".join(dict.fromkeys(f"{step:,}" for _, step in runs))
        names = "" if one else ", ".join(rid for rid, _ in runs) + " "
        color = "#7f7f7f" if one or len(runs) > 1 else color_of(runs[0][0])
        lines.append(VLine(x, f"{names}resumed at {steps}" if labels else "", color))
    return lines


def _x_axis(all_series: list[RunSeries], axis: str) -> tuple[float, str]:
    """(seconds per unit or 1, title) of the x axis."""
    if axis != "time":
        return 1.0, X_AXES.get(axis, axis)
    span = max((float(np.nanmax(s.train_time())) for s in all_series if len(s.train)), default=0.0)
    unit, x_scale = elapsed_unit(span)
    return x_scale, f"training time ({unit})"


def _loss_traces(s: RunSeries, *, one, axis, weight, color_of, summaries, show, x_scale):
    """One run's traces on the loss chart: train loss, and the overlays in show."""
    rid, color = s.run.run_id, color_of(s.run.run_id)
    prefix = "" if one else f"{rid} "
    where = dict(axis=axis, color=color, x_scale=x_scale)
    traces = train_traces(s, "loss", weight=weight, label=f"{prefix}train", **where)
    if "val" in show:
        traces += eval_trace(s, label=f"{prefix}val", **where)
    if "best" in show:
        traces += best_trace(s, summaries.get(rid), prefix=prefix, **where)
    if "copy" in show:
        traces += copy_trace(s, label=f"{prefix}copied %", **where)
    return traces


def _target_lines(all_series, targets: dict) -> tuple[list[HLine], set]:
    """A line at each run's target loss once its lowest loss is within NEAR_TARGET of it, and
    the targets still too far below (drawn now, they would squash the curve)."""
    hlines, far = [], set()
    for s in all_series:
        target = targets.get(s.run.run_id, 0.0)
        lowest = np.nanmin(np.concatenate([s.train["loss"], s.eval["val_loss"], [np.inf]]))
        if target and lowest > NEAR_TARGET * target:
            far.add(target)
        elif target and all(h.y != target for h in hlines):
            hlines.append(HLine(target, f"target loss {target:g}"))
    return hlines, far


def _loss_figure(
    all_series, *, axis, weight, log_y, color_of, targets, summaries, show, x_scale, x_title
):
    one = len(all_series) == 1
    traces = []
    for s in all_series:
        traces += _loss_traces(
            s,
            one=one,
            axis=axis,
            weight=weight,
            color_of=color_of,
            summaries=summaries,
            show=show,
            x_scale=x_scale,
        )
    if not traces:
        return empty_note("No training steps logged yet", height=400)
    hlines, far_targets = _target_lines(all_series, targets)
    title = "Loss" + (
        f" (target {', '.join(f'{t:g}' for t in sorted(far_targets))}: drawn "
        "once the loss nears it)"
        if far_targets
        else ""
    )
    vlines = (
        resume_lines(all_series, axis=axis, x_scale=x_scale, color_of=color_of, labels=True)
        if "resumes" in show
        else []
    )
    copies = any(t.style == "copy" for t in traces)
    return line_figure(
        traces,
        title=title,
        x_title=x_title,
        y_title="loss (cross-entropy, nats/token)",
        log_y=log_y,
        hlines=hlines,
        vlines=vlines,
        y2_title="copied from training text (%)" if copies else "",
        y_format=".4f",
        height=400,
        legend_per_row=5,
        uirevision=f"loss:{axis}:{log_y}",
    )


def _system_figure(all_series, name, *, axis, color_of, x_scale, x_title, vlines):
    """CPU and memory, or GPU memory and utilisation, of each run from its system records;
    None for the GPU chart when no run has GPU figures."""
    title, columns, left, right = SYSTEM_CHARTS[name]
    one = len(all_series) == 1
    traces = []
    for s in all_series:
        rid = s.run.run_id
        x = s.x_values(axis, "system") / x_scale
        for column, label, yaxis in columns:
            y = s.system[column]
            keep = np.flatnonzero(np.isfinite(y))
            if keep.size:
                idx = keep[
                    s.draw_indices(("system", column), y[keep], max_buckets=MAX_BUCKETS // 2)
                ]
                traces.append(
                    Trace(
                        x[idx],
                        y[idx],
                        label if one else f"{rid} {label}",
                        color_of(rid),
                        "line" if yaxis == "y" else "dash",
                        uid=f"{rid}:{column}",
                        yaxis=yaxis,
                    )
                )
    if not traces:
        return (
            None
            if name == "gpu"
            else empty_note("No system records yet: the engine writes one at most once a second")
        )
    return line_figure(
        traces,
        title=title,
        x_title=x_title,
        y_title=left,
        y2_title=right,
        vlines=vlines,
        y_format=",.1f",
        uirevision=f"{name}:{axis}",
    )


def build_figures(
    all_series: list[RunSeries],
    *,
    axis: str,
    weight: float,
    log_y: bool,
    color_of,
    targets: dict[str, float],
    clips: dict[str, float],
    summaries: dict[str, RunSummary] | None = None,
    show: set[str] | None = None,
) -> dict:
    """The live page's figures for the runs, keyed 'loss', 'lr', 'grad_norm',
    'tokens_per_sec', 'system', 'dt_ms' and, when a run has GPU figures, 'gpu': loss with val
    loss, copy rate, best-val star and target line, then the side charts. color_of(run_id)
    gives each run's colour; targets and clips map run ids to their target loss and clip
    threshold (0 = none); summaries their RunSummary (for the best val step); show the
    OVERLAYS to draw (all by default). Resume points are dotted lines on every chart. Every
    uirevision is stable per chart and x axis, so zoom survives refreshes."""
    show = set(OVERLAYS) if show is None else set(show)
    x_scale, x_title = _x_axis(all_series, axis)
    figures = {
        "loss": _loss_figure(
            all_series,
            axis=axis,
            weight=weight,
            log_y=log_y,
            color_of=color_of,
            targets=targets,
            summaries=summaries or {},
            show=show,
            x_scale=x_scale,
            x_title=x_title,
        )
    }
    vlines = (
        resume_lines(all_series, axis=axis, x_scale=x_scale, color_of=color_of, labels=False)
        if "resumes" in show
        else []
    )
    where = dict(axis=axis, color_of=color_of, x_scale=x_scale, x_title=x_title, vlines=vlines)
    for chart in SIDE_CHARTS:
        figures[chart[0]] = _side_figure(all_series, chart, weight=weight, clips=clips, **where)
        if chart[0] == "tokens_per_sec":  # process resources beside throughput
            figures["system"] = _system_figure(all_series, "system", **where)
    gpu = _system_figure(all_series, "gpu", **where)
    if gpu is not None:
        figures["gpu"] = gpu
    return figures


def _side_figure(
    all_series, chart: tuple, *, axis, weight, color_of, clips, x_scale, x_title, vlines
):
    """One half-width chart of SIDE_CHARTS for every run, with the clip threshold on the
    gradient norm."""
    column, title, y_title, fmt, smooth = chart
    traces, hlines = [], []
    for s in all_series:
        rid = s.run.run_id
        traces += train_traces(
            s,
            column,
            axis=axis,
            weight=weight,
            smooth=smooth,
            color=color_of(rid),
            x_scale=x_scale,
            label=title.lower() if len(all_series) == 1 else rid,
            max_buckets=MAX_BUCKETS // 2,
        )
        clip = clips.get(rid, 0.0)
        if column == "grad_norm" and clip and all(h.y != clip for h in hlines):
            hlines.append(HLine(clip, f"clip threshold {clip:g}"))
    if not traces:
        return empty_note(f"No {title.lower()} points yet")
    return line_figure(
        traces,
        title=title,
        x_title=x_title,
        y_title=y_title,
        hlines=hlines,
        vlines=vlines,
        y_format=fmt,
        uirevision=f"{column}:{axis}",
    )


def elapsed_unit(seconds: float) -> tuple[str, float]:
    """A readable unit for an elapsed-time axis spanning `seconds`: (name, seconds per unit)."""
    if not np.isfinite(seconds) or seconds < 600:
        return "s", 1.0
    if seconds < 36_000:
        return "min", 60.0
    return "h", 3600.0
