"""Sampling as pure functions of logits, and token generation with a key/value cache."""

from __future__ import annotations

import codecs
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.config import GPT2_VOCAB  # ids at or above it are padding (50304 = 50257 rounded up)
from core.data.dataset import EOT_TOKEN
from core.model.gpt import GPT, KVCache


def check_sampling(temperature: float, top_k: int, top_p: float, vocab: int) -> None:
    """Refuse sampling settings that mean nothing, naming the setting and the fix."""
    if not temperature > 0:
        raise ValueError(f"temperature must be above 0 (got {temperature}); use top_k=1 for greedy")
    if not 0 <= top_k <= vocab:
        raise ValueError(
            f"top_k must be between 0 (off) and the vocabulary size {vocab} (got {top_k})"
        )
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], 1 = off (got {top_p})")


def probabilities(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
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


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row of logits (B, vocab) -> (B, 1)."""
    probs = probabilities(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def generate_ids(
    model: GPT,
    ids: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    n_valid: int = GPT2_VOCAB,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (token ids (B, 1), logits (B, vocab)) for each new token.

    Logits of the padding ids (>= n_valid) are -inf: they are never sampled.

    With the cache each token costs one position. Once the text fills the context, the window
    slides: learned positions shift, so every cached key is stale and the last block_size tokens
    are run again (exactly what the uncached path computes).
    """
    block = model.config.block_size
    ids = ids[:, -block:]
    cache = (
        KVCache(model.config, ids.size(0), ids.device, next(model.parameters()).dtype)
        if use_cache
        else None
    )
    pending = ids  # tokens the model has not seen yet
    for _ in range(max_new_tokens):
        if cache is not None and cache.length + pending.size(1) > block:
            cache.reset()
            pending = ids[:, -block:]
        if cache is None:
            logits, _ = model(ids[:, -block:])
        else:
            logits, _ = model(pending, cache=cache)
        logits = mask_padding(logits[:, -1, :], n_valid)
        next_id = sample_next(logits, temperature, top_k, top_p, generator)
        ids = torch.cat([ids, next_id], dim=1)
        pending = next_id
        yield next_id, logits


# The seed's ranges for the Playground; the command line accepts any value that means something.
TEMPERATURE_RANGE, TEMPERATURE_DEFAULT = (0.1, 2.0), 0.5


TOP_K_RANGE, TOP_K_DEFAULT = (0, 100), 10


MAX_NEW_RANGE, MAX_NEW_DEFAULT = (10, 200), 90


@dataclass(frozen=True)
class SamplingSettings:
    """How to pick each next token. top_k=0 and top_p=1.0 mean off; greedy ignores the rest."""

    temperature: float = TEMPERATURE_DEFAULT
    top_k: int = TOP_K_DEFAULT
    top_p: float = 1.0
    max_new_tokens: int = MAX_NEW_DEFAULT
    seed: int | None = 1337
    stop_at_eot: bool = True
    greedy: bool = False

    def check(self, vocab: int = GPT2_VOCAB) -> SamplingSettings:
        """Raise ValueError naming the first bad setting and its fix; return self when valid."""
        check_sampling(self.temperature, self.top_k, self.top_p, vocab)
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(
                f"max_new_tokens must be a whole number of at least 1 (got {self.max_new_tokens!r})"
            )
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"seed must be a whole number >= 0 (got {self.seed!r})")
        return self


def mask_padding(logits: torch.Tensor, n_valid: int = GPT2_VOCAB) -> torch.Tensor:
    """Logits with the padding ids (>= n_valid) at -inf, so they are never sampled nor counted."""
    if logits.size(-1) <= n_valid:
        return logits
    logits = logits.clone()
    logits[..., n_valid:] = float("-inf")
    return logits


def readable_token(text: str) -> str:
    """A token's text with whitespace made visible: '␣' for a space, '↵' for a newline, '⇥' tab."""
    out = text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥").replace("\r", "⏎")
    return "".join(c if c.isprintable() or c in "␣↵⇥⏎" else f"\\x{ord(c):02x}" for c in out)


class Utf8Stream:
    """Turns token bytes into text, holding back bytes until they form whole UTF-8 characters,
    so a character split across BPE tokens never shows as a broken glyph."""

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        """What is left at the end (a dangling partial character becomes '�')."""
        return self._decoder.decode(b"", final=True)


@dataclass(frozen=True)
class TokenEvent:
    """One generated token as it streams out."""

    index: int  # 0-based position among the new tokens
    token_id: int
    text: str  # text that became printable with this token ('' while a character is incomplete)
    prob: float  # probability of this token after temperature (before top-k/top-p cropping)
    top: tuple[tuple[str, float], ...]  # the most likely alternatives (token text, probability)
    elapsed_s: float  # seconds from the start of generation until this token was ready
    eot: bool = False  # the end-of-text token (not shown; generation stops here when asked)


