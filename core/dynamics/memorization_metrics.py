"""Memorization metrics over training.

Exact memorization (Tirumala et al. 2022, arXiv 2205.10770): the share of a text's tokens
whose most likely prediction is the true next token, on a training probe and on a val probe;
their gap grows as the model memorizes what it trains on. Extraction (Carlini et al. 2023,
arXiv 2202.07646; Biderman et al. 2023, arXiv 2304.11158): k prefixes of 32 tokens from the
training text, continued greedily for 32 tokens; the share that reproduces the text exactly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from core.model.gpt import GPT, KVCache

EXTRACT_K, EXTRACT_PREFIX, EXTRACT_SUFFIX = 64, 32, 32


def exact_memorization(correct: np.ndarray) -> float:
    """The share of tokens whose argmax prediction was the true next token."""
    correct = np.asarray(correct, dtype=bool)
    return float(correct.mean()) if correct.size else float("nan")


def extraction_lengths(block_size: int) -> tuple[int, int]:
    """(prefix, suffix) tokens: 32 and 32, halved alike to fit a shorter context."""
    if block_size >= EXTRACT_PREFIX + EXTRACT_SUFFIX:
        return EXTRACT_PREFIX, EXTRACT_SUFFIX
    prefix = max(1, block_size // 2)
    return prefix, max(1, block_size - prefix)


def extraction_offsets(n_tokens: int, k: int, length: int) -> np.ndarray:
    """k start offsets spread evenly over a split of n_tokens (the same for every run on the
    same data); fewer when the split has fewer distinct windows of `length` tokens."""
    last = n_tokens - length
    if last < 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, last, num=k).round().astype(np.int64))


@dataclass(frozen=True)
class Extraction:
    """Which prefixes the model continued exactly: their training offsets and, per prefix, how
    many leading tokens of the true continuation it reproduced."""

    prefix_len: int
    suffix_len: int
    offsets: np.ndarray  # (k,) training-split offsets of the prefixes
    matched: np.ndarray  # (k,) leading tokens reproduced (suffix_len = verbatim)
    generated: list = field(default_factory=list)  # (k,) lists of greedy token ids

    @property
    def k(self) -> int:
        return len(self.offsets)

    @property
    def verbatim(self) -> np.ndarray:
        return self.offsets[self.matched == self.suffix_len]

    @property
    def share(self) -> float:
        return float((self.matched == self.suffix_len).mean()) if self.k else float("nan")

    def record(self) -> dict:
        """The fields of an `extraction` metrics record."""
        return dict(
            k=self.k,
            prefix_len=self.prefix_len,
            suffix_len=self.suffix_len,
            extracted=self.share,
            offsets=[int(o) for o in self.verbatim],
        )


@torch.no_grad()
def greedy(model: GPT, prompts: torch.Tensor, n: int, autocast=contextlib.nullcontext):
    """(B, P) prompts -> (B, n) greedy continuations, decoded together with a KV cache."""
    cache = KVCache(model.config, prompts.size(0), prompts.device, next(model.parameters()).dtype)
    pending, out = prompts, []
    for _ in range(n):
        with autocast():
            logits, _ = model(pending, cache=cache)
        pending = logits[:, -1].argmax(dim=-1, keepdim=True)
        out.append(pending)
    return torch.cat(out, dim=1)


@torch.no_grad()
def extract(
    model: GPT,
    train_tokens: np.ndarray,
    device: str | torch.device = "cpu",
    k: int = EXTRACT_K,
    autocast=contextlib.nullcontext,
) -> Extraction:
    """Continue k evenly spread training prefixes greedily and compare with the text."""
    prefix, suffix = extraction_lengths(model.config.block_size)
    offsets = extraction_offsets(len(train_tokens), k, prefix + suffix)
    if not len(offsets):
        return Extraction(prefix, suffix, offsets, np.zeros(0, dtype=np.int64))
    windows = np.stack([np.asarray(train_tokens[o : o + prefix + suffix]) for o in offsets])
    windows = torch.as_tensor(windows.astype(np.int64), device=device)
    was = model.training
    model.eval()
    try:
        out = greedy(model, windows[:, :prefix], suffix, autocast)
    finally:
        model.train(was)
    same = (out == windows[:, prefix:]).cpu().numpy()
    matched = np.where(same.all(axis=1), suffix, np.argmin(same, axis=1))
    return Extraction(prefix, suffix, offsets, matched, out.cpu().tolist())


def verbatim_passages(data: str, val_fraction: float, offsets, length: int) -> list[tuple]:
    """(text, where) of each extracted passage: the training text at offset (length tokens)
    and its file, lines and speaker from the corpus index (where says so when it cannot)."""
    from core.data import corpus

    try:
        index = corpus.load_index(data, val_fraction)
    except (ValueError, OSError) as e:
        return [(f"(offset {o:,})", f"the source text cannot be read: {e}") for o in offsets]
    out = []
    for o in offsets:
        text = corpus.decode(index.train.tokens[int(o) : int(o) + length])
        at = index.locate(int(o), length, "train", context=0)
        lines = f"line {at.line:,}" + (f"-{at.end_line:,}" if at.end_line != at.line else "")
        out.append((text, f"{at.file} {lines}" + (f", {at.speaker}" if at.speaker else "")))
    return out
