"""The corpus index: what a text copied verbatim from a run's training text, by suffix array.

A run's data gets an index: a suffix array over the token ids of the train split (exactly the
tokens the engine trains on, `data.split(tokens, val_fraction)[0]`) and one over the val split,
built with numpy by prefix doubling and cached beside the token cache under the text's sha256.
Queries are vectorised binary searches on it: the longest verbatim match at each position of a
text, the maximal copied spans, the infini-gram next-token distribution after a prompt, and the
share of a sample that was copied. Locations map a token offset back to file, line and speaker.

Memory. Building the index of n tokens holds the uint16 tokens (2n bytes), the int32 suffix array
and an int32 rank array (4n each), and the work buffers of one chunk of still-tied suffixes: ~60
bytes a suffix for a chunk of 2^20 (CHUNK), or ~35 bytes a suffix of one larger group of suffixes
that share their first token (in text, the most common token: ~3-6% of n). Peak <= 10n + 60g
bytes with g = max(CHUNK, the most common token's count): 1,205 MiB measured for 100M tokens whose
commonest token is 6.4% of them (the bound: 1,320 MiB). The byte-offset table adds n/8 bytes. A
loaded index is the tokens plus its memory-mapped suffix array: 6n bytes. One index holds at most
2^31 - 2 tokens (int32 offsets); beyond that, shard the text (a suffix array a shard, queries
summed over shards).

Command line: `python -m core.inspect.memorization --run-dir DIR (--text T | --file F) [--min-len N]`
prints the spans of the text found verbatim in the run's training text, with their locations.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core import atomic
from core.config import cache_dir
from core.data import dataset
from core.data.dataset import DataError

CHUNK = 1 << 20  # suffixes sorted at once: bounds the build's work buffers


CELLS = 1 << 21  # entries of one block comparison's work arrays (16 MiB each as int64)


MAX_REPEAT = 1024  # repeats are searched up to this length; the longest are then measured whole


STRIDE = 64  # the byte offset of every STRIDE-th token is stored; the rest are summed on demand


MAX_TOKENS = 2**31 - 2  # int32 offsets and rank+1 keys


QUERY_END, TEXT_END = -1, -2  # sentinels past the end: a text suffix that ends sorts first


LOW_END, HIGH_END = -3, 1 << 30  # pattern ends for the lower and upper bound of a range search


MAX_LINES = 20  # lines of a span shown in its context


SPEAKER = re.compile(rb"(?m)(?:\A|(?<=\n\n))([A-Z][A-Za-z' ,.-]{0,38}):\r?$")


INDEX_VERSION = 1


# The seeds of the samples the engine checks for copies at each eval, beside its logged sample:
# fixed, so the copy rate moves with the model, not with the dice.
COPY_SEEDS = (1, 2, 3)


class MissingDataError(DataError):
    """The run's data file is gone: the message says to point --data at it."""


# --- building ------------------------------------------------------------------------------
def build_suffix_array(tokens: np.ndarray) -> np.ndarray:
    """The suffix array of a token id sequence (uint16 or any non-negative ints below 2^16):
    the start offsets of all its suffixes in sorted order, a suffix that ends sorting before a
    longer one with the same tokens. Prefix doubling in the manner of Larsson and Sadakane: sort
    by the first token, then sort each group of suffixes still tied on their first h tokens by
    the rank of the suffix h tokens further on, which orders them by 2h tokens; a group once
    resolved is never touched again, so later rounds cost only the long repeats."""
    tokens = np.ascontiguousarray(tokens)
    if len(tokens) > MAX_TOKENS:
        raise ValueError(
            f"{len(tokens):,} tokens are more than one index holds "
            f"({MAX_TOKENS:,}): split the text into shards"
        )
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= 1 << 16):
        raise ValueError("token ids must lie in [0, 65536)")
    sa, rank, group_start, group_len = _sort_by_first_token(tokens.astype(np.uint16, copy=False))
    h = 1
    while len(group_start):
        group_start, group_len = _refine(sa, rank, group_start, group_len, h)
        h *= 2
    return sa


