"""The New run form's logic without Streamlit: widget values <-> TrainConfig, data and upload checks.

Integers come from number inputs; floats from text inputs (so 6e-4 is typed as written), parsed
here so a bad value becomes a message next to its field rather than an exception.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from core import data
from core.config import TrainConfig, field_problems, preset

KEY_PREFIX = "nr_"
SPECIAL = ("data",)  # fields the page renders in its own way
MIN_UPLOAD_BYTES = 1024
GROUPS = ("model", "optimisation", "schedule", "batch", "data", "device", "stopping", "logging")


def fields_by_group() -> dict[str, list[dataclasses.Field]]:
    """TrainConfig's fields in form order, grouped by their metadata group."""
    groups: dict[str, list[dataclasses.Field]] = {g: [] for g in GROUPS}
    for f in dataclasses.fields(TrainConfig):
        groups.setdefault(f.metadata["group"], []).append(f)
    return groups


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


def parse(values: dict[str, object], data_setting: str, base: TrainConfig
          ) -> tuple[TrainConfig, dict[str, str]]:
    """Widget values -> (config, {field: problem}). A value that cannot be parsed keeps base's
    value in the config and gets a problem; then core.config.field_problems adds the rest."""
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
        else:
            typed[f.name] = str(raw)
    cfg = TrainConfig(**typed, data=data_setting)
    for name, why in field_problems(cfg).items():
        problems.setdefault(name, why)
    return cfg, problems


def upload_problem(raw: bytes, name: str) -> str | None:
    """Why an uploaded file cannot be training text (None when it can)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return (f"{name} is not UTF-8 text (invalid byte at position {e.start}): save it as UTF-8, "
                f"e.g. `iconv -f latin1 -t utf-8 {name} > fixed.txt`, and upload that")
    if len(raw) < MIN_UPLOAD_BYTES:
        return (f"{name} has only {len(raw):,} bytes: upload at least {MIN_UPLOAD_BYTES:,} bytes "
                "(1 KB) of text")
    return None


def upload_path(raw: bytes, runs_dir: str | Path) -> Path:
    """Where an upload lives: `<runs_dir>/_uploads/<sha256[:16]>.txt` (same text, same file)."""
    return Path(runs_dir) / "_uploads" / f"{hashlib.sha256(raw).hexdigest()[:16]}.txt"


def save_upload(raw: bytes, runs_dir: str | Path) -> Path:
    """Write an upload to its content-addressed path (atomically; a no-op when present)."""
    path = upload_path(raw, runs_dir)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, path)
    return path


def size_problem(tokens: np.ndarray, cfg: TrainConfig) -> str | None:
    """Why the data is too small for cfg's micro batch (train and validation splits), or None."""
    train, val = data.split(tokens, cfg.val_fraction)
    try:
        data.check_size(train, cfg.micro_batch_size, cfg.seq_len, "training")
        data.check_size(val, cfg.micro_batch_size, cfg.seq_len, "validation")
    except data.DataError as e:
        return f"{len(tokens):,} tokens in all: {e}"
    return None
