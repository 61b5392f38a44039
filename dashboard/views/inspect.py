"""Inspect: look inside a checkpoint of a run. Token surprise (what each token of a text cost the
model, and what changed between two checkpoints), the logit lens (what each layer already
predicts) and attention (where each head looks). core does the work; results are cached per
checkpoint file and text, so changing a view's control does not compute again."""

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.data.tokens import encode_for_model
from core.inspect.attention import attention_weights, head_scores
from core.inspect.logit_lens import logit_lens_text
from core.inspect.surprise import random_val_passage, surprise, surprise_diff
from dashboard import token_view as tv
from dashboard.checkpoint_picker import (
    cached_model,
    choices,
    device_options,
    load_cached,
    missing_notes,
    pick_choice,
    pick_run,
    switch_to,
)

LENS_MAX = 64  # logit lens columns at most: each cell is a vocabulary-wide read-out
ATTENTION_MAX = 64  # attention positions at most: n_layer x n_head grids of T x T cells
GRID_CELLS = 32  # a small map shows at most this many rows and columns (block maxima beyond)
PASSAGE_TOKENS = 128
VIEWS = ["Token surprise", "Logit lens", "Attention"]
DEFAULT_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
)

st.title("Inspect")

c_run, c_ckpt, c_dev = st.columns([3, 3, 1])
with c_run:
    run = pick_run("ins")
with c_ckpt:
    choice = pick_choice(run, "ins")
with c_dev:
    device = st.selectbox("Device", device_options(), key="ins_device")
for note in missing_notes(run):
    st.caption(note)
if choice is None:
    st.info(
        f"Run **{run.run_id}** has no checkpoint yet ({run.effective_state()}): the views "
        "open once its first checkpoint or snapshot is written."
    )
    st.stop()

loaded = cached_model(choice.path, device)
cfg, block = loaded.config, loaded.model.config.block_size
mtime = choice.path.stat().st_mtime
c_info, c_link = st.columns([5, 1])
c_info.caption(
    f"{choice.title} · {choice.path.name} · {loaded.model.num_params():,} parameters "
    f"· {cfg.n_layer} layers x {cfg.n_head} heads · context {block:,} tokens"
)
if c_link.button(
    "Open in Playground",
    key="ins_to_playground",
    type="tertiary",
    help="Generate from this run and checkpoint",
):
    switch_to("views/playground.py", "pg", run, st.session_state.get("ins_ckpt"))


# --- computations, cached per checkpoint file and text -------------------------------------------


@st.cache_data(max_entries=16, show_spinner="Scoring every token...")
def _surprise(path: str, mtime: float, device: str, text: str):
    return surprise(load_cached(Path(path), device).model, text, device)


@st.cache_data(max_entries=16, show_spinner="Comparing the two checkpoints...")
def _diff(path_a: str, mtime_a: float, path_b: str, mtime_b: float, device: str, text: str):
    a, b = (load_cached(Path(p), device).model for p in (path_a, path_b))
    return surprise_diff(a, b, text, device)


@st.cache_data(max_entries=16, show_spinner="Reading every layer through the output layer...")
def _lens(path: str, mtime: float, device: str, text: str, last: int):
    return logit_lens_text(load_cached(Path(path), device).model, text, device, top_k=10, last=last)


@st.cache_data(max_entries=16, show_spinner="Computing attention and head scores...")
def _attention(path: str, mtime: float, device: str, ids: tuple, cropped: int):
    model = load_cached(Path(path), device).model
    result = attention_weights(model, list(ids), device, cropped=cropped)
    return result, head_scores(model, result.weights, device)


# --- the text ------------------------------------------------------------------------------------


def _random_passage() -> None:
    n = st.session_state.get("ins_passages", 0) + 1
    st.session_state.ins_passages = n
    try:
        passage = random_val_passage(cfg, min(PASSAGE_TOKENS, block), seed=n)
    except (ValueError, OSError) as e:
        st.session_state.ins_passage_error = f"No passage from the val split: {e}"
        return
    st.session_state.ins_passage_error = None
    st.session_state.ins_text = st.session_state.ins_passage_text = passage.text
    st.session_state.ins_passage_note = (
        f"A random passage of {passage.n_tokens} tokens from "
        f"the val split (token {passage.start:,} on): text the "
        "model never trained on."
    )


view = st.radio("View", VIEWS, horizontal=True, key="ins_view")
if "ins_text" not in st.session_state:
    st.session_state.ins_text = DEFAULT_TEXT
text = st.text_area(
    "Text",
    key="ins_text",
    height=120,
    help="Type or paste any text; <|endoftext|> is the end-of-text token",
)
b1, b2 = st.columns([1, 3])
b1.button("Random passage from the val split", key="ins_random", on_click=_random_passage)
if st.session_state.get("ins_passage_error"):
    b2.warning(st.session_state.ins_passage_error)
