"""Reference losses on the Live page's loss chart: dashed lines for the n-gram models of each
run's training split and, on tiny shakespeare, published figures on the same text
(core.data.baselines); val loss in bits per character on the chart's hover. No Streamlit."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.data.baselines import Baselines
from dashboard.charts import HLine, _reference_lines

# The lines drawn (the trigram would crowd the bigram's label; its figure is in the caption).
DRAWN = {
    "unigram model": "#9c755f",
    "bigram model": "#9c755f",
    "nanoGPT char-level": "#b07aa1",
    "GPT-2 124M, no fine-tuning": "#b07aa1",
}
EXPLAIN = (
    "Dashed reference lines: what simpler models reach on this val split. The unigram and "
    "bigram models are counts of the run's own training split (interpolated Kneser-Ney "
    "smoothing), measured on its val split"
)
EXPLAIN_PUBLISHED = (
    "; on tiny shakespeare also nanoGPT's character-level model (val 1.4697 nats per "
    "character x 3.093 characters per GPT-2 token = 4.55, karpathy/nanoGPT) and GPT-2 124M "
    "without fine-tuning (val 4.03, nanoGPT issue 210)"
)


@dataclass(frozen=True)
class RunBaselines:
    """A run's baselines, or why there are none (its data is gone)."""

    run_id: str
    baselines: Baselines | None
    problem: str = ""


def reference_lines(found: list[RunBaselines]) -> list[HLine]:
    """One labelled line per reference drawn, once per distinct value (runs on the same data
    share them); the label names the data set's run when the overlaid runs differ in data."""
    distinct = {
        tuple(r.loss for r in f.baselines.references) for f in found if f.baselines is not None
    }
    lines: list[HLine] = []
    for f in found:
        if f.baselines is None:
            continue
        suffix = f" ({f.run_id})" if len(distinct) > 1 else ""
        for ref in f.baselines.references:
            if ref.name in DRAWN and all(abs(h.y - ref.loss) > 1e-12 for h in lines):
                lines.append(HLine(ref.loss, f"{ref.name} {ref.loss:.2f}{suffix}", DRAWN[ref.name]))
    return lines


def add_reference_lines(fig, lines: list[HLine], log_y: bool, vlines: list | None = None) -> None:
    """Add horizontal (and vertical) lines and their labels to a loss figure made by
    line_figure, beside its own; a horizontal label sits above its line, or below where the
    line above is close."""
    if not (lines or vlines) or not fig.data:  # an empty-note figure: nothing drawn yet
        return
    shapes, annotations = _reference_lines(lines, vlines or [], log_y)
    ordered = sorted(range(len(lines)), key=lambda i: lines[i].y)
    for below, above in zip(ordered, ordered[1:]):
        if lines[above].y - lines[below].y < 0.6:  # close: hang the lower label under its line
            annotations[below]["yanchor"] = "top"
    fig.layout.shapes = tuple(fig.layout.shapes) + tuple(shapes)
    fig.layout.annotations = tuple(fig.layout.annotations) + tuple(annotations)


def add_bits_per_char(fig, found: list[RunBaselines]) -> None:
    """Val loss in bits per character of each run's val split on the val points' hover."""
    by_run = {f.run_id: f.baselines for f in found if f.baselines is not None}
    for trace in fig.data:
        rid, _, what = (trace.uid or "").rpartition(":")
        if what != "val_loss" or rid not in by_run or trace.y is None:
            continue
        per_char = by_run[rid].chars_per_token * math.log(2)
        trace.customdata = [float(y) / per_char for y in trace.y]
        trace.hovertemplate = "%{y:.4f} nats/token · %{customdata:.3f} bits/char"


def explanation(found: list[RunBaselines], last_val: dict[str, float]) -> str:
    """The sentence under the loss chart: what the lines are and where each comes from, the
    trigram's figure, the runs' latest val loss in bits per character, and where our val split
    differs from nanoGPT's."""
    usable = [f for f in found if f.baselines is not None]
    if not usable:
        problems = "; ".join(f"{f.run_id}: {f.problem}" for f in found if f.problem)
        return f"No reference lines: {problems}" if problems else ""
    text = EXPLAIN + (EXPLAIN_PUBLISHED if any(f.baselines.published for f in usable) else "")
    parts = [text + "."]
    for f in usable:
        refs = {r.name: r.loss for r in f.baselines.references}
        where = f"{f.run_id}: " if len(usable) > 1 else ""
        line = f"{where}trigram model {refs['trigram model']:.2f} nats/token"
        val = last_val.get(f.run_id)
        if val is not None and math.isfinite(val):
            line += f"; latest val loss {val:.4f} = {f.baselines.bits_per_char(val):.3f} bits/char"
        parts.append(line + ".")
    note = next((f.baselines.split_note() for f in usable if f.baselines.published), "")
    return " ".join(parts + [note]).strip()
