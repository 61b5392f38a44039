"""The gradient noise scale: the batch size past which a bigger batch stops paying for itself.

McCandlish et al. 2018, "An Empirical Model of Large-Batch Training" (arXiv 1812.06162), define
the simple noise scale B_simple = tr(Sigma) / |G|^2 (the gradient's variance per example over its
squared true norm) and estimate it from gradient norms at two batch sizes (their appendix A.1):
with |G_small|^2 measured on B_small tokens and |G_big|^2 on B_big,

    |G|^2     ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)

each unbiased but noisy, so each is averaged over steps (an exponential moving average) before
the ratio is taken. A run that accumulates gradients has both for free: the engine records the
norm of its first micro batch's gradient (`micro_grad_norm`) beside the full step's
(`grad_norm`), so nothing is recomputed. Measured in tokens, since a step's batch is tokens.
"""

from __future__ import annotations

import math

import numpy as np

EMA = 0.95  # per-step weight of the moving averages (about the last 20 steps)


def grad_sq(model) -> float:
    """The squared L2 norm of a torch model's gradients as they are now (one pass over them)."""
    import torch

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return float(sum(n.float() ** 2 for n in torch._foreach_norm(grads)))


def _ema(x: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (NaNs are skipped): pandas' adjusted ewm, which
    divides by the sum of the weights, the same as dividing by 1 - weight^n."""
    import pandas as pd

    return pd.Series(x).ewm(alpha=1 - weight, adjust=True, ignore_na=True).mean().to_numpy()


def noise_scale(
    micro_norm, step_norm, b_small: float, b_big: float, weight: float = EMA
) -> np.ndarray:
    """B_simple in tokens at each step, from the norms of one micro batch's gradient
    (b_small tokens) and of the whole step's (b_big tokens): the ratio of the moving averages
    of the two unbiased estimates. NaN while the averaged |G|^2 is not yet positive."""
    if not b_big > b_small > 0:
        raise ValueError(f"needs two batch sizes, b_big > b_small > 0 (got {b_small}, {b_big})")
    small = np.asarray(micro_norm, dtype=np.float64) ** 2
    big = np.asarray(step_norm, dtype=np.float64) ** 2
    g2 = _ema((b_big * big - b_small * small) / (b_big - b_small), weight)
    trace = _ema((small - big) / (1 / b_small - 1 / b_big), weight)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g2 > 0, trace / g2, np.nan)


def advice(critical: float, tokens_per_step: int) -> str:
    """'critical batch about N tokens; this run uses k times that', in words."""
    if not math.isfinite(critical) or critical <= 0:
        return "The noise scale is not measurable yet (the gradient is still all noise)."
    ratio = tokens_per_step / critical
    verdict = (
        "larger batches would still pay: fewer, bigger steps reach the same loss sooner"
        if ratio < 0.5
        else "about the most efficient batch"
        if ratio <= 2
        else "past it: a smaller batch would reach the same loss with fewer tokens"
    )
    return (
        f"Critical batch about {critical:,.0f} tokens; this run uses {tokens_per_step:,} "
        f"tokens a step, {ratio:.2g} times that: {verdict}."
    )
