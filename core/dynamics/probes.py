"""The fixed probe texts every eval is measured on, and one pass of a model over them.

A probe is a contiguous span of PROBE_TOKENS targets (and the token before them) from the
start of a split: the same tokens for every eval of a run and for every run on the same data
and val_fraction, whatever the model's shape, so per-token curves line up across runs. The
model reads it in windows of its training length (seq_len), as it reads its batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.model.gpt import GPT

PROBE_TOKENS = 1024


def text_probe(tokens: np.ndarray, n: int = PROBE_TOKENS) -> np.ndarray:
    """The first n + 1 tokens of a split (all of it when it is shorter): n targets."""
    if len(tokens) < 2:
        raise ValueError(f"a probe needs at least 2 tokens (the split has {len(tokens)})")
    return np.asarray(tokens[: n + 1], dtype=np.int64)


@dataclass(frozen=True)
class TokenPass:
    """Per target token of a probe: its loss (nats), whether the model's top prediction was it,
    and its position in its window (how much context the model had)."""

    losses: np.ndarray  # (n,) float32
    correct: np.ndarray  # (n,) bool
    positions: np.ndarray  # (n,) int: 0 = the first token of a window predicts this one


# Called per window with the model's log-probabilities (T, vocab), the inputs and targets (T,).
WindowHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


@torch.no_grad()
def token_pass(
    model: GPT,
    ids: np.ndarray,
    window: int,
    device: str | torch.device = "cpu",
    autocast=contextlib.nullcontext,
    hook: WindowHook | None = None,
) -> TokenPass:
    """Run the model (in eval mode) over a probe in windows of `window` tokens, one window at
    a time so the logits stay small (window x vocab)."""
    ids_t = torch.as_tensor(ids, dtype=torch.long)
    n = len(ids_t) - 1
    losses, correct, positions = [], [], []
    for start in range(0, n, window):
        x = ids_t[start : min(start + window, n)].to(device)
        y = ids_t[start + 1 : start + 1 + len(x)].to(device)
        with autocast():
            logits, _ = model(x[None])
        logits = logits[0].float()
        # loss = logsumexp - the target's logit: no second (T, vocab) tensor of log-probs
        target = logits.gather(1, y[:, None])[:, 0]
        losses.append((torch.logsumexp(logits, dim=-1) - target).cpu())
        correct.append((logits.argmax(dim=-1) == y).cpu())
        positions.append(torch.arange(len(x)))
        if hook is not None:
            hook(F.log_softmax(logits, dim=-1), x, y)
    return TokenPass(
        torch.cat(losses).numpy().astype(np.float32),
        torch.cat(correct).numpy(),
        torch.cat(positions).numpy(),
    )


def context_icl(losses: np.ndarray, positions: np.ndarray, window: int) -> float | None:
    """Olsson et al.'s in-context-learning score on real text: the mean loss of tokens late in
    their window minus that of tokens early in it (below 0 once later tokens are easier). Their
    500th and 50th tokens of 512, scaled to the window: positions in [0.9w, w) against
    [0.05w, 0.15w). None when the window is too short for two separate groups."""
    late = losses[positions >= int(0.9 * window)]
    early = losses[(positions >= int(0.05 * window)) & (positions < max(1, int(0.15 * window)))]
    if window < 10 or not len(late) or not len(early):
        return None
    return float(late.mean() - early.mean())
