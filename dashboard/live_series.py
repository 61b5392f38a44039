"""A run's metrics as column arrays for the Live page (no Streamlit): read incrementally,
smoothed and downsampled as points arrive, and what the page derives from them (ETA,
overfitting, the sample timeline, the log's tail).

A RunSeries keeps a core.store.metrics.MetricsReader (a byte offset into metrics.jsonl), so each
refresh parses only the lines appended since the last one, through the metrics owner's columnar
reader (pyarrow in bulk for a long file, line by line for small appends). Its columns are the
numeric fields of each kind in core.store.metrics.KINDS: a field added there is here too.
Smoothed series and downsampling buckets are extended, not recomputed, as points arrive.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.store import metrics
from core.store.rundir import RunDir
from dashboard.charts import MAX_BUCKETS, Downsampler, EmaState, ema_debiased

X_AXES = {"step": "step", "tokens": "tokens seen", "time": "training time"}
SAMPLE_FIELDS = ("prompt", "text")


def series_fields() -> dict[str, tuple[str, ...]]:
    """What a RunSeries reads: every numeric and flag field of each kind (KINDS, read now, so a
    field added there reaches the charts), and the text of samples."""
    want = {kind: metrics.series_fields(kind) for kind in metrics.KINDS if kind != "sample"}
    return {**want, "sample": SAMPLE_FIELDS}


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


class RunSeries:
    """Every metric of one run as column arrays, one table per record kind (see series_fields),
    brought up to date by refresh()."""

    def __init__(self, run: RunDir):
        self.run = run
        self.reader = metrics.MetricsReader(run.metrics_path)
        self._reset()

    def _reset(self) -> None:
        self.fields = series_fields()
        self.tables = {
            kind: Columns(("step", "time", *names))
            for kind, names in self.fields.items()
            if kind != "sample"
        }
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
        tables = metrics.read_columns(chunk, self.fields)
        sample = tables.pop("sample")
        for kind, rows in tables.items():
            if len(rows["step"]):
                self._append(kind, rows)
        self.samples += [
            dict(step=int(step), text=text, prompt=prompt)
            for step, text, prompt in zip(sample["step"], sample["text"], sample["prompt"])
        ]
        return sum(len(rows["step"]) for rows in tables.values()) + len(sample["step"])

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
