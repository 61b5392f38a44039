"""State shared by every page: the runs directory (a sidebar setting), the selected run, and the
view in the URL (query parameters), so a reload or a shared link shows the same view.

Pages never spell the session keys below; they call these functions. A page puts its main
controls in the URL in two steps: `seed_from_url` before drawing a widget (a reload or a shared
link gives it its value once per session), then `to_url` after drawing (the URL follows the
widgets). Streamlit clears the query parameters when the user switches pages, so each page
writes its own on every run; this module is the only code that reads or writes the URL, and
it never touches a parameter the page did not name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import streamlit as st

from core.store.rundir import default_runs_dir

_RUNS_DIR = "runs_dir"
SELECTED_RUN = "selected_run"  # the session key (tests read it; pages call selected_run())
_HANDED_WEIGHTS = "handed_weights"  # a weights label one page hands to the next, read once


def sidebar_runs_dir() -> Path:
    """The runs directory: $GPT_RUNS_DIR or runs/ by default, editable in the sidebar."""
    if _RUNS_DIR not in st.session_state:
        st.session_state[_RUNS_DIR] = str(default_runs_dir())
    st.sidebar.text_input(
        "Runs directory",
        key=_RUNS_DIR,
        help="Where run directories live ($GPT_RUNS_DIR or runs/ by default)",
    )
    return runs_dir()


def runs_dir() -> Path:
    """The runs directory chosen in the sidebar (the default before the sidebar is drawn)."""
    return Path(st.session_state.get(_RUNS_DIR) or default_runs_dir())


def selected_run() -> str | None:
    """The run id the user last selected on any page (None before any), so the next page
    opens on the same run."""
    return st.session_state.get(SELECTED_RUN)


def select_run(run_id: str | None) -> None:
    """Make run_id the selected run for every page; None forgets the selection."""
    if run_id:
        st.session_state[SELECTED_RUN] = run_id
    else:
        st.session_state.pop(SELECTED_RUN, None)


def select_run_of(key: str) -> None:
    """Make the value of the widget `key` the selected run (an on_change callback)."""
    select_run(st.session_state.get(key))


def hand_over_weights(label: str | None) -> None:
    """Leave a weights label ('step 5', 'best (val): ...') for the next page's weights picker
    (a link such as "Open in Playground"); None leaves nothing."""
    if label:
        st.session_state[_HANDED_WEIGHTS] = label
    else:
        st.session_state.pop(_HANDED_WEIGHTS, None)


def take_weights() -> str | None:
    """The weights label handed over by hand_over_weights, once: it is gone after this call."""
    return st.session_state.pop(_HANDED_WEIGHTS, None)


# --- the view in the URL ---------------------------------------------------------------------


def one_of(options: Iterable[str]) -> Callable[[str], str]:
    """A URL value parser that accepts only the given options (ValueError otherwise)."""
    allowed = set(options)

    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not an option")
        return value

    return parse


def number_in(low: float, high: float, kind: type = float) -> Callable[[str], float]:
    """A URL value parser for a number (float, or int with kind=int) between low and high
    (ValueError otherwise)."""

    def parse(value: str) -> float:
        number = kind(value)
        if not low <= number <= high:
            raise ValueError(f"{value} is outside [{low}, {high}]")
        return number

    return parse


def flag(value: str) -> bool:
    """A URL value parser for an on/off setting written by to_url (`1`)."""
    return value in ("1", "true", "on")


def seed_from_url(
    key: str, param: str, parse: Callable[[str], object] = str, many: bool = False
) -> bool:
    """Before drawing the widget `key`: when it has no value in this session yet and the URL
    has `param`, give it the URL's value (a reload or a shared link). parse turns a URL string
    into the widget's value and raises ValueError for one the widget cannot show, which is then
    ignored (for many=True, only that item is dropped). Returns whether a value was taken."""
    if key in st.session_state or param not in st.query_params:
        return False
    if not many:
        try:
            st.session_state[key] = parse(st.query_params[param])
        except ValueError:
            return False
        return True
    values = []
    for raw in st.query_params.get_all(param):
        try:
            values.append(parse(raw))
        except ValueError:
            continue
    st.session_state[key] = values
    return True


def url_values(*params: str) -> dict[str, str]:
    """The URL's value of each of these parameters that it holds (the last of a repeated one):
    for a page that reads its whole view at once before drawing (then writes it with to_url)."""
    return {p: st.query_params[p] for p in params if p in st.query_params}


def _url_form(value) -> str | list[str] | None:
    """A value as the URL holds it; None for one that leaves the URL (None, "", [], False)."""
    if value is None or value is False or value == "" or value == []:
        return None
    if value is True:
        return "1"
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return f"{value:g}" if isinstance(value, float) else str(value)


def to_url(**params) -> None:
    """Write the page's view into the URL: each parameter's value (a list for a repeated
    parameter); None, "", [] or False removes it. Only changes are sent to the browser."""
    for name, value in params.items():
        wanted = _url_form(value)
        current = st.query_params.get_all(name)
        if wanted is None:
            if current:
                del st.query_params[name]
        elif current != (wanted if isinstance(wanted, list) else [wanted]):
            st.query_params[name] = wanted
