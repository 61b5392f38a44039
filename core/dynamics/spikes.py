"""Loss spikes: train steps whose loss stands far above its recent level.

A step is a spike when its loss exceeds the median of the WINDOW steps before it by more than
K robust standard deviations of them (1.4826 x their median absolute deviation, which equals
the standard deviation for Gaussian noise and ignores the spikes themselves). PaLM (Chowdhery et
al. 2022, arXiv 2204.02311) found such spikes came from particular batches meeting particular
parameter states; the Live page marks them so the batch behind each can be opened.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

WINDOW = 25
K = 4.0
MIN_SPREAD = 1e-3  # nats: a perfectly flat stretch would make any wiggle a spike


def find_spikes(loss, window: int = WINDOW, k: float = K, start: int = 0) -> np.ndarray:
    """Indices i >= max(start, window) of the spikes in loss (non-finite losses never are, and
    never count in a window's median)."""
    y = np.asarray(loss, dtype=np.float64)
    first = max(start, window)
    if y.size <= first:
        return np.empty(0, dtype=np.int64)
    past = sliding_window_view(y[first - window : y.size - 1], window)  # row j: before first + j
    median = np.nanmedian(past, axis=1)
    spread = 1.4826 * np.nanmedian(np.abs(past - median[:, None]), axis=1)
    here = y[first:]
    with np.errstate(invalid="ignore"):
        hit = np.isfinite(here) & (here - median > k * np.maximum(spread, MIN_SPREAD))
    return first + np.flatnonzero(hit)


def replay_loss(model, cfg, step: int, world_size: int = 1) -> float:
    """The mean loss of the batch of `step` (every micro batch the engine's ranks read) under
    the given model, e.g. weights saved before the spike."""
    import torch

    from core.data.walker import step_batches

    model.eval()
    with torch.no_grad():
        losses = [float(model(b.x, b.y)[1]) for b in step_batches(cfg, step, world_size)]
    return sum(losses) / len(losses)


def verdict(replayed: float, at_spike: float, typical: float) -> str:
    """Bad data or a bad model state, after PaLM: weights from before the spike that find the
    batch hard too (at least half of the spike's rise above the typical loss) point at the
    data; weights that find it ordinary point at the parameter state the batch met."""
    rise = at_spike - typical
    if rise <= 0:
        return "this step's loss is not above its recent level"
    if replayed - typical >= 0.5 * rise:
        return "the earlier weights find this batch hard too: the data is the likely cause"
    return (
        "the earlier weights find this batch ordinary: the model's state at the spike, not the "
        "data alone, is the likely cause"
    )
