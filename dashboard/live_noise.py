"""The batch size advisor on the Live page: the gradient noise scale of each run over its steps
(core.dynamics.noise_scale), against the batch it trains with. No Streamlit."""

from __future__ import annotations

import numpy as np

from core.dynamics.noise_scale import advice, noise_scale
from dashboard.charts import HLine, Trace, line_figure

EXPLAIN = (
    "Gradient noise scale B_simple = tr(Σ)/|G|² in tokens (McCandlish et al. 2018, arXiv "
    "1812.06162), from the gradient norms of one micro batch and of the whole step, each "
    "averaged over about 20 steps: around it lies the critical batch, where doubling the batch "
    "stops halving the steps needed. It grows as the loss falls."
)
HOW_TO = (
    "{rid} cannot estimate it: it takes one micro step per optimizer step, so there is no "
    "second batch size to compare. Set grad_accum_steps to 2 or more (halving "
    "micro_batch_size keeps the tokens per step) with noise_scale on."
)


def run_noise(series, cfg, world_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, B_simple) of a run, or None when it recorded no micro-batch gradient norms."""
    micro = series.train["micro_grad_norm"] if len(series.train) else np.empty(0)
    keep = np.isfinite(micro)
    if not keep.any():
        return None
    b_small = cfg.micro_batch_size * cfg.seq_len
    b_big = cfg.tokens_per_step(world_size)
    scale = noise_scale(micro[keep], series.train["grad_norm"][keep], b_small, b_big)
    return series.train["step"][keep], scale


def noise_view(found: list, *, color_of, x_title: str) -> tuple[object, list[str]]:
    """The figure (log y: the scale spans decades; None when no run has an estimate) and the
    sentences: per run its advice, or how to get the estimate. found: (run id, (steps, scale) or None, tokens per step, x)."""
    traces, lines, notes = [], [], []
    one = len(found) == 1
    for rid, got, per_step, x_of in found:
        if got is None:
            notes.append(HOW_TO.format(rid=rid))
            continue
        steps, scale = got
        ok = np.isfinite(scale) & (scale > 0)
        if ok.any():
            label = "noise scale" if one else rid
            traces.append(Trace(x_of(steps[ok]), scale[ok], label, color_of(rid), uid=rid))
            lines.append(HLine(per_step, f"{'' if one else rid + ' '}batch {per_step:,} tokens"))
            last = float(scale[ok][-1])
        else:
            last = float("nan")
        notes.append(("" if one else f"{rid}: ") + advice(last, per_step))
    if not traces:  # nothing to chart: the sentences say why and how to get it
        return None, notes
    fig = line_figure(
        traces,
        title="Gradient noise scale (critical batch)",
        x_title=x_title,
        y_title="B_simple (tokens)",
        log_y=True,
        hlines=lines,
        y_format=",.0f",
        uirevision="noise",
    )
    return fig, notes
