"""Per-token surprise: how many bits each token of a text cost the model, what it expected
instead, and how two checkpoints differ on the same text.

Probabilities are the model's softmax over its whole output layer (padding ids included), so the
mean loss here is exactly the loss training and validation report; padding ids are left out of
every ranking, so they never show up as alternatives.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from core.data.tokens import (
    as_batch,
    encode_for_model,
    n_real,
    token_chars,
    token_text,
    token_texts,
    top_tokens,
)
from core.model.gpt import GPT

LN2 = math.log(2)
FIRST_TOKEN_NOTE = "the first token has no prefix to predict it from: it is shown but not scored"


@dataclass(frozen=True)
class TokenSurprise:
    """One token of the text and what the model made of it."""

    index: int  # position in the scored (cropped) text
    token_id: int
    text: str  # the token's text ('�' for part of a character split over tokens)
    bits: float | None  # -log2 p(token | prefix); None for the first token (no prediction)
    prob: float | None  # p(token | prefix)
    rank: int | None  # 1 = the model's top guess (among real tokens)
    top: tuple[tuple[int, str, float], ...]  # the model's top alternatives (id, text, prob)


@dataclass(frozen=True)
class SurpriseResult:
    """Per-token surprise of a text and its totals (over tokens 2..n: the first is unscored)."""

    tokens: list[TokenSurprise]
    cropped: int  # tokens dropped from the left to fit the context
    n_scored: int  # tokens with a prediction: len(tokens) - 1
    chars_scored: int  # characters of the scored text (everything after the first token)
    mean_loss: float  # nats per scored token: the model's cross-entropy on this text
    perplexity: float  # exp(mean_loss)
    bits_per_char: float  # sum of bits / chars_scored
    most_surprising: list[TokenSurprise]  # the ten highest-bit tokens, highest first
    note: str = FIRST_TOKEN_NOTE


@torch.no_grad()
def next_token_logits(
    model: GPT, ids, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (T - 1, vocab), float32, where row t scores token t + 1, and each row's log
    normaliser (logsumexp over the whole output layer). ids must fit the model's context."""
    logits, _ = model(as_batch(ids, device))
    logits = logits[0, :-1].float()  # the last row predicts past the text
    return logits, torch.logsumexp(logits, dim=-1)


def token_bits(model: GPT, ids, device: str | torch.device = "cpu") -> list[float]:
    """-log2 p of tokens 2..n of ids given their prefixes (n - 1 values)."""
    logits, log_norm = next_token_logits(model, ids, device)
    targets = torch.as_tensor(ids[1:], dtype=torch.long, device=logits.device)[:, None]
    return ((log_norm - logits.gather(1, targets)[:, 0]) / LN2).tolist()


def token_surprise(
    model: GPT, ids: list[int], device: str | torch.device = "cpu", top_k: int = 5, cropped: int = 0
) -> SurpriseResult:
    """Surprise of each token of ids (at least 2, within the context) in one forward pass, with
    the model's top_k alternatives per token. cropped is passed through for the page to show."""
    if len(ids) < 2:
        raise ValueError("surprise needs at least 2 tokens: the first one is never predicted")
    logits, log_norm = next_token_logits(model, ids, device)
    targets = torch.as_tensor(ids[1:], dtype=torch.long, device=logits.device)[:, None]
    actual = logits.gather(1, targets)  # (T-1, 1)
    # Rank among real tokens: how many non-padding ids the model scored above the actual one.
    ranks = (logits[:, : n_real(logits.size(-1))] > actual).sum(dim=1, dtype=torch.int32) + 1
    log_p = actual[:, 0] - log_norm  # nats, <= 0
    alternatives = top_tokens(logits, top_k, log_norm)
    texts = token_texts(ids)
    bits = (-log_p / LN2).tolist()
    tokens = [TokenSurprise(0, int(ids[0]), texts[0], None, None, None, ())]
    for i, (b, p, r, top) in enumerate(
        zip(bits, log_p.exp().tolist(), ranks.tolist(), alternatives), start=1
    ):
        tokens.append(TokenSurprise(i, int(ids[i]), texts[i], b, p, int(r), tuple(top)))
    mean_loss = float(-log_p.double().mean())
    chars = sum(token_chars(int(t)) for t in ids[1:])
    return SurpriseResult(
        tokens=tokens,
        cropped=cropped,
        n_scored=len(ids) - 1,
        chars_scored=chars,
        mean_loss=mean_loss,
        perplexity=math.exp(min(mean_loss, 700)),
        bits_per_char=sum(bits) / chars if chars else float("nan"),
        most_surprising=sorted(tokens[1:], key=lambda t: -t.bits)[:10],
    )


