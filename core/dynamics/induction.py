"""Induction heads and in-context learning (Olsson et al. 2022, arXiv 2209.11895), measured on
repeated random token sequences: every layer and head's prefix-matching score (attention from a
token of the second copy to the token after its earlier occurrence) and the loss on the second
copy against the first. The same fixed sequences serve every eval of every run, so the scores
are comparable across steps and runs; the Inspect page scores a checkpoint with them too."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.data.dataset import EOT_TOKEN
from core.data.tokens import n_real
from core.model.attention_maps import run_with_attention
from core.model.gpt import GPT

# A head "is an induction head" once its prefix-matching score reaches this: 40% of its
# attention goes to the one token an induction head wants among up to 2n + 1.
INDUCTION_THRESHOLD = 0.4
REPEAT_N, REPEAT_BATCH, REPEAT_SEED = 50, 4, 0


def repeated_random_tokens(n: int, batch: int = REPEAT_BATCH, seed: int = 0) -> torch.Tensor:
    """(batch, 2n + 1): end-of-text, then n distinct random tokens, then the same n again."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randperm(EOT_TOKEN, generator=g)[:n] for _ in range(batch)]
    half = torch.stack(rows)
    eot = torch.full((batch, 1), EOT_TOKEN, dtype=torch.long)
    return torch.cat([eot, half, half], dim=1)


def induction_scores_from(weights: np.ndarray, n: int) -> np.ndarray:
    """(..., 2n+1, 2n+1) weights of repeated_random_tokens(n) -> (...): the prefix-matching
    score, the mean weight from each token of the second copy onto the token after its first
    occurrence: query 1 + n + j looks at key 2 + j, for j = 0..n-1."""
    return np.diagonal(weights, offset=-(n - 1), axis1=-2, axis2=-1)[..., -n:].mean(axis=-1)


def repeat_length(block_size: int, n: int = REPEAT_N) -> int:
    """The copy length that fits a context of block_size (2n + 1 positions); ValueError when
    the context is too short for any."""
    n = min(n, (block_size - 1) // 2)
    if n < 2:
        raise ValueError(
            f"the context of {block_size} is too short for the induction score: "
            "it needs at least 5 positions"
        )
    return n


def repeat_batch(model: GPT, n: int, batch: int = REPEAT_BATCH, seed: int = REPEAT_SEED):
    """repeated_random_tokens within the model's real vocabulary (its padding never occurs)."""
    return repeated_random_tokens(n, batch, seed).clamp(max=n_real(model.config.vocab_size) - 1)


@dataclass(frozen=True)
class InductionResult:
    """Prefix-matching scores (n_layer, n_head) and the mean loss on each copy of the tokens."""

    scores: np.ndarray
    first_loss: float  # tokens 2..n of the first copy: nothing to copy from yet
    second_loss: float  # the same tokens in the second copy: a copying model predicts them

    @property
    def repeat_icl(self) -> float:
        """Olsson et al.'s in-context-learning score on the repeats: the second copy's loss
        minus the first's (below 0 once the model uses its context)."""
        return self.second_loss - self.first_loss

    def best(self) -> tuple[int, int, float]:
        """(layer, head, score) of the highest-scoring head."""
        layer, head = np.unravel_index(int(np.argmax(self.scores)), self.scores.shape)
        return int(layer), int(head), float(self.scores[layer, head])


@torch.no_grad()
def measure(
    model: GPT,
    device: str | torch.device = "cpu",
    n: int = REPEAT_N,
    batch: int = REPEAT_BATCH,
    seed: int = REPEAT_SEED,
    autocast=contextlib.nullcontext,
) -> InductionResult:
    """Scores and losses of the model (in eval mode) on `batch` repeated random sequences of n
    tokens (n shrinks to fit the context), averaged over the batch."""
    n = repeat_length(model.config.block_size, n)
    idx = repeat_batch(model, n, batch, seed).to(device)
    with autocast():
        x, weights, _ = run_with_attention(model, idx, check=False)
        logits = model.lm_head(model.transformer.ln_f(x)).float()
    # losses[:, p] is the loss of token p + 1 given tokens 0..p
    B, T, V = logits.shape
    losses = F.cross_entropy(
        logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1), reduction="none"
    ).view(B, T - 1)
    scores = induction_scores_from(weights.mean(dim=0).float().cpu().numpy(), n)
    first = losses[:, 1:n].mean().item()  # tokens 2..n
    second = losses[:, n + 1 : 2 * n].mean().item()  # tokens n + 2..2n, their copies
    return InductionResult(scores, first, second)


def first_crossing(steps, best_scores, threshold: float = INDUCTION_THRESHOLD) -> int | None:
    """The first step at which the best head's score reached threshold (None: never)."""
    steps, best_scores = np.asarray(steps), np.asarray(best_scores, dtype=np.float64)
    above = np.flatnonzero(best_scores >= threshold)
    return int(steps[above[0]]) if len(above) else None