def _sort_by_first_token(tokens: np.ndarray):
    """Counting sort of all suffixes by their first token, block by block to bound memory.
    Returns the suffix array so far, each suffix's rank (the SA position where its group
    starts), and the start and size of every group of two or more."""
    n = len(tokens)
    counts = token_counts(tokens)
    starts = np.cumsum(counts) - counts
    sa = np.empty(n, np.int32)
    cursor = starts.copy()
    for a in range(0, n, CHUNK):
        block = tokens[a : a + CHUNK]
        order = np.argsort(block, kind="stable")  # a radix sort for 16-bit keys
        in_order = block[order]
        block_counts = np.bincount(in_order, minlength=len(counts))
        run_start = np.cumsum(block_counts) - block_counts
        within = np.arange(len(block)) - run_start[in_order]
        sa[cursor[in_order] + within] = order + a
        cursor += block_counts
    rank = np.empty(n, np.int32)
    starts32 = starts.astype(np.int32)
    for a in range(0, n, CHUNK):
        rank[a : a + CHUNK] = starts32[tokens[a : a + CHUNK].astype(np.intp)]
    tied = counts >= 2
    return sa, rank, starts[tied], counts[tied]


def token_counts(tokens: np.ndarray) -> np.ndarray:
    """How often each id in [0, 65536) occurs, counted block by block (bincount copies its
    input to int64, which for the whole array would cost 8 bytes a token)."""
    counts = np.zeros(1 << 16, np.int64)
    for a in range(0, len(tokens), CHUNK):
        counts += np.bincount(tokens[a : a + CHUNK], minlength=1 << 16)
    return counts


def _refine(sa, rank, group_start, group_len, h):
    """One doubling round: sort every tied group by the rank h tokens on, chunk by chunk (groups
    are independent), and return the groups still tied. Ranks refined earlier in the same round
    only order more finely, which keeps the sort consistent (Larsson and Sadakane)."""
    chunk_of = (np.cumsum(group_len) - group_len) // CHUNK
    cuts = np.concatenate(([0], np.flatnonzero(np.diff(chunk_of)) + 1, [len(group_len)]))
    starts, lens = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        s, n = _refine_chunk(sa, rank, group_start[a:b], group_len[a:b], h)
        starts.append(s)
        lens.append(n)
    return np.concatenate(starts), np.concatenate(lens)


def _refine_chunk(sa, rank, group_start, group_len, h):
    n = len(sa)
    total = int(group_len.sum())
    first = np.cumsum(group_len) - group_len
    pos = np.repeat(group_start - first, group_len)  # the SA slots of the chunk's suffixes
    pos += np.arange(total, dtype=np.int64)
    suffix = sa[pos]
    ahead = suffix.astype(np.int64) + h
    ended = ahead >= n  # the suffix ends within h tokens: it sorts first in its group
    np.minimum(ahead, n - 1, out=ahead)
    key = np.repeat(np.arange(len(group_len), dtype=np.int64) << 32, group_len)
    key |= rank[ahead] + np.int64(1)  # rank + 1 < 2^31: the low half
    del ahead
    key[ended] &= ~np.int64(0xFFFFFFFF)
    order = np.argsort(key)
    key = key[order]
    suffix = suffix[order]
    del order
    sa[pos] = suffix
    head = np.empty(total, bool)
    head[0] = True
    np.not_equal(key[1:], key[:-1], out=head[1:])
    del key
    run_first = np.flatnonzero(head)
    run_len = np.diff(np.append(run_first, total))
    rank[suffix] = np.repeat(pos[run_first].astype(np.int32), run_len)
    tied = run_len >= 2
    return pos[run_first[tied]], run_len[tied]


def lcp_array(tokens: np.ndarray, sa: np.ndarray, limit: int | None = None) -> np.ndarray:
    """LCP[j]: how many tokens the suffixes at sa[j-1] and sa[j] share (LCP[0] = 0), counted up
    to `limit` when given (a text pasted twice has millions of pairs sharing thousands of
    tokens: the limit bounds the work). Most pairs share a few tokens, so it compares one token
    a round over the pairs still equal, and hands the long ones to the block comparison."""
    out = np.zeros(len(sa), np.int32)
    out[1:] = pair_lcp(tokens, sa[:-1], sa[1:], limit)
    return out


