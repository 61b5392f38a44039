"""The New run form's logic without Streamlit: widget values <-> TrainConfig, data and upload
checks, and the sentences that explain an estimate.

Integers come from number inputs; floats from text inputs (so 6e-4 is typed as written), parsed
here so a bad value becomes a message next to its field rather than an exception. Uploads are
stored by core.data.dataset.store_upload (outside the runs directory).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.config import PRESET_NOTES, SHAPE_FIELDS, TrainConfig, field_problems, preset
from core.data import dataset
from core.data.repetition import repetition_note

if TYPE_CHECKING:  # core.train.estimate loads the model code (and torch)
    from core.train.estimate import Estimate

KEY_PREFIX = "nr_"
SPECIAL = ("data", "init_from")  # fields the page renders in its own way
MIN_UPLOAD_BYTES = 1024
GROUPS = ("model", "optimisation", "schedule", "batch", "data", "device", "stopping", "logging")
ROW = 3  # fields per row of the form
TIME_SOURCES = {"measured": "Measured", "guess": "⚠️ Rough guess", "unknown": "Unknown"}
SOURCES = ("tiny shakespeare", "a local path", "upload a .txt file")  # the training text
START_FROM = ("scratch", "another run", "GPT-2")  # where the weights come from
PROBE_AUTO_PARAMS = 50_000_000  # smaller shapes are timed without asking (a few seconds)
MIB = 2**20


def fields_by_group() -> dict[str, list[dataclasses.Field]]:
    """TrainConfig's fields in form order, grouped by their metadata group."""
    groups: dict[str, list[dataclasses.Field]] = {g: [] for g in GROUPS}
    for f in dataclasses.fields(TrainConfig):
        groups.setdefault(f.metadata["group"], []).append(f)
    return groups


def rows_of(fields: list, n: int = ROW) -> list[list]:
    """Fields in rows of n: the form draws each row as its own columns, so a message under one
    field pushes the rows below down together instead of shifting one column."""
    return [fields[i : i + n] for i in range(0, len(fields), n)]


def kind(f: dataclasses.Field) -> type:
    return type(f.default)


def widget_values(cfg: TrainConfig) -> dict[str, object]:
    """{widget key: widget value} that shows cfg (floats as text)."""
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in SPECIAL:
            continue
        value = getattr(cfg, f.name)
        out[KEY_PREFIX + f.name] = format_float(value) if kind(f) is float else value
    return out


def preset_values(name: str) -> dict[str, object]:
    """Widget values of a preset: every field of the form."""
    return widget_values(preset(name))


def format_float(x: float) -> str:
    return f"{x:g}"


def parse(
    values: dict[str, object], data_setting: str, base: TrainConfig, init_from: str = ""
) -> tuple[TrainConfig, dict[str, str]]:
    """Widget values -> (config, {field: problem}). A value that cannot be parsed keeps base's
    value in the config and gets a problem; then core.config.field_problems adds the rest.
    data and init_from come from the page's own inputs."""
    problems: dict[str, str] = {}
    typed = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name in SPECIAL:
            continue
        raw = values.get(KEY_PREFIX + f.name, getattr(base, f.name))
        if kind(f) is float:
            try:
                typed[f.name] = float(str(raw).strip())
            except ValueError:
                problems[f.name] = f"must be a number such as 0.001 or 1e-3 (got {raw!r})"
                typed[f.name] = getattr(base, f.name)
        elif kind(f) is int:
            if raw is None or (isinstance(raw, float) and not raw.is_integer()):
                problems[f.name] = f"must be a whole number (got {raw!r})"
                typed[f.name] = getattr(base, f.name)
            else:
                typed[f.name] = int(raw)
        elif kind(f) is bool:  # a checkbox
            typed[f.name] = raw if isinstance(raw, bool) else getattr(base, f.name)
            if not isinstance(raw, bool):
                problems[f.name] = f"must be on or off (got {raw!r})"
        else:
            typed[f.name] = str(raw)
    cfg = TrainConfig(**typed, data=data_setting, init_from=init_from)
    for name, why in field_problems(cfg).items():
        problems.setdefault(name, why)
    return cfg, problems


def upload_problem(raw: bytes, name: str) -> str | None:
    """Why an uploaded file cannot be training text (None when it can)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return (
            f"{name} is not UTF-8 text (invalid byte at position {e.start}): save it as UTF-8, "
            f"e.g. `iconv -f latin1 -t utf-8 {name} > fixed.txt`, and upload that"
        )
    if len(raw) < MIN_UPLOAD_BYTES:
        return (
            f"{name} has only {len(raw):,} bytes: upload at least {MIN_UPLOAD_BYTES:,} bytes "
            "(1 KB) of text"
        )
    return None


def size_problem(tokens: np.ndarray, cfg: TrainConfig) -> str | None:
    """Why the data is too small for cfg's micro batch (train and validation splits), or None."""
    train, val = dataset.split(tokens, cfg.val_fraction)
    try:
        dataset.check_size(train, cfg.micro_batch_size, cfg.seq_len, "training")
        dataset.check_size(val, cfg.micro_batch_size, cfg.seq_len, "validation")
    except dataset.DataError as e:
        return f"{len(tokens):,} tokens in all: {e}"
    return None


