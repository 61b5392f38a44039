"""The loss forecast on the Live page's loss chart: the schedule-aware law fitted to the curve so
far (core.dynamics.forecast), drawn as a dashed line with a band to max_steps, and the sentence
that states it. No Streamlit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.dynamics.forecast import Forecast, NotEnoughData, train_forecast, val_forecast
from dashboard.charts import _rgba

SOURCE = (
    "Dashed line and band: the loss forecast to the last step, from the schedule-aware law of "
    "Tissue et al. 2024 (arXiv 2408.11029), L = L0 + A·S1^-α - C·S2 with S1 the area under the "
    "learning-rate curve and S2 its annealing area, fitted to the curve so far and refitted on "
    "every refresh; the band is ±2 standard errors (block jackknife)."
)


UNCERTAIN = 1.0  # nats of band width above which the statement says the forecast is uncertain


@dataclass(frozen=True)
class RunForecast:
    """A run's train and val forecasts (None where there is not enough yet, with why)."""

    run_id: str
    max_steps: int
    train: Forecast | None
    val: Forecast | None
    waiting: str = ""


def forecast_run(run_id: str, cfg, train_steps, train_loss, eval_steps, val_loss, max_steps):
    """Both forecasts of one run; waiting says why the train forecast is not drawn yet."""
    waiting, train, val = "", None, None
    try:
        train = train_forecast(cfg, train_steps, train_loss, max_steps)
    except NotEnoughData as e:
        waiting = str(e)
    if train is not None:
        try:
            val = val_forecast(cfg, eval_steps, val_loss, train)
        except NotEnoughData:
            pass
    return RunForecast(run_id, max_steps, train, val, waiting)


def _range(f: Forecast) -> str:
    mean, lo, hi = f.final
    return f"{mean:.2f} ({lo:.2f}-{hi:.2f})"


def statement(rf: RunForecast, prefix: str = "") -> str:
    """'final train loss about X (X1-X2) at step N; val loss about Y (Y1-Y2)', or why not yet."""
    if rf.train is None:
        return f"{prefix}No forecast yet: {rf.waiting}."
    text = f"{prefix}Forecast at step {rf.max_steps:,}: final train loss about {_range(rf.train)}"
    if rf.val is not None:
        text += f"; val loss about {_range(rf.val)}"
    _, lo, hi = rf.train.final
    if hi - lo > UNCERTAIN:
        text += (
            f". Still uncertain: the band is {hi - lo:.1f} nats wide (it narrows as steps come in)"
        )
    return text + "."


def future_x(steps: np.ndarray, known_steps: np.ndarray, known_x: np.ndarray) -> np.ndarray:
    """x coordinates of future steps on an axis known up to the last train step: extrapolated at
    the pace of the last hundred steps (steps, tokens and training time grow about linearly)."""
    s, x = known_steps[-100:], known_x[-100:]
    ok = np.isfinite(x)
    s, x = s[ok], x[ok]
    if s.size < 2 or s[-1] <= s[0]:
        return np.asarray(steps, dtype=np.float64)
    slope = (x[-1] - x[0]) / (s[-1] - s[0])
    return x[-1] + (np.asarray(steps, dtype=np.float64) - s[-1]) * slope


def _edge(x, y, color: str, name: str, uid: str, fill: bool) -> dict:
    """One invisible edge of a band; the upper one fills down to the lower."""
    edge = dict(type="scatter", x=x, y=y, mode="lines", line=dict(width=0, color=color))
    edge.update(hoverinfo="skip", showlegend=False, legendgroup=name, uid=uid)
    if fill:
        edge.update(fill="tonexty", fillcolor=_rgba(color, 0.15))
    return edge


def band_traces(
    f: Forecast, x: np.ndarray, color: str, name: str, uid: str, dash: str = "dash"
) -> list[dict]:
    """Plotly traces of a forecast: the band (a filled area between lo and hi) and the dashed
    (or dotted, for val) line, with the forecast on hover."""
    line = dict(type="scatter", x=x, y=f.mean, mode="lines", name=name, legendgroup=name, uid=uid)
    line.update(
        line=dict(color=color, width=2, dash=dash),
        customdata=np.stack([f.lo, f.hi], axis=1),
        hovertemplate="%{y:.3f} forecast (%{customdata[0]:.3f}-%{customdata[1]:.3f})",
    )
    return [
        _edge(x, f.lo, color, name, uid + ":lo", fill=False),
        _edge(x, f.hi, color, name, uid + ":hi", fill=True),
        line,
    ]


def add_forecast(
    fig, rf: RunForecast, series, *, axis: str, x_scale: float, color: str, prefix: str
):
    """Add a run's forecasts to the loss figure (nothing when there is none yet)."""
    if rf.train is None or not fig.data:
        return
    steps, known = series.train["step"], series.x_values(axis) / x_scale
    rid = series.run.run_id
    curves = [(rf.train, rf.train.updates + 1, f"{prefix}train forecast", "train", "dash")]
    if rf.val is not None:  # eval k is after k updates
        curves.append((rf.val, rf.val.updates, f"{prefix}val forecast", "val", "dot"))
    for f, at_steps, name, what, dash in curves:
        x = future_x(at_steps, steps, known)
        for trace in band_traces(f, x, color, name, f"{rid}:forecast:{what}", dash):
            fig.add_trace(trace)


def continue_note(run, from_step: int, max_steps: int) -> str:
    """What the forecast says a run continued from its checkpoint at from_step to max_steps will
    reach (the extra steps at min_lr), fitted to its records up to that checkpoint; empty when
    the run has too few of them or the new max_steps is invalid."""
    from core.config import ConfigError
    from core.runs.launcher import continued_config
    from core.store.metrics import read_columns

    try:
        cfg = continued_config(run.read_config(), from_step, max_steps)
    except ConfigError:
        return ""
    try:
        chunk = run.metrics_path.read_bytes()
    except OSError:
        return ""
    # complete lines only, through the one columnar reader (in bulk for a long run)
    tables = read_columns(
        chunk[: chunk.rfind(b"\n") + 1], {"train": ("loss",), "eval": ("val_loss",)}
    )
    t, e = tables["train"], tables["eval"]
    tk, ek = t["step"] <= from_step, e["step"] <= from_step
    rf = forecast_run(
        run.run_id, cfg, t["step"][tk], t["loss"][tk], e["step"][ek], e["val_loss"][ek], max_steps
    )
    if rf.train is None:
        return ""
    return statement(rf) + " (the loss law of Tissue et al. 2024, fitted to the steps so far)"
