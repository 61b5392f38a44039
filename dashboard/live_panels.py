"""Two panels of the Live page: the run the queue started after a finished one, and the
yardstick beside the samples (what a val loss looks like on tiny shakespeare)."""

from __future__ import annotations

import streamlit as st

from core.runs import queue as run_queue
from core.store.rundir import RunDir
from core.units import escape_md
from dashboard import yardstick
from dashboard.state import runs_dir, select_run


def handover_note(run: RunDir) -> None:
    """For a run that ended: the run the queue started after it, with a button to watch it."""
    follower = run_queue.started_after(run, runs_dir())
    if not follower:
        return
    text, button = st.columns([4, 1], vertical_alignment="center")
    text.info(f"The queue started the next run, **{escape_md(follower)}**, when this one ended.")
    if button.button(f"Watch {follower}", key=f"live_next_{run.run_id}", width="stretch"):
        select_run(follower)
        st.rerun()


def yardstick_panel(series, cfg) -> None:
    """What a val loss looks like on tiny shakespeare, from measured runs, and where this run's
    latest val loss sits among them."""
    st.markdown("**Yardstick: val loss on tiny shakespeare**")
    if not yardstick.applies(cfg.data):
        st.caption(
            "Measured on tiny shakespeare only: on other text the same loss means other text."
        )
        return
    vals = series.eval["val_loss"]
    st.caption(yardstick.place(float(vals[-1]) if len(vals) else None))
    for mark in yardstick.MARKS:
        st.markdown(f"**{mark.val_loss:.2f}**: {mark.looks_like}  \n*{mark.measured}*")
