"""N-gram models of a run's training split: the baselines a trained GPT should beat.

Counts are exact (every n-gram of the training tokens, as sorted int64 keys looked up with
numpy's searchsorted) and smoothed with interpolated Kneser-Ney (Chen and Goodman 1998, one
absolute discount per order, D = n1 / (n1 + 2 n2) from the count-of-counts): the top order uses
raw counts, the lower orders continuation counts (in how many contexts a token follows), and the
lowest order is interpolated with the uniform distribution over GPT-2's 50,257 tokens, so no
token ever gets probability 0. A unigram model is then absolute discounting onto the uniform.

The models are built once per data set and val_fraction (about a second for tiny shakespeare)
and cached beside the token cache: `cache_dir()/ngram/`, keyed by the text's sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import atomic
from core.config import GPT2_VOCAB, cache_dir
from core.jsonfile import read_json

V = GPT2_VOCAB  # n-gram keys are base-V numbers: id_1 * V^(n-1) + ... + id_n
ORDERS = (1, 2, 3)
NAMES = {1: "unigram", 2: "bigram", 3: "trigram"}
NGRAM_VERSION = 1
EOT = V - 1  # <|endoftext|>: the context before the start of a text


def gram_keys(ids: np.ndarray, n: int) -> np.ndarray:
    """The base-V keys of every n-gram of ids (len(ids) - n + 1 of them; n = 0 gives zeros,
    the one empty context)."""
    ids = np.asarray(ids, dtype=np.int64)
    count = len(ids) - n + 1
    keys = np.zeros(max(count, 0), dtype=np.int64)
    for j in range(n):
        keys = keys * V + ids[j : j + count]
    return keys


@dataclass
class Level:
    """The counts of one order k of a Kneser-Ney model: each seen k-gram's count (raw at the top
    order, continuation below), and per context (the first k-1 ids) the sum of those counts, the
    number of distinct next tokens and the discount."""

    grams: np.ndarray  # sorted keys of the k-grams seen
    counts: np.ndarray  # their counts
    contexts: np.ndarray  # sorted keys of the (k-1)-gram contexts
    totals: np.ndarray  # sum of counts per context
    types: np.ndarray  # distinct next tokens per context
    discount: float

    @classmethod
    def from_counts(cls, grams: np.ndarray, counts: np.ndarray) -> Level:
        contexts, start, types = np.unique(grams // V, return_index=True, return_counts=True)
        totals = np.add.reduceat(counts, start) if len(counts) else counts
        n1, n2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
        discount = n1 / (n1 + 2 * n2) if n1 else 0.5
        return cls(grams, counts, contexts, totals, types, min(max(discount, 0.05), 0.95))

    def arrays(self, k: int) -> dict[str, np.ndarray]:
        names = ("grams", "counts", "contexts", "totals", "types")
        out = {f"{k}_{name}": getattr(self, name) for name in names}
        out[f"{k}_discount"] = np.array(self.discount)
        return out


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """values[i] where sorted_keys[i] == key, 0 where the key is absent."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=np.float64)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[at] == keys, values[at], 0).astype(np.float64)