def surprise(
    model: GPT, text: str, device: str | torch.device = "cpu", top_k: int = 5
) -> SurpriseResult:
    """token_surprise of a text, cropped from the left to the model's context (result.cropped
    says by how many tokens). ValueError for text of fewer than 2 tokens."""
    ids, cropped = encode_for_model(text, model.config.block_size, min_tokens=2)
    return token_surprise(model, ids, device, top_k, cropped)


# --- a passage from the run's own validation text -----------------------------------------------


@dataclass(frozen=True)
class Passage:
    text: str
    start: int  # index of its first token in the val split
    n_tokens: int


def random_val_passage(cfg, n_tokens: int, seed: int) -> Passage:
    """About n_tokens tokens from a random place in the run's validation split (the same seed
    gives the same passage), starting after a newline when one is near, so it reads well.
    cfg is the run's TrainConfig (its data and val_fraction); DataError if the data is gone."""
    from core.data import dataset

    if n_tokens < 2:
        raise ValueError(f"n_tokens must be at least 2 (got {n_tokens})")
    _, val = dataset.split(dataset.load_tokens(cfg.data), cfg.val_fraction)
    if len(val) < 2:
        raise ValueError("the validation split is empty: raise val_fraction or use more text")
    n = min(n_tokens, len(val))
    start = random.Random(seed).randrange(len(val) - n + 1)
    newline = _first_line_start(val, start, min(n // 2, len(val) - n - start))
    start += newline
    ids = [int(t) for t in val[start : start + n]]
    text = dataset.get_tokenizer().decode(ids, errors="replace")
    return Passage(text, start, len(ids))


def _first_line_start(tokens, start: int, within: int) -> int:
    """Offset after the first token ending in a newline among the `within` tokens from start
    (0 when there is none)."""
    for offset in range(max(0, within)):
        if token_text(int(tokens[start + offset])).endswith("\n"):
            return offset + 1
    return 0


# --- two checkpoints on the same text -------------------------------------------------------------


@dataclass(frozen=True)
class TokenDelta:
    index: int
    token_id: int
    text: str
    bits_a: float | None  # None for the first token
    bits_b: float | None
    delta_bits: float | None  # bits_b - bits_a: negative = model B finds it easier


@dataclass(frozen=True)
class SurpriseDiff:
    tokens: list[TokenDelta]
    cropped: int
    mean_bits_a: float  # per scored token
    mean_bits_b: float
    easiest: list[TokenDelta]  # biggest drops in bits (became easiest), biggest first
    hardest: list[TokenDelta]  # biggest rises in bits (became hardest), biggest first
    note: str = FIRST_TOKEN_NOTE


def surprise_diff(
    model_a: GPT, model_b: GPT, text: str, device: str | torch.device = "cpu", n: int = 10
) -> SurpriseDiff:
    """Per-token change in bits from model A to model B (e.g. two checkpoints of one run) on the
    same text, cropped to the shorter context; the n tokens that became easiest and hardest."""
    if model_a.config.vocab_size != model_b.config.vocab_size:
        raise ValueError(
            "the two models have different vocabularies: compare checkpoints of "
            "models with the same vocab_size"
        )
    block = min(model_a.config.block_size, model_b.config.block_size)
    ids, cropped = encode_for_model(text, block, min_tokens=2)
    bits = [token_bits(model, ids, device) for model in (model_a, model_b)]
    texts = token_texts(ids)
    tokens = [TokenDelta(0, int(ids[0]), texts[0], None, None, None)]
    tokens += [
        TokenDelta(i, int(ids[i]), texts[i], a, b, b - a)
        for i, (a, b) in enumerate(zip(*bits), start=1)
    ]
    ordered = sorted(tokens[1:], key=lambda t: t.delta_bits)
    return SurpriseDiff(
        tokens,
        cropped,
        sum(bits[0]) / len(bits[0]),
        sum(bits[1]) / len(bits[1]),
        easiest=ordered[:n],
        hardest=ordered[::-1][:n],
    )
