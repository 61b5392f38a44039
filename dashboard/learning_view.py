"""The Inspect page's "How it learned" view of a run: induction heads by step, per-token
learning curves (dashboard.token_curves_view) and memorization over training with extraction,
from the records the engine wrote at each eval (core.dynamics)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.data.dataset import load_tokens, split
from core.dynamics.induction import INDUCTION_THRESHOLD
from core.dynamics.memorization_metrics import extract, verbatim_passages
from core.store.rundir import RunDir
from dashboard.checkpoint_picker import load_cached
from dashboard.colors import run_color
from dashboard.dynamics_data import (
    SOURCES,
    DynamicsSeries,
    beats_bigram,
    memorization_figure,
    ngram_figure,
)
from dashboard.token_curves_view import token_curves_tab

TABS = ["Induction heads", "Per-token curves", "Memorization", "n-gram stages"]
NO_RECORDS = (
    "Run {run} has no training-dynamics records: it was made before they existed, with "
    "dynamics_every = 0, or has not reached its first eval."
)
HEATMAP_SOURCE = (
    "Every head's prefix-matching score at every eval (Olsson et al. 2022, arXiv 2209.11895): "
    "the attention a token of a repeated random sequence pays to the token after its first "
    f"copy; 1 is a perfect induction head, about 1/T uniform attention, {INDUCTION_THRESHOLD:g} "
    "the threshold this tool calls formed."
)


def _head_heatmap(d: DynamicsSeries) -> go.Figure | None:
    matrix = d.head_matrix()
    if matrix is None:
        return None
    layers, heads = next(h.shape for h in reversed(d.heads) if h is not None)
    labels = [f"L{layer + 1} H{head + 1}" for layer in range(layers) for head in range(heads)]
    return go.Figure(
        go.Heatmap(
            z=matrix.T,
            x=np.asarray(d.steps),
            y=labels,
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            colorbar=dict(title="score"),
            hovertemplate="%{y}<br>step %{x}<br>prefix matching %{z:.3f}<extra></extra>",
        ),
        layout=dict(
            height=max(260, 18 * len(labels) + 80),
            margin=dict(l=10, r=10, t=10, b=40),
            xaxis=dict(title="step"),
            yaxis=dict(title="layer, head", autorange="reversed"),
            template={},
        ),
    )


def induction_tab(d: DynamicsSeries) -> None:
    fig = _head_heatmap(d)
    if fig is None:
        st.info(NO_RECORDS.format(run=d.run.run_id))
        return
    formed = d.formed()
    if formed:
        st.success(f"An {formed.label()} (score {formed.score:.2f}).")
    else:
        best = d.best_scores()
        at = int(np.nanargmax(best))
        st.caption(
            f"No head has reached {INDUCTION_THRESHOLD:g} yet: the best score was "
            f"{best[at]:.3f}, at step {d.steps[at]:,}."
        )
    st.plotly_chart(fig, key="ins_dyn_heads", config={"displaylogo": False})
    st.caption(HEATMAP_SOURCE)


def _extraction_summary(record: dict, where: str) -> str:
    return (
        f"{where}: {record['extracted']:.0%} of {record['k']} training prefixes of "
        f"{record['prefix_len']} tokens continued verbatim for {record['suffix_len']} tokens."
    )


def memorization_tab(run: RunDir, d: DynamicsSeries, extraction_fn) -> None:
    """Exact memorization over training, extraction at the run's end and on demand."""
    if not len(d):
        st.info(NO_RECORDS.format(run=run.run_id))
    else:
        fig = memorization_figure([d], {}, run_color)
        st.plotly_chart(fig, key="ins_dyn_memo", config={"displaylogo": False})
        st.caption(SOURCES["memorization"])
        train, val = d.column("train_exact")[-1], d.column("val_exact")[-1]
        st.caption(
            f"At step {d.steps[-1]:,}: train {train:.1%}, val {val:.1%}, gap {train - val:+.1%}."
        )
    st.markdown(
        "**Extraction** (Carlini et al. 2023, arXiv 2202.07646; Biderman et al. 2023, "
        "arXiv 2304.11158)"
    )
    st.caption(
        "Prefixes of the training text, spread evenly over it, continued greedily by the "
        "model; a prefix is extracted when the continuation is the training text's, token for "
        "token."
    )
    if d.extraction:
        e = d.extraction
        st.caption(_extraction_summary(e, f"At the end of the run (step {e['step']:,})"))
        if e.get("offsets"):
            n = len(e["offsets"])
            with st.expander(f"The {n} passage{'' if n == 1 else 's'} that came out verbatim"):
                cfg = run.read_config()
                length = int(e["prefix_len"] + e["suffix_len"])
                st.html(passages_html(_passages(cfg.data, cfg.val_fraction, e["offsets"], length)))
    extraction_fn()


@st.cache_data(max_entries=16, show_spinner="Finding the passages in the training text...")
def _passages(data: str, val_fraction: float, offsets: list, length: int):
    return verbatim_passages(data, val_fraction, offsets, length)


@st.cache_data(max_entries=8, show_spinner="Continuing training prefixes greedily...")
def _extract(path: str, mtime: float, device: str, data: str, val_fraction: float):
    model = load_cached(Path(path), device).model
    found = extract(model, split(load_tokens(data), val_fraction)[0], device)
    length = found.prefix_len + found.suffix_len
    return found.record(), _passages(data, val_fraction, found.record()["offsets"], length)


def extraction_panel(path: Path, cfg, device: str) -> None:
    """Extraction on the page's checkpoint, on demand, with the verbatim passages' sources."""
    if st.button("Run extraction on this checkpoint", key="ins_extract"):
        st.session_state["ins_extract_for"] = str(path)
    if st.session_state.get("ins_extract_for") != str(path):
        return
    mtime = path.stat().st_mtime
    record, passages = _extract(str(path), mtime, device, cfg.data, cfg.val_fraction)
    st.caption(_extraction_summary(record, f"This checkpoint ({path.name})"))
    if passages:
        st.html(passages_html(passages))


def ngram_tab(d: DynamicsSeries) -> None:
    """The network against the n-gram models, and when it first beat the bigram model."""
    if not np.isfinite(d.column("bigram_loss")).any():
        st.info(NO_RECORDS.format(run=d.run.run_id).replace("training-dynamics", "n-gram"))
        return
    step = beats_bigram(d)
    if step is not None:
        st.success(f"Beats the bigram model from step {step:,}.")
    else:
        st.caption("Not below the bigram model's loss yet.")
    st.plotly_chart(
        ngram_figure([d], run_color), key="ins_dyn_ngram", config={"displaylogo": False}
    )
    st.caption(SOURCES["ngram"])


def passages_html(passages) -> str:
    """Verbatim passages as (text, where) pairs, escaped, one block each."""
    return "".join(
        f"<div style='margin:6px 0'><div style='font-size:0.85em;color:#666'>"
        f"{html.escape(where)}</div><pre style='white-space:pre-wrap;margin:0'>"
        f"{html.escape(text)}</pre></div>"
        for text, where in passages
    )


def learning_view(run: RunDir, extraction_fn) -> None:
    """The three tabs for a run; extraction_fn draws the on-demand extraction of the page's
    checkpoint (it needs the loaded model)."""
    d = DynamicsSeries(run)
    d.refresh()
    heads, tokens, memo, ngram = st.tabs(TABS)
    with heads:
        induction_tab(d)
    with tokens:
        token_curves_tab(run)
    with memo:
        memorization_tab(run, d, extraction_fn)
    with ngram:
        ngram_tab(d)
