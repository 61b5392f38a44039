"""A time budget as a training plan: minutes -> max_steps at a measured speed, and back.

A person thinks "train for about ten minutes", the engine thinks in optimizer steps. Both
directions use core.train.estimate's time model (start-up, the training steps at a measured
tokens/s, and at every eval the val batches and samples), so the steps a budget gives and the
time the estimate panel then shows agree.
"""

from __future__ import annotations

from core.config import TrainConfig, with_derived_accum
from core.train import estimate
from core.train.throughput import Probe

# The budget each CPU preset is labelled with (minutes, as measured by bench/quality.py on an
# idle 2-core machine); gpt2-124m has none (its time depends on the GPU).
PRESET_MINUTES = {"nano": 2, "micro": 10, "mini": 15}
SMALLER = {"mini": "micro", "micro": "nano", "gpt2-124m": "mini"}  # the next cheaper preset
TOO_SLOW = 1.5  # warn when the estimate is this many times the preset's label


def seconds_for_steps(
    cfg: TrainConfig, steps: int, tokens_per_sec: float, probe: Probe | None = None
) -> float:
    """Seconds a run of cfg with max_steps = steps takes at tokens_per_sec: the training steps
    plus start-up, evals and samples (estimate.overhead_s)."""
    planned = _resolved(cfg).replace(max_steps=max(1, int(steps)))
    train_s = planned.max_steps * planned.tokens_per_step() / tokens_per_sec
    return train_s + estimate.overhead_s(planned, tokens_per_sec, probe)


def steps_for_seconds(
    cfg: TrainConfig, seconds: float, tokens_per_sec: float, probe: Probe | None = None
) -> int:
    """The most max_steps whose run fits in seconds at tokens_per_sec (at least 1).

    Inverts seconds_for_steps: one eval's cost is spread over eval_interval steps for a first
    guess, then the steps that still fit are added."""
    cfg = _resolved(cfg)
    if tokens_per_sec <= 0:
        raise ValueError("tokens_per_sec must be positive: measure or guess a speed first")
    step_s = cfg.tokens_per_step() / tokens_per_sec
    startup = estimate.overhead_s(cfg.replace(eval_interval=0), tokens_per_sec, probe)
    per_eval = 0.0
    if cfg.eval_interval:
        n = cfg.eval_interval
        per_eval = estimate.overhead_s(
            cfg.replace(max_steps=2 * n), tokens_per_sec, probe
        ) - estimate.overhead_s(cfg.replace(max_steps=n), tokens_per_sec, probe)
    per_step = step_s + (per_eval / cfg.eval_interval if cfg.eval_interval else 0.0)
    steps = max(1, int((seconds - startup - per_eval) / per_step))
    # The guess counts every eval the steps could hold, so it fits; evals rounding down may
    # leave room for a few more steps.
    while seconds_for_steps(cfg, steps + 1, tokens_per_sec, probe) <= seconds:
        steps += 1
    return steps


def _resolved(cfg: TrainConfig) -> TrainConfig:
    """cfg with grad_accum_steps derived from total_batch_tokens, as the engine runs it."""
    return with_derived_accum(cfg, cfg.nproc) if cfg.total_batch_tokens else cfg


def preset_minutes(name: str) -> int | None:
    """The minutes a preset's label promises, or None for a preset without a time label."""
    return PRESET_MINUTES.get(name)


def too_slow(time_s: float | None, minutes: float | None) -> bool:
    """Whether an estimated time is much longer (TOO_SLOW times) than a labelled budget."""
    return bool(time_s and minutes and time_s > TOO_SLOW * minutes * 60)


def smaller_preset(name: str) -> str | None:
    """The next cheaper preset, or None when name is the cheapest."""
    return SMALLER.get(name)
