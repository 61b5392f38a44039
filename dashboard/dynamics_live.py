"""The Live page's training-dynamics row: induction heads, in-context learning and
memorization curves beside the loss, and the marker on the loss chart where an induction head
formed. Data and figures come from dashboard.dynamics_data; the details are on Inspect."""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard.colors import run_color
from dashboard.dynamics_data import (
    SOURCES,
    beats_bigram,
    dynamics_for,
    icl_figure,
    induction_figure,
    memorization_figure,
    ngram_figure,
)
from dashboard.live_figures import elapsed_unit

STORE_KEY = "live_dynamics"
NO_RECORDS = (
    "No training-dynamics records in {runs}: the run was made before they existed, or with "
    "dynamics_every = 0, or has not reached its first eval."
)


def _all_dynamics(runs) -> list:
    store = st.session_state.setdefault(STORE_KEY, {})
    return [dynamics_for(store, run) for run in runs]


def mark_induction(fig, runs, all_series, axis: str) -> None:
    """A dotted line on the loss chart where each run's first induction head formed."""
    for d, s in zip(_all_dynamics(runs), all_series):
        formed = d.formed()
        if formed is None or not len(s.train):
            continue
        scale = 1.0
        if axis == "time":
            scale = elapsed_unit(float(np.nanmax(s.train_time())))[1]
        x = float(s.x_at(np.array([formed.step]), axis)[0]) / scale
        prefix = "" if len(runs) == 1 else f"{d.run.run_id}: "
        fig.add_vline(
            x=x,
            line=dict(color=run_color(d.run.run_id), dash="dot", width=1.5),
            annotation=dict(text=prefix + formed.label(), font=dict(size=11)),
            annotation_position="top left",
        )


def dynamics_section(runs, all_series) -> None:
    """Three charts with the sentence that says what each shows and where it comes from."""
    dyn = _all_dynamics(runs)
    st.markdown("**How it learned** (measured at each eval on fixed probes)")
    empty = [d.run.run_id for d in dyn if not len(d)]
    if empty:
        st.caption(NO_RECORDS.format(runs=", ".join(empty)))
    if len(empty) == len(dyn):
        return
    copy_rates = {s.run.run_id: (s.eval["step"], s.eval["copy_rate"]) for s in all_series}
    charts = (
        ("induction", induction_figure(dyn, run_color)),
        ("icl", icl_figure(dyn, run_color)),
        ("memorization", memorization_figure(dyn, copy_rates, run_color)),
        ("ngram", ngram_figure(dyn, run_color)),
    )
    grid = st.columns(2)
    for i, (name, fig) in enumerate(charts):
        with grid[i % 2]:
            st.plotly_chart(fig, key=f"live_dyn_{name}", config={"displaylogo": False})
            st.caption(SOURCES[name])
    for d in dyn:
        step = beats_bigram(d)
        if step is not None:
            st.caption(f"{d.run.run_id} beats the bigram model from step {step:,}.")
    formed = [(d.run.run_id, d.formed()) for d in dyn]
    for rid, f in formed:
        if f is not None:
            st.caption(
                f"{rid}: an induction head formed: layer {f.layer + 1}, head "
                f"{f.head + 1}, step {f.step:,} (score {f.score:.2f})."
            )
