"""State shared by every page: the runs directory (sidebar setting) and the selected run."""

from pathlib import Path

import streamlit as st

from core.rundir import default_runs_dir


def sidebar_runs_dir() -> Path:
    """The runs directory: $GPT_RUNS_DIR or runs/ by default, editable in the sidebar."""
    if "runs_dir" not in st.session_state:
        st.session_state.runs_dir = str(default_runs_dir())
    st.sidebar.text_input("Runs directory", key="runs_dir",
                          help="Where run directories live ($GPT_RUNS_DIR or runs/ by default)")
    return runs_dir()


def runs_dir() -> Path:
    return Path(st.session_state.get("runs_dir") or default_runs_dir())
