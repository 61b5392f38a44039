"""The batch walker, and which micro batches (and their checksum) any step trained on.

The engine's data order is deterministic: step s (1-based) uses micro batch numbers
micro_seen_before + micro * world_size + rank, for micro in range(grad_accum_steps) and every
rank, where micro_seen_before = (s - 1) * grad_accum_steps * world_size for a run that never
changed its world size: the contiguous range [micro_seen_before, micro_seen_before +
grad_accum_steps * world_size).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from core.config import TrainConfig, with_derived_accum
from core.data import dataset


class BatchWalker:
    """Walks a token stream in order in micro batches of (B, T), wrapping at the end.

    Micro batch number n (counted over all processes) always covers the same tokens, so a run on
    N processes reads, per optimizer step, exactly the tokens one process with N times the
    accumulation reads; the count of micro batches consumed is the data position.
    """

    def __init__(self, tokens: np.ndarray, micro_batch: int, seq_len: int):
        self.tokens = torch.from_numpy(tokens.astype(np.int64))
        self.B, self.T = micro_batch, seq_len
        self.chunks = (len(tokens) - 1) // (micro_batch * seq_len)  # full chunks per epoch

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Micro batch number n: inputs and next-token targets, each (B, T)."""
        start = (n % self.chunks) * self.B * self.T
        buf = self.tokens[start : start + self.B * self.T + 1]
        return buf[:-1].view(self.B, self.T), buf[1:].view(self.B, self.T)


class MicroBatch(NamedTuple):
    number: int  # the micro batch number over all processes (BatchWalker.batch(number))
    x: torch.Tensor  # inputs (micro_batch_size, seq_len), int64
    y: torch.Tensor  # next-token targets, same shape


def micro_batch_numbers(
    cfg: TrainConfig, step: int, world_size: int = 1, segments: Segments = ()
) -> range:
    """The micro batch numbers step `step` (1-based) trains on, all ranks together, in order;
    rank r's share is every world_size-th number from the r-th. With segments (from the start
    records: a resume may change the world size), each step counts with the world size of its
    segment and world_size is ignored. ValueError for a bad step."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be a whole number >= 1 (got {step!r}): steps count from 1")
    seen = 0
    parts = list(segments) or [(0, world_size)]
    for i, (begin, size) in enumerate(parts):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"world_size must be a whole number >= 1 (got {size!r})")
        per_step = with_derived_accum(cfg, size).grad_accum_steps * size
        end = parts[i + 1][0] if i + 1 < len(parts) else None
        if end is None or step <= end:
            first = seen + (step - 1 - begin) * per_step
            return range(first, first + per_step)
        seen += (end - begin) * per_step
    raise AssertionError("unreachable: the last segment is open")


Segments = Sequence[tuple[int, int]]  # (the step a segment starts after, its world size)


def world_size_at(step: int, segments: Segments, default: int = 1) -> int:
    """The world size that trained `step`: that of the last segment starting before it."""
    sizes = [size for begin, size in segments if begin < step]
    return sizes[-1] if sizes else (segments[0][1] if segments else default)


def train_walker(cfg: TrainConfig) -> BatchWalker:
    """The engine's training BatchWalker for cfg (reads and splits the run's data)."""
    train_tokens, _ = dataset.split(dataset.load_tokens(cfg.data), cfg.val_fraction)
    dataset.check_size(train_tokens, cfg.micro_batch_size, cfg.seq_len, "training")
    return BatchWalker(train_tokens, cfg.micro_batch_size, cfg.seq_len)


def step_batches(
    cfg: TrainConfig,
    step: int,
    world_size: int = 1,
    walker: BatchWalker | None = None,
    segments: Segments = (),
) -> list[MicroBatch]:
    """The (number, x, y) micro batches of a step in micro batch order, as the engine's ranks
    read them (segments: see micro_batch_numbers). Pass walker (train_walker(cfg)) to avoid
    reading the data on every call."""
    numbers = micro_batch_numbers(cfg, step, world_size, segments)
    walker = walker or train_walker(cfg)
    return [MicroBatch(n, *walker.batch(n)) for n in numbers]


def batch_checksum(tensors: Iterable[torch.Tensor]) -> str:
    """16 hex characters: blake2b of the int64 (little-endian) token ids of the tensors,
    concatenated in order. Give one step's inputs x in micro batch number order."""
    h = hashlib.blake2b(digest_size=8)
    for t in tensors:
        h.update(t.detach().to("cpu", torch.int64).contiguous().numpy().astype("<i8").tobytes())
    return h.hexdigest()


def walker_checksum(walker: BatchWalker, numbers: Iterable[int]) -> str:
    """batch_checksum of the inputs of micro batches `numbers` (what the engine records)."""
    return batch_checksum(walker.batch(n)[0] for n in numbers)


def step_checksum(
    cfg: TrainConfig, step: int, world_size: int = 1, walker: BatchWalker | None = None
) -> str:
    """The checksum of a step's inputs, computed from the config alone (any process)."""
    return walker_checksum(walker or train_walker(cfg), micro_batch_numbers(cfg, step, world_size))
