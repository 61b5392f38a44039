"""Measure how fast this machine trains a model shape, in seconds, before any run of it exists.

The New run page's time estimate needs tokens/s. Where no run of the shape has finished here,
`probe` builds the model and times a few real training micro steps (forward, backward, AdamW),
eval forward passes and sampled tokens on random data. Long sequences are probed with a shorter
slice and scaled by tokens (a step's cost is close to linear in tokens for these sizes), so even
GPT-2 124M is probed in a few seconds on a CPU.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

PROBE_TOKENS = 512  # tokens per probed micro step at most


@dataclass(frozen=True)
class Probe:
    train_tokens_per_sec: float
    eval_tokens_per_sec: float
    sample_s_per_token: float
    seconds: float  # what the probe itself took
    load_avg: float | None  # the 1-minute load average when it ran: busy machines probe slow


def _timed(fn, repeats: int) -> float:
    """Best wall time of fn over repeats, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def probe(cfg, device: str = "cpu", repeats: int = 2) -> Probe:
    """Time training, eval and sampling of cfg's model shape on device (random weights and data)."""
    from core import device as devices
    from core.model.gpt import GPT, KVCache, ModelConfig
    from core.train.optim import make_optimizer

    started = time.perf_counter()
    choice = devices.choose(device, cfg.dtype, "off", loss=cfg.loss_path)
    model = GPT(ModelConfig.of(cfg), fused_loss=choice.loss == "fused").to(choice.device)
    optimizer = make_optimizer(model, cfg, choice.type)
    T = min(cfg.seq_len, PROBE_TOKENS)
    B = max(1, min(cfg.micro_batch_size, PROBE_TOKENS // T))
    x = torch.randint(0, 50257, (B, T), device=choice.device)

    def train_step():
        with choice.autocast():
            _, loss = model(x, x)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def eval_step():
        with choice.autocast():
            model(x, x)

    @torch.no_grad()
    def sample_tokens():
        cache = KVCache(model.config, 1, choice.device, torch.float32)
        model(x[:1, :1], cache=cache)
        for _ in range(7):
            model(x[:1, :1], cache=cache)

    train_s = _timed(train_step, repeats)
    eval_s = _timed(eval_step, repeats)
    sample_s = _timed(sample_tokens, repeats) / 8
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return Probe(B * T / train_s, B * T / eval_s, sample_s, time.perf_counter() - started, load)