elif st.session_state.get("ins_passage_text") == text:
    b2.caption(st.session_state.ins_passage_note)
try:
    ids, cropped = encode_for_model(text, block, min_tokens=2)
except ValueError as e:
    st.error(f"Text: {e}")
    st.stop()
if cropped:
    st.warning(
        f"The text has {len(ids) + cropped:,} tokens; the model's context is {block:,}: "
        f"the first {cropped:,} are left out."
    )


# --- token surprise ------------------------------------------------------------------------------


def _surprise_view() -> None:
    res = _surprise(str(choice.path), mtime, device, text)
    a, b, c, d = st.columns(4)
    a.metric(
        "Mean loss",
        f"{res.mean_loss:.4f}",
        help="nats per scored token: the model's "
        "cross-entropy on this text, as training and validation report it",
    )
    b.metric("Perplexity", f"{res.perplexity:,.2f}")
    c.metric("Bits per character", f"{res.bits_per_char:.3f}")
    d.metric("Tokens scored", f"{res.n_scored:,}")
    st.caption(
        f"Each token coloured by its surprise, -log2 p(token | the text before it); {res.note}."
    )
    st.html(tv.legend("bits"))
    st.html(tv.render(tv.surprise_cells(res.tokens)))
    st.markdown("**The ten most surprising tokens**")
    st.dataframe(
        pd.DataFrame(
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
        ),
        hide_index=True,
        key="ins_top10",
    )
    _diff_view()


def _diff_view() -> None:
    st.subheader("What changed between two checkpoints")
    others = [c for c in choices(run) if c.path != choice.path]
    if not others:
        st.caption(
            "This run has one set of weights: a second checkpoint or snapshot gives the "
            "difference view."
        )
        return
    labels = ["none"] + [c.label for c in others]
    pick = st.selectbox(
        "Compare with",
        labels,
        key="ins_cmp",
        help="Which tokens became easier or harder between the two",
    )
    if pick == "none" or pick not in labels:
        st.caption(
            "Choose a second checkpoint to see which tokens became easier (blue) or "
            "harder (red) between them."
        )
        return
    other = others[labels.index(pick) - 1]
    a, b = sorted([other, choice], key=lambda c: c.step)  # A the earlier, B the later
    try:
        load_cached(other.path, device)
        d = _diff(
            str(a.path), a.path.stat().st_mtime, str(b.path), b.path.stat().st_mtime, device, text
        )
    except (ValueError, OSError) as e:
        st.error(f"Cannot compare with {other.label}: {e}")
        return
    name_a, name_b = f"A: {a.title}", f"B: {b.title}"
    x, y, z = st.columns(3)
    x.metric(f"Mean bits, step {a.step:,}", f"{d.mean_bits_a:.3f}")
    y.metric(f"Mean bits, step {b.step:,}", f"{d.mean_bits_b:.3f}")
    z.metric("Change", f"{d.mean_bits_b - d.mean_bits_a:+.3f} bits", delta_color="off")
    st.caption(f"{name_a} → {name_b}: blue tokens became easier (fewer bits), red ones harder.")
    st.html(tv.legend("delta"))
    st.html(tv.render(tv.diff_cells(d.tokens, f"step {a.step:,}", f"step {b.step:,}")))
    left, right = st.columns(2)
    easier = [t for t in d.easiest if t.delta_bits < 0]
    harder = [t for t in d.hardest if t.delta_bits > 0]
    for box, title, rows, key in (
        (left, "Became easiest", easier, "ins_easiest"),
        (right, "Became hardest", harder, "ins_hardest"),
    ):
        box.markdown(f"**{title}**")
        if not rows:
            box.caption("No token changed that way.")
            continue
        box.dataframe(
            pd.DataFrame(
                [
                    {
                        "position": t.index,
                        "token": tv.readable(t.text),
                        f"bits, step {a.step}": round(t.bits_a, 2),
                        f"bits, step {b.step}": round(t.bits_b, 2),
                        "change": round(t.delta_bits, 2),
                    }
                    for t in rows
                ]
            ),
            hide_index=True,
            key=key,
        )


# --- logit lens ----------------------------------------------------------------------------------


def _lens_figure(lens) -> go.Figure:
    probs = np.array(lens.grid("prob"), dtype=float)
    texts = [[tv.readable(t) for t in row] for row in lens.grid("text")]
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
            text=texts,
            texttemplate="%{text}",
            textfont=dict(size=10),
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


