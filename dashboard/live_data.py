"""Incremental loading of a run's metrics into column arrays for the live page (no Streamlit),
the figures built from them, and what the page derives from them (ETA, overfitting, the
sample timeline).

A RunSeries keeps a core.store.metrics.MetricsReader (a byte offset into metrics.jsonl), so each
refresh parses only the lines appended since the last one. The first load of a long run parses
its bulk with pyarrow's JSON reader (a few times faster than json.loads per line, and already
installed with Streamlit); small appends go through MetricsReader line by line. Smoothed series
and downsampling buckets are extended, not recomputed, as points arrive.
"""

from __future__ import annotations

import io
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.store.metrics import MetricsReader, RunSummary, parse_records
from core.store.rundir import RunDir
from dashboard.charts import (
    MAX_BUCKETS,
    Downsampler,
    EmaState,
    HLine,
    Trace,
    VLine,
    ema_debiased,
    empty_note,
    line_figure,
)

# The columns kept per record kind (core.store.metrics.KINDS names the fields).
TABLES = {
    "train": (
        "step",
        "time",
        "loss",
        "lr",
        "grad_norm",
        "dt_ms",
        "tokens_per_sec",
        "tokens_seen",
        "mfu",
        "peak_mem_mb",
        "train_time_s",
    ),
    "eval": ("step", "time", "val_loss", "copy_rate", "longest_copy"),
    "system": ("step", "time", "cpu_percent", "rss_mb", "gpu_mem_mb", "gpu_util"),
    "start": ("step", "time", "resumed"),
}
TRAIN_COLUMNS = TABLES["train"]
BULK_BYTES = 1 << 20  # above this much new data, parse with pyarrow in one go
X_AXES = {"step": "step", "tokens": "tokens seen", "time": "training time"}
OVERLAYS = {"val": "val loss", "copy": "copied %", "best": "best val", "resumes": "stop/resume"}
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


class Columns:
    """Float64 columns that grow by amortised doubling, so appends cost only their own size."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.n = 0
        self._data = {name: np.empty(0) for name in names}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[name][: self.n]

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Append equal-length arrays per column (a missing column appends NaN)."""
        k = len(next(iter(rows.values()))) if rows else 0
        if not k:
            return
        if self.n + k > self._data[self.names[0]].size:
            cap = max(1024, 2 * (self.n + k))
            for name in self.names:
                grown = np.full(cap, np.nan)
                grown[: self.n] = self._data[name][: self.n]
                self._data[name] = grown
        for name in self.names:
            values = rows.get(name)
            self._data[name][self.n : self.n + k] = np.nan if values is None else values
        self.n += k

    def truncate(self, n: int) -> None:
        self.n = min(self.n, n)


