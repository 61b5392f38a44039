"""The data X-ray: before a run, how often it will see its data and what the data repeats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.data import dataset as data_mod
from core.data.corpus import CorpusIndex, Location, _cache_path, _cached, decode, load_index
from core.data.repetition import accum_steps, steps_per_epoch

MEMORIZE_EPOCHS = 4.0  # more passes over the same text than this: expect verbatim recall

# The New run page X-rays a text up to this size while the user waits: indexing 16 MB took
# 52 s on a loaded 2-core machine (13 s of CPU), so 8 MB keeps the wait near 10-25 s.
WAIT_MAX_BYTES = 8 * 2**20


# --- before a run: the data X-ray --------------------------------------------------------------
@dataclass
class Repeat:
    """A passage the training text holds more than once: where, how long (tokens), how often,
    and its text (of a passage over 500 tokens, the first 500)."""

    offset: int
    length: int
    count: int
    text: str
    location: Location


@dataclass
class DataXray:
    """What a run will do with its data: sizes, passes over it, parameters per training token,
    the longest passages the training text repeats, and a warning when it will likely memorize."""

    tokens: int
    train_tokens: int
    val_tokens: int
    tokens_per_step: int
    steps_per_epoch: float
    epochs: float
    params_per_token: float
    repeats: list[Repeat]
    warning: str | None


def data_xray(cfg, n_params: int, top: int = 3, index: CorpusIndex | None = None) -> DataXray:
    """The data X-ray for a config (data, val_fraction, micro_batch_size, seq_len,
    grad_accum_steps, nproc, max_steps) and the model's parameter count. Epochs count as the
    engine's batch walker reads: whole micro batches of the train split, in order, wrapping."""
    index = index or load_index(cfg.data, cfg.val_fraction)
    n_train, n_val = len(index.train), len(index.val)
    per_step = cfg.micro_batch_size * cfg.seq_len * accum_steps(cfg, cfg.nproc) * cfg.nproc
    per_epoch = steps_per_epoch(n_train, cfg)
    epochs = cfg.max_steps / per_epoch if per_epoch else float("inf")
    warning = None
    if not per_epoch:
        warning = (
            f"the training split has {n_train:,} tokens, fewer than one micro batch "
            f"({cfg.micro_batch_size} x {cfg.seq_len}): use more text"
        )
    elif epochs > MEMORIZE_EPOCHS:
        warning = (
            f"{cfg.max_steps:,} steps x {per_step:,} tokens = {epochs:,.0f} epochs of this "
            "text: expect it to memorize"
        )
    repeats = [
        Repeat(
            o,
            n,
            index.train.count(index.train.tokens[o : o + n]),
            decode(index.train.tokens[o : o + min(n, 500)]),
            index.locate(o, n),
        )
        for o, n in (
            _from_a_line_start(index.train.tokens, *r) for r in _cached_repeats(index, top)
        )
    ]
    return DataXray(
        len(index.tokens),
        n_train,
        n_val,
        per_step,
        per_epoch,
        epochs,
        n_params / max(n_train, 1),
        repeats,
        warning,
    )


def _from_a_line_start(tokens: np.ndarray, offset: int, length: int) -> tuple[int, int]:
    """A repeated passage that begins mid-line (often the '.' that ends the line before it)
    starts at its first whole line instead, so its text and its speaker are the passage's own;
    kept as found when that would drop more than half of it."""
    if offset == 0 or "\n" in decode(tokens[offset - 1 : offset]):
        return offset, length
    for k in range(length // 2):
        if "\n" in decode(tokens[offset + k : offset + k + 1]):
            start = k + 1
            while (
                start < length and not decode(tokens[offset + start : offset + start + 1]).strip()
            ):
                start += 1  # blank lines too
            return (offset + start, length - start) if start <= length // 2 else (offset, length)
    return offset, length


def too_large_to_wait(data: str) -> str | None:
    """Why the page does not X-ray this data while the user waits (over WAIT_MAX_BYTES), or
    None. Missing files are data_xray's to report."""
    try:
        size = sum(p.stat().st_size for p in data_mod.resolve_source(data))
    except (OSError, ValueError):
        return None
    if size <= WAIT_MAX_BYTES:
        return None
    return (
        f"this text is {size / 2**20:,.0f} MB, more than the {WAIT_MAX_BYTES // 2**20} MB the "
        "page indexes while you wait; the run itself still measures how much it copies "
        "(copy rate, at each eval)"
    )


def _cached_repeats(index: CorpusIndex, top: int) -> list[tuple[int, int]]:
    tag = f"{index.key}-val{float(index.val_fraction)!r}"
    found = _cached(
        _cache_path(tag, f"train-repeats{top}"),
        lambda: np.array(index.train.repeats(top), np.int64).reshape(-1, 2),
        lambda a: (
            a.dtype == np.int64
            and a.ndim == 2
            and a.shape[1] == 2
            and bool(np.all((a[:, 0] >= 0) & (a[:, 1] >= 1)))
            and bool(np.all(a.sum(axis=1) <= len(index.train)))
        ),
    )
    return [(int(o), int(n)) for o, n in found]
