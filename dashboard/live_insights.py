"""What the Live page's loss chart adds to the curves: reference baselines (with val loss in bits
per character). The Streamlit side: loading (cached per data set), drawing onto the loss figure
and the sentence under it."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.data.baselines import load_baselines
from core.data.dataset import DataError
from dashboard import live_baselines
from dashboard.live_baselines import RunBaselines


@st.cache_data(
    show_spinner="Counting the n-grams of the training split (once per data set)…",
    max_entries=16,
)
def _baselines(data: str, val_fraction: float):
    return load_baselines(data, val_fraction)


def run_baselines(run_id: str, cfg) -> RunBaselines:
    """A run's baselines, or the one-line reason there are none (its data file is gone)."""
    try:
        return RunBaselines(run_id, _baselines(cfg.data, cfg.val_fraction))
    except (DataError, OSError) as e:
        return RunBaselines(run_id, None, f"its data cannot be read ({e})")


def _last_val(series) -> float | None:
    vals = series.eval["val_loss"]
    vals = vals[np.isfinite(vals)]
    return float(vals[-1]) if vals.size else None


def decorate_loss(fig, all_series: list, configs: dict, view: dict) -> list[str]:
    """Draw what the view asks for onto the loss figure; returns the sentences to show under
    it (each names where its figures come from)."""
    notes = []
    if "baselines" in view["show"]:
        found = [run_baselines(s.run.run_id, configs[s.run.run_id]) for s in all_series]
        live_baselines.add_reference_lines(fig, live_baselines.reference_lines(found), view["log"])
        live_baselines.add_bits_per_char(fig, found)
        last = {s.run.run_id: _last_val(s) for s in all_series}
        notes.append(live_baselines.explanation(found, last))
    return [n for n in notes if n]


def explain(notes: list[str]) -> None:
    for note in notes:
        st.caption(note)
