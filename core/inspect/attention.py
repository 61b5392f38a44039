"""Attention weights per layer and head, and scores that tell head types apart.

The weights come from core.model.attention_maps (the blocks run again with the (T, T) matrices
written out, checked against the model's forward); the induction score from
core.dynamics.induction, the same one the engine records at every eval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.data.tokens import as_batch, encode_for_model, token_texts
from core.dynamics.induction import induction_scores_from, repeat_batch, repeat_length
from core.model.attention_maps import run_with_attention
from core.model.gpt import GPT

# A head whose best score reaches this is labelled with that score's kind.
KIND_THRESHOLD = 0.4


@dataclass(frozen=True)
class AttentionResult:
    """Attention of one text: weights[layer, head, query, key], rows summing to 1."""

    weights: np.ndarray  # (n_layer, n_head, T, T) float32; upper triangle 0 (causal)
    token_ids: list[int]
    tokens: list[str]
    cropped: int  # tokens dropped from the left to fit the context
    residual_gap: float  # relative gap to the model's forward (0 when unchecked)


def attention_weights(
    model: GPT,
    ids: list[int],
    device: str | torch.device = "cpu",
    check: bool = True,
    cropped: int = 0,
) -> AttentionResult:
    """Attention weights of every layer and head for ids (within the context), with the
    recomputation checked against the model's forward unless check=False."""
    if not len(ids):
        raise ValueError("no tokens: give at least one")
    _, weights, gap = run_with_attention(model, as_batch(ids, device), check)
    return AttentionResult(weights[0].cpu().numpy(), list(ids), token_texts(ids), cropped, gap)


def attention_text(model: GPT, text: str, device: str | torch.device = "cpu") -> AttentionResult:
    """attention_weights of a text cropped from the left to the model's context."""
    ids, cropped = encode_for_model(text, model.config.block_size)
    return attention_weights(model, ids, device, cropped=cropped)


# --- head types ----------------------------------------------------------------------------------


def previous_token_scores(weights: np.ndarray) -> np.ndarray:
    """(..., T, T) -> (...): mean weight of each query i >= 1 on key i - 1."""
    T = weights.shape[-1]
    if T < 2:
        return np.zeros(weights.shape[:-2], dtype=np.float32)
    return np.diagonal(weights, offset=-1, axis1=-2, axis2=-1).mean(axis=-1)


def first_token_scores(weights: np.ndarray) -> np.ndarray:
    """(..., T, T) -> (...): mean weight of each query i >= 1 on key 0 (query 0 has no choice)."""
    if weights.shape[-1] < 2:
        return np.zeros(weights.shape[:-2], dtype=np.float32)
    return weights[..., 1:, 0].mean(axis=-1)


@dataclass(frozen=True)
class HeadScore:
    layer: int  # 0-based, as in weights[layer, head]
    head: int
    previous_token: float  # mean weight on the previous position
    first_token: float  # mean weight on position 0 (an attention sink / positional head)
    induction: float  # mean weight on the token after the previous occurrence of this token
    kind: str  # 'previous-token', 'first-token', 'induction' or '' (none reaches KIND_THRESHOLD)


def head_scores(
    model: GPT,
    weights: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    n: int = 50,
    batch: int = 4,
    seed: int = 0,
) -> list[HeadScore]:
    """Scores of every head. Induction always comes from `batch` repeated random sequences of
    n tokens (n shrinks to fit the context); the previous- and first-token scores come from
    `weights` (a text's AttentionResult.weights) when given, else from those same sequences."""
    shape = (model.config.n_layer, model.config.n_head)
    if weights is not None and tuple(weights.shape[:2]) != shape:
        raise ValueError(
            f"weights of shape {tuple(weights.shape)} are not this model's "
            f"(n_layer, n_head) = {shape}: pass its AttentionResult.weights"
        )
    n = repeat_length(model.config.block_size, n)
    idx = repeat_batch(model, n, batch, seed)
    _, rand_w, _ = run_with_attention(model, idx.to(device), check=False)
    rand_w = rand_w.mean(dim=0).cpu().numpy()  # average over the batch: (L, H, T, T)
    induction = induction_scores_from(rand_w, n)
    source = rand_w if weights is None else weights
    prev, first = previous_token_scores(source), first_token_scores(source)
    out = []
    for layer in range(induction.shape[0]):
        for head in range(induction.shape[1]):
            scores = {
                "previous-token": float(prev[layer, head]),
                "first-token": float(first[layer, head]),
                "induction": float(induction[layer, head]),
            }
            best = max(scores, key=scores.get)
            kind = best if scores[best] >= KIND_THRESHOLD else ""
            out.append(
                HeadScore(
                    layer,
                    head,
                    scores["previous-token"],
                    scores["first-token"],
                    scores["induction"],
                    kind,
                )
            )
    return out
