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
