"""Incremental loading of a run's metrics into column arrays for the live page (no Streamlit).

A RunSeries keeps a core.metrics.MetricsReader (a byte offset into metrics.jsonl), so each
refresh parses only the lines appended since the last one. The first load of a long run parses
its bulk with pyarrow's JSON reader (a few times faster than json.loads per line, and already
installed with Streamlit); small appends go through MetricsReader line by line. Smoothed series
and downsampling buckets are extended, not recomputed, as points arrive.
"""

from __future__ import annotations

import io
import os
from collections.abc import MutableMapping
from pathlib import Path

import numpy as np

from core.metrics import MetricsReader, parse_records
from core.rundir import RunDir
from dashboard.charts import (MAX_BUCKETS, Downsampler, EmaState, HLine, Trace, ema_debiased,
                              empty_note, line_figure)

TRAIN_COLUMNS = ("step", "time", "loss", "lr", "grad_norm", "dt_ms", "tokens_per_sec",
                 "tokens_seen", "mfu", "peak_mem_mb")
EVAL_COLUMNS = ("step", "time", "val_loss")
BULK_BYTES = 1 << 20  # above this much new data, parse with pyarrow in one go
X_AXES = {"step": "step", "tokens": "tokens seen", "time": "wall time"}
SIDE_CHARTS = (  # column, title, y axis title, hover format, smoothed
    ("lr", "Learning rate", "learning rate", ".3e", False),
    ("grad_norm", "Gradient norm", "gradient norm (L2, before clipping)", ".3f", True),
    ("tokens_per_sec", "Throughput", "throughput (tokens/s)", ",.0f", True),
    ("dt_ms", "Step time", "step time (ms)", ",.1f", True),
)


class Columns:
    """Float64 columns that grow by amortised doubling, so appends cost only their own size."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.n = 0
        self._data = {name: np.empty(0) for name in names}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[name][:self.n]

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Append equal-length arrays per column (a missing column appends NaN)."""
        k = len(next(iter(rows.values()))) if rows else 0
        if not k:
            return
        if self.n + k > self._data[self.names[0]].size:
            cap = max(1024, 2 * (self.n + k))
            for name in self.names:
                grown = np.full(cap, np.nan)
                grown[:self.n] = self._data[name][:self.n]
                self._data[name] = grown
        for name in self.names:
            values = rows.get(name)
            self._data[name][self.n:self.n + k] = np.nan if values is None else values
        self.n += k

    def truncate(self, n: int) -> None:
        self.n = min(self.n, n)


