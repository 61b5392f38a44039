"""Following runs that train: how often a panel of the Runs page rereads them, and one rerun of
the whole page once they have all ended (so every timer stops and every part shows the final
states)."""

from __future__ import annotations

import streamlit as st

from core.runs import launcher
from core.runs.launcher import RunInfo
from core.store.rundir import ACTIVE_STATES

REFRESH_S = 2.0


def refresh_every(infos: list[RunInfo]) -> float | None:
    """How often a panel showing these runs rereads them: while any is active, else never."""
    return REFRESH_S if any(i.state in ACTIVE_STATES for i in infos) else None


def rerun_when_settled(was_active: bool, infos: list[RunInfo]) -> None:
    """Rerun the whole page once the runs a panel follows have all ended, so its timer stops
    and every part of the page shows the final states."""
    if was_active and refresh_every(infos) is None:
        st.rerun()


def fresh_infos(runs_root, run_ids: list[str]) -> list[RunInfo]:
    """The runs with these ids, read again now (deleted ones drop out), in the given order."""
    by_id = {i.run_id: i for i in launcher.list_runs(runs_root)}
    return [by_id[r] for r in run_ids if r in by_id]
