"""The learning-rate range test on the New run page (core.train.lr_range): its cost before it
starts, a progress bar while it runs (any click cancels it), the loss against the rate on a log
axis, and the suggested max_lr applied to the form with one click. Nothing is saved: no run
appears in the runs list."""

from __future__ import annotations

import math

import streamlit as st

from core.units import format_duration
from dashboard.charts import Trace, VLine, line_figure
from dashboard.new_run_form import KEY_PREFIX, format_float

RESULT = KEY_PREFIX + "lr_range_result"
STEPS = 100  # core.train.lr_range.STEPS, not imported here: that module loads torch
EXPLAIN = (
    "A throwaway run of this shape and batch whose learning rate rises exponentially from 1e-06 "
    f"to 1 over {STEPS} steps (Smith 2015, arXiv 1506.01186); the suggestion is where the "
    "smoothed loss falls fastest, as PyTorch Lightning's LearningRateFinder picks it. Nothing "
    "is saved and no run is created."
)


def _shape(cfg) -> tuple:
    """What the test's result depends on: a changed field makes it stale."""
    names = ("n_layer", "n_head", "n_embd", "block_size", "dropout", "micro_batch_size")
    names += ("seq_len", "grad_accum_steps", "weight_decay", "data", "seed", "device")
    return tuple(getattr(cfg, n) for n in names)


def _apply(value: float) -> None:
    st.session_state[KEY_PREFIX + "max_lr"] = format_float(float(f"{value:.2g}"))


def lr_range_panel(cfg, tokens_per_sec: float | None) -> None:
    """The panel: cost and Run, then the chart and 'Use max_lr' once a result is in."""
    st.markdown("**Learning-rate range test**")
    step_s = cfg.tokens_per_step() / tokens_per_sec if tokens_per_sec else None
    cost = f"about {format_duration(STEPS * step_s)}" if step_s else "an unknown time"
    st.caption(f"{EXPLAIN} It takes {cost} on this machine; any click on the page cancels it.")
    if st.button("Run the range test", key=KEY_PREFIX + "lr_range_go"):
        from core.train.lr_range import lr_range_test

        bar = st.progress(0.0, text="starting the range test…")

        def progress(step: int, lr: float, loss: float) -> None:
            text = f"step {step}/{STEPS} · lr {lr:.1e} · loss {loss:.3f}"
            bar.progress(step / STEPS, text=text)

        st.session_state[RESULT] = (_shape(cfg), lr_range_test(cfg, progress=progress))
        bar.empty()
    found = st.session_state.get(RESULT)
    if not found or found[0] != _shape(cfg):
        return
    result = found[1]
    st.plotly_chart(range_figure(result), key=KEY_PREFIX + "lr_range_chart")
    if result.suggested is None:
        st.warning("The loss never fell over the range: try a smaller model or check the data.")
        return
    st.button(
        f"Use max_lr = {float(f'{result.suggested:.2g}'):g}",
        key=KEY_PREFIX + "lr_range_apply",
        on_click=_apply,
        args=(result.suggested,),
        help="Puts the suggested rate into the max_lr field above",
    )


def range_figure(result):
    """Loss (raw, faint; smoothed) against the rate on a log x axis, the suggestion marked."""
    traces = [
        Trace(result.lrs, result.losses, "loss (raw)", "#1f77b4", "raw"),
        Trace(result.lrs, result.smoothed, "loss (smoothed)", "#1f77b4", "smooth"),
    ]
    marks = []
    if result.suggested is not None:
        marks = [VLine(math.log10(result.suggested), f"suggested {result.suggested:.1e}")]
    fig = line_figure(traces, x_title="learning rate (log)", y_title="training loss", vlines=marks)
    fig.update_xaxes(type="log")
    return fig