def _f(value) -> float:
    """A JSON value as a float column entry (None and non-numbers become NaN)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _split_records(records: list[dict]) -> tuple[dict, dict, list[dict]]:
    """Records (dicts from MetricsReader) -> (train columns, eval columns, samples)."""
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    samples = [dict(step=int(_f(r.get("step")) or 0), text=str(r.get("text", "")),
                    prompt=str(r.get("prompt", ""))) for r in records if r["kind"] == "sample"]
    tcols = {c: np.array([_f(r.get(c)) for r in train]) for c in TRAIN_COLUMNS} if train else {}
    ecols = {c: np.array([_f(r.get(c)) for r in evals]) for c in EVAL_COLUMNS} if evals else {}
    return tcols, ecols, samples


def _parse_bulk(data: bytes) -> tuple[dict, dict, list[dict]] | None:
    """Parse many complete JSON lines at once with pyarrow; None when pyarrow is missing or a
    line is malformed (a line torn by a crash), so the caller falls back to line by line."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.json as pj
    except ImportError:
        return None
    numeric = sorted(set(TRAIN_COLUMNS) | set(EVAL_COLUMNS))
    schema = pa.schema([(c, pa.float64()) for c in numeric]
                       + [("kind", pa.string()), ("text", pa.string()), ("prompt", pa.string())])
    try:
        table = pj.read_json(io.BytesIO(data), parse_options=pj.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    if table.column("kind").null_count:
        return None  # records without a kind: let the line-by-line path infer theirs

    def columns(kind: str, names: tuple[str, ...]) -> dict:
        sub = table.filter(pc.equal(table.column("kind"), kind))
        if not sub.num_rows:
            return {}
        return {c: sub.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in names}

    sub = table.filter(pc.equal(table.column("kind"), "sample")).select(["step", "text", "prompt"])
    samples = [dict(step=int(r["step"] or 0), text=r["text"] or "", prompt=r["prompt"] or "")
               for r in sub.to_pylist()]
    return columns("train", TRAIN_COLUMNS), columns("eval", EVAL_COLUMNS), samples


class RunSeries:
    """Every metric of one run as column arrays, brought up to date by refresh()."""

    def __init__(self, run: RunDir):
        self.run = run
        self.reader = MetricsReader(run.metrics_path)
        self.train = Columns(TRAIN_COLUMNS)
        self.eval = Columns(EVAL_COLUMNS)
        self.samples: list[dict] = []
        self.parsed_lines = 0  # records parsed over this object's life (tests check increments)
        self._ema: dict[str, tuple[float, EmaState, Columns]] = {}
        self._down: dict[tuple, tuple[float, Downsampler]] = {}

    def _reset(self) -> None:
        self.train, self.eval, self.samples = Columns(TRAIN_COLUMNS), Columns(EVAL_COLUMNS), []
        self._ema.clear()
        self._down.clear()

    def refresh(self) -> int:
        """Read what was appended to metrics.jsonl since the last call; returns the number of
        new records. A replaced file (a resume rewrites it) is read again from the start."""
        chunk, restarted = self.reader.read_new_bytes()
        if restarted:
            self._reset()
        parsed = _parse_bulk(chunk) if len(chunk) > BULK_BYTES else None
        if parsed is None:
            parsed = _split_records(parse_records(chunk))
        tcols, ecols, samples = parsed
        self._append(self.train, tcols)
        self._append(self.eval, ecols)
        self.samples.extend(samples)
        count = len(next(iter(tcols.values()), [])) + len(next(iter(ecols.values()), [])) + len(samples)
        self.parsed_lines += count
        return count

    def _append(self, cols: Columns, rows: dict) -> None:
        if not rows:
            return
        first = rows["step"][0]
        steps = cols["step"]
        if len(steps) and first <= steps[-1]:
            # Steps went back (records re-read after a resume): drop the superseded points.
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
            out.append({"y": ema_debiased(raw[len(out):], weight, state)})
        return out["y"]

    def draw_indices(self, key: tuple, y: np.ndarray, version: float = 0.0,
                     max_buckets: int = MAX_BUCKETS) -> np.ndarray:
        """Indices of y's points to draw (min/max buckets), with finished buckets cached under
        key; `version` (e.g. the smoothing weight) starts the cache over when it changes."""
        cached = self._down.get(key)
        if cached is None or cached[0] != version:
            cached = (version, Downsampler(max_buckets))
            self._down[key] = cached
        return cached[1].indices(y)

    def start_time(self) -> float | None:
        """Wall-clock time the first step began (its end time minus its duration)."""
        if not len(self.train):
            return None
        t, dt = self.train["time"][0], self.train["dt_ms"][0]
        return float(t - (dt / 1000 if np.isfinite(dt) else 0.0))

    def x_values(self, axis: str, table: str = "train") -> np.ndarray:
        """The x coordinates of the train or eval points: step, tokens seen, or seconds since
        the run started (see X_AXES)."""
        cols = self.train if table == "train" else self.eval
        if axis == "step":
            return cols["step"]
        if axis == "tokens":
            if table == "train":
                return self.train["tokens_seen"]
            if len(self.train) == 0:
                return np.full(len(cols), np.nan)
            # Eval lines carry no token count: read it off the train steps around them.
            return np.interp(cols["step"], self.train["step"], self.train["tokens_seen"])
        if axis == "time":
            start = self.start_time()
            return cols["time"] - start if start is not None else np.full(len(cols), np.nan)
        raise ValueError(f"unknown x axis {axis!r}: choose one of {', '.join(X_AXES)}")

    def to_csv(self) -> bytes:
        """Every train point with its val loss where one was measured at that step, as CSV."""
        import pandas as pd

        train = pd.DataFrame({c: self.train[c] for c in TRAIN_COLUMNS})
        evals = pd.DataFrame({"step": self.eval["step"], "val_loss": self.eval["val_loss"]})
        table = train.merge(evals, on="step", how="outer").sort_values("step")
        table = table.dropna(axis=1, how="all")
        for c in ("step", "tokens_seen"):
            if c in table:
                table[c] = table[c].astype("Int64")
        return table.to_csv(index=False).encode()


def train_traces(series: RunSeries, column: str, *, axis: str, weight: float, color: str,
                 label: str, x_scale: float = 1.0, smooth: bool = True,
                 max_buckets: int = MAX_BUCKETS) -> list[Trace]:
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
    return [Trace(x[idx], y[idx], f"{label} (raw)", color, "raw", uid=uid + ":raw", group=label),
            Trace(x[sidx], ys[sidx], label, color, "smooth", uid=uid, group=label)]


def eval_trace(series: RunSeries, *, axis: str, color: str, label: str,
               x_scale: float = 1.0) -> list[Trace]:
    """The validation loss points of one run (few: every one is drawn)."""
    if not len(series.eval):
        return []
    return [Trace(series.x_values(axis, "eval") / x_scale, series.eval["val_loss"], label, color,
                  "markers", uid=f"{series.run.run_id}:val_loss", group=label)]


def build_figures(all_series: list[RunSeries], *, axis: str, weight: float, log_y: bool,
                  color_of, targets: dict[str, float], clips: dict[str, float]) -> dict:
    """The live page's figures for the runs, keyed 'loss', 'lr', 'grad_norm', 'tokens_per_sec',
    'dt_ms': loss with val loss and target lines, then the side charts. color_of(run_id) gives
    each run's colour; targets and clips map run ids to their target loss and clip threshold
    (0 = none). Every uirevision is stable per chart and x axis, so zoom survives refreshes."""
    x_scale, unit = 1.0, ""
    if axis == "time":
        span = max((float(np.nanmax(s.x_values("time"))) for s in all_series if len(s.train)),
                   default=0.0)
        unit, x_scale = elapsed_unit(span)
    x_title = {"step": "step", "tokens": "tokens seen",
               "time": f"wall time since start ({unit})"}[axis]
    one = len(all_series) == 1
    figures = {}

    traces, hlines, far_targets = [], [], set()
    for s in all_series:
        rid, color = s.run.run_id, color_of(s.run.run_id)
        traces += train_traces(s, "loss", axis=axis, weight=weight, color=color, x_scale=x_scale,
                               label="train" if one else f"{rid} train")
        traces += eval_trace(s, axis=axis, color=color, x_scale=x_scale,
                             label="val" if one else f"{rid} val")
        target = targets.get(rid, 0.0)
        lowest = float(np.nanmin(s.train["loss"])) if len(s.train) else np.inf
        if target and not log_y and lowest > 4 * target:
            # Drawn this far below the curve, the line would squash the curve flat.
            far_targets.add(target)
        elif target and all(h.y != target for h in hlines):
            hlines.append(HLine(target, f"target loss {target:g}"))
    title = "Loss" + (f" (target {', '.join(f'{t:g}' for t in sorted(far_targets))}: drawn "
                      "once the loss nears it, or on a log scale)" if far_targets else "")
    figures["loss"] = (line_figure(traces, title=title, x_title=x_title,
                                   y_title="loss (cross-entropy, nats/token)", log_y=log_y,
                                   hlines=hlines, y_format=".4f", height=380,
                                   uirevision=f"loss:{axis}:{log_y}")
                       if traces else empty_note("No training steps logged yet", height=380))

    for column, title, y_title, fmt, smooth in SIDE_CHARTS:
        traces, hlines = [], []
        for s in all_series:
            rid = s.run.run_id
            traces += train_traces(s, column, axis=axis, weight=weight, smooth=smooth,
                                   color=color_of(rid), x_scale=x_scale,
                                   label=title.lower() if one else rid,
                                   max_buckets=MAX_BUCKETS // 2)  # half-width charts
            clip = clips.get(rid, 0.0)
            if column == "grad_norm" and clip and all(h.y != clip for h in hlines):
                hlines.append(HLine(clip, f"clip threshold {clip:g}"))
        figures[column] = (line_figure(traces, title=title, x_title=x_title, y_title=y_title,
                                       hlines=hlines, y_format=fmt, uirevision=f"{column}:{axis}")
                           if traces else empty_note(f"No {title.lower()} points yet"))
    return figures


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
