"""Forecast a run's loss to max_steps from the curve so far, knowing its learning-rate schedule.

The law is Tissue et al. 2024, "Scaling Law with Learning Rate Annealing" (arXiv 2408.11029):

    L(s) = L0 + A * S1(s)^(-alpha) - C * S2(s)

S1 is the forward area, the sum of the learning rates of the updates so far (here in units of
the peak rate, so it counts "steps at full speed"); S2 is the annealing area, the sum over steps
of a momentum m_i = lambda * m_(i-1) + (lr_(i-1) - lr_i) of the learning-rate drops (lambda =
0.999, the paper's). Warmup is left out of S2 (the rate rises there) and its steps out of the
fit. Because S1 and S2 come from the whole schedule (warmup, cosine, the flat tail of Continue
training), a fit to part of a curve predicts the rest of it.

Fitting is milliseconds: for fixed alpha the law is linear in (L0, A, C), solved as a
non-negative least-squares problem on at most MAX_POINTS bucket means, for a whole grid of
alphas at once (a log grid, then a finer one around the best). The band is a block jackknife: the fit is repeated
leaving out each of BLOCKS contiguous stretches of the curve, and the band is +-2 standard
errors of the prediction.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from core.config import TrainConfig
from core.schedule import lr_curve

DECAY = 0.999  # lambda of the annealing momentum (Tissue et al. 2024)
ALPHAS = np.geomspace(0.02, 3.0, 48)
MAX_POINTS = 200  # bucket means the law is fitted to
BLOCKS = 8
MIN_TRAIN_POINTS = 20
MIN_EVAL_POINTS = 2
VAL_EVALS = 3  # the latest evals that set the val forecast's shift
MIN_FRACTION = 0.05  # of max_steps trained before a forecast is drawn
CURVE_POINTS = 200
ANNEAL_PRIOR = 0.5  # nats: see _fit_alphas


class NotEnoughData(ValueError):
    """Too little of the curve to fit the law yet; the message says how much more is needed."""


@dataclass(frozen=True)
class Areas:
    """S1 and S2 after n updates, for n = 0 .. len - 1 (S1 in units of the peak rate)."""

    s1: np.ndarray
    s2: np.ndarray


def schedule_areas(lr: np.ndarray, warmup_steps: int, decay: float = DECAY) -> Areas:
    """The forward and annealing areas of a learning-rate curve (lr[i]: the rate of update i)."""
    lr = np.asarray(lr, dtype=np.float64) / max(float(np.max(lr)), 1e-300)
    s1 = np.concatenate([[0.0], np.cumsum(lr)])
    drops = np.diff(lr, prepend=lr[:1]) * -1.0
    drops[: warmup_steps + 1] = 0.0  # the rate rises during warmup: no annealing there
    momentum = _decayed_sum(drops, decay)
    s2 = np.concatenate([[0.0], np.cumsum(momentum)])
    return Areas(s1, s2)


def _decayed_sum(x: np.ndarray, decay: float, block: int = 4096) -> np.ndarray:
    """m_i = decay * m_(i-1) + x_i, in closed form block by block (decay^-k stays finite)."""
    out = np.empty_like(x)
    carry = 0.0
    for start in range(0, x.size, block):
        chunk = x[start : start + block]
        powers = decay ** np.arange(chunk.size)
        out[start : start + chunk.size] = powers * (carry * decay + np.cumsum(chunk / powers))
        carry = float(out[start + chunk.size - 1])
    return out


@dataclass(frozen=True)
class LawFit:
    """L = l0 + a * S1^-alpha - c * S2 and its root-mean-square error on the fitted points."""

    l0: float
    a: float
    alpha: float
    c: float
    rmse: float

    def predict(self, s1, s2) -> np.ndarray:
        s1 = np.maximum(np.asarray(s1, dtype=np.float64), 1e-12)
        return self.l0 + self.a * s1**-self.alpha - self.c * np.asarray(s2, dtype=np.float64)


def nnls_batch(gram: np.ndarray, rhs: np.ndarray, yy: float) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative least squares for a batch of small problems at once, exactly, from their
    normal equations: gram (B, k, k) = X'X, rhs (B, k) = X'y, yy = y'y, with few columns k. For
    each problem, the best unconstrained solution over every support whose coefficients are all
    >= 0. Returns coefficients (B, k) and SSEs (B,)."""
    batch, k = rhs.shape
    best, best_sse = np.zeros((batch, k)), np.full(batch, yy)
    ridge = 1e-12 * np.trace(gram, axis1=1, axis2=2)[:, None, None]
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            idx = list(support)
            g = gram[:, idx][:, :, idx]
            theta = np.linalg.solve(g + ridge * np.eye(size), rhs[:, idx, None])[..., 0]
            sse = yy - 2 * np.sum(theta * rhs[:, idx], axis=1)
            sse += np.sum(theta * (g @ theta[..., None])[..., 0], axis=1)
            better = np.all(theta >= 0, axis=1) & (sse < best_sse)
            best_sse = np.where(better, sse, best_sse)
            full = np.zeros((batch, k))
            full[:, idx] = theta
            best = np.where(better[:, None], full, best)
    return best, np.maximum(best_sse, 0.0)