def pair_lcp(tokens: np.ndarray, first, second, limit: int | None = None) -> np.ndarray:
    """How many tokens the suffixes at first[i] and second[i] share, for each i (up to limit
    when given), a block of pairs at a time."""
    n, step = len(tokens), CHUNK * 4
    out = np.zeros(len(first), np.int32)
    for start in range(0, len(first), step):
        j = np.arange(start, min(start + step, len(first)))
        a, b = np.asarray(first[j], np.int64), np.asarray(second[j], np.int64)
        k = 0
        while len(j) > 1024 and k < 64:
            same = (b + k < n) & (a + k < n)  # a or b past the end: they differ there
            same &= np.take(tokens, a + k, mode="clip") == np.take(tokens, b + k, mode="clip")
            j, a, b = j[same], a[same], b[same]
            k += 1
            out[j] = k
        if len(j):
            out[j], _ = _first_diff(
                tokens, a, tokens, b, np.full(len(j), k, np.int64), TEXT_END, QUERY_END, limit
            )
    return out if limit is None else np.minimum(out, limit, out=out)


# --- comparing -----------------------------------------------------------------------------
def _gather(arr: np.ndarray, idx: np.ndarray, fill: int) -> np.ndarray:
    """arr[idx], with `fill` where idx runs past the end (then as int32)."""
    if len(arr) == 0:
        return np.full(idx.shape, fill, np.int32)
    values = np.take(arr, idx, mode="clip")
    if idx.max(initial=0) >= len(arr):  # rare: only suffixes near the end
        values = values.astype(np.int32)
        values[idx >= len(arr)] = fill
    return values


def _first_diff(x, x_at, y, y_at, skip, x_end, y_end, limit=None):
    """For each row r, compare x[x_at[r]:] with y[y_at[r]:] from position skip[r] on (the first
    skip[r] tokens are known equal): return where they first differ (the LCP) and the sign of
    y - x there. Different end sentinels make every pair differ somewhere. With `limit`, a row
    equal for `limit` tokens stops there (at or past limit, sign 0). Rows go in slices, so the
    work arrays stay under CELLS entries however many rows share long stretches."""
    d = skip.astype(np.int64)
    sign = np.zeros(len(d), np.int8)
    rows = CELLS // 8
    for a in range(0, len(d), rows):
        _first_diff_rows(
            x, x_at, y, y_at, d, sign, np.arange(a, min(a + rows, len(d))), (x_end, y_end), limit
        )
    return d, sign