def _lens_view() -> None:
    n = len(ids)
    last = min(n, LENS_MAX)
    if last > 2:
        last = st.slider(
            "Positions shown (the last ones of the text)",
            2,
            last,
            min(32, last),
            key="ins_lens_last",
            help=f"At most {LENS_MAX}: every cell multiplies by the whole output "
            "layer, which for GPT-2 124M is what takes the time",
        )
    lens = _lens(str(choice.path), mtime, device, text, last)
    if n > last:
        st.caption(
            f"The last {last} of {n} positions (all {n} feed the model; at most "
            f"{LENS_MAX} are read out, to keep the view fast on big models)."
        )
    st.plotly_chart(_lens_figure(lens), key="ins_lens_chart")
    st.caption(
        "Each cell: the most likely next token after that block, read through the final "
        "LayerNorm and the output layer; its colour is that token's probability. The "
        "last row is the model's own prediction."
    )
    a, b = st.columns(2)
    layer = a.selectbox("Layer", lens.layers, index=len(lens.layers) - 1, key="ins_lens_layer")
    labels = [f"{p}: {tv.readable(lens.tokens[p])}" for p in lens.positions]
    where = b.selectbox("Position", labels, index=len(labels) - 1, key="ins_lens_pos")
    cell = lens.cells[lens.layers.index(layer)][labels.index(where)]
    st.markdown(f"**Top {len(cell.top)} after {layer}, position {where}**")
    st.dataframe(
        pd.DataFrame(
            [{"token": tv.readable(t), "id": i, "p": tv.fmt_prob(p)} for i, t, p in cell.top]
        ),
        hide_index=True,
        key="ins_lens_top",
    )


# --- attention -----------------------------------------------------------------------------------


def _head_label(s) -> str:
    return f"L{s.layer + 1} H{s.head + 1}" + (f" · {s.kind}" if s.kind else "")


def _pooled(weights: np.ndarray, f: int) -> np.ndarray:
    """(..., T, T) -> (..., ceil(T/f), ceil(T/f)): the largest weight in each f x f block, so a
    sharp pattern (a diagonal, a column) stays visible in a small map."""
    T = weights.shape[-1]
    n = -(-T // f)
    pad = [(0, 0)] * (weights.ndim - 2) + [(0, n * f - T)] * 2
    blocks = np.pad(weights, pad).reshape(*weights.shape[:-2], n, f, n, f)
    return blocks.max(axis=(-3, -1))


def _attention_grid(weights: np.ndarray, scores) -> go.Figure:
    n_layer, n_head, T = weights.shape[:3]
    f = -(-T // GRID_CELLS)
    small = _pooled(weights, f) if f > 1 else weights
    ticks = list(range(0, T, f))
    titles = [_head_label(s) for s in scores]
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
                hovertemplate=f"{_head_label(s)}<br>{what}: %{{z:.2f}}<extra></extra>",
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


def _attention_figure(w: np.ndarray, tokens: list[str], title: str) -> go.Figure:
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


def _attention_view() -> None:
    tail = ids[-ATTENTION_MAX:]
    if len(ids) > len(tail):
        st.caption(
            f"The last {len(tail)} of {len(ids)} tokens (the model reads them as the "
            f"whole text here), so each head's grid stays readable."
        )
    res, scores = _attention(str(choice.path), mtime, device, tuple(tail), cropped)
    st.plotly_chart(_attention_grid(res.weights, scores), key="ins_attn_grid", width="content")
    pooled = len(tail) > GRID_CELLS
    st.caption(
        "One small map per layer (rows) and head (columns): row = the query token, "
        "column = the key it attends to"
        + (
            f" (each cell the largest weight of a block of tokens, so {len(tail)} tokens "
            "fit; the large map below has every one)"
            if pooled
            else ""
        )
        + ". Labels name heads whose score reaches "
        "0.4: previous-token (looks one back), first-token (parks on position 0), "
        "induction (looks at what followed the last occurrence of the current token, "
        "measured on repeated random tokens)."
    )
    labels = [_head_label(s) for s in scores]
    best = max(
        range(len(scores)),
        key=lambda i: (bool(scores[i].kind), max(scores[i].previous_token, scores[i].induction)),
    )
    pick = st.selectbox("Head", labels, index=best, key="ins_head")
    s = scores[labels.index(pick)] if pick in labels else scores[best]
    st.plotly_chart(
        _attention_figure(
            res.weights[s.layer, s.head], res.tokens, f"layer {s.layer + 1}, head {s.head + 1}"
        ),
        key="ins_attn_head",
    )
    st.dataframe(
        pd.DataFrame(
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
        ),
        hide_index=True,
        key="ins_head_scores",
    )


VIEW_FUNCTIONS = {
    "Token surprise": _surprise_view,
    "Logit lens": _lens_view,
    "Attention": _attention_view,
}
try:
    VIEW_FUNCTIONS.get(view, _surprise_view)()
except ValueError as e:
    st.error(f"{view}: {e}")
