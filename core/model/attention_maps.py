"""Attention weights written out: the blocks run again with the (T, T) matrices that flash
attention never builds, from the model's own c_attn on ln_1(x), and the result is checked
against the model's forward so the two cannot drift apart. Pure math, like core.model.gpt;
the Inspect page (core.inspect.attention) and the per-eval induction probe
(core.dynamics.induction) both read attention through it."""

from __future__ import annotations

import math

import torch

from core.model.gpt import GPT, Block

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
            f"{gap:.2e} (relative): core.model.attention_maps must follow core.model.gpt's "
            "Block"
        )
    return gap