def _f(value) -> float:
    """A JSON value as a float column entry (None and non-numbers become NaN, a flag 0 or 1)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _split_records(records: list[dict]) -> tuple[dict[str, dict], list[dict]]:
    """Clean records (core.store.metrics) -> ({kind: {column: array}}, samples)."""
    tables = {}
    for kind, names in TABLES.items():
        rows = [r for r in records if r["kind"] == kind]
        if rows:
            tables[kind] = {c: np.array([_f(r.get(c)) for r in rows]) for c in names}
    samples = [
        dict(step=r["step"], text=str(r.get("text", "")), prompt=str(r.get("prompt", "")))
        for r in records
        if r["kind"] == "sample"
    ]
    return tables, samples


def _parse_bulk(data: bytes) -> tuple[dict[str, dict], list[dict]] | None:
    """Parse many complete JSON lines at once with pyarrow; None when pyarrow is missing or a
    line is malformed or mistyped (a line torn by a crash), so the caller falls back to the
    line-by-line path, which drops just that line."""
    try:
        import pyarrow as pa
        import pyarrow.json as pj
    except ImportError:
        return None
    numeric = sorted({c for names in TABLES.values() for c in names} - {"resumed"})
    schema = pa.schema(
        [(c, pa.float64()) for c in numeric]
        + [("resumed", pa.bool_())]
        + [("kind", pa.string()), ("text", pa.string()), ("prompt", pa.string())]
    )
    try:
        table = pj.read_json(
            io.BytesIO(data),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    # One numpy mask per kind (cheaper than an arrow filter per kind); as metrics.clean does,
    # a record without a step is dropped.
    kinds = table.column("kind").to_numpy(zero_copy_only=False)
    valid = ~np.isnan(table.column("step").to_numpy())
    columns: dict[str, np.ndarray] = {}

    def column(name: str) -> np.ndarray:
        if name not in columns:
            columns[name] = table.column(name).cast(pa.float64()).to_numpy()
        return columns[name]

    tables = {}
    for kind, names in TABLES.items():
        mask = valid & (kinds == kind)
        if mask.any():
            tables[kind] = {c: column(c)[mask] for c in names}
    rows = np.flatnonzero(valid & (kinds == "sample"))
    samples = [
        dict(step=int(step), text=text or "", prompt=prompt or "")
        for step, text, prompt in zip(
            column("step")[rows],
            table.column("text").take(rows).to_pylist(),
            table.column("prompt").take(rows).to_pylist(),
        )
    ]
    return tables, samples


class RunSeries:
    """Every metric of one run as column arrays, one table per record kind (TABLES), brought up
    to date by refresh()."""

    def __init__(self, run: RunDir):
        self.run = run
        self.reader = MetricsReader(run.metrics_path)
        self._reset()

    def _reset(self) -> None:
        self.tables = {kind: Columns(names) for kind, names in TABLES.items()}
        self.samples: list[dict] = []
        self._ema: dict[str, tuple[float, EmaState, Columns]] = {}
        self._down: dict[tuple, tuple[float, Downsampler]] = {}

    @property
    def train(self) -> Columns:
        return self.tables["train"]

    @property
    def eval(self) -> Columns:
        return self.tables["eval"]

    @property
    def system(self) -> Columns:
        return self.tables["system"]

    def refresh(self) -> int:
        """Read what was appended to metrics.jsonl since the last call; returns the number of
        new records. A replaced file (a resume rewrites it) is read again from the start."""
        chunk, restarted = self.reader.read_new_bytes()
        if restarted:
            self._reset()
        parsed = _parse_bulk(chunk) if len(chunk) > BULK_BYTES else None
        tables, samples = parsed or _split_records(parse_records(chunk))
        for kind, rows in tables.items():
            self._append(kind, rows)
        self.samples.extend(samples)
        return sum(len(rows["step"]) for rows in tables.values()) + len(samples)

    def _append(self, kind: str, rows: dict) -> None:
        cols = self.tables[kind]
        first, steps = rows["step"][0], cols["step"]
        # Steps went back (records re-read after a resume): drop the superseded points. Two
        # start records may share a step (stopped again before a step was trained).
        if len(steps) and (first < steps[-1] or (first == steps[-1] and kind != "start")):
            cols.truncate(int(np.searchsorted(steps, first, side="left")))
            self._ema.clear()
            self._down.clear()
        cols.append(rows)

    # --- derived series --------------------------------------------------------------------
    def smoothed(self, name: str, weight: float) -> np.ndarray:
        """The debiased EMA of a train column, extended incrementally as points arrive."""
        raw = self.train[name]
        cached = self._ema.get(name)
        if cached is None or cached[0] != weight or len(cached[2]) > raw.size:
            cached = (weight, EmaState(), Columns(("y",)))
            self._ema[name] = cached
        _, state, out = cached
        if len(out) < raw.size:
            out.append({"y": ema_debiased(raw[len(out) :], weight, state)})
        return out["y"]

    def draw_indices(
        self, key: tuple, y: np.ndarray, version: float = 0.0, max_buckets: int = MAX_BUCKETS
    ) -> np.ndarray:
        """Indices of y's points to draw (min/max buckets), with finished buckets cached under
        key; `version` (e.g. the smoothing weight) starts the cache over when it changes."""
        cached = self._down.get(key)
        if cached is None or cached[0] != version:
            cached = (version, Downsampler(max_buckets))
            self._down[key] = cached
        return cached[1].indices(y)

    def train_time(self) -> np.ndarray:
        """Training time at each train point in seconds, summed over every segment of the run
        (the records' train_time_s; summed step times for runs written before it existed)."""
        recorded = self.train["train_time_s"]
        if np.isfinite(recorded).all():
            return recorded
        return np.nancumsum(self.train["dt_ms"]) / 1000

    def resume_steps(self) -> np.ndarray:
        """The steps at which a process resumed the run (where a stop/resume split its time)."""
        starts = self.tables["start"]
        return starts["step"][starts["resumed"] == 1]

    def x_at(self, steps: np.ndarray, axis: str) -> np.ndarray:
        """x coordinates of arbitrary steps on an axis of X_AXES: the step itself, or the
        tokens seen / training time read off the train steps around it."""
        steps = np.asarray(steps, dtype=np.float64)
        if axis == "step":
            return steps
        if axis not in X_AXES:
            raise ValueError(f"unknown x axis {axis!r}: choose one of {', '.join(X_AXES)}")
        if not len(self.train):
            return np.full(steps.size, np.nan)
        base = self.train["tokens_seen"] if axis == "tokens" else self.train_time()
        return np.interp(steps, self.train["step"], base)

    def x_values(self, axis: str, table: str = "train") -> np.ndarray:
        """The x coordinates of a table's points (see X_AXES and x_at)."""
        if table == "train" and axis == "tokens":
            return self.train["tokens_seen"]
        if table == "train" and axis == "time":
            return self.train_time()
        return self.x_at(self.tables[table]["step"], axis)


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


def _loss_figure(
    all_series, *, axis, weight, log_y, color_of, targets, summaries, show, x_scale, x_title
):
    one = len(all_series) == 1
    traces, hlines, far_targets = [], [], set()
    for s in all_series:
        rid, color = s.run.run_id, color_of(s.run.run_id)
        prefix = "" if one else f"{rid} "
        traces += train_traces(
            s,
            "loss",
            axis=axis,
            weight=weight,
            color=color,
            x_scale=x_scale,
            label=f"{prefix}train",
        )
        if "val" in show:
            traces += eval_trace(s, axis=axis, color=color, x_scale=x_scale, label=f"{prefix}val")
        if "best" in show:
            traces += best_trace(
                s, summaries.get(rid), axis=axis, color=color, prefix=prefix, x_scale=x_scale
            )
        if "copy" in show:
            traces += copy_trace(
                s, axis=axis, color=color, x_scale=x_scale, label=f"{prefix}copied %"
            )
        target = targets.get(rid, 0.0)
        lowest = np.nanmin(np.concatenate([s.train["loss"], s.eval["val_loss"], [np.inf]]))
        if target and lowest > NEAR_TARGET * target:
            far_targets.add(target)  # drawn this far below the curve, it would squash the curve
        elif target and all(h.y != target for h in hlines):
            hlines.append(HLine(target, f"target loss {target:g}"))
    if not traces:
        return empty_note("No training steps logged yet", height=400)
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
    for column, title, y_title, fmt, smooth in SIDE_CHARTS:
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
            )  # half-width charts
            clip = clips.get(rid, 0.0)
            if column == "grad_norm" and clip and all(h.y != clip for h in hlines):
                hlines.append(HLine(clip, f"clip threshold {clip:g}"))
        figures[column] = (
            line_figure(
                traces,
                title=title,
                x_title=x_title,
                y_title=y_title,
                hlines=hlines,
                vlines=vlines,
                y_format=fmt,
                uirevision=f"{column}:{axis}",
            )
            if traces
            else empty_note(f"No {title.lower()} points yet")
        )
        if column == "tokens_per_sec":  # process resources beside throughput
            figures["system"] = _system_figure(
                all_series,
                "system",
                axis=axis,
                color_of=color_of,
                x_scale=x_scale,
                x_title=x_title,
                vlines=vlines,
            )
    gpu = _system_figure(
        all_series,
        "gpu",
        axis=axis,
        color_of=color_of,
        x_scale=x_scale,
        x_title=x_title,
        vlines=vlines,
    )
    if gpu is not None:
        figures["gpu"] = gpu
    return figures


