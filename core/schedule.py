"""The learning-rate schedule as pure functions of the step: linear warmup, cosine decay, and
the flat tail of a run continued past its planned end. The engine steps with `get_lr`; the loss
forecast (core.dynamics.forecast) reads the whole curve at once with `lr_curve`."""

from __future__ import annotations

import math

import numpy as np

from core.config import TrainConfig


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup to max_lr, cosine decay
    to min_lr at lr_decay_steps (max_steps when 0), flat after (the build-nanogpt schedule;
    nanoGPT's lr_decay_iters). A run continued past its planned end keeps its old decay length,
    so its extra steps train at min_lr instead of jumping back up the cosine."""
    if step < cfg.warmup_steps:
        return cfg.max_lr * (step + 1) / cfg.warmup_steps
    decay_end = cfg.lr_decay_steps or cfg.max_steps
    if step >= decay_end:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, decay_end - cfg.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.max_lr - cfg.min_lr)


def lr_curve(cfg: TrainConfig, n_steps: int | None = None) -> np.ndarray:
    """get_lr for steps 0 .. n_steps - 1 (max_steps by default) as one array, vectorised."""
    steps = np.arange(cfg.max_steps if n_steps is None else n_steps, dtype=np.float64)
    decay_end = cfg.lr_decay_steps or cfg.max_steps
    progress = (steps - cfg.warmup_steps) / max(1, decay_end - cfg.warmup_steps)
    cosine = cfg.min_lr + 0.5 * (1.0 + np.cos(np.pi * progress)) * (cfg.max_lr - cfg.min_lr)
    lr = np.where(steps >= decay_end, cfg.min_lr, cosine)
    if cfg.warmup_steps:
        lr = np.where(steps < cfg.warmup_steps, cfg.max_lr * (steps + 1) / cfg.warmup_steps, lr)
    return lr
