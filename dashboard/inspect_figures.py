"""The Inspect page's figures and tables: the logit lens grid (nostalgebraist's logit lens), the
attention maps of every layer and head, one head's map up close, the head scores, and the
tables of surprising tokens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import token_view as tv

GRID_CELLS = 32  # a small map shows at most this many rows and columns (block maxima beyond)


def lens_figure(lens) -> go.Figure:
    probs = np.array(lens.grid("prob"), dtype=float)
    width = tv.cell_chars(len(lens.positions))  # labels that fit their cells, never overlap
    texts = [[tv.readable(t) for t in row] for row in lens.grid("text")]
    labels = [[tv.clip(t, width) for t in row] for row in texts]
    inputs = [tv.readable(lens.tokens[p]) for p in lens.positions]
    cols = list(range(len(lens.positions)))
    nxt = [[("-" if q is None else tv.fmt_prob(q)) for q in row] for row in lens.grid("next_prob")]
    custom = np.dstack(
        [
            np.array(texts, dtype=object),
            np.array(nxt, dtype=object),
            np.array([inputs] * len(lens.layers), dtype=object),
        ]
    )
    fig = go.Figure(
        go.Heatmap(
            z=probs,
            x=cols,
            y=lens.layers,
            text=labels,
            texttemplate="%{text}",
            textfont=dict(size=10 if width >= 6 else 8),
            customdata=custom,
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            colorbar=dict(title="p(top)", tickformat=".0%"),
            hovertemplate="%{y}, after %{customdata[2]}<br>top: %{customdata[0]} (%{z:.1%})<br>"
            "p(actual next token): %{customdata[1]}<extra></extra>",
        )
    )
    fig.update_xaxes(
        tickvals=cols,
        ticktext=inputs,
        tickangle=-60,
        title="input token (each column predicts the token after it)",
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        height=max(260, 34 * len(lens.layers) + 170), margin=dict(l=10, r=10, t=20, b=10)
    )
    return fig


def head_label(s) -> str:
    return f"L{s.layer + 1} H{s.head + 1}" + (f" · {s.kind}" if s.kind else "")


def pooled(weights: np.ndarray, f: int) -> np.ndarray:
    """(..., T, T) -> (..., ceil(T/f), ceil(T/f)): the largest weight in each f x f block, so a
    sharp pattern (a diagonal, a column) stays visible in a small map."""
    T = weights.shape[-1]
    n = -(-T // f)
    pad = [(0, 0)] * (weights.ndim - 2) + [(0, n * f - T)] * 2
    blocks = np.pad(weights, pad).reshape(*weights.shape[:-2], n, f, n, f)
    return blocks.max(axis=(-3, -1))


def attention_grid(weights: np.ndarray, scores) -> go.Figure:
    n_layer, n_head, T = weights.shape[:3]
    f = -(-T // GRID_CELLS)
    small = pooled(weights, f) if f > 1 else weights
    ticks = list(range(0, T, f))
    titles = [head_label(s) for s in scores]
    fig = make_subplots(
        rows=n_layer,
        cols=n_head,
        subplot_titles=titles,
        horizontal_spacing=min(0.02, 0.3 / n_head),
        vertical_spacing=min(0.3 / n_layer, 0.12),
    )
    what = (
        "query %{y} → key %{x}"
        if f == 1
        else f"queries %{{y}}+{f - 1} → keys %{{x}}+{f - 1}, largest"
    )
    for s in scores:
        fig.add_trace(
            go.Heatmap(
                z=small[s.layer, s.head],
                x=ticks,
                y=ticks,
                coloraxis="coloraxis",
                hovertemplate=f"{head_label(s)}<br>{what}: %{{z:.2f}}<extra></extra>",
            ),
            row=s.layer + 1,
            col=s.head + 1,
        )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_annotations(font_size=10)
    side = max(70, min(150, 1000 // n_head))
    fig.update_layout(
        height=n_layer * (side + 22) + 60,
        width=n_head * (side + 12) + 130,
        margin=dict(l=10, r=10, t=30, b=10),
        coloraxis=dict(colorscale="Blues", cmin=0, cmax=1, colorbar=dict(title="weight")),
    )
    return fig


def attention_figure(w: np.ndarray, tokens: list[str], title: str) -> go.Figure:
    T = len(tokens)
    z = np.where(np.tril(np.ones((T, T), bool)), w, np.nan)  # the causal upper half left blank
    labels = [f"{i}: {tv.readable(t)}" for i, t in enumerate(tokens)]
    ticks = list(range(T))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=ticks,
            y=ticks,
            colorscale="Blues",
            zmin=0,
            zmax=1,
            customdata=np.array([[(q, k) for k in labels] for q in labels], dtype=object),
            hovertemplate="query %{customdata[0]}<br>key %{customdata[1]}"
            "<br>weight %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(
        tickvals=ticks,
        ticktext=[tv.readable(t) for t in tokens],
        tickangle=-60,
        title="key (attended to)",
    )
    fig.update_yaxes(
        tickvals=ticks,
        ticktext=[tv.readable(t) for t in tokens],
        autorange="reversed",
        title="query",
    )
    side = max(420, min(900, 16 * T + 200))
    fig.update_layout(title=title, height=side, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def head_table(scores) -> pd.DataFrame:
    """Every head's pattern scores (previous-token, first-token, induction) and its kind."""
    return pd.DataFrame(
        [
            {
                "layer": x.layer + 1,
                "head": x.head + 1,
                "previous-token": round(x.previous_token, 3),
                "first-token": round(x.first_token, 3),
                "induction": round(x.induction, 3),
                "kind": x.kind,
            }
            for x in scores
        ]
    )


def surprising_table(res) -> pd.DataFrame:
    """The most surprising tokens of a surprise result: bits, probability, rank, and what the
    model expected instead."""
    return pd.DataFrame(
        [
            {
                "position": t.index,
                "token": tv.readable(t.text),
                "bits": round(t.bits, 2),
                "p": tv.fmt_prob(t.prob),
                "rank": t.rank,
                "the model expected": ", ".join(
                    f"{tv.readable(x)} {tv.fmt_prob(p)}" for _, x, p in t.top[:3]
                ),
            }
            for t in res.most_surprising
        ]
    )


def changed_table(rows, step_a: int, step_b: int) -> pd.DataFrame:
    """Tokens whose surprise changed most between two checkpoints, with both figures."""
    return pd.DataFrame(
        [
            {
                "position": t.index,
                "token": tv.readable(t.text),
                f"bits, step {step_a}": round(t.bits_a, 2),
                f"bits, step {step_b}": round(t.bits_b, 2),
                "change": round(t.delta_bits, 2),
            }
            for t in rows
        ]
    )
