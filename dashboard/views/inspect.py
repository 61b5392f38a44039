"""Inspect: look inside a checkpoint of a run. Token surprise (what each token of a text cost the
model, and what changed between two checkpoints), the logit lens (what each layer already
predicts), attention (where each head looks) and how the run learned (dashboard.learning_view).
core does the work; results are cached per checkpoint file and text, so changing a view's
control does not compute again."""

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.tokens import encode_for_model
from core.inspect.attention import attention_weights, head_scores
from core.inspect.logit_lens import logit_lens_text
from core.inspect.surprise import random_val_passage, surprise, surprise_diff
from core.store.rundir import RunDir
from dashboard import glossary
from dashboard import inspect_figures as figures
from dashboard import token_view as tv
from dashboard.checkpoint_picker import (
    Choice,
    cached_model,
    choices,
    load_cached,
    missing_notes,
    model_line,
    pick_header,
)
from dashboard.learning_view import extraction_panel, learning_view

LENS_MAX = 64  # logit lens columns at most: each cell is a vocabulary-wide read-out
ATTENTION_MAX = 64  # attention positions at most: n_layer x n_head grids of T x T cells
PASSAGE_TOKENS = 128
LEARNING = "How it learned"
VIEWS = ["Token surprise", "Logit lens", "Attention", LEARNING]
DEFAULT_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
)


@dataclass(frozen=True)
class Target:
    """What the views look at: the run, its chosen weights (and their file's time, which keys
    the caches), the device, and the text with its tokens (cropped: how many were left out at
    the front to fit the context)."""

    run: RunDir
    choice: Choice
    mtime: float
    device: str
    text: str
    ids: list[int]
    cropped: int


def header():
    """The run, weights and device pickers, the model's line and the link to the Playground;
    returns (what was picked, the loaded model), or stops before the run's first checkpoint."""
    picked = pick_header("ins", [3, 3, 1])
    run, choice = picked.run, picked.choice
    for note in missing_notes(run):
        st.caption(note)
    if choice is None:
        st.info(
            f"Run **{run.run_id}** has no checkpoint yet ({run.effective_state()}): the views "
            "open once its first checkpoint or snapshot is written."
        )
        st.stop()
    loaded = cached_model(choice.path, picked.device)
    cfg, block = loaded.config, loaded.model.config.block_size
    model_line(
        picked,
        "ins",
        f"{choice.title} · {choice.path.name} · {loaded.model.num_params():,} parameters "
        f"· {cfg.n_layer} layers x {cfg.n_head} heads · context {block:,} tokens",
        ("Open in Playground", "views/playground.py", "Generate from this run and checkpoint"),
    )
    return picked, loaded


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


def _random_passage(cfg, block: int) -> None:
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


def text_input(cfg, block: int) -> tuple[str, list[int], int]:
    """The text to look at (typed, or a random val passage) as (text, its last `block` tokens,
    how many were left out); stops the page on a text the model cannot read."""
    if "ins_text" not in st.session_state:
        st.session_state.ins_text = DEFAULT_TEXT
    text = st.text_area(
        "Text",
        key="ins_text",
        height=120,
        help="Type or paste any text; <|endoftext|> is the end-of-text token",
    )
    b1, b2 = st.columns([1, 3])
    b1.button(
        "Random passage from the val split",
        key="ins_random",
        on_click=_random_passage,
        args=(cfg, block),
    )
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
    return text, ids, cropped


# --- token surprise ------------------------------------------------------------------------------


def _surprise_view(t: Target) -> None:
    res = _surprise(str(t.choice.path), t.mtime, t.device, t.text)
    a, b, c, d = st.columns(4)
    a.metric(
        "Mean loss",
        f"{res.mean_loss:.3f} nats",
        f"{res.mean_loss / math.log(2):.2f} bits",
        delta_color="off",
        delta_arrow="off",
        help="per scored token: the model's cross-entropy on this text, as training and "
        f"validation report it (in nats). {glossary.NATS_BITS}",
    )
    b.metric("Perplexity", f"{res.perplexity:,.2f}", help=glossary.PERPLEXITY)
    c.metric("Bits per character", f"{res.bits_per_char:.3f}")
    d.metric("Tokens scored", f"{res.n_scored:,}")
    st.caption(
        f"Each token coloured by its surprise, -log2 p(token | the text before it); {res.note}."
    )
    st.html(tv.legend("bits"))
    st.html(tv.render(tv.surprise_cells(res.tokens)))
    st.markdown("**The ten most surprising tokens**")
    st.dataframe(figures.surprising_table(res), hide_index=True, key="ins_top10")
    _diff_view(t)


