"""A run's training text for the pages: its suffix-array index (cached once per data and split),
the spans of a generated text copied from it with their sources, and what it continues a prompt
with. core.data.corpus does the work; this module caches it and puts it in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from core.data import corpus
from core.data.tokens import token_text
from dashboard.token_view import SpanNote, readable


@st.cache_resource(max_entries=4, show_spinner="Indexing the training text (once per data file)...")
def _index(data: str, val_fraction: float, stamp: tuple) -> corpus.CorpusIndex:
    return corpus.load_index(data, val_fraction)


def corpus_index(cfg) -> tuple[corpus.CorpusIndex | None, str | None]:
    """The index of a run's data (cfg.data, cfg.val_fraction), or None and a message saying why
    not (the data file moved, changed or vanished since training). The files' sizes and times
    are part of the cache key, so a changed file is indexed again."""
    try:
        files = corpus.source_files(cfg.data)
        stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        return _index(cfg.data, float(cfg.val_fraction), stamp), None
    except (ValueError, OSError) as e:
        return None, (
            f"The training text of this run cannot be read, so nothing can be compared "
            f"with it: {e}. The rest of the page works."
        )


@dataclass
class CopyReport:
    """Copied spans of a generated text: per token index the span it lies in (for the popovers),
    the summary line, and one table row per span."""

    stats: corpus.CopyStats
    notes: dict[int, SpanNote] = field(default_factory=dict)
    summary: str = ""
    rows: list[dict] = field(default_factory=list)


def _where(loc: corpus.Location) -> str:
    lines = (
        f"line {loc.line:,}" if loc.end_line == loc.line else f"lines {loc.line:,}-{loc.end_line:,}"
    )
    return f"{loc.file} {lines}" + (f", {loc.speaker}" if loc.speaker else "")


def copy_report(
    index: corpus.CorpusIndex, ids: list[int], min_len: int, what: str = "generated"
) -> CopyReport:
    """Spans of >= min_len tokens of ids found verbatim in the training text (or only in the
    held-out text), with their source lines, speaker and context, and a summary line:
    'x% of the generated tokens lie in copied spans; the longest is n tokens (lines a-b)'."""
    stats = index.copy_stats(ids, min_len)
    report = CopyReport(stats)
    longest = None
    for s in stats.spans:
        loc = index.locate(s.source_offset, s.length, s.split, context=1)
        context = "\n".join(f"{n:>6}  {text}" for n, text in loc.context)
        note = SpanNote(s.split, s.length, _where(loc), context)
        for i in range(s.start, s.end):
            report.notes[i] = note
        report.rows.append(
            {
                "tokens": f"{s.start}-{s.end - 1}",
                "length": s.length,
                "found in": "training text" if s.split == "train" else "also in held-out text",
                "source": note.where,
                "text": corpus.decode(ids[s.start : s.end]),
            }
        )
        if s.split == "train" and (longest is None or s.length > longest[0].length):
            longest = (s, loc)
    if longest is None:
        report.summary = (
            f"No span of {min_len} or more {what} tokens occurs verbatim in the training text."
        )
    else:
        s, loc = longest
        lines = (
            f"line {loc.line:,}"
            if loc.end_line == loc.line
            else f"lines {loc.line:,}-{loc.end_line:,}"
        )
        report.summary = (
            f"{stats.share:.0%} of the {what} tokens lie in copied spans of "
            f"{min_len} or more tokens; the longest is {s.length} tokens ({lines}"
            f"{', ' + loc.speaker if loc.speaker else ''})."
        )
    if stats.held_out_share:
        report.summary += (
            f" {stats.held_out_share:.0%} more occur only in the held-out text (not trained on)."
        )
    return report


@dataclass
class ContinuationReport:
    """What the training text continues a prompt with, in words and rows."""

    line: str
    rows: list[dict]


def continuation_report(
    index: corpus.CorpusIndex, prompt_ids: list[int], k: int = 10
) -> ContinuationReport:
    """The infini-gram view of the next token: after the prompt's longest suffix that occurs in
    the training text, the tokens that follow it there and their shares."""
    c = index.continuation(prompt_ids, k)
    rows = [
        {"token": readable(token_text(t)), "id": t, "count": n, "share": p}
        for t, n, p in zip(c.tokens, c.counts, c.probs)
    ]
    if c.suffix_len == 0 or not rows:
        line = (
            "No token at the end of the prompt occurs in the training text with anything after it."
            if not rows
            else "The prompt's last token does not occur in the training text: the shares below "
            "are of all its tokens."
        )
        return ContinuationReport(line, rows)
    suffix = corpus.decode(prompt_ids[-c.suffix_len :])
    shown = suffix if len(suffix) <= 60 else "…" + suffix[-60:]
    top = rows[0]
    last = "token" if c.suffix_len == 1 else f"{c.suffix_len} tokens"
    line = (
        f"The training text continues ‘{top['token']}’ ({top['share']:.0%}) after the "
        f"prompt's last {last} (‘{readable(shown)}’, {c.count:,} "
        f"occurrence{'s' if c.count != 1 else ''})."
    )
    return ContinuationReport(line, rows)