class NgramModel:
    """An interpolated Kneser-Ney n-gram model (order 1, 2 or 3) of a token stream."""

    def __init__(self, order: int, levels: list[Level]):
        if order not in ORDERS or len(levels) != order:
            raise ValueError(f"order must be one of {ORDERS} with one level each (got {order})")
        self.order = order
        self.levels = levels  # levels[k - 1] is order k

    @classmethod
    def fit(cls, tokens: np.ndarray, order: int) -> NgramModel:
        """Count every n-gram of tokens up to `order`."""
        if order not in ORDERS:
            raise ValueError(f"n-gram order must be 1, 2 or 3 (got {order})")
        if len(tokens) < order:
            raise ValueError(f"{len(tokens)} tokens are too few for a {NAMES[order]} model")
        levels = []
        for k in range(1, order + 1):
            grams, counts = np.unique(gram_keys(tokens, k), return_counts=True)
            if k < order:  # continuation counts: distinct tokens seen before each k-gram
                longer = np.unique(gram_keys(tokens, k + 1))
                grams, counts = np.unique(longer % V**k, return_counts=True)
            levels.append(Level.from_counts(grams, counts.astype(np.int64)))
        return cls(order, levels)

    def probs(self, contexts: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """p(nxt[i] | contexts[i]) for each i; contexts is (N, order-1) ids, oldest first."""
        nxt = np.asarray(nxt, dtype=np.int64)
        contexts = np.asarray(contexts, dtype=np.int64).reshape(len(nxt), self.order - 1)
        p = np.full(len(nxt), 1.0 / V)
        for k, level in enumerate(self.levels, start=1):
            ctx = np.zeros(len(nxt), dtype=np.int64)
            for j in range(self.order - k, self.order - 1):  # the last k-1 context ids
                ctx = ctx * V + contexts[:, j]
            total = _lookup(level.contexts, level.totals, ctx)
            types = _lookup(level.contexts, level.types, ctx)
            count = _lookup(level.grams, level.counts, ctx * V + nxt)
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            mixed = (np.maximum(count - level.discount, 0) + level.discount * types * p) / safe
            p = np.where(seen, mixed, p)
        return p

    def log_probs(self, ids: np.ndarray) -> np.ndarray:
        """Natural log p(ids[t] | the previous order-1 ids) for every t >= order-1."""
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids) - self.order + 1
        if n <= 0:
            return np.empty(0)
        ctx = np.empty((n, self.order - 1), dtype=np.int64)
        for j in range(self.order - 1):
            ctx[:, j] = ids[j : j + n]
        return np.log(self.probs(ctx, ids[self.order - 1 :]))

    def distribution(self, context: np.ndarray) -> np.ndarray:
        """The next-token probabilities (V,) after context (its last order-1 ids are used; a
        shorter context is padded on the left with end-of-text tokens)."""
        need = self.order - 1
        ids = [int(i) for i in np.asarray(context, dtype=np.int64).ravel()]
        ids = ([EOT] * need + ids)[len(ids) :] if need else []  # the last `need`, padded
        ctx = np.tile(np.asarray(ids, dtype=np.int64), (V, 1))
        return self.probs(ctx, np.arange(V))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"order": np.array(self.order)}
        for k, level in enumerate(self.levels, start=1):
            out.update(level.arrays(k))
        return out

    @classmethod
    def from_arrays(cls, arrays) -> NgramModel:
        order = int(arrays["order"])
        levels = [
            Level(
                *(arrays[f"{k}_{n}"] for n in ("grams", "counts", "contexts", "totals", "types")),
                discount=float(arrays[f"{k}_discount"]),
            )
            for k in range(1, order + 1)
        ]
        return cls(order, levels)


def _cache_path(data: str, val_fraction: float, what: str) -> Path:
    from core.data.corpus import data_key, source_files

    key = data_key(source_files(data))
    return cache_dir() / "ngram" / f"gpt2-{key}-val{val_fraction:g}-v{NGRAM_VERSION}-{what}"


def _save(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as tmp, open(tmp, "wb") as f:  # a cache: rebuilt if lost
        write(f)


def _splits(data: str, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    from core.data.dataset import load_tokens, split

    return split(load_tokens(data), val_fraction)


def load_ngrams(data: str, val_fraction: float) -> dict[int, NgramModel]:
    """The unigram, bigram and trigram models of a data set's training split, {order: model},
    built on first use and cached (an unreadable cache file is rebuilt)."""
    models = {}
    for order in ORDERS:
        path = _cache_path(data, val_fraction, f"{order}.npz")
        try:
            with np.load(path, allow_pickle=False) as arrays:
                models[order] = NgramModel.from_arrays(arrays)
            continue
        except (OSError, ValueError, KeyError):
            pass
        train, _ = _splits(data, val_fraction)
        models[order] = NgramModel.fit(train, order)
        _save(path, lambda f, m=models[order]: np.savez(f, **m.arrays()))
    return models


def baseline_losses(data: str, val_fraction: float) -> dict[str, float]:
    """Each n-gram model's mean loss on the val split in nats per token, {"unigram": ...,
    "bigram": ..., "trigram": ...}; the first order-1 val tokens have no full context and are
    left out. Cached in a small JSON file beside the models."""
    path = _cache_path(data, val_fraction, "losses.json")
    try:
        losses = read_json(path)  # a damaged cache is computed again
        if set(losses) == set(NAMES.values()) and all(
            isinstance(v, float) for v in losses.values()
        ):
            return losses
    except (OSError, ValueError):
        pass
    _, val = _splits(data, val_fraction)
    models = load_ngrams(data, val_fraction)
    losses = {NAMES[k]: float(-m.log_probs(val).mean()) for k, m in models.items()}
    _save(path, lambda f: f.write(json.dumps(losses).encode()))
    return losses
