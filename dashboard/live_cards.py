"""The Live page's figure cards for one run: state, step, ETA, training time and processes, then
the latest loss, learning rate, gradient norm, throughput and MFU (model FLOPs utilisation, as
in the PaLM paper)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.store import metrics
from core.store.rundir import RunDir
from core.units import format_duration
from dashboard import glossary

UNKNOWN = "–"  # a figure not known yet


def number(value: float, fmt: str) -> str:
    return format(value, fmt) if value is not None and np.isfinite(value) else UNKNOWN


def cards(
    run: RunDir,
    step: int,
    max_steps: int,
    eta: float | None,
    state: str,
    series,
    summary,
    status,
    cfg,
) -> None:
    """Two rows of five cards: how far the run is, then its latest training figures, and the
    peak MFU is measured against."""
    progress_cards(step, max_steps, eta, state, summary, status, cfg)
    start = metrics.first_start(run.metrics_path) or {}
    peak = glossary.peak_text(start.get("peak_flops"), start.get("peak_source"))
    latest_cards(series, cfg, peak)
    st.caption(f"MFU is measured against a peak of {peak}.")


def progress_cards(
    step: int, max_steps: int, eta: float | None, state: str, summary, status, cfg
) -> None:
    """State, step, ETA, training time and processes."""
    row = st.columns(5)
    row[0].metric(
        "State",
        state,
        help="crashed: the run says running but its process is gone and its heartbeat stopped; "
        "stopping: Stop was pressed and the run finishes its final eval, sample and checkpoint",
    )
    row[1].metric("Step", f"{step:,} / {max_steps:,}")
    row[2].metric(
        "ETA",
        format_duration(eta, UNKNOWN),
        help="time left at the wall-clock pace of the last "
        "100 steps since the latest start or resume",
    )
    row[3].metric(
        "Training time",
        format_duration(summary.train_time_s if summary.last_step else None, UNKNOWN),
        help="time spent training, summed over every segment of the run (a stop's "
        "pause does not count): the figure the Runs page and Model info show",
    )
    row[4].metric(
        "Processes",
        status.get("world_size") or cfg.nproc,
        help="world size: data-parallel processes (torchrun) training this run",
    )


def latest_cards(series, cfg, peak: str) -> None:
    """Loss, learning rate, gradient norm, tokens/s and MFU at the last step."""
    train = series.train
    last = (lambda c: float(train[c][-1])) if len(train) else (lambda c: None)
    row = st.columns(5)
    row[0].metric(
        "Loss",
        number(last("loss"), ".4f"),
        help=f"training loss at the last step; target {cfg.target_loss:g}"
        if cfg.target_loss
        else "training loss at the last step",
    )
    row[1].metric("Learning rate", number(last("lr"), ".2e"))
    row[2].metric(
        "Grad norm",
        number(last("grad_norm"), ".3f"),
        help="global gradient norm before clipping"
        + (f" (clipped to {cfg.grad_clip:g})" if cfg.grad_clip else ""),
    )
    row[3].metric("Tokens/s", number(last("tokens_per_sec"), ",.0f"))
    mfu = last("mfu")
    row[4].metric(
        "MFU",
        UNKNOWN if mfu is None or mfu != mfu else f"{mfu:.1%}",
        help=f"{glossary.MFU} Peak here: {peak}.",
    )
