"""The Playground's settings, kept when the user visits another page (the session) and across a
reload or a shared link (the URL), as the Runs and Live pages keep their views.

Streamlit forgets a widget's value once a page without it runs, so the values are copied into
a key no widget owns after every run and put back before the widgets are drawn. The widgets
then take their values from the session alone (no `value=` argument), which also gives each
its default here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.generate import sampling
from dashboard import state

STORE = "pg_settings"  # no widget owns it, so it outlives the widgets
URL_TEXT_MAX = 1000  # a longer prompt stays in the session only (URLs have length limits)


def whole_in(low: int, high: int) -> Callable[[str], int]:
    """A URL value parser for a whole number between low and high (ValueError otherwise)."""
    return state.number_in(low, high, int)


# widget key: (URL parameter, default, parser of the URL's text)
SETTINGS: dict[str, tuple[str, object, Callable[[str], object]]] = {
    "pg_prompt": ("prompt", None, str),  # None: the run's sample prompt (the page sets it)
    "pg_max_new": ("max_new", sampling.MAX_NEW_DEFAULT, whole_in(*sampling.MAX_NEW_RANGE)),
    "pg_temperature": (
        "temperature",
        sampling.TEMPERATURE_DEFAULT,
        state.number_in(*sampling.TEMPERATURE_RANGE),
    ),
    "pg_top_k": ("top_k", sampling.TOP_K_DEFAULT, whole_in(*sampling.TOP_K_RANGE)),
    "pg_top_p": ("top_p", 1.0, state.number_in(0.05, 1.0)),
    "pg_seed": ("seed", 1337, whole_in(0, 2**31 - 1)),
    "pg_greedy": ("greedy", False, state.flag),
    "pg_stop_eot": ("stop_eot", True, state.flag),
    "pg_colour": ("colour", False, state.flag),
    "pg_copy": ("copies", False, state.flag),
    "pg_copy_min": ("copy_min", 8, whole_in(2, 32)),
    "pg_nt_k": ("nt_k", 10, whole_in(3, 30)),
    "pg_nt_log": ("nt_log", False, state.flag),
}
SESSION_ONLY = ("pg_ckpt", "pg_tt_many", "pg_tt_many_default")  # run-specific: not in the URL


def restore() -> None:
    """Before the widgets are drawn: each setting from this session's store, else the URL, else
    its default; the run from the URL when nothing selected one yet."""
    stored = st.session_state.get(STORE, {})
    if state.selected_run() is None and st.query_params.get("run"):
        state.select_run(st.query_params["run"])
    for key, (param, default, parse) in SETTINGS.items():
        if key in st.session_state:
            continue
        if key in stored:
            st.session_state[key] = stored[key]
        elif not state.seed_from_url(key, param, parse) and default is not None:
            st.session_state[key] = default
    for key in SESSION_ONLY:
        if key not in st.session_state and key in stored:
            st.session_state[key] = stored[key]


def url_value(value, default):
    """A setting as the URL holds it: left out at its default; booleans as 1 or 0."""
    if value == default or (isinstance(value, str) and len(value) > URL_TEXT_MAX):
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    return value


def save(run_id: str) -> None:
    """After the widgets are drawn: keep every setting for the next visit, and write the ones
    that differ from their defaults (and the run) into the URL."""
    keys = [*SETTINGS, *SESSION_ONLY]
    st.session_state[STORE] = {k: st.session_state[k] for k in keys if k in st.session_state}
    params = {
        param: url_value(st.session_state.get(key, default), default)
        for key, (param, default, _) in SETTINGS.items()
    }
    state.to_url(run=run_id, **params)
