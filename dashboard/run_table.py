"""The Runs page's logic without Streamlit: summary rows, differing hyperparameters, CSV, curves.

Summaries come from core.metrics' shared cache, which reads only what was appended since the
last refresh.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from core.config import ConfigError, TrainConfig
from core.estimate import param_count
from core.launcher import RunInfo
from core import metrics
from core.metrics import RunSummary
from core.rundir import RunDir


def summary_row(info: RunInfo, summary: RunSummary, config: TrainConfig | None) -> dict:
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
        "best val step": summary.best_val_step,
        "tokens seen": summary.tokens_seen,
        "training time": format_duration(summary.train_time_s if summary.last_step else None),
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
    if status.get("error") and info.state in ("failed", "crashed", "damaged"):
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
        rows.append(summary_row(info, metrics.cached_summary(info.run.metrics_path), config))
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
    """Every metrics record of the run as CSV (the one export; a `kind` column tells them apart)."""
    return metrics.to_csv(metrics.read_all(run.metrics_path))


def loss_curves(run: RunDir, max_points: int = 2000) -> dict[str, tuple[list, list]]:
    """{'loss': (steps, values), 'val_loss': (steps, values)}, the train curve thinned to about
    max_points by an even stride (the last point always kept) so long runs plot fast."""
    train_x, train_y, val_x, val_y = [], [], [], []
    for r in metrics.read_all(run.metrics_path):
        if r["kind"] == "train" and "loss" in r:
            train_x.append(r["step"])
            train_y.append(r["loss"])
        elif r["kind"] == "eval" and "val_loss" in r:
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
