"""Attention weights per layer and head, and scores that tell head types apart.

Training keeps F.scaled_dot_product_attention (flash attention never builds the (T, T) matrix);
here the blocks run again with the weights written out, from the model's own c_attn on
ln_1(x), and the result is checked against the model's forward so the two cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from core.data.dataset import EOT_TOKEN
from core.data.tokens import as_batch, encode_for_model, n_real, token_texts
from core.model.gpt import GPT, Block

# A head whose best score reaches this is labelled with that score's kind.
KIND_THRESHOLD = 0.4
# Largest relative gap between the recomputed residual stream and the model's own.
_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-8}
_TOLERANCE_LOW_PRECISION = 5e-2


class AttentionMismatch(RuntimeError):
    """The recomputed attention no longer reproduces the model's forward (core.model.gpt changed)."""


def block_with_weights(block: Block, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One block's forward (B, T, C) -> (B, T, C), also returning its attention weights
    (B, n_head, T, T) in float32: row i is how query i spreads over keys 0..i."""
    B, T, C = x.size()
    attn = block.attn
    q, k, v = attn.c_attn(block.ln_1(x)).split(C, dim=2)
    q, k, v = (t.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2) for t in (q, k, v))
    scores = q.float() @ k.float().transpose(-2, -1) / math.sqrt(k.size(-1))  # (B, nh, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    y = (weights.to(v.dtype) @ v).transpose(1, 2).contiguous().view(B, T, C)
    x = x + attn.c_proj(y)
    return x + block.mlp(block.ln_2(x)), weights


@torch.no_grad()
def run_with_attention(
    model: GPT, idx: torch.Tensor, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Run the blocks on idx (B, T) writing out attention: the final residual stream (B, T, C)
    (before ln_f), the weights (B, n_layer, n_head, T, T) and, with check, the largest relative
    gap to the model's own forward (AttentionMismatch when above tolerance)."""
    T = idx.size(1)
    if model.config.block_size < T:
        raise ValueError(
            f"{T} tokens do not fit the context of {model.config.block_size}: "
            "crop them from the left"
        )
    x = model.transformer.wte(idx) + model.transformer.wpe(torch.arange(T, device=idx.device))
    layers = []
    for block in model.transformer.h:
        x, w = block_with_weights(block, x)
        layers.append(w)
    gap = _gap_to_model(model, idx, x) if check else 0.0
    return x, torch.stack(layers, dim=1), gap


def _gap_to_model(model: GPT, idx: torch.Tensor, x: torch.Tensor) -> float:
    """max |x - model's residual before ln_f| / (1 + max |model's|), read with a hook."""
    seen = []
    hook = model.transformer.ln_f.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        model(idx)
    finally:
        hook.remove()
    ref = seen[0].float()
    gap = float((x.float() - ref).abs().max() / (1 + ref.abs().max()))
    if gap > _TOLERANCE.get(x.dtype, _TOLERANCE_LOW_PRECISION):
        raise AttentionMismatch(
            f"recomputed attention differs from the model's forward by "
            f"{gap:.2e} (relative): core.inspect.attention must follow core.model.gpt's "
            "Block"
        )
    return gap


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


def repeated_random_tokens(n: int, batch: int = 4, seed: int = 0) -> torch.Tensor:
    """(batch, 2n + 1): end-of-text, then n distinct random tokens, then the same n again."""
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randperm(EOT_TOKEN, generator=g)[:n] for _ in range(batch)]
    half = torch.stack(rows)
    eot = torch.full((batch, 1), EOT_TOKEN, dtype=torch.long)
    return torch.cat([eot, half, half], dim=1)


def induction_scores_from(weights: np.ndarray, n: int) -> np.ndarray:
    """(..., 2n+1, 2n+1) weights of repeated_random_tokens(n) -> (...): the mean weight from
    each token of the second copy onto the token after its first occurrence (Olsson et al.
    2022): query 1 + n + j looks at key 2 + j, for j = 0..n-1."""
    return np.diagonal(weights, offset=-(n - 1), axis1=-2, axis2=-1)[..., -n:].mean(axis=-1)


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
    n = min(n, (model.config.block_size - 1) // 2)
    if n < 2:
        raise ValueError(
            f"the context of {model.config.block_size} is too short for the induction "
            "score: it needs at least 5 positions"
        )
    idx = repeated_random_tokens(n, batch, seed).clamp(max=n_real(model.config.vocab_size) - 1)
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
