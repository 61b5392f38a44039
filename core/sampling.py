"""Sampling as pure functions of logits, and token generation with a key/value cache."""

from __future__ import annotations

from typing import Iterator

import torch

from core.model import GPT, KVCache


def check_sampling(temperature: float, top_k: int, top_p: float, vocab: int) -> None:
    """Refuse sampling settings that mean nothing, naming the setting and the fix."""
    if not temperature > 0:
        raise ValueError(f"temperature must be above 0 (got {temperature}); use top_k=1 for greedy")
    if not 0 <= top_k <= vocab:
        raise ValueError(f"top_k must be between 0 (off) and the vocabulary size {vocab} (got {top_k})")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], 1 = off (got {top_p})")


def probabilities(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> torch.Tensor:
    """Next-token probabilities (..., vocab) after temperature, top-k and nucleus filtering."""
    logits = logits.float() / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop tokens once the mass before them already reaches top_p (the first always stays).
        drop_sorted = cum - torch.softmax(sorted_logits, dim=-1) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.softmax(logits, dim=-1)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of logits (B, vocab) -> (B, 1)."""
    probs = probabilities(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def generate_ids(model: GPT, ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (token ids (B, 1), logits (B, vocab)) for each new token.

    With the cache each token costs one position. Once the text fills the context, the window
    slides: learned positions shift, so every cached key is stale and the last block_size tokens
    are run again (exactly what the uncached path computes).
    """
    block = model.config.block_size
    ids = ids[:, -block:]
    cache = KVCache(model.config, ids.size(0), ids.device, next(model.parameters()).dtype) \
        if use_cache else None
    pending = ids  # tokens the model has not seen yet
    for _ in range(max_new_tokens):
        if cache is not None and cache.length + pending.size(1) > block:
            cache.reset()
            pending = ids[:, -block:]
        if cache is None:
            logits, _ = model(ids[:, -block:])
        else:
            logits, _ = model(pending, cache=cache)
        logits = logits[:, -1, :]
        next_id = sample_next(logits, temperature, top_k, top_p, generator)
        ids = torch.cat([ids, next_id], dim=1)
        pending = next_id
        yield next_id, logits
