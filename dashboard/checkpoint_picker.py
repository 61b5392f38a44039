"""Choosing a run and one of its checkpoints, and loading its model once per checkpoint file.

Shared by the Playground and Model info pages; core does the work, this module only asks.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from core.inspect_model import LoadedModel, load_model
from core.rundir import RunDir, list_run_dirs
from dashboard.state import runs_dir

LATEST = "latest"


def pick_run(prefix: str) -> RunDir:
    """A run chosen in a select box (newest first); stops the page when there are none."""
    runs = list_run_dirs(runs_dir())
    if not runs:
        st.info(f"No runs in `{runs_dir()}` yet. Start one on the **New run** page, or set the "
                "runs directory in the sidebar.")
        st.stop()
    ids = [r.run_id for r in runs]
    run_id = st.selectbox("Run", ids, key=f"{prefix}_run")
    return runs[ids.index(run_id)] if run_id in ids else runs[0]


def pick_checkpoint(run: RunDir, prefix: str) -> Path | None:
    """The chosen checkpoint of a run ('latest' follows a run that is still training), or None."""
    found = run.checkpoints()
    if not found:
        st.selectbox("Checkpoint", ["none yet"], key=f"{prefix}_ckpt_none", disabled=True)
        return None
    labels = [LATEST] + [f"step {step}" for step, _ in reversed(found)]
    choice = st.selectbox("Checkpoint", labels, key=f"{prefix}_ckpt",
                          help="'latest' always reads the newest checkpoint, also while training")
    if choice == LATEST or choice not in labels:
        return found[-1][1]
    return dict((f"step {s}", p) for s, p in found)[choice]


def device_options() -> list[str]:
    options = ["cpu"]
    if torch.cuda.is_available():
        options.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        options.append("mps")
    return options


@st.cache_resource(max_entries=2, show_spinner="Loading the model...")
def _cached_model(path: str, mtime: float, device: str, dtype: str) -> LoadedModel:
    return load_model(path, device, dtype)


def cached_model(path: Path, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """The model of a checkpoint, loaded once and reloaded only when the file changes.
    Shows the error and stops the page when the file cannot be used."""
    try:
        return _cached_model(str(path), path.stat().st_mtime, device, dtype)
    except (ValueError, FileNotFoundError, OSError) as e:
        st.error(f"Cannot load this checkpoint: {e}")
        st.stop()
