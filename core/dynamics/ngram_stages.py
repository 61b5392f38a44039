"""Stages beyond n-grams (Belrose et al. 2024, arXiv 2402.04362: networks learn low-order
statistics first): the unigram, bigram and trigram models of the training split
(core.data.ngram) scored on the same val-probe tokens as the network, and at each eval the KL
divergence from the network's next-token distribution to the bigram model's."""

from __future__ import annotations

import numpy as np
import torch

from core.data.ngram import EOT, NAMES, NgramModel, V

KL_TOKENS = 256  # the first targets of the val probe whose KL is measured (a bigram row each)


def probe_losses(models: dict[int, NgramModel], ids: np.ndarray) -> dict[str, float]:
    """Each model's mean loss (nats) on the probe's targets ids[1:], a context before the
    probe's first token read as end-of-text: {"unigram_loss": ..., ...}."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids) - 1
    out = {}
    for order, model in models.items():
        padded = np.concatenate([np.full(max(0, order - 2), EOT, np.int64), ids])
        out[f"{NAMES[order]}_loss"] = float(-model.log_probs(padded)[-n:].mean())
    return out


class BigramKL:
    """KL(network || bigram) over the first KL_TOKENS targets of a probe: the bigram model's
    log-distribution after each distinct context token is computed once."""

    def __init__(self, bigram: NgramModel, ids: np.ndarray, n: int = KL_TOKENS):
        contexts = np.asarray(ids, dtype=np.int64)[: min(n, len(ids) - 1)]
        distinct, self.row = np.unique(contexts, return_inverse=True)
        rows = np.stack([bigram.distribution(np.array([c])) for c in distinct])
        self.log_q = torch.from_numpy(np.log(rows).astype(np.float32))
        self.n = len(contexts)
        self._reset()

    def _reset(self) -> None:
        self.seen, self.total = 0, 0.0

    def hook(self, logp: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        """core.dynamics.probes.token_pass's window hook: add this window's KL terms."""
        take = min(len(x), self.n - self.seen)
        if take <= 0:
            return
        log_p = logp[:take, :V].float().cpu()
        log_q = self.log_q[self.row[self.seen : self.seen + take]]
        self.total += float((log_p.exp() * (log_p - log_q)).sum())
        self.seen += take

    def result(self) -> float | None:
        """The mean KL (nats per token) of the pass just made; ready for the next pass."""
        value = self.total / self.seen if self.seen else None
        self._reset()
        return value


def first_below(steps, losses, baseline: float) -> int | None:
    """The first step whose loss is below the baseline (None: not yet)."""
    below = np.flatnonzero(np.asarray(losses, dtype=np.float64) < baseline)
    return int(np.asarray(steps)[below[0]]) if len(below) else None
