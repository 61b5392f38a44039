"""A run's training-dynamics records (core.dynamics: kinds `dynamics` and `extraction` in
metrics.jsonl) as arrays, read incrementally, and the figures the Live page draws from them
(no Streamlit). Only lines naming those kinds are parsed, so a long run's train records cost a
byte search, not a JSON parse."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.dynamics.induction import INDUCTION_THRESHOLD, first_crossing
from core.dynamics.ngram_stages import first_below
from core.store.metrics import MetricsReader, parse_records
from core.store.rundir import RunDir
from dashboard.charts import HLine, Trace, empty_note, line_figure

SCALARS = (
    "repeat_first_loss",
    "repeat_second_loss",
    "probe_loss",
    "context_icl",
    "train_exact",
    "val_exact",
    "unigram_loss",
    "bigram_loss",
    "trigram_loss",
    "bigram_kl",
    "probe_s",
)
_KINDS = (b'"dynamics"', b'"extraction"')

SOURCES = {
    "induction": "The best head's prefix-matching score at each eval: its attention from a "
    "token of a repeated random sequence to the token after that token's first copy (Olsson "
    f"et al. 2022, arXiv 2209.11895); at {INDUCTION_THRESHOLD:.0%} the head counts as an "
    "induction head, marked on the loss chart.",
    "icl": "In-context learning (Olsson et al. 2022): the loss on the second copy of a "
    "repeated random sequence minus the first, and on the val probe the loss of tokens late "
    "in their context minus early ones; below 0, the model gains from its context.",
    "memorization": "Exact memorization (Tirumala et al. 2022, arXiv 2205.10770): the share "
    "of tokens whose most likely prediction is the true next one, on up to 1,024 training "
    "and 1,024 val tokens; a widening gap is memorization, shown beside the samples' copy rate.",
    "ngram": "Beyond n-grams (Belrose et al. 2024, arXiv 2402.04362): the network's loss on the "
    "val probe against the unigram, bigram and trigram models of the training split on the "
    "same tokens, and the KL divergence from its next-token distribution to the bigram "
    "model's (first 256 tokens); networks learn the low-order statistics first.",
}
NGRAMS = ("unigram", "bigram", "trigram")


@dataclass(frozen=True)
class Formed:
    """Where an induction head first reached the threshold."""

    step: int
    layer: int  # 0-based
    head: int
    score: float

    def label(self) -> str:
        return f"induction head: layer {self.layer + 1}, head {self.head + 1}, step {self.step:,}"


class DynamicsSeries:
    """One run's dynamics records as arrays, brought up to date by refresh()."""

    def __init__(self, run: RunDir):
        self.run = run
        self.reader = MetricsReader(run.metrics_path)
        self._reset()

    def _reset(self) -> None:
        self.steps: list[int] = []
        self.heads: list[np.ndarray | None] = []  # (n_layer, n_head) per eval
        self.values: dict[str, list[float]] = {name: [] for name in SCALARS}
        self.extraction: dict | None = None

    def refresh(self) -> int:
        """Read the dynamics and extraction records appended since the last call."""
        chunk, restarted = self.reader.read_new_bytes()
        if restarted:
            self._reset()
        lines = [line for line in chunk.splitlines() if any(k in line for k in _KINDS)]
        records = parse_records(b"\n".join(lines) + b"\n") if lines else []
        for r in records:
            if r["kind"] == "extraction":
                self.extraction = r
            elif r["kind"] == "dynamics":
                self._add(r)
        return len(records)

    def _add(self, r: dict) -> None:
        if self.steps and r["step"] <= self.steps[-1]:  # re-read after a resume
            keep = int(np.searchsorted(self.steps, r["step"]))
            del self.steps[keep:], self.heads[keep:]
            for column in self.values.values():
                del column[keep:]
        self.steps.append(r["step"])
        self.heads.append(_head_grid(r))
        for name in SCALARS:
            self.values[name].append(float(r.get(name, np.nan)))

    def __len__(self) -> int:
        return len(self.steps)

    def column(self, name: str) -> np.ndarray:
        """A recorded column, or repeat_icl: the second copy's loss minus the first's."""
        if name == "repeat_icl":
            return self.column("repeat_second_loss") - self.column("repeat_first_loss")
        return np.asarray(self.values[name], dtype=np.float64)

    def best_scores(self) -> np.ndarray:
        """The highest prefix-matching score of any head at each eval (NaN where none)."""
        return np.array([h.max() if h is not None else np.nan for h in self.heads])

    def head_matrix(self) -> np.ndarray | None:
        """(evals, n_layer * n_head) scores of the evals with the latest shape, or None."""
        grids = [h for h in self.heads if h is not None]
        if not grids:
            return None
        shape = grids[-1].shape
        blank = np.full(int(np.prod(shape)), np.nan)
        rows = [h.reshape(-1) if h is not None and h.shape == shape else blank for h in self.heads]
        return np.stack(rows)

    def formed(self, threshold: float = INDUCTION_THRESHOLD) -> Formed | None:
        """The first eval at which any head's score reached the threshold."""
        best = self.best_scores()
        step = first_crossing(self.steps, np.nan_to_num(best, nan=-1.0), threshold)
        if step is None:
            return None
        grid = self.heads[self.steps.index(step)]
        layer, head = np.unravel_index(int(np.argmax(grid)), grid.shape)
        return Formed(step, int(layer), int(head), float(grid[layer, head]))


