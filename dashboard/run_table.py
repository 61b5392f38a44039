"""The Runs page's logic without Streamlit: summary rows, differing hyperparameters, CSV, curves.

Metrics are read incrementally (MetricsReader remembers the byte offset), so refreshing the
table of a long run reads only what was appended since the last refresh.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ConfigError, TrainConfig
from core.estimate import param_count
from core.launcher import RunInfo
from core.rundir import ACTIVE_STATES, MetricsReader, RunDir, parse_records


@dataclass
class MetricsSummary:
    """Running aggregates of one run's metrics.jsonl."""

    last_step: int = 0
    last_loss: float | None = None
    best_loss: float | None = None
    best_val_loss: float | None = None
    tokens_seen: int = 0
    tokens_per_sec: float | None = None

    def update(self, records: list[dict]) -> "MetricsSummary":
        """Fold new records into the aggregates (train and eval records; samples are skipped)."""
        for r in records:
            if "loss" in r and _finite(r["loss"]):
                self.last_step = max(self.last_step, int(r.get("step", 0)))
                self.last_loss = r["loss"]
                self.best_loss = r["loss"] if self.best_loss is None else min(self.best_loss, r["loss"])
                self.tokens_seen = int(r.get("tokens_seen", self.tokens_seen))
                self.tokens_per_sec = r.get("tokens_per_sec", self.tokens_per_sec)
            if "val_loss" in r and _finite(r["val_loss"]):
                v = r["val_loss"]
                self.best_val_loss = v if self.best_val_loss is None else min(self.best_val_loss, v)
        return self


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@dataclass
class _Cached:
    reader: MetricsReader
    summary: MetricsSummary = field(default_factory=MetricsSummary)


_cache: dict[str, _Cached] = {}


def metrics_summary(run: RunDir) -> MetricsSummary:
    """The run's summary, reading only the bytes appended since the last call in this process."""
    key = str(run.metrics_path)
    cached = _cache.setdefault(key, _Cached(MetricsReader(run.metrics_path)))
    chunk, restarted = cached.reader.read_new_bytes()
    if restarted:  # a resume rewrote the file: forget the old records
        cached.summary = MetricsSummary()
    cached.summary.update(parse_records(chunk))
    return cached.summary


def duration_s(status: dict, state: str, now: float | None = None) -> float | None:
    """Wall time of the latest start: to its end, to now while active, to the last heartbeat
    for a crashed run."""
    started = status.get("started")
    if not started:
        return None
    if status.get("ended"):
        end = status["ended"]
    elif state in ACTIVE_STATES:
        end = now or time.time()
    else:
        end = status.get("updated", started)
    return max(0.0, end - started)


def summary_row(info: RunInfo, summary: MetricsSummary, config: TrainConfig | None,
                now: float | None = None) -> dict:
    """One table row: what the Runs page shows for a run (a pure function of its inputs)."""
    status = info.status
    max_steps = status.get("max_steps") or (config.max_steps if config else None)
    step = max(int(status.get("step") or 0), summary.last_step)
    created = status.get("created")
    row = {
        "name": info.run_id,
        "state": info.state,
        "step": step,
        "max steps": max_steps,
        "progress": min(1.0, step / max_steps) if max_steps else 0.0,
        "last loss": summary.last_loss,
        "best loss": summary.best_loss,
        "best val loss": summary.best_val_loss,
        "tokens seen": summary.tokens_seen,
        "duration": format_duration(duration_s(status, info.state, now)),
        "world size": status.get("world_size") or (config.nproc if config else None),
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else "",
    }
    if config:
        row.update({
            "model": f"{config.n_layer}L x {config.n_embd}C x {config.n_head}H",
            "params (M)": round(param_count(config) / 1e6, 2),
            "max lr": config.max_lr,
            "tokens / step": config.tokens_per_step(row["world size"] or config.nproc),
            "seq len": config.seq_len,
            "data": Path(config.data).name if config.data != "tinyshakespeare" else "tinyshakespeare",
            "device": config.device,
        })
    if status.get("error") and info.state in ("failed", "crashed"):
        row["error"] = str(status["error"]).splitlines()[-1][:200]
    elif info.state == "crashed":
        row["error"] = "process gone without a final status (killed or the machine restarted)"
    return row


def format_duration(seconds: float | None) -> str:
    """`1h 02m`, `3m 05s`, `12s`; empty when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def table_rows(infos: list[RunInfo]) -> list[dict]:
    """Summary rows for the given runs, in their order."""
    rows = []
    for info in infos:
        try:
            config = info.run.read_config()
        except ConfigError:
            config = None
        rows.append(summary_row(info, metrics_summary(info.run), config))
    return rows


def differing_hyperparameters(configs: dict[str, TrainConfig]) -> dict[str, dict[str, object]]:
    """{field: {run id: value}} for the config fields whose values differ between the runs."""
    if not configs:
        return {}
    dicts = {rid: cfg.to_dict() for rid, cfg in configs.items()}
    names = next(iter(dicts.values())).keys()
    return {name: {rid: d[name] for rid, d in dicts.items()} for name in names
            if len({repr(d[name]) for d in dicts.values()}) > 1}


def metrics_csv(run: RunDir) -> str:
    """Every metrics record of the run as CSV (a `kind` column tells train/eval/sample apart)."""
    records = MetricsReader(run.metrics_path).read_new()
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or ["step"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def loss_curves(run: RunDir, max_points: int = 2000) -> dict[str, tuple[list, list]]:
    """{'loss': (steps, values), 'val_loss': (steps, values)}, the train curve thinned to about
    max_points by an even stride (the last point always kept) so long runs plot fast."""
    train_x, train_y, val_x, val_y = [], [], [], []
    for r in MetricsReader(run.metrics_path).read_new():
        if "loss" in r:
            train_x.append(r["step"])
            train_y.append(r["loss"])
        elif "val_loss" in r:
            val_x.append(r["step"])
            val_y.append(r["val_loss"])
    stride = max(1, math.ceil(len(train_x) / max_points))
    if stride > 1:
        keep = list(range(0, len(train_x), stride))
        if keep[-1] != len(train_x) - 1:
            keep.append(len(train_x) - 1)
        train_x = [train_x[i] for i in keep]
        train_y = [train_y[i] for i in keep]
    return {"loss": (train_x, train_y), "val_loss": (val_x, val_y)}
