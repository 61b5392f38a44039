"""Where a run stands on the scale of repeated data: how many passes over its training split it
has made or will make, and what that costs, after Muennighoff et al. 2023, "Scaling Data-
Constrained Language Models" (arXiv 2305.16264): up to about 4 epochs of repeated data train
nearly as well as new data; the value of more repetition fades, and by about 16 epochs more
passes add next to nothing."""

from __future__ import annotations

import functools
import math

NEARLY_NEW_EPOCHS = 4.0
FADED_EPOCHS = 16.0
SOURCE = "Muennighoff et al. 2023, arXiv 2305.16264"


def repetition_note(epochs: float) -> str:
    """One sentence placing `epochs` passes over the training text on that scale."""
    if not math.isfinite(epochs):
        return "No whole pass over the training text fits: use more text."
    where = f"{epochs:,.1f} epochs"
    if epochs <= 1:
        return f"{where}: every token is new to the model."
    if epochs <= NEARLY_NEW_EPOCHS:
        return f"{where}: within the ~4 epochs that {SOURCE} found nearly as good as new data."
    if epochs <= FADED_EPOCHS:
        return (
            f"{where}: past the ~4 epochs that are nearly as good as new data; each further "
            f"pass is worth less, and by ~16 little ({SOURCE})."
        )
    return (
        f"{where}: past ~16, where {SOURCE} found more passes add next to nothing: more text, "
        "or fewer steps, would serve better."
    )


def accum_steps(cfg, nproc: int) -> int:
    """Micro steps per optimizer step and process (derived from total_batch_tokens when set)."""
    if getattr(cfg, "total_batch_tokens", 0):
        return max(cfg.total_batch_tokens // (cfg.micro_batch_size * cfg.seq_len * nproc), 1)
    return cfg.grad_accum_steps


def steps_per_epoch(train_tokens: int, cfg, nproc: int | None = None) -> float:
    """Optimizer steps per pass over the train split, as the engine's batch walker reads it:
    whole micro batches of micro_batch_size x seq_len tokens, in order, wrapping (0 when not
    even one micro batch fits)."""
    nproc = nproc or cfg.nproc
    chunks = max(train_tokens - 1, 0) // (cfg.micro_batch_size * cfg.seq_len)
    return chunks / (accum_steps(cfg, nproc) * nproc)


@functools.lru_cache(maxsize=32)
def train_tokens(data: str, val_fraction: float) -> int:
    """Tokens in a data set's training split (from the token cache; remembered per process)."""
    from core.data.dataset import load_tokens, split

    return len(split(load_tokens(data), val_fraction)[0])
