"""Loss spikes on the Live page's loss chart (core.dynamics.spikes): their markers and the
sentence that explains them. No Streamlit."""

from __future__ import annotations

EXPLAIN_SPIKES = (
    "Red crosses: loss spikes, steps whose train loss is more than 4 robust standard deviations "
    "above the median of the 25 steps before (PaLM, Chowdhery et al. 2022, arXiv 2204.02311, "
    "traced spikes to particular batches meeting particular parameter states)."
)


def spike_trace(x, y, steps, name: str) -> dict:
    """Red crosses on the spikes of a loss curve, with their step on hover."""
    return dict(
        type="scatter",
        x=x,
        y=y,
        mode="markers",
        name=name,
        marker=dict(color="#d62728", size=10, symbol="x"),
        customdata=steps,
        hovertemplate="spike at step %{customdata:,}: loss %{y:.3f}",
    )