def _first_diff_rows(x, x_at, y, y_at, d, sign, todo, ends, limit):
    """_first_diff for the rows in todo, in place: blocks of `width` tokens a round, the width
    doubling (to 4,096) while rows x width stays within CELLS."""
    x_end, y_end = ends
    width = 8
    while todo.size:
        offs = d[todo, None] + np.arange(width)
        xv = _gather(x, x_at[todo, None] + offs, x_end)
        yv = _gather(y, y_at[todo, None] + offs, y_end)
        differs = xv != yv
        first = differs.argmax(axis=1)
        hit = differs[np.arange(len(todo)), first]  # False: the whole block was equal
        rows, col = np.flatnonzero(hit), first[hit]
        d[todo[rows]] += col
        sign[todo[rows]] = np.sign(yv[rows, col].astype(np.int64) - xv[rows, col])
        todo = todo[~hit]
        d[todo] += width
        if limit is not None:
            todo = todo[d[todo] < limit]
        width = min(width * 2, 4096, max(8, CELLS // max(len(todo), 1)))  # long: fewer, wider


# --- querying ------------------------------------------------------------------------------
class Span(NamedTuple):
    """Tokens [start, end) of a text that occur verbatim at token `source_offset` of a split
    (counted from the start of that split)."""

    start: int
    end: int
    source_offset: int
    length: int
    split: str = "train"  # "train", or "val": found only in the held-out text


@dataclass
class Continuation:
    """The infini-gram next token: the longest suffix of the prompt found in the text, how often
    it occurs, and the tokens that follow it there (most frequent first)."""

    suffix_len: int
    count: int
    tokens: list[int]
    counts: list[int]
    probs: list[float]


@dataclass
class CopyStats:
    """How much of a text was copied: the share of its tokens inside spans found in the training
    text, the longest such span, the spans, and the share found only in the held-out text."""

    tokens: int
    share: float
    longest: int
    spans: list[Span] = field(default_factory=list)
    held_out_share: float = 0.0


def _as_ids(ids) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 16):
        raise ValueError("token ids must lie in [0, 65536)")
    return ids.astype(np.int32)


class SuffixIndex:
    """A token array and its suffix array, with the searches the meter needs."""

    def __init__(self, tokens: np.ndarray, sa: np.ndarray, name: str = "train"):
        self.tokens, self.sa, self.name = tokens, sa, name

    @classmethod
    def build(cls, tokens: np.ndarray, name: str = "train") -> SuffixIndex:
        return cls(tokens, build_suffix_array(tokens), name)

    def __len__(self) -> int:
        return len(self.tokens)

    @functools.cached_property
    def buckets(self) -> np.ndarray:
        """buckets[t]: the SA position of the first suffix starting with token t (65,537 of them,
        the last being n): a lookup that saves a binary search its first ~16 steps."""
        return np.concatenate(([0], np.cumsum(token_counts(self.tokens))))

    def _search(self, query: np.ndarray, starts: np.ndarray, end: int = QUERY_END):
        """Binary search for each query[s:] (s in starts) at once. Returns lo, hi (the SA
        positions either side of where it would sort; -1 and n stand for the ends) and the LCP
        of the query with each; comparisons skip the tokens both sides are known to share."""
        m = len(starts)
        first = query[starts].astype(np.int64)
        # the suffixes starting with the query's first token: the search starts from there
        lo, hi = self.buckets[first] - 1, self.buckets[first + 1]
        lcp_lo, lcp_hi = np.zeros(m, np.int64), np.zeros(m, np.int64)
        active = np.flatnonzero(hi - lo > 1)
        while active.size:
            mid = (lo[active] + hi[active]) // 2
            d, sign = _first_diff(
                self.tokens,
                self.sa[mid].astype(np.int64),
                query,
                starts[active],
                np.minimum(lcp_lo[active], lcp_hi[active]),
                TEXT_END,
                end,
            )
            up = sign > 0  # the query sorts after this suffix
            lo[active[up]], lcp_lo[active[up]] = mid[up], d[up]
            hi[active[~up]], lcp_hi[active[~up]] = mid[~up], d[~up]
            active = active[hi[active] - lo[active] > 1]
        return lo, hi, lcp_lo, lcp_hi

    def longest_matches(self, ids, where=None) -> tuple[np.ndarray, np.ndarray]:
        """For each position i of ids: the length L of the longest ids[i:i+L] found verbatim in
        this text, and one offset where it occurs (-1 where L is 0); only at the positions a
        boolean mask `where` allows, if given (0 and -1 elsewhere). The best match sorts next
        to where ids[i:] would, so one binary search per position finds it."""
        q = _as_ids(ids)
        lengths, offsets = np.zeros(len(q), np.int64), np.full(len(q), -1, np.int64)
        starts = np.arange(len(q)) if where is None else np.flatnonzero(where)
        if not len(starts) or not len(self.sa):
            return lengths, offsets
        lo, hi, lcp_lo, lcp_hi = self._search(q, starts)
        n = len(self.sa)
        at_lo = self.sa[np.clip(lo, 0, n - 1)].astype(np.int64)
        at_hi = self.sa[np.clip(hi, 0, n - 1)].astype(np.int64)
        lengths[starts] = np.maximum(lcp_lo, lcp_hi)
        offsets[starts] = np.where(lcp_lo >= lcp_hi, at_lo, at_hi)
        return lengths, np.where(lengths > 0, offsets, -1)

    def find(self, pattern) -> tuple[int, int]:
        """The SA range [lo, hi) of the suffixes that start with pattern (all of it if empty)."""
        q = _as_ids(pattern)
        if not len(q):
            return 0, len(self.sa)
        zero = np.zeros(1, np.int64)
        lo = self._search(q, zero, LOW_END)[1][0]
        hi = self._search(q, zero, HIGH_END)[1][0]
        return int(lo), int(hi)

    def count(self, pattern) -> int:
        """How often pattern occurs in this text."""
        lo, hi = self.find(pattern)
        return hi - lo

    def copied_spans(self, ids, min_len: int = 8) -> list[Span]:
        """The maximal spans of at least min_len tokens of ids found verbatim in this text, in
        order. A span starts where its match cannot be extended to the left; where two matches
        overlap (from different places in the text) the later one is cut to start where the
        earlier ends, so spans never overlap and each is verbatim at its source_offset."""
        return self._spans(ids, min_len)[0]

    def _spans(self, ids, min_len: int, where=None) -> tuple[list[Span], int]:
        """copied_spans (starting only where `where` allows), and the longest before any cut."""
        if not isinstance(min_len, (int, np.integer)) or min_len < 1:
            raise ValueError(f"min_len must be a whole number >= 1 (got {min_len!r})")
        lengths, offsets = self.longest_matches(ids, where)
        before = np.concatenate(([0], lengths[:-1]))
        starts = np.flatnonzero((lengths >= min_len) & (before <= lengths))
        spans, covered = [], 0
        for i in starts.tolist():
            end = i + int(lengths[i])
            s = max(i, covered)
            spans.append(Span(s, end, int(offsets[i]) + s - i, end - s, self.name))
            covered = end
        return spans, int(lengths[starts].max()) if len(starts) else 0

    def continuation(self, prompt_ids, k: int = 10) -> Continuation:
        """The infini-gram estimate of the next token (Liu et al. 2024): take the longest suffix
        of the prompt that occurs in this text (backing off while no occurrence has a next token)
        and count the tokens that follow its occurrences; return the top k."""
        q = _as_ids(prompt_ids)
        lengths = self.longest_matches(q)[0]
        whole = np.flatnonzero(lengths == len(q) - np.arange(len(q)))  # q[j:] occurs in full
        for j in [*whole.tolist(), len(q)]:
            lo, hi = self.find(q[j:])
            after = self.sa[lo:hi].astype(np.int64) + (len(q) - j)
            nxt = self.tokens[after[after < len(self.tokens)]]
            if len(nxt) or j == len(q):
                break
        counts = np.bincount(nxt, minlength=1) if len(nxt) else np.zeros(0, np.int64)
        top = np.argsort(-counts, kind="stable")[:k]
        top = top[counts[top] > 0]
        total = max(int(counts.sum()), 1)
        return Continuation(
            len(q) - j, hi - lo, top.tolist(), counts[top].tolist(), (counts[top] / total).tolist()
        )

    def copy_stats(self, ids, min_len: int = 8) -> CopyStats:
        """Share of the tokens of ids inside copied spans, the longest span, and the spans."""
        spans, longest = self._spans(ids, min_len)
        return _stats(len(_as_ids(ids)), spans, longest)

    def repeats(self, top: int = 3) -> list[tuple[int, int]]:
        """The longest passages this text repeats: (offset, length) of up to `top` distinct
        ones, longest first, from the largest LCPs of pairs that cannot be extended leftwards.
        LCPs are searched up to MAX_REPEAT tokens (bounded work for any text); a chosen passage
        that long is then measured whole."""
        if len(self.sa) < 2:
            return []
        a, b = self.sa[:-1].astype(np.int64), self.sa[1:].astype(np.int64)
        left = (a == 0) | (b == 0)
        left |= self.tokens[np.maximum(a - 1, 0)] != self.tokens[np.maximum(b - 1, 0)]
        left = np.flatnonzero(left)  # in a text pasted twice, few pairs: the work they save
        score = np.zeros(len(a), np.int32)
        score[left] = pair_lcp(self.tokens, a[left], b[left], MAX_REPEAT)
        chosen: list[tuple[int, int, list[tuple[int, int]]]] = []
        best = np.argpartition(-score, min(max(50 * top, 200), len(score) - 1))[
            : max(50 * top, 200)
        ]
        for j in best[np.argsort(-score[best], kind="stable")].tolist():
            length = int(score[j])
            if length < 2 or len(chosen) == top:
                break
            spots = [(int(a[j]), int(a[j]) + length), (int(b[j]), int(b[j]) + length)]
            if any(s < e2 and s2 < e for s, e in spots for *_, seen in chosen for s2, e2 in seen):
                continue
            if length >= MAX_REPEAT:  # measured whole: one pair, bounded memory
                length = int(pair_lcp(self.tokens, a[j : j + 1], b[j : j + 1])[0])
                spots = [(s, s + length) for s, _ in spots]
            chosen.append((min(spots)[0], length, spots))
        chosen.sort(key=lambda c: -c[1])
        return [(offset, length) for offset, length, _ in chosen]


def _stats(n_tokens: int, spans: list[Span], longest: int) -> CopyStats:
    copied = sum(s.length for s in spans if s.split == "train")
    held = sum(s.length for s in spans if s.split != "train")
    return CopyStats(
        n_tokens,
        copied / n_tokens if n_tokens else 0.0,
        longest,
        spans,
        held / n_tokens if n_tokens else 0.0,
    )


# --- a run's data: both splits, cached, with locations ----------------------------------------
@dataclass(frozen=True)
class Location:
    """Where a span of the data lies in words: the file, its first and last line (1-based, in
    that file), the speaker (the last `NAME:` line at or above it; None where the text has
    none) and the lines around it as (line number, text)."""

    file: str
    line: int
    end_line: int
    speaker: str | None
    context: tuple[tuple[int, str], ...]


def source_files(data: str) -> list[Path]:
    """The files behind a data setting, or MissingDataError saying how to point at them."""
    try:
        return dataset.resolve_source(data)
    except DataError as e:
        raise MissingDataError(
            f"the data file of this run is missing ({e}); point --data at the text it was "
            "trained on"
        ) from e


def data_key(files: list[Path]) -> str:
    """The token cache's key for these files: sha256 of their bytes (as data.load_tokens)."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


def _cache_path(key: str, what: str) -> Path:
    return cache_dir() / "index" / f"gpt2-{key}-v{INDEX_VERSION}-{what}.npy"


def _cached(path: Path, make, check) -> np.ndarray:
    """An array from the cache (memory-mapped) when it is there and passes check, else made,
    saved atomically and returned."""
    if path.is_file():
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            if check(array):
                return array
        except (ValueError, OSError):
            pass
        path.unlink(missing_ok=True)  # corrupt or stale: build again
    array = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    return array


def looks_sorted(tokens: np.ndarray, sa: np.ndarray, samples: int = 256) -> bool:
    """Whether a cached suffix array can be trusted for these tokens: the right dtype and
    shape, and `samples` random adjacent suffixes in range and in order (a shuffled or stale
    file fails at once; checking every suffix would cost as much as building it)."""
    n = len(tokens)
    if sa.dtype != np.int32 or sa.shape != (n,):
        return False
    if n < 2:
        return bool(n == 0 or sa[0] == 0)
    j = np.random.default_rng().integers(1, n, min(samples, n - 1))
    a, b = np.asarray(sa[j - 1], np.int64), np.asarray(sa[j], np.int64)
    if min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n or np.any(a == b):
        return False
    sign = _first_diff(tokens, a, tokens, b, np.zeros(len(j), np.int64), TEXT_END, QUERY_END)[1]
    return bool(np.all(sign > 0))


@functools.lru_cache(maxsize=1)
def _token_bytes() -> np.ndarray:
    """Bytes of text behind each GPT-2 token id (0 past the vocabulary), indexable by uint16."""
    enc = dataset.get_tokenizer()
    lengths = np.zeros(1 << 16, np.int64)
    lengths[: enc.n_vocab] = [len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)]
    return lengths


def byte_offsets(tokens: np.ndarray) -> np.ndarray:
    """The byte offset in the source text of every STRIDE-th token (and of the end when the
    count divides): byte-level BPE tokens concatenate to the text's UTF-8 bytes exactly."""
    table = _token_bytes()
    out = np.empty(len(tokens) // STRIDE + 1, np.int64)
    total = 0
    for a in range(0, len(tokens), CHUNK):  # CHUNK is a multiple of STRIDE
        lengths = table[tokens[a : a + CHUNK].astype(np.intp)]
        before = total + np.cumsum(lengths) - lengths
        sampled = before[::STRIDE]
        out[a // STRIDE : a // STRIDE + len(sampled)] = sampled
        total += int(lengths.sum())
    if len(tokens) % STRIDE == 0:
        out[-1] = total
    return out


class CorpusIndex:
    """A run's data indexed for the meter: the train and val splits (each a SuffixIndex), and
    what maps a token offset back to the source text."""

    def __init__(
        self,
        data: str,
        val_fraction: float,
        files: list[Path],
        key: str,
        tokens: np.ndarray,
        train: SuffixIndex,
        val: SuffixIndex,
        offsets: np.ndarray,
    ):
        self.data, self.val_fraction, self.files, self.key = data, val_fraction, files, key
        self.tokens, self.train, self.val, self.offsets = tokens, train, val, offsets
        self._text: bytes | None = None

    # queries over both splits
    def copied_spans(self, ids, min_len: int = 8) -> list[Span]:
        """Spans found verbatim in the training text, and, where no training span covers them,
        pieces of at least min_len tokens found only in the held-out text (split 'val')."""
        return self._spans(ids, min_len)[0]

    def _spans(self, ids, min_len: int) -> tuple[list[Span], int]:
        train, longest = self.train._spans(ids, min_len)
        covered = np.zeros(len(_as_ids(ids)), bool)
        for s in train:
            covered[s.start : s.end] = True
        held = []
        # held-out matches that start inside a training span continue as ones that start at
        # its end, so only uncovered positions are searched; a match running on into the next
        # training span is cut where that begins
        for s in self.val._spans(ids, min_len, ~covered)[0]:
            free = np.concatenate(([False], ~covered[s.start : s.end], [False]))
            edges = np.flatnonzero(free[1:] != free[:-1])  # uncovered runs: starts, ends
            for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
                if b - a >= min_len:
                    held.append(Span(s.start + a, s.start + b, s.source_offset + a, b - a, "val"))
        return sorted(train + held), longest

    def copy_stats(self, ids, min_len: int = 8) -> CopyStats:
        """copy_stats of the training text, with the held-out-only spans and their share."""
        spans, longest = self._spans(ids, min_len)
        return _stats(len(_as_ids(ids)), spans, longest)

    def continuation(self, prompt_ids, k: int = 10) -> Continuation:
        """The infini-gram next token after a prompt, from the training text."""
        return self.train.continuation(prompt_ids, k)

    # locations
    def text(self) -> bytes:
        """The source text's bytes as tokenized (files joined by a blank line), read once;
        refused if the files changed since the index was built."""
        if self._text is None:
            raw = [p.read_bytes() for p in self.files]
            if hashlib.sha256(b"".join(raw)).hexdigest()[:32] != self.key:
                raise DataError(f"{self.data} changed since its index was built: load it again")
            self._text = b"\n\n".join(raw)
            self._lines = np.flatnonzero(np.frombuffer(self._text, np.uint8) == 10)
            self._file_starts = np.cumsum([0] + [len(r) + 2 for r in raw[:-1]])
            self._speakers = np.array([m.start(1) for m in SPEAKER.finditer(self._text)], np.int64)
        return self._text

    def byte_offset(self, token: int) -> int:
        """Byte offset in the source text of a token offset of the whole stream (train + val)."""
        base = token // STRIDE
        rest = self.tokens[base * STRIDE : token].astype(np.intp)
        return int(self.offsets[base] + _token_bytes()[rest].sum())

    def locate(
        self, offset: int, length: int = 1, split: str = "train", context: int = 1
    ) -> Location:
        """Where tokens [offset, offset + length) of a split come from: file, lines, speaker,
        and `context` lines either side (of a long span, only its first MAX_LINES lines)."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val' (got {split!r})")
        first = offset + (len(self.train) if split == "val" else 0)
        text = self.text()
        start, end = self.byte_offset(first), self.byte_offset(first + max(length, 1))
        while start < end - 1 and text[start] in b"\r\n":  # a span opening with a newline
            start += 1
        f = int(np.searchsorted(self._file_starts, start, side="right")) - 1
        file_top = int(np.searchsorted(self._lines, self._file_starts[f]))  # its first line
        file_end = self._file_starts[f + 1] - 2 if f + 1 < len(self.files) else len(text)
        file_bottom = int(np.searchsorted(self._lines, file_end))
        top = int(np.searchsorted(self._lines, start))
        bottom = int(np.searchsorted(self._lines, max(end - 1, start)))
        spoke = self._speakers[
            (self._speakers >= self._file_starts[f]) & (self._speakers <= self._line_start(top))
        ]
        speaker = None
        if len(spoke):
            at = int(spoke[-1])
            speaker = text[at : text.index(b":", at)].decode("utf-8", "replace")
        last = min(bottom + context, file_bottom, top + context + MAX_LINES - 1)
        lines = range(max(top - context, file_top), last + 1)
        return Location(
            self._file_name(f),
            top - file_top + 1,
            bottom - file_top + 1,
            speaker,
            tuple((g - file_top + 1, self._line_text(g)) for g in lines),
        )

    def _line_start(self, g: int) -> int:
        return int(self._lines[g - 1]) + 1 if g > 0 else 0

    def _line_text(self, g: int) -> str:
        stop = int(self._lines[g]) if g < len(self._lines) else len(self._text)
        return self._text[self._line_start(g) : stop].decode("utf-8", "replace").rstrip("\r")

    def _file_name(self, f: int) -> str:
        root = Path(self.data).expanduser()
        path = self.files[f]
        return str(path.relative_to(root)) if root.is_dir() else path.name


def load_index(data: str, val_fraction: float = 0.1) -> CorpusIndex:
    """The index of a run's data (its `data` and `val_fraction` settings), from the cache when
    this exact text was indexed before, else built and cached beside the token cache under the
    text's sha256. A changed file has a new key, so a stale index is never used."""
    files = source_files(data)
    key = data_key(files)
    tokens = dataset.load_tokens(data)
    train, val = dataset.split(tokens, val_fraction)
    tag = f"{key}-val{float(val_fraction)!r}"
    indexes = []
    for name, part in (("train", train), ("val", val)):
        sa = _cached(
            _cache_path(tag, f"{name}-sa"),
            lambda part=part: build_suffix_array(part),
            lambda a, part=part: looks_sorted(part, a),
        )
        indexes.append(SuffixIndex(part, sa, name))
    size = sum(p.stat().st_size for p in files) + 2 * (len(files) - 1)
    offsets = _cached(
        _cache_path(key, f"offsets{STRIDE}"),
        lambda: byte_offsets(tokens),
        lambda a: (
            a.dtype == np.int64
            and a.shape == (len(tokens) // STRIDE + 1,)
            and (len(a) == 0 or (a[0] == 0 and a[-1] <= size))
            and bool(np.all(np.diff(a) >= 0))
        ),
    )
    return CorpusIndex(data, val_fraction, files, key, tokens, *indexes, offsets)


def decode(ids) -> str:
    """Text of token ids (an array, tensor or list); split characters show as '\ufffd'."""
    return dataset.get_tokenizer().decode([int(i) for i in ids], errors="replace")


def format_report(index: CorpusIndex, ids: list[int], stats: CopyStats, min_len: int) -> str:
    """The CLI's plain-text report: the share copied, then each span with its source lines."""
    train = [s for s in stats.spans if s.split == "train"]
    lines = [
        f"{stats.share:.1%} of {stats.tokens:,} tokens copied from the training text in "
        f"{len(train)} span(s) of >= {min_len} tokens (longest {stats.longest})"
    ]
    if stats.held_out_share:
        lines.append(f"{stats.held_out_share:.1%} more found only in the held-out text")
    for s in stats.spans:
        where = index.locate(s.source_offset, s.length, s.split, context=0)
        origin = "training text" if s.split == "train" else "also occurs in the held-out text"
        lines.append(
            f"\n{s.length} tokens at {s.start}, {origin}: {where.file} line "
            f"{where.line:,}" + (f", {where.speaker}" if where.speaker else "")
        )
        lines += [f"  | {text}" for text in decode(ids[s.start : s.end]).splitlines()]
    return "\n".join(lines)
