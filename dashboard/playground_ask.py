"""What the Playground's tabs share: the loaded model, the prompt as the model sees it, the
sampling settings and the display switches, read from the controls at the top of the page; and
the copy report of generated tokens (spans found verbatim in the run's training text)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.data.dataset import get_tokenizer
from core.data.tokens import encode_prompt
from core.generate import sampling
from core.store.checkpoint import LoadedModel
from dashboard import token_view as tv
from dashboard.checkpoint_picker import Picked
from dashboard.training_text import copy_report, corpus_index


@dataclass(frozen=True)
class Ask:
    """One generation request: the weights (picked and loaded), the prompt with its tokens
    (None when it cannot be used) and the text cut off its front to fit the context, the
    sampling settings and the display switches."""

    picked: Picked
    loaded: LoadedModel
    prompt: str
    prompt_ids: list[int] | None
    dropped_text: str
    settings: sampling.SamplingSettings
    colour: bool
    copies: bool
    min_len: int


def _sliders() -> tuple[int, float, int, float]:
    """Max new tokens, temperature, top-k and top-p."""
    c1, c2, c3, c4 = st.columns(4)
    max_new = c1.slider("Max new tokens", *sampling.MAX_NEW_RANGE, key="pg_max_new")
    temperature = c2.slider(
        "Temperature",
        *sampling.TEMPERATURE_RANGE,
        step=0.05,
        key="pg_temperature",
        help="Below 1 sharpens the distribution, above 1 flattens it",
    )
    top_k = c3.slider(
        "Top-k",
        *sampling.TOP_K_RANGE,
        key="pg_top_k",
        help="Sample only among the k most likely tokens (0 = off)",
    )
    top_p = c4.slider(
        "Top-p",
        0.05,
        1.0,
        step=0.05,
        key="pg_top_p",
        help="Nucleus sampling: the smallest set of tokens holding this much probability (1.0 = off)",
    )
    return max_new, temperature, top_k, top_p


def controls() -> tuple[sampling.SamplingSettings, bool, bool, int]:
    """The sampling settings and the display switches: (settings, colour tokens by
    probability, mark copies from the training data, the shortest copy marked)."""
    max_new, temperature, top_k, top_p = _sliders()
    c1, c2, c3, c4 = st.columns(4)
    seed = c1.number_input("Seed", min_value=0, step=1, key="pg_seed")
    greedy = c2.checkbox("Greedy (always the most likely)", key="pg_greedy")
    stop_eot = c3.checkbox("Stop at end-of-text", key="pg_stop_eot")
    colour = c4.checkbox(
        "Colour tokens by probability",
        key="pg_colour",
        help="Show the text as tokens coloured by probability (also while they "
        "stream); click any token for its probability and alternatives",
    )
    c1, c2, _ = st.columns([1, 1, 2])
    copies = c1.toggle(
        "Copied from training data",
        key="pg_copy",
        help="Mark generated spans found verbatim in this run's training text; "
        "click one for where it comes from",
    )
    min_len = c2.slider(
        "Shortest copied span (tokens)", 2, 32, key="pg_copy_min", disabled=not copies
    )
    settings = sampling.SamplingSettings(
        temperature, top_k, top_p, max_new, int(seed), stop_eot, greedy
    )
    return settings, colour, copies, min_len


def prompt_tokens(prompt: str, block: int) -> tuple[list[int] | None, str]:
    """(the prompt's tokens, the text dropped from its front to fit the context); a bad prompt
    is an error beside it (tokens None), a long one a warning with what the model sees."""
    prompt_ids, dropped, dropped_text = None, 0, ""
    try:
        prompt_ids, dropped = encode_prompt(prompt, block)
    except ValueError as e:
        st.error(f"Prompt: {e}")
    if dropped:
        full = get_tokenizer().encode(prompt, allowed_special={"<|endoftext|>"})
        dropped_text = get_tokenizer().decode(full[:dropped], errors="replace")
        if not prompt.startswith(dropped_text):
            dropped_text = ""
        st.warning(
            f"The prompt has {len(prompt_ids) + dropped:,} tokens but the model's context is "
            f"{block:,}: the first {dropped:,} are dropped (struck out below) and the model "
            "sees only the rest."
        )
        with st.expander("What the model sees of the prompt"):
            st.html(tv.render([], tv.prompt_html(prompt[len(dropped_text) :], dropped_text)))
    return prompt_ids, dropped_text


def event_dict(ev) -> dict:
    """A streamed token as the session keeps it."""
    return dict(text=ev.text, prob=ev.prob, top=list(ev.top), eot=ev.eot, id=ev.token_id)


def copies_of(ask: Ask, events: list[dict]):
    """The copy report of generated tokens, or None (switch off, no text, or no index: then
    the reason is shown once)."""
    if not ask.copies or not events:
        return None
    index, problem = corpus_index(ask.loaded.config)
    if index is None:
        st.warning(problem)
        return None
    try:
        return copy_report(index, [e["id"] for e in events], ask.min_len)
    except ValueError as e:
        st.warning(f"Cannot look up the training text: {e}")
        return None