def beats_bigram(d: DynamicsSeries) -> int | None:
    """The first eval step at which the network's val-probe loss was below the bigram's."""
    bigram = d.column("bigram_loss")
    if not len(d) or not np.isfinite(bigram).any():
        return None
    return first_below(d.steps, d.column("probe_loss"), float(np.nanmax(bigram)))


def _head_grid(r: dict) -> np.ndarray | None:
    scores, layers, heads = r.get("head_scores"), r.get("n_layer"), r.get("n_head")
    if not scores or not layers or not heads or len(scores) != int(layers) * int(heads):
        return None
    return np.asarray(scores, dtype=np.float64).reshape(int(layers), int(heads))


def dynamics_for(store: MutableMapping, run: RunDir) -> DynamicsSeries:
    """The DynamicsSeries of a run from a store (st.session_state), created once, refreshed."""
    key = f"dyn:{Path(run.path).resolve()}"
    series = store.get(key)
    if series is None:
        series = store[key] = DynamicsSeries(run)
    series.refresh()
    return series


# --- figures ----------------------------------------------------------------------------------
def _traces(all_dyn, columns, color_of, *, scale: float = 1.0, yaxis: str = "y") -> list[Trace]:
    """One trace per run and column: (column, label, style) with values times scale."""
    one = len(all_dyn) == 1
    out = []
    for d in all_dyn:
        rid = d.run.run_id
        for column, label, style in columns:
            y = d.best_scores() if column == "best" else d.column(column)
            keep = np.isfinite(y)
            if keep.any():
                name = label if one else f"{rid} {label}"
                x = np.asarray(d.steps, dtype=np.float64)[keep]
                out.append(Trace(x, y[keep] * scale, name, color_of(rid), style, yaxis=yaxis))
    return out


def induction_figure(all_dyn: list[DynamicsSeries], color_of):
    """The best head's prefix-matching score per run, with the threshold."""
    traces = _traces(all_dyn, [("best", "best head", "line")], color_of)
    if not traces:
        return empty_note("No induction scores yet: measured at every eval", height=300)
    return line_figure(
        traces,
        title="Induction heads",
        x_title="step",
        y_title="prefix-matching score (best head)",
        hlines=[HLine(INDUCTION_THRESHOLD, f"induction head at {INDUCTION_THRESHOLD:g}")],
        y_format=".3f",
        height=300,
        uirevision="dyn-induction",
    )


def icl_figure(all_dyn: list[DynamicsSeries], color_of):
    """The in-context-learning scores per run: repeated tokens and real text."""
    traces = _traces(
        all_dyn,
        [("repeat_icl", "repeated tokens", "line"), ("context_icl", "val text", "dash")],
        color_of,
    )
    if not traces:
        return empty_note("No in-context-learning scores yet", height=300)
    return line_figure(
        traces,
        title="In-context learning",
        x_title="step",
        y_title="ICL score (nats: late minus early)",
        hlines=[HLine(0.0, "no gain from context")],
        y_format=".3f",
        height=300,
        uirevision="dyn-icl",
    )


def memorization_figure(all_dyn: list[DynamicsSeries], copy_rates: dict, color_of):
    """Exact memorization on the train and val probes, and the samples' copy rate, in %."""
    traces = _traces(
        all_dyn,
        [
            ("train_exact", "exact memorization, train", "line"),
            ("val_exact", "exact memorization, val", "dash"),
        ],
        color_of,
        scale=100.0,
    )
    for d in all_dyn:
        steps, rates = copy_rates.get(d.run.run_id, ([], []))
        keep = np.isfinite(np.asarray(rates, dtype=np.float64))
        if keep.any():
            name = "copy rate" if len(all_dyn) == 1 else f"{d.run.run_id} copy rate"
            x, y = np.asarray(steps, np.float64)[keep], np.asarray(rates, np.float64)[keep]
            traces.append(Trace(x, y * 100, name, color_of(d.run.run_id), "copy"))
    if not any(t.style != "copy" for t in traces):
        return empty_note("No memorization figures yet", height=300)
    return line_figure(
        traces,
        title="Memorization",
        x_title="step",
        y_title="% of tokens",
        y_format=".1f",
        height=300,
        uirevision="dyn-memorization",
    )


def ngram_figure(all_dyn: list[DynamicsSeries], color_of):
    """The network's val-probe loss and its KL to the bigram model, with the n-gram losses."""
    traces = _traces(
        all_dyn,
        [("probe_loss", "network (val probe)", "line"), ("bigram_kl", "KL to bigram", "dash")],
        color_of,
    )
    lines = []
    for name in NGRAMS:
        values = [d.column(f"{name}_loss") for d in all_dyn if len(d)]
        finite = [v[np.isfinite(v)] for v in values if np.isfinite(v).any()]
        if finite:
            lines.append(HLine(float(finite[0][-1]), f"{name} {finite[0][-1]:.2f}"))
    if not lines:
        return empty_note("No n-gram baselines recorded", height=300)
    return line_figure(
        traces,
        title="Beyond n-grams",
        x_title="step",
        y_title="nats per token",
        hlines=lines,
        y_format=".3f",
        height=300,
        uirevision="dyn-ngram",
    )