def time_note(est: Estimate) -> str:
    """Where the time estimate comes from, in sentences: measured on this machine, a rough
    guess from FLOPs, or unknown; then the estimate's notes."""
    source, _, detail = est.time_source.partition(": ")
    text = f"{TIME_SOURCES.get(source, source.capitalize())}: {detail or source}."
    return " ".join([text, *(note[0].upper() + note[1:] + "." for note in est.notes)])


def preset_note(name: str, est: Estimate | None) -> str:
    """What a preset is and what it reached where it was measured (core.config's note, one
    time only), with its size; the time of the form's own settings is the estimate panel's."""
    note = PRESET_NOTES.get(name, "")
    if est is None:
        return note
    size = f"{est.params / 1e6:,.2f} M parameters"
    return f"{note}; {size}." if note else f"{size}."


# --- "New run from this one": a run's config as the form's values ----------------------------


def prefill_values(cfg: TrainConfig, runs_root: Path) -> dict[str, object]:
    """{widget key: value} that show cfg in the whole form: every field, the training text
    (tiny shakespeare, else the path it was read from) and where the weights start from."""
    values = widget_values(cfg)
    if cfg.data == "tinyshakespeare":
        values.update({KEY_PREFIX + "data_source": SOURCES[0], KEY_PREFIX + "data_path": ""})
    else:
        values.update({KEY_PREFIX + "data_source": SOURCES[1], KEY_PREFIX + "data_path": cfg.data})
    values[KEY_PREFIX + "start"] = START_FROM[0]
    if cfg.init_from:
        source = Path(cfg.init_from).expanduser()
        if source.parent.resolve() == Path(runs_root).resolve() and source.is_dir():
            values.update(
                {KEY_PREFIX + "start": START_FROM[1], KEY_PREFIX + "start_run": source.name}
            )
        else:
            values.update(
                {KEY_PREFIX + "start": START_FROM[2], KEY_PREFIX + "start_hf": cfg.init_from}
            )
    return values


def copy_name(run_id: str) -> str:
    """The prefix of a new run's name made from run_id: its name without the launch date."""
    return re.sub(r"-\d{8}-\d{6}(-\d+)?$", "", run_id) or "run"


# --- before launch: disk and timing -------------------------------------------------------------


def disk_need(cfg: TrainConfig) -> dict[str, float]:
    """Disk a run needs at most, in MiB: its full checkpoints (core.train.estimate's count: keep + 1
    copies and best.pt, 12 bytes a parameter) and its half-precision snapshots (2 bytes a
    parameter each, the oldest deleted beyond snapshot_cap_mb), and their total."""
    from core.model.param_count import param_count
    from core.train.estimate import (  # loads the model code (torch)
        checkpoint_disk_mb,
        snapshot_disk_mb,
    )

    checkpoints = checkpoint_disk_mb(cfg.replace(snapshot_interval=0))
    snapshots = snapshot_disk_mb(cfg)
    return {
        "checkpoints": checkpoints,
        "snapshots": snapshots,
        "snapshot": 2 * param_count(cfg) / MIB,
        "total": checkpoints + snapshots,
    }


def data_mtime(setting: str) -> float:
    """The newest modification time of a data setting's files (0 when they cannot be read): it
    keys the page's caches, so an edited file is read again."""
    try:
        return max(p.stat().st_mtime for p in dataset.resolve_source(setting))
    except (OSError, ValueError):
        return 0.0


def probe_key(cfg: TrainConfig, device: str) -> tuple:
    """What a timing of a training step depends on (the model's shape, the batch, the dtype and
    the device), as a hashable key: equal keys share one probe."""
    fields = (*SHAPE_FIELDS, "seq_len", "micro_batch_size", "dtype")
    return tuple((name, getattr(cfg, name)) for name in fields) + (("device", device),)


def xray_key(cfg: TrainConfig) -> tuple:
    """The config fields the data X-ray depends on, as a hashable key."""
    fields = (
        "data",
        "val_fraction",
        "micro_batch_size",
        "seq_len",
        "grad_accum_steps",
        "total_batch_tokens",
        "nproc",
        "max_steps",
    )
    return tuple((name, getattr(cfg, name)) for name in fields)


def xray_values(x, cfg: TrainConfig) -> list[str]:
    """The data X-ray's figures as the page's table shows them (rows: tokens in the data,
    train / val tokens, tokens per optimizer step, steps per epoch, epochs, where that lands on
    the repeated-data scale of Muennighoff et al. 2023, parameters per training token), each
    with what it counts."""
    return [
        f"{x.tokens:,}",
        f"{x.train_tokens:,} / {x.val_tokens:,} (val_fraction {cfg.val_fraction:g})",
        f"{x.tokens_per_step:,} (micro_batch_size x seq_len x grad_accum_steps x nproc)",
        f"{x.steps_per_epoch:,.1f} (one pass over the train split)",
        f"{format_epochs(x.epochs)} (in {cfg.max_steps:,} steps)",
        repetition_note(x.epochs),
        f"{x.params_per_token:,.2f}",
    ]


def format_epochs(epochs: float) -> str:
    if epochs == float("inf"):
        return "∞"
    return f"{epochs:,.2f}" if epochs < 10 else f"{epochs:,.0f}"