def _fit_alphas(s1, s2, y, alphas, s2_end: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(L0, A, C) and SSE of the law for each alpha. The columns (1, S1^-alpha, -S2) are scaled
    to a maximum of 1 and their normal equations built from sums (no (B, n, 3) design). With
    s2_end, the annealing drop the law would add by then, D = C * (s2_end - max S2), gets a
    Gaussian prior of width ANNEAL_PRIOR nats (a ridge of noise / prior^2 on D, the noise
    estimated from point-to-point differences): a curve with little annealing in it yet cannot
    pin C down, and an unpinned C extrapolates to any drop at all; a clean curve is not held
    back."""
    p = s1[None, :] ** -np.asarray(alphas, dtype=np.float64)[:, None]  # (B, n)
    p_max = p.max(axis=1)
    p = p / p_max[:, None]
    s2_max = max(float(np.abs(s2).max()), 1e-300)
    q = -s2 / s2_max
    n = float(len(y))
    sp, spp, spq = p.sum(axis=1), (p * p).sum(axis=1), p @ q
    sq, sqq = float(q.sum()), float(q @ q)
    gram = np.empty((len(p), 3, 3))
    gram[:, 0] = np.stack([np.full_like(sp, n), sp, np.full_like(sp, sq)], axis=1)
    gram[:, 1] = np.stack([sp, spp, spq], axis=1)
    gram[:, 2] = np.stack([np.full_like(sp, sq), spq, np.full_like(sp, sqq)], axis=1)
    rhs = np.stack([np.full_like(sp, y.sum()), p @ y, np.full_like(sp, q @ y)], axis=1)
    ahead = max(s2_end - float(np.abs(s2).max()), 0.0) / s2_max
    noise = float(np.var(np.diff(y))) / 2 if len(y) > 2 else 0.0  # model-free: point to point
    gram[:, 2, 2] += noise * (ahead / ANNEAL_PRIOR) ** 2
    theta, sse = nnls_batch(gram, rhs, float(y @ y))
    return theta / np.stack([np.ones_like(p_max), p_max, np.full_like(p_max, s2_max)], 1), sse


def fit_law(s1: np.ndarray, s2: np.ndarray, y: np.ndarray, s2_end: float = 0.0) -> LawFit:
    """The law's best fit to losses y at areas (s1, s2): alpha on a log grid, then on a finer
    grid between the best one's neighbours (s2_end: see _fit_alphas)."""
    s1 = np.maximum(np.asarray(s1, dtype=np.float64), 1e-12)
    s2, y = np.asarray(s2, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _, sse = _fit_alphas(s1, s2, y, ALPHAS, s2_end)
    i = int(np.argmin(sse))
    fine = np.geomspace(ALPHAS[max(i - 1, 0)], ALPHAS[min(i + 1, len(ALPHAS) - 1)], 17)
    theta, sse = _fit_alphas(s1, s2, y, fine, s2_end)
    j = int(np.argmin(sse))
    l0, a, c = theta[j]
    return LawFit(float(l0), float(a), float(fine[j]), float(c), math.sqrt(sse[j] / len(y)))


def _bucket_means(n: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most max_points (update count, loss) pairs: the means of equal runs of points."""
    if n.size <= max_points:
        return n, y
    edges = np.linspace(0, n.size, max_points + 1).astype(int)
    sums = np.add.reduceat(np.stack([n, y]), edges[:-1], axis=1)
    counts = np.diff(edges)
    return np.rint(sums[0] / counts).astype(np.int64), sums[1] / counts


@dataclass(frozen=True)
class Forecast:
    """The law's curve from the last fitted point to the end of the schedule, with its band,
    and the predicted loss at the end."""

    updates: np.ndarray  # update counts of the curve's points (ends at the schedule's end)
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    law: LawFit
    points: int  # (update, loss) pairs fitted

    @property
    def final(self) -> tuple[float, float, float]:
        """(predicted, low, high) at the end of the schedule."""
        return float(self.mean[-1]), float(self.lo[-1]), float(self.hi[-1])


def forecast(
    updates,
    losses,
    areas: Areas,
    warmup_steps: int,
    *,
    end: int | None = None,
    min_points: int = MIN_TRAIN_POINTS,
) -> Forecast:
    """Fit the law to losses measured after `updates` optimizer updates and predict the loss up
    to `end` updates (the last `areas` covers by default). Raises NotEnoughData before
    min_points finite points past warmup."""
    n = np.asarray(updates, dtype=np.int64)
    y = np.asarray(losses, dtype=np.float64)
    end = len(areas.s1) - 1 if end is None else min(end, len(areas.s1) - 1)
    keep = np.isfinite(y) & (n > warmup_steps) & (n >= 1) & (n <= end)
    n, y = n[keep], y[keep]
    if n.size < min_points:
        raise NotEnoughData(
            f"the forecast needs {min_points} points after warmup (it has {n.size})"
        )
    n, y = _bucket_means(n, y, MAX_POINTS)
    law = fit_law(areas.s1[n], areas.s2[n], y, float(areas.s2[end]))
    grid = np.unique(np.linspace(n[-1], end, CURVE_POINTS).astype(np.int64))
    mean = law.predict(areas.s1[grid], areas.s2[grid])
    spread = _jackknife(n, y, areas, grid)
    return Forecast(grid, mean, mean - 2 * spread, mean + 2 * spread, law, int(n.size))


def _jackknife(n, y, areas: Areas, grid) -> np.ndarray:
    """The block-jackknife standard error of the law's prediction at each grid point."""
    blocks = min(BLOCKS, n.size)  # few points (evals): leave one out
    if blocks < 3:
        return np.zeros(grid.size)
    edges = np.linspace(0, n.size, blocks + 1).astype(int)
    preds = []
    for b in range(blocks):
        keep = np.ones(n.size, dtype=bool)
        keep[edges[b] : edges[b + 1]] = False
        law = fit_law(areas.s1[n[keep]], areas.s2[n[keep]], y[keep], float(areas.s2[grid[-1]]))
        preds.append(law.predict(areas.s1[grid], areas.s2[grid]))
    preds = np.array(preds)
    return np.sqrt((blocks - 1) / blocks * ((preds - preds.mean(axis=0)) ** 2).sum(axis=0))


def run_areas(cfg: TrainConfig, max_steps: int | None = None) -> Areas:
    """The areas of a run's schedule through max_steps updates (the config's by default; a
    larger one for Continue training, whose extra steps keep the old decay length)."""
    if max_steps is not None and max_steps != cfg.max_steps:
        cfg = cfg.replace(max_steps=max_steps, lr_decay_steps=cfg.lr_decay_steps or cfg.max_steps)
    return schedule_areas(lr_curve(cfg), cfg.warmup_steps)


def train_forecast(cfg: TrainConfig, steps, losses, max_steps: int | None = None) -> Forecast:
    """The train loss forecast of a run from its train records (step k is measured after k - 1
    updates), to max_steps. Raises NotEnoughData before MIN_FRACTION of it is trained."""
    max_steps = max_steps or cfg.max_steps
    steps = np.asarray(steps, dtype=np.float64)
    done = int(np.nanmax(steps)) if steps.size else 0
    need = max(int(math.ceil(MIN_FRACTION * max_steps)), cfg.warmup_steps + MIN_TRAIN_POINTS)
    if done < need:
        raise NotEnoughData(f"the forecast is drawn from step {need:,} (now {done:,})")
    areas = run_areas(cfg, max_steps)
    return forecast(steps - 1, losses, areas, cfg.warmup_steps, end=max_steps - 1)


def val_forecast(cfg: TrainConfig, steps, val_losses, train: Forecast) -> Forecast:
    """The val loss forecast: the train forecast's law shifted by how far the latest evals sit
    above it (the mean of the last VAL_EVALS residuals; eval k is measured after k updates).
    Few evals cannot pin a law of their own down; the gap between the two curves moves slowly.
    The band adds twice the residuals' spread. Raises NotEnoughData before MIN_EVAL_POINTS evals
    after warmup."""
    n = np.asarray(steps, dtype=np.int64)
    v = np.asarray(val_losses, dtype=np.float64)
    areas = run_areas(cfg, int(train.updates[-1]) + 1)
    keep = np.isfinite(v) & (n > cfg.warmup_steps) & (n < len(areas.s1))
    n, v = n[keep][-VAL_EVALS:], v[keep][-VAL_EVALS:]
    if n.size < MIN_EVAL_POINTS:
        raise NotEnoughData(f"the val forecast needs {MIN_EVAL_POINTS} evals after warmup")
    residual = v - train.law.predict(areas.s1[n], areas.s2[n])
    shift, spread = float(residual.mean()), float(residual.std())
    return Forecast(
        train.updates + 1,
        train.mean + shift,
        train.lo + shift - 2 * spread,
        train.hi + shift + 2 * spread,
        train.law,
        int(n.size),
    )