def _other_weights(t: Target) -> Choice | None:
    """The second checkpoint to compare with, or None (with a line saying why)."""
    others = [c for c in choices(t.run) if c.path != t.choice.path]
    if not others:
        st.caption(
            "This run has one set of weights: a second checkpoint or snapshot gives the "
            "difference view."
        )
        return None
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
        return None
    return others[labels.index(pick) - 1]


def _diff_view(t: Target) -> None:
    st.subheader("What changed between two checkpoints")
    other = _other_weights(t)
    if other is None:
        return
    a, b = sorted([other, t.choice], key=lambda c: c.step)  # A the earlier, B the later
    try:
        load_cached(other.path, t.device)
        d = _diff(
            str(a.path),
            a.path.stat().st_mtime,
            str(b.path),
            b.path.stat().st_mtime,
            t.device,
            t.text,
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
    _changed_tables(d, a, b)


def _changed_tables(d, a: Choice, b: Choice) -> None:
    """The tokens that became easiest and hardest from checkpoint a to checkpoint b."""
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
        box.dataframe(figures.changed_table(rows, a.step, b.step), hide_index=True, key=key)


# --- logit lens ----------------------------------------------------------------------------------


def _lens_view(t: Target) -> None:
    n = len(t.ids)
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
    lens = _lens(str(t.choice.path), t.mtime, t.device, t.text, last)
    if n > last:
        st.caption(
            f"The last {last} of {n} positions (all {n} feed the model; at most "
            f"{LENS_MAX} are read out, to keep the view fast on big models)."
        )
    st.plotly_chart(figures.lens_figure(lens), key="ins_lens_chart")
    st.caption(
        f"{glossary.LOGIT_LENS} Each cell: the most likely next token after that block, "
        "read through the final "
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


def _attention_view(t: Target) -> None:
    tail = t.ids[-ATTENTION_MAX:]
    if len(t.ids) > len(tail):
        st.caption(
            f"The last {len(tail)} of {len(t.ids)} tokens (the model reads them as the "
            f"whole text here), so each head's grid stays readable."
        )
    res, scores = _attention(str(t.choice.path), t.mtime, t.device, tuple(tail), t.cropped)
    st.plotly_chart(
        figures.attention_grid(res.weights, scores), key="ins_attn_grid", width="content"
    )
    pooled = len(tail) > figures.GRID_CELLS
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
        f"measured on repeated random tokens). {glossary.INDUCTION}"
    )
    labels = [figures.head_label(s) for s in scores]
    best = max(
        range(len(scores)),
        key=lambda i: (bool(scores[i].kind), max(scores[i].previous_token, scores[i].induction)),
    )
    pick = st.selectbox("Head", labels, index=best, key="ins_head")
    s = scores[labels.index(pick)] if pick in labels else scores[best]
    st.plotly_chart(
        figures.attention_figure(
            res.weights[s.layer, s.head], res.tokens, f"layer {s.layer + 1}, head {s.head + 1}"
        ),
        key="ins_attn_head",
    )
    st.dataframe(figures.head_table(scores), hide_index=True, key="ins_head_scores")


VIEW_FUNCTIONS = {
    "Token surprise": _surprise_view,
    "Logit lens": _lens_view,
    "Attention": _attention_view,
}


def main() -> None:
    st.title("Inspect")
    picked, loaded = header()
    view = st.radio("View", VIEWS, horizontal=True, key="ins_view")
    if view == LEARNING:  # the run's training dynamics: no text to read
        device = picked.device
        learning_view(
            picked.run, lambda: extraction_panel(picked.choice.path, loaded.config, device)
        )
        return
    text, ids, cropped = text_input(loaded.config, loaded.model.config.block_size)
    choice = picked.choice
    target = Target(
        picked.run, choice, choice.path.stat().st_mtime, picked.device, text, ids, cropped
    )
    try:
        VIEW_FUNCTIONS.get(view, _surprise_view)(target)
    except ValueError as e:
        st.error(f"{view}: {e}")


main()
