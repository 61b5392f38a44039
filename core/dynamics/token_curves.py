"""Per-token learning curves, analysed (Chang, Tu and Bergen 2024, arXiv 2308.15419; Xia et al.
2022, arXiv 2212.09803): when each token of the val probe was learned, which were learned early
or late, and which were forgotten (their loss fell, then rose again). The curves themselves are
recorded at each eval by core.dynamics.eval_probes and stored by core.store.token_curves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A token counts as learned once its loss fell by at least this much (nats) from the first
# eval; it was learned at the first eval where it had fallen half of its total fall.
LEARN_DROP = 1.0
# Forgotten: the latest loss is at least this far above the token's lowest earlier loss.
FORGET_MARGIN = 1.0


@dataclass(frozen=True)
class TokenStages:
    """Per scored token of a probe: the step it was learned at (NaN: not learned), how far
    its loss rose after its lowest point, and its first and last loss."""

    learned_at: np.ndarray  # (n,) float
    rise: np.ndarray  # (n,) nats: last loss minus the lowest one
    first: np.ndarray
    last: np.ndarray

    def early(self, k: int = 10) -> list[int]:
        """The k tokens learned first (lowest last loss first among ties)."""
        return self._order(self.learned_at, k)

    def late(self, k: int = 10) -> list[int]:
        """The k tokens learned last, none of them among early(k) (with few evals, many
        tokens share a step)."""
        early = set(self.early(k))
        return [i for i in self._order(-self.learned_at, len(self.last)) if i not in early][:k]

    def forgotten(self, k: int = 10, margin: float = FORGET_MARGIN) -> list[int]:
        """Tokens whose loss rose at least margin above its lowest, largest rise first."""
        order = np.argsort(-self.rise, kind="stable")
        return [int(i) for i in order if self.rise[i] >= margin][:k]

    def _order(self, key: np.ndarray, k: int) -> list[int]:
        keep = np.flatnonzero(np.isfinite(key))
        order = np.lexsort((self.last[keep], key[keep]))
        return [int(i) for i in keep[order][:k]]


def token_stages(steps: np.ndarray, losses: np.ndarray) -> TokenStages:
    """Stages of every token from its curve: losses (evals, n) at increasing steps."""
    losses = np.asarray(losses, dtype=np.float32)
    steps = np.asarray(steps, dtype=np.float64)
    first, last = losses[0], losses[-1]
    low = losses.min(axis=0)
    halfway = first - 0.5 * (first - low)
    reached = losses <= halfway[None, :]
    at = steps[np.argmax(reached, axis=0)]
    learned_at = np.where(first - low >= LEARN_DROP, at, np.nan)
    return TokenStages(learned_at, last - low, first, last)


def thin_evals(n_evals: int, most: int) -> np.ndarray:
    """At most `most` eval indices spread evenly over n_evals, always the first and last."""
    if n_evals <= most:
        return np.arange(n_evals)
    return np.unique(np.linspace(0, n_evals - 1, num=most).round().astype(np.int64))