# --- what the page derives ---------------------------------------------------------------------
def eta_seconds(
    steps, times, max_steps: int, since_step: int = 0, window: int = 100
) -> float | None:
    """Seconds left to max_steps at the wall-clock pace of the last `window` train records
    after since_step (the latest resume, so a stop's pause never counts); eval and checkpoint
    pauses are included, unlike in step times. None with fewer than two such records."""
    steps, times = np.asarray(steps, dtype=np.float64), np.asarray(times, dtype=np.float64)
    keep = (steps > since_step) & np.isfinite(times)
    s, t = steps[keep][-window:], times[keep][-window:]
    if s.size < 2 or s[-1] <= s[0]:
        return None
    return float((t[-1] - t[0]) / (s[-1] - s[0]) * max(max_steps - s[-1], 0))


def _mean_loss_up_to(train_steps, train_losses, after: float, upto: float) -> float:
    keep = (train_steps > after) & (train_steps <= upto) & np.isfinite(train_losses)
    return float(train_losses[keep].mean()) if keep.any() else float("nan")


def overfitting_since(
    eval_steps, val_losses, train_steps, train_losses, patience: int
) -> int | None:
    """The step of the best val loss once each of the `patience` (or more) evals after it
    scored worse while the training loss kept falling: the run learns its training text, not
    the language. None while that is not so. The training loss at an eval is the mean over the
    steps since the eval before, so one noisy step decides nothing."""
    ev_s, ev_v = np.asarray(eval_steps, dtype=np.float64), np.asarray(val_losses, dtype=np.float64)
    finite = np.isfinite(ev_v)
    ev_s, ev_v = ev_s[finite], ev_v[finite]
    if patience < 1 or ev_v.size < patience + 1:
        return None
    best = int(np.argmin(ev_v))
    if ev_v.size - 1 - best < patience or not np.all(ev_v[best + 1 :] > ev_v[best]):
        return None
    ts, tl = np.asarray(train_steps, dtype=np.float64), np.asarray(train_losses, dtype=np.float64)
    at_best = _mean_loss_up_to(ts, tl, ev_s[best - 1] if best else -np.inf, ev_s[best])
    now = _mean_loss_up_to(ts, tl, ev_s[-2], ev_s[-1])
    return int(ev_s[best]) if now < at_best else None


