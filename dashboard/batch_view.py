"""The Live page's "Batch behind a step" tab: the exact token windows of one optimizer step's
micro batches (core.inspect.batch.describe_step), each token shaded by its loss under the
checkpoint nearest that step, and the step's checksum against the one the engine recorded."""

from __future__ import annotations

import html

import numpy as np
import streamlit as st

from core.data.dataset import DataError
from core.store import metrics
from core.store.rundir import RunDir
from dashboard import glossary

CACHE_KEY = "_live_batch"  # the last step shown: a training run's refreshes do not run the model


def token_html(tokens: list[str], losses, lo: float, hi: float) -> str:
    """One window's tokens as spans shaded by loss from lo (clear) to hi (darkest), the loss in
    nats on hover."""
    spans = []
    for tok, loss in zip(tokens, losses):
        alpha = 0.75 * (float(loss) - lo) / (hi - lo) if hi > lo else 0.0
        spans.append(
            f"<span title='loss {loss:.2f} nats' style='background:rgba(214,39,40,"
            f"{alpha:.2f})'>{html.escape(tok)}</span>"
        )
    return (
        "<div style='font-family:monospace;white-space:pre-wrap;line-height:1.6;"
        "border-left:3px solid rgba(127,127,127,0.4);padding-left:8px'>" + "".join(spans) + "</div>"
    )


def step_batch(run: RunDir, step: int, world_size: int) -> dict:
    """What the tab shows for a step: core's view of its micro batches under the nearest
    checkpoint (losses of zero without one), the checksum the engine recorded. Kept in the
    session for the last step asked."""
    from core.inspect import batch as inspect_batch
    from dashboard.checkpoint_picker import cached_model

    found = run.checkpoints()
    nearest = min(found, key=lambda c: (abs(c[0] - step), -c[0])) if found else None
    key = (str(run.path), step, world_size, str(nearest[1]) if nearest else None)
    cached = st.session_state.get(CACHE_KEY)
    if cached and cached[0] == key:
        return cached[1]
    model = cached_model(nearest[1]).model if nearest else None
    records = metrics.read_all(run.metrics_path)
    view = inspect_batch.describe_step(
        run.read_config(), step, world_size, model, segments=metrics.world_segments(records)
    )
    shown = dict(
        checkpoint_step=nearest[0] if nearest else None,
        checksum=view.checksum,
        recorded=inspect_batch.recorded_checksum(records, step),
        windows=[
            (b.number, b.tokens, np.zeros(np.shape(b.tokens)) if b.losses is None else b.losses)
            for b in view.batches
        ],
    )
    st.session_state[CACHE_KEY] = (key, shown)
    return shown


def checksum_note(checksum: str, recorded: str | None) -> str:
    """The step's checksum, and whether it is the one the engine recorded."""
    if recorded == checksum:
        return f"Checksum {checksum}: the one the engine recorded for this step."
    if recorded is None:
        return f"Checksum {checksum}: the engine recorded none for this step (an older run)."
    return f"Checksum {checksum}: the engine recorded {recorded}: the data changed since."


def batch_view(run: RunDir, trained_steps, world_size: int) -> None:
    """A step picker, then the step's windows, decoded and shaded by loss, one expander per
    micro batch."""
    step = int(
        st.number_input(
            "Step",
            min_value=1,
            value=1,
            step=1,
            key=f"live_batch_{run.run_id}",
            help="An optimizer step, e.g. one where the loss spiked",
        )
    )
    if not len(trained_steps) or step > trained_steps[-1]:
        st.caption(f"Step {step:,} is not trained yet.")
        return
    try:
        shown = step_batch(run, step, world_size)
    except DataError as e:  # the run's text was moved or deleted: the rest of the page works
        st.warning(f"Cannot show the batch: {e}")
        return
    st.caption(glossary.MICRO_BATCH)
    st.caption(checksum_note(shown["checksum"], shown["recorded"]))
    losses = [loss for _, _, loss in shown["windows"]]
    lo, hi = min(float(x.min()) for x in losses), max(float(x.max()) for x in losses)
    st.caption(
        f"Losses under the checkpoint of step {shown['checkpoint_step']:,}: darker = more "
        f"surprising, from {lo:.2f} to {hi:.2f} nats per token (hover a token)."
        if shown["checkpoint_step"] is not None
        else "No checkpoint yet: tokens only."
    )
    for i, (number, rows, loss) in enumerate(shown["windows"]):
        with st.expander(
            f"Micro batch {i + 1} of {len(shown['windows'])} (number {number:,})", expanded=i == 0
        ):
            for tokens, row_losses in zip(rows, loss):
                st.html(token_html(tokens, row_losses, lo, hi))
