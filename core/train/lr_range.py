"""The learning-rate range test: a throwaway training run whose learning rate rises
exponentially, step by step, from far too small to far too large; the loss against the rate
shows where learning is fastest. Smith 2015, "Cyclical Learning Rates for Training Neural
Networks" (arXiv 1506.01186); the suggestion is the steepest fall of the smoothed loss, as
PyTorch Lightning's LearningRateFinder picks it.

Nothing is written: no run directory, no checkpoint. It trains the config's model shape and
batch from fresh weights, in this process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core import device as devices
from core.config import TrainConfig
from core.data import dataset
from core.data.walker import BatchWalker
from core.model.gpt import GPT, ModelConfig
from core.train.optim import make_optimizer

STEPS = 100
LR_FROM, LR_TO = 1e-6, 1.0
SMOOTH = 0.98  # Lightning's: an EMA of the loss, debiased
DIVERGED = 4.0  # stop once the smoothed loss is this many times its best


@dataclass(frozen=True)
class RangeTest:
    """Rates tried and their losses (raw and smoothed), the suggested max_lr (None when the
    curve never falls), and whether it stopped early on a diverging loss."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested: float | None
    diverged: bool


def suggest(lrs: np.ndarray, smoothed: np.ndarray, skip_start: int = 10) -> float | None:
    """The rate where the smoothed loss falls fastest per step of log rate (the rates are
    log-spaced, so per index), leaving out the first points (noise) and the last one."""
    if smoothed.size < skip_start + 3:
        return None
    slope = np.gradient(smoothed[skip_start:-1])
    i = int(np.argmin(slope))
    return float(lrs[skip_start + i]) if slope[i] < 0 else None


def lr_range_test(
    cfg: TrainConfig,
    steps: int = STEPS,
    lr_from: float = LR_FROM,
    lr_to: float = LR_TO,
    progress: Callable[[int, float, float], None] | None = None,
) -> RangeTest:
    """Train `steps` steps of cfg's shape and batch with the rate rising from lr_from to lr_to;
    progress(step, lr, loss) is called after each (raise from it to cancel)."""
    choice = devices.choose(cfg.device, cfg.dtype, "off", 0, cfg.loss_path)
    torch.manual_seed(cfg.seed)
    model = GPT(ModelConfig.of(cfg), fused_loss=choice.loss == "fused").to(choice.device)
    optimizer = make_optimizer(model, cfg, choice.type)
    train, _ = dataset.split(dataset.load_tokens(cfg.data), cfg.val_fraction)
    batches = BatchWalker(train, cfg.micro_batch_size, cfg.seq_len)
    lrs = lr_from * (lr_to / lr_from) ** (np.arange(steps) / max(steps - 1, 1))
    losses, smoothed, avg = [], [], 0.0
    for i, lr in enumerate(lrs):
        loss = _step(model, optimizer, batches, cfg, choice, float(lr), i)
        avg = SMOOTH * avg + (1 - SMOOTH) * loss
        losses.append(loss)
        smoothed.append(avg / (1 - SMOOTH ** (i + 1)))
        if progress:
            progress(i + 1, float(lr), loss)
        if not np.isfinite(loss) or smoothed[-1] > DIVERGED * min(smoothed):
            break
    n = len(losses)
    diverged = n < steps
    sm = np.array(smoothed)
    return RangeTest(lrs[:n], np.array(losses), sm, suggest(lrs[:n], sm), diverged)


def _step(model, optimizer, batches, cfg: TrainConfig, choice, lr: float, i: int) -> float:
    """One optimizer step at rate lr over grad_accum_steps micro batches; its mean loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for micro in range(cfg.grad_accum_steps):
        x, y = batches.batch(i * cfg.grad_accum_steps + micro)
        with choice.autocast():
            _, loss = model(x.to(choice.device), y.to(choice.device))
        (loss / cfg.grad_accum_steps).backward()
        total += float(loss) / cfg.grad_accum_steps
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return total
