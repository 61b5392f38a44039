"""Memorization meter: suffix-array build time and memory, and query time for a sample.

Builds the index of tiny shakespeare's train split, then of synthetic token arrays (log-uniform
ids over the GPT-2 vocabulary, like a word-frequency curve, with 2% of the text made of copies of
earlier passages of 16-512 tokens, so some suffixes tie for hundreds of tokens), and times
copy_stats on a 500-token "generated" sample: copied passages of 10-60 tokens between novel ones.
Prints a readable table, then one JSON line.

    python bench/memorization.py                       # tiny shakespeare, 10M, 30M, 100M tokens
    python bench/memorization.py --sizes 10 30         # skip 100M on a busy machine
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import offline_env, report
from core.data import dataset
from core.data.corpus import CHUNK, SuffixIndex, build_suffix_array, token_counts

VOCAB = 50257
MB = 2**20


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    """n uint16 ids: log-uniform over the vocabulary, 2% overwritten by copies of earlier text."""
    rng = np.random.default_rng(seed)
    out = np.empty(n, np.uint16)
    for a in range(0, n, 1 << 22):  # in blocks: a float64 draw of 100M would be 800 MB
        size = min(1 << 22, n - a)
        out[a : a + size] = (VOCAB ** rng.random(size)).astype(np.int64) - 1
    copies = int(n * 0.02 / 264)
    lengths = rng.integers(16, 513, copies)
    targets = rng.integers(n // 10, n - 513, copies)
    for length, target in zip(lengths.tolist(), targets.tolist()):
        source = int(rng.integers(0, target - length))
        out[target : target + length] = out[source : source + length]
    return out


def sample(tokens: np.ndarray, rng, n: int = 500) -> np.ndarray:
    """A stand-in for generated text: copied runs of 10-60 tokens between novel runs."""
    parts, total, copy = [], 0, True
    while total < n:
        length = int(rng.integers(10, 61))
        if copy:
            at = int(rng.integers(0, len(tokens) - length))
            parts.append(tokens[at : at + length].astype(np.int64))
        else:
            parts.append(rng.integers(0, VOCAB, length))
        total += length
        copy = not copy
    return np.concatenate(parts)[:n]


def memory_bound(tokens: np.ndarray) -> int:
    """The module's stated peak for building this index, in bytes."""
    return 10 * len(tokens) + 60 * max(CHUNK, int(token_counts(tokens).max(initial=0)))


def time_build(tokens: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The suffix array, seconds, and the peak of memory the build allocated (traced)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    sa = build_suffix_array(tokens)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return sa, seconds, peak / MB


def time_queries(index: SuffixIndex, rng, repeats: int = 20) -> dict:
    """Median copy_stats time on 500- and 64-token samples, and the share found copied."""
    out = {}
    for n in (64, 500):
        times, shares = [], []
        for _ in range(repeats):
            ids = sample(index.tokens, rng, n)
            t0 = time.perf_counter()
            stats = index.copy_stats(ids, 8)
            times.append(time.perf_counter() - t0)
            shares.append(stats.share)
        out[f"query_{n}_ms"] = float(np.median(times) * 1000)
        out[f"copied_share_{n}"] = float(np.mean(shares))
    return out


def row(name: str, tokens: np.ndarray, rng) -> dict:
    sa, seconds, peak = time_build(tokens)
    n = len(tokens)
    print(f"  {name}: {n:,} tokens in {seconds:.2f} s", file=sys.stderr, flush=True)
    return {
        "data": name,
        "tokens": n,
        "build_s": seconds,
        "build_peak_mb": peak,
        "with_tokens_mb": peak + tokens.nbytes / MB,
        "bound_mb": memory_bound(tokens) / MB,
        **time_queries(SuffixIndex(tokens, sa), rng),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes",
        nargs="*",
        type=float,
        default=[10, 30, 100],
        help="synthetic token counts, in millions",
    )
    args = p.parse_args(argv)
    offline_env()
    rng = np.random.default_rng(0)
    train = dataset.split(dataset.load_tokens("tinyshakespeare"), 0.1)[0]
    build_suffix_array(train[:10_000])  # warm-up: imports, allocator
    rows = [row("tinyshakespeare train", train, rng)]
    for millions in args.sizes:
        tokens = synthetic(int(millions * 1e6))
        rows.append(row(f"synthetic {millions:g}M", tokens, rng))
        del tokens
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report(
        "memorization",
        {"peak_rss_mb": peak_rss},
        rows,
        [
            "data",
            "tokens",
            "build_s",
            "build_peak_mb",
            "with_tokens_mb",
            "bound_mb",
            "query_64_ms",
            "query_500_ms",
            "copied_share_500",
        ],
        notes=[
            "build_peak_mb: memory the build allocated beyond its input (tracemalloc); "
            "with_tokens_mb adds the uint16 tokens; bound: 10n + 60 max(2^20, count of the "
            "commonest token) bytes (core/data/corpus.py).",
            "query: median copy_stats time (min_len 8) on a sample of copied runs of "
            "10-60 tokens between novel ones.",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
