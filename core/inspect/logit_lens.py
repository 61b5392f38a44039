"""The logit lens (nostalgebraist, 2020): read the residual stream after every block through the
final LayerNorm and the tied output layer, to see which next token each layer already favours.

Row 0 is the embedding (token + position), row i the stream after block i; the last row is
exactly the model's own next-token distribution. Padding ids are masked as in the Playground
(probabilities over the real tokens), so they never show up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.data.tokens import as_batch, encode_for_model, n_real, token_text, token_texts, top_tokens
from core.model.gpt import GPT


@dataclass(frozen=True)
class LensCell:
    """What one layer's residual stream at one position says comes next."""

    token_id: int  # the most likely next token
    text: str
    prob: float
    next_prob: float | None  # probability of the token that really comes next (None at the end)
    top: tuple[tuple[int, str, float], ...] = ()  # (id, text, prob), when top_k was asked for


@dataclass(frozen=True)
class LogitLens:
    """A layer x position grid: cells[row][column]."""

    token_ids: list[int]  # the (cropped) input
    tokens: list[str]  # text of each input token
    positions: list[int]  # input positions of the columns
    layers: list[str]  # row labels: 'embedding', 'block 1', ..., 'block n_layer'
    cells: list[list[LensCell]]
    cropped: int  # tokens dropped from the left to fit the context

    def grid(self, field: str = "prob") -> list[list]:
        """One field of every cell (prob, next_prob, text, token_id) as rows of values."""
        return [[getattr(cell, field) for cell in row] for row in self.cells]


@torch.no_grad()
def residual_stream(model: GPT, ids, device: str | torch.device = "cpu") -> torch.Tensor:
    """The residual stream (n_layer + 1, T, n_embd): the embedding, then after each block,
    computed by the model's own modules in the order its forward runs them."""
    idx = as_batch(ids, device)
    if idx.size(1) > model.config.block_size:
        raise ValueError(
            f"{idx.size(1)} tokens do not fit the context of "
            f"{model.config.block_size}: crop them from the left"
        )
    pos = torch.arange(idx.size(1), device=idx.device)
    x = model.transformer.wte(idx) + model.transformer.wpe(pos)
    states = [x[0]]
    for block in model.transformer.h:
        x = block(x)
        states.append(x[0])
    return torch.stack(states)


@torch.no_grad()
def real_logits(model: GPT, resid: torch.Tensor) -> torch.Tensor:
    """Logits (..., real tokens), float32, of a residual stream read through ln_f and the output
    layer; the padding rows of the output layer are never multiplied."""
    weight = model.lm_head.weight[: n_real(model.config.vocab_size)]
    return F.linear(model.transformer.ln_f(resid), weight).float()


@torch.no_grad()
def read_out(model: GPT, resid: torch.Tensor) -> torch.Tensor:
    """Log-probabilities (..., vocab), float32, of a residual stream read through ln_f and the
    output layer, padding masked (-inf): the distribution each lens cell shows."""
    log_probs = F.log_softmax(real_logits(model, resid), dim=-1)
    pad = model.config.vocab_size - log_probs.size(-1)
    return F.pad(log_probs, (0, pad), value=float("-inf")) if pad else log_probs


def logit_lens(
    model: GPT,
    ids: list[int],
    device: str | torch.device = "cpu",
    top_k: int = 0,
    positions: list[int] | None = None,
    cropped: int = 0,
) -> LogitLens:
    """The logit lens grid for ids (within the context): per layer and position, the top next
    token and its probability, the probability of the actual next token, and the top_k tokens
    when top_k > 0. positions limits the columns (the read-out costs a vocabulary-wide matmul
    per cell: a 124M model spends most of its time there)."""
    n = len(ids)
    positions = list(range(n)) if positions is None else sorted(set(positions))
    if not positions or positions[0] < 0 or positions[-1] >= n:
        raise ValueError(f"positions must be within 0..{n - 1} (got {positions})")
    resid = residual_stream(model, ids, device)[:, positions]  # (L+1, P, C)
    has_next = [p + 1 < n for p in positions]
    nexts = torch.tensor([ids[p + 1] if p + 1 < n else 0 for p in positions], device=resid.device)
    nexts = nexts.clamp(max=n_real(model.config.vocab_size) - 1)[:, None]
    rows = []
    for layer_resid in resid:  # one layer at a time: (P, vocab) stays small
        logits = real_logits(model, layer_resid)
        log_norm = torch.logsumexp(logits, dim=-1)
        next_p = (logits.gather(1, nexts)[:, 0] - log_norm).exp().tolist()
        next_p = [q if h else None for q, h in zip(next_p, has_next)]
        tops = top_tokens(logits, top_k, log_norm)
        if top_k:  # the top-k list starts with the best token: no second pass over the vocabulary
            best = [(i, text, p) for (i, text, p), *_ in tops]
        else:
            best_logit, best_id = logits.max(dim=-1)
            best_p = (best_logit - log_norm).exp().tolist()
            best = [(i, token_text(i), p) for i, p in zip(best_id.tolist(), best_p)]
        rows.append(
            [
                LensCell(i, text, p, q, tuple(top))
                for (i, text, p), q, top in zip(best, next_p, tops)
            ]
        )
    labels = ["embedding"] + [f"block {i}" for i in range(1, model.config.n_layer + 1)]
    return LogitLens(list(ids), token_texts(ids), positions, labels, rows, cropped)


def logit_lens_text(
    model: GPT,
    text: str,
    device: str | torch.device = "cpu",
    top_k: int = 0,
    last: int | None = None,
) -> LogitLens:
    """logit_lens of a text cropped from the left to the context; `last` keeps only the last
    that many positions as columns."""
    if last is not None and last < 1:
        raise ValueError(f"last must be at least 1 position (got {last})")
    ids, cropped = encode_for_model(text, model.config.block_size)
    positions = list(range(max(0, len(ids) - last), len(ids))) if last else None
    return logit_lens(model, ids, device, top_k, positions, cropped)
