"""The Runs page's queue: the runs waiting to start, in the order they start, with Up / Down /
Remove and Clear queue (core.runs.queue does the work, under its lock)."""

from __future__ import annotations

import streamlit as st

from core.config import ConfigError
from core.runs import queue as run_queue
from core.runs.launcher import RunInfo
from core.store import rundir
from core.units import escape_md
from dashboard import run_table
from dashboard.run_follow import refresh_every


def queue_row(runs_root, position: int, run_id: str, last: int) -> None:
    """One waiting run: its place, name, title and size, and Up / Down / Remove."""
    run = rundir.RunDir(runs_root / run_id)
    try:
        cfg = run.read_config()
        title = run_table.note_cells(run_id, run.read_notes())["title"]
        what = " · ".join(
            [
                f"{cfg.n_layer}L x {cfg.n_embd}C",
                f"{cfg.max_steps:,} steps",
                *([title] if title else []),
            ]
        )
    except ConfigError as e:
        what = f"config unreadable: {e}"
    cols = st.columns([5, 1, 1, 1], vertical_alignment="center")
    cols[0].markdown(f"**{position + 1}.** `{run_id}` · {escape_md(what)}")
    moved = None
    if cols[1].button(
        "Up",
        key=f"runs_q_up_{run_id}",
        disabled=position == 0,
        width="stretch",
        help="Start it one place earlier",
    ):
        moved = -1
    if cols[2].button(
        "Down",
        key=f"runs_q_down_{run_id}",
        disabled=position == last,
        width="stretch",
        help="Start it one place later",
    ):
        moved = 1
    if cols[3].button(
        "Remove",
        key=f"runs_q_remove_{run_id}",
        width="stretch",
        help="Take it out of the queue and delete its (never started) run directory",
    ):
        queue_change(run_queue.remove, run_id, runs_dir=runs_root)
    if moved:
        queue_change(run_queue.move, run_id, offset=moved, runs_dir=runs_root)


def queue_change(change, *args, **kwargs) -> None:
    """Apply a change to the queue, then rerun the page (the table shows the waiting runs); a
    run that started or left the queue meanwhile is said so."""
    try:
        change(*args, **kwargs)
    except (ConfigError, OSError) as e:
        st.error(str(e))
    else:
        st.rerun()


def queue_panel(runs_root, shown: list[str]) -> None:
    """The waiting runs in the order they start, with Up / Down / Remove and Clear queue;
    reread on every refresh while a run trains (the whole page reruns once the queue moved)."""
    waiting = run_queue.queued(runs_root)
    if waiting != shown:
        st.rerun()  # a run started (or another tab changed the queue): redraw everything
    if not waiting:
        st.caption(
            'No runs are waiting. On the New run page, "Launch after the current run '
            'ends" adds a run here.'
        )
        return
    st.caption(
        "These runs start one after another, each when nothing else in this runs "
        "directory is training. Stopping the current run lets the next one start."
    )
    for position, run_id in enumerate(waiting):
        queue_row(runs_root, position, run_id, len(waiting) - 1)
    with st.popover("Clear queue", help="Remove every waiting run"):
        st.markdown(
            f"Remove all {len(waiting)} waiting runs and their (never started) run directories?"
        )
        if st.button("Yes, clear the queue", key="runs_q_clear", type="primary"):
            queue_change(run_queue.clear, runs_dir=runs_root)


def queue_section(runs_root, infos: list[RunInfo]) -> None:
    st.subheader("Queue")
    waiting = run_queue.queued(runs_root)
    every = refresh_every(infos) if waiting else None
    st.fragment(queue_panel, run_every=every)(runs_root, waiting)