def stream_tokens(
    model: GPT,
    prompt_ids: list[int],
    settings: SamplingSettings,
    device: str | torch.device = "cpu",
    n_alternatives: int = 5,
    use_cache: bool = True,
) -> Iterator[TokenEvent]:
    """Generate from prompt_ids, yielding each token with its probability and alternatives.

    The seed makes the text reproducible (same seed, settings and model: same text). Padding
    ids are never emitted. The last event may carry trailing text flushed from the decoder.
    """
    from core.data.dataset import get_tokenizer

    enc = get_tokenizer()
    settings.check(min(GPT2_VOCAB, model.config.vocab_size))
    if not prompt_ids:
        raise ValueError("prompt is empty: give at least one token")
    generator = _generator(settings.seed, device)
    top_k = 1 if settings.greedy else settings.top_k  # top-1 sampling is the argmax
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    utf8 = Utf8Stream()
    t0 = time.perf_counter()
    steps = generate_ids(
        model,
        ids,
        settings.max_new_tokens,
        settings.temperature,
        top_k,
        settings.top_p,
        generator,
        use_cache=use_cache,
    )
    for i, (next_id, logits) in enumerate(steps):
        token = int(next_id.item())
        probs = probabilities(logits[0], settings.temperature)  # padding already masked
        top = _alternatives(enc, probs, n_alternatives)
        eot = token == EOT_TOKEN
        last = i == settings.max_new_tokens - 1 or (eot and settings.stop_at_eot)
        if eot:
            text = utf8.flush() + ("" if settings.stop_at_eot else "<|endoftext|>")
        else:
            text = utf8.push(enc.decode_single_token_bytes(token))
        if last and not eot:
            text += utf8.flush()
        yield TokenEvent(i, token, text, float(probs[token]), top, time.perf_counter() - t0, eot)
        if last:
            return


def _generator(seed: int | None, device) -> torch.Generator:
    """A generator of its own (sampling never moves the global RNG): seeded, or fresh."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _alternatives(enc, probs: torch.Tensor, n: int) -> tuple[tuple[str, float], ...]:
    """The n most likely tokens as (text, probability), most likely first."""
    top_p, top_i = torch.topk(probs, n)
    return tuple(
        (enc.decode_single_token_bytes(int(t)).decode("utf-8", errors="replace"), float(p))
        for p, t in zip(top_p, top_i)
    )


@dataclass(frozen=True)
class NextToken:
    """The model's next-token distribution for a prompt at one temperature."""

    temperature: float
    top: list[tuple[int, str, float]]  # (id, token text, probability), most likely first
    entropy_bits: float  # of the full distribution (every real token), in bits


@torch.no_grad()
def next_token_logits(
    model: GPT, prompt_ids: list[int], device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Logits (vocab,) for the token after prompt_ids (cropped to the context), padding masked."""
    if not prompt_ids:
        raise ValueError("prompt is empty: give at least one token")
    ids = torch.tensor([prompt_ids[-model.config.block_size :]], dtype=torch.long, device=device)
    logits, _ = model(ids)
    return mask_padding(logits[0, -1].float())


def next_token(logits: torch.Tensor, temperature: float = 1.0, k: int = 10) -> NextToken:
    """Top-k next tokens with probabilities after temperature, and the full entropy in bits."""
    from core.data.dataset import get_tokenizer

    n_valid = min(GPT2_VOCAB, logits.size(-1))
    check_sampling(temperature, k, 1.0, n_valid)
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    probs = probabilities(logits, temperature)
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    p_log_p = torch.where(probs > 0, probs * logp, torch.zeros_like(probs))
    entropy = float(-p_log_p.sum() / math.log(2))
    enc = get_tokenizer()
    values, order = torch.topk(probs, k)
    top = [
        (int(i), enc.decode_single_token_bytes(int(i)).decode("utf-8", errors="replace"), float(p))
        for p, i in zip(values, order)
    ]
    return NextToken(temperature, top, entropy)


def temperature_table(logits: torch.Tensor, temperature: float, k: int = 10) -> list[dict]:
    """The top-k tokens at `temperature`, each with its probability there and at temperature 1,
    to show how temperature reshapes the distribution."""
    at_t = next_token(logits, temperature, k)
    at_1 = probabilities(logits, 1.0)
    return [
        {"rank": r + 1, "id": i, "token": readable_token(text), "p": p, "p_at_1": float(at_1[i])}
        for r, (i, text, p) in enumerate(at_t.top)
    ]
