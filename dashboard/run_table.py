"""The Runs page's logic without Streamlit: table rows, compare rows, differing
hyperparameters, the metrics CSV.

Summaries come from core.store.metrics' shared cache, which reads only what was appended since the
last refresh. Nothing here imports torch or plotly: the Runs page is the app's first screen.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.config import ConfigError, TrainConfig
from core.data.baselines import bits_per_char, cached_val_size
from core.data.dataset import DataError
from core.model.param_count import param_count
from core.runs.launcher import RunInfo
from core.store import metrics
from core.store.metrics import RunSummary
from core.store.rundir import RunDir
from core.units import format_duration

# What a run is and how far it got first, its hyperparameters after (the table scrolls sideways).
COLUMNS = (
    "name",
    "title",
    "state",
    "progress",
    "step",
    "max steps",
    "best loss",
    "last loss",
    "best val loss",
    "best val step",
    "best val bpc",
    "training time",
    "tokens seen",
    "model",
    "params (M)",
    "max lr",
    "tokens / step",
    "seq len",
    "data",
    "device",
    "world size",
    "created",
    "note",
    "error",
)
COMPARE_COLUMNS = (
    "run",
    "title",
    "state",
    "steps",
    "final loss",
    "best loss",
    "best val loss",
    "best val step",
    "best val bpc",
    "training time",
    "tokens seen",
)
NOTE_CELL = 80  # characters of a note shown in a table cell (the Runs page shows it whole)
HYPERPARAMETER_COLUMNS = (
    "model",
    "params (M)",
    "max lr",
    "tokens / step",
    "seq len",
    "data",
    "device",
    "world size",
)


def summary_row(
    info: RunInfo, summary: RunSummary, config: TrainConfig | None, notes: dict | None = None
) -> dict:
    """One table row: what the Runs page shows for a run (a pure function of its inputs), its
    keys in COLUMNS order (the hyperparameters only when the config could be read; the title
    only where it differs from the run id, the note's first line)."""
    status = info.status
    max_steps = status.get("max_steps") or (config.max_steps if config else None)
    step = max(int(status.get("step") or 0), summary.last_step)
    created = status.get("created")
    row = {
        "name": info.run_id,
        **note_cells(info.run_id, notes),
        "state": info.run.shown_state(info.state),  # "stopping" while it finishes
        "step": step,
        "max steps": max_steps,
        "progress": min(1.0, step / max_steps) if max_steps else 0.0,
        "last loss": summary.last_loss,
        "best loss": summary.best_loss,
        "best val loss": summary.best_val_loss,
        "best val step": summary.best_val_step,
        "best val bpc": val_bits_per_char(config, summary.best_val_loss),
        "tokens seen": summary.tokens_seen,
        "training time": format_duration(summary.train_time_s if summary.last_step else None),
        "world size": status.get("world_size") or (config.nproc if config else None),
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else "",
    }
    if config:
        row.update(
            {
                "model": f"{config.n_layer}L x {config.n_embd}C x {config.n_head}H",
                "params (M)": round(param_count(config) / 1e6, 2),
                "max lr": config.max_lr,
                "tokens / step": config.tokens_per_step(row["world size"] or config.nproc),
                "seq len": config.seq_len,
                "data": Path(config.data).name
                if config.data != "tinyshakespeare"
                else "tinyshakespeare",
                "device": config.device,
            }
        )
    if status.get("error") and info.state in ("failed", "crashed", "damaged"):
        row["error"] = str(status["error"]).splitlines()[-1][:200]
    elif info.state == "crashed":
        row["error"] = "process gone without a final status (killed or the machine restarted)"
    return {name: row[name] for name in COLUMNS if name in row}


def val_bits_per_char(config: TrainConfig | None, loss: float | None) -> float | None:
    """A val loss as bits per character of the run's val split (None when the loss, the config
    or the data is missing): comparable across tokenizers."""
    if config is None or loss is None:
        return None
    try:
        tokens, chars = cached_val_size(config.data, config.val_fraction)
    except (DataError, OSError):
        return None
    return bits_per_char(loss, tokens, chars)


def _config(info: RunInfo) -> TrainConfig | None:
    try:
        return info.run.read_config()
    except ConfigError:
        return None


def note_cells(run_id: str, notes: dict | None) -> dict:
    """The title (empty where it is the run id, the default) and the note's first line, cut
    at NOTE_CELL characters, as table cells."""
    notes = notes or {}
    title = notes.get("title") or ""
    lines = (notes.get("note") or "").strip().splitlines()
    note = lines[0] if lines else ""
    if len(note) > NOTE_CELL or len(lines) > 1:
        note = note[:NOTE_CELL].rstrip() + " …"
    return {"title": "" if title == run_id else title, "note": note}


def table_rows(infos: list[RunInfo], with_metrics: bool = True) -> list[dict]:
    """Summary rows for the given runs, in their order; without metrics (no metrics.jsonl is
    read: losses and tokens stay empty) they cost only the small status and config files."""
    rows = []
    for info in infos:
        config = _config(info)
        summary = metrics.cached_summary(info.run.metrics_path) if with_metrics else RunSummary()
        rows.append(summary_row(info, summary, config, info.run.read_notes()))
    return rows


def compare_rows(infos: list[RunInfo]) -> list[dict]:
    """One summary row per run for the compare view: final and best loss, best val loss and its
    step, training time (summed over every segment, as in the table) and tokens seen."""
    rows = []
    for info in infos:
        s = metrics.cached_summary(info.run.metrics_path)
        title = note_cells(info.run_id, info.run.read_notes())["title"]
        rows.append(
            {
                "run": info.run_id,
                "title": title,
                "state": info.state,
                "steps": s.last_step,
                "final loss": s.last_loss,
                "best loss": s.best_loss,
                "best val loss": s.best_val_loss,
                "best val step": s.best_val_step,
                "best val bpc": val_bits_per_char(_config(info), s.best_val_loss),
                "training time": format_duration(s.train_time_s if s.last_step else None),
                "tokens seen": s.tokens_seen,
            }
        )
    return rows


def differing_hyperparameters(configs: dict[str, TrainConfig]) -> dict[str, dict[str, object]]:
    """{field: {run id: value}} for the config fields whose values differ between the runs."""
    if not configs:
        return {}
    dicts = {rid: cfg.to_dict() for rid, cfg in configs.items()}
    names = next(iter(dicts.values())).keys()
    return {
        name: {rid: d[name] for rid, d in dicts.items()}
        for name in names
        if len({repr(d[name]) for d in dicts.values()}) > 1
    }


def metrics_csv(run: RunDir) -> str:
    """Every metrics record of the run as CSV (the one export; a `kind` column tells them apart)."""
    return metrics.to_csv(metrics.read_all(run.metrics_path))