@dataclass(frozen=True)
class TimelineEntry:
    """One logged sample with the eval figures of its step (None where none were recorded)."""

    step: int
    prompt: str
    text: str
    val_loss: float | None
    copy_rate: float | None


def sample_timeline(series: RunSeries) -> list[TimelineEntry]:
    """The samples logged at each eval, latest step first, each with the val loss and copy rate
    measured at its step."""
    evals = {int(s): i for i, s in enumerate(series.eval["step"])}

    def figure(column: str, step: int) -> float | None:
        i = evals.get(step)
        value = series.eval[column][i] if i is not None else np.nan
        return float(value) if np.isfinite(value) else None

    return [
        TimelineEntry(
            s["step"],
            s["prompt"],
            s["text"],
            figure("val_loss", s["step"]),
            figure("copy_rate", s["step"]),
        )
        for s in sorted(series.samples, key=lambda s: s["step"], reverse=True)
    ]


def series_for(store: MutableMapping, run: RunDir) -> RunSeries:
    """The RunSeries of a run from a store (the page passes st.session_state's), created on
    first use and refreshed, so each call parses only what was appended since the last."""
    key = str(Path(run.path).resolve())
    series = store.get(key)
    if series is None:
        series = store[key] = RunSeries(run)
    series.refresh()
    return series


def elapsed_unit(seconds: float) -> tuple[str, float]:
    """A readable unit for an elapsed-time axis spanning `seconds`: (name, seconds per unit)."""
    if not np.isfinite(seconds) or seconds < 600:
        return "s", 1.0
    if seconds < 36_000:
        return "min", 60.0
    return "h", 3600.0


def tail_text(path: Path, max_lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """The last lines of a text file (the run's log), reading at most max_bytes from its end."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    # split("\n"), not splitlines(): a lone \r (a progress bar redrawing) is not a new line.
    lines = data.decode("utf-8", errors="replace").rstrip("\n").split("\n")
    if size > max_bytes:
        lines = lines[1:]  # the first line read is probably cut
    # Progress bars rewrite one line with \r: show only what the terminal would.
    return "\n".join(line.rsplit("\r", 1)[-1] for line in lines[-max_lines:])
