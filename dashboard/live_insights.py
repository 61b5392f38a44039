"""What the Live page's loss chart adds to the curves: reference baselines (with val loss in bits
per character), the forecast of the final loss and the epochs seen. The Streamlit side: loading and fitting
(cached), drawing onto the loss figure and the sentences under it."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.data.baselines import load_baselines
from core.data.dataset import DataError
from core.data.repetition import (
    FADED_EPOCHS,
    NEARLY_NEW_EPOCHS,
    repetition_note,
    steps_per_epoch,
    train_tokens,
)
from dashboard import live_baselines, live_forecast
from dashboard.charts import VLine
from dashboard.colors import run_color
from dashboard.live_baselines import RunBaselines, add_reference_lines
from dashboard.live_figures import _x_axis
from dashboard.live_spikes import EXPLAIN_SPIKES, spike_trace


@st.cache_data(
    show_spinner="Counting the n-grams of the training split (once per data set)…",
    max_entries=16,
)
def _baselines(data: str, val_fraction: float):
    return load_baselines(data, val_fraction)


def run_baselines(run_id: str, cfg) -> RunBaselines:
    """A run's baselines, or the one-line reason there are none (its data file is gone)."""
    try:
        return RunBaselines(run_id, _baselines(cfg.data, cfg.val_fraction))
    except (DataError, OSError) as e:
        return RunBaselines(run_id, None, f"its data cannot be read ({e})")


def _last_val(series) -> float | None:
    vals = series.eval["val_loss"]
    vals = vals[np.isfinite(vals)]
    return float(vals[-1]) if vals.size else None


def run_forecast(series, cfg, max_steps: int) -> live_forecast.RunForecast:
    """A run's forecast, fitted again only when points arrived (kept in the session), so an idle
    refresh costs nothing."""
    train, ev = series.train, series.eval
    key = (len(train), len(ev), max_steps, cfg.warmup_steps, cfg.max_lr, cfg.lr_decay_steps)
    store = st.session_state.setdefault("_live_forecasts", {})
    cached = store.get(series.run.run_id)
    if cached is None or cached[0] != key:
        found = live_forecast.forecast_run(
            series.run.run_id,
            cfg,
            train["step"],
            train["loss"],
            ev["step"],
            ev["val_loss"],
            max_steps,
        )
        cached = store[series.run.run_id] = (key, found)
    return cached[1]


def add_forecasts(fig, all_series: list, configs: dict, view: dict) -> str:
    """Draw each run's forecast and return what it says (or when it will be drawn)."""
    one, lines = len(all_series) == 1, []
    x_scale = _x_axis(all_series, view["x"])[0]  # as the figures scale the time axis
    for s in all_series:
        rid, cfg = s.run.run_id, configs[s.run.run_id]
        max_steps = int(s.run.read_status().get("max_steps") or cfg.max_steps)
        rf = run_forecast(s, cfg, max_steps)
        prefix = "" if one else f"{rid} "
        live_forecast.add_forecast(
            fig, rf, s, axis=view["x"], x_scale=x_scale, color=run_color(rid), prefix=prefix
        )
        lines.append(live_forecast.statement(rf, "" if one else f"{rid}: "))
    return " ".join(lines) + " " + live_forecast.SOURCE


def decorate_loss(fig, all_series: list, configs: dict, view: dict) -> list[str]:
    """Draw what the view asks for onto the loss figure; returns the sentences to show under
    it (each names where its figures come from)."""
    notes = []
    if "baselines" in view["show"]:
        found = [run_baselines(s.run.run_id, configs[s.run.run_id]) for s in all_series]
        add_reference_lines(fig, live_baselines.reference_lines(found), view["log"])
        live_baselines.add_bits_per_char(fig, found)
        last = {s.run.run_id: _last_val(s) for s in all_series}
        notes.append(live_baselines.explanation(found, last))
    if "forecast" in view["show"]:
        notes.insert(0, add_forecasts(fig, all_series, configs, view))
    if "epochs" in view["show"]:
        notes.append(add_epochs(fig, all_series, configs, view))
    if "spikes" in view["show"]:
        notes.append(add_spikes(fig, all_series, view))
    return [n for n in notes if n]


def explain(notes: list[str]) -> None:
    for note in notes:
        st.caption(note)


def add_epochs(fig, all_series: list, configs: dict, view: dict) -> str:
    """Dotted lines where each run reaches 4 and 16 epochs (within its planned steps) and the
    sentence placing it on the repeated-data scale of Muennighoff et al. 2023."""
    lines, notes = [], []
    x_scale = _x_axis(all_series, view["x"])[0]
    for s in all_series:
        rid, cfg = s.run.run_id, configs[s.run.run_id]
        try:
            per_epoch = steps_per_epoch(train_tokens(cfg.data, cfg.val_fraction), cfg)
        except (DataError, OSError):
            continue
        if not per_epoch or not len(s.train):
            continue
        max_steps = int(s.run.read_status().get("max_steps") or cfg.max_steps)
        marks = [e for e in (NEARLY_NEW_EPOCHS, FADED_EPOCHS) if e * per_epoch <= max_steps]
        steps = np.array([e * per_epoch for e in marks])
        xs = live_forecast.future_x(steps, s.train["step"], s.x_values(view["x"]) / x_scale)
        name = "" if len(all_series) == 1 else f"{rid}: "
        lines += [VLine(float(x), f"{name}{e:g} epochs", run_color(rid)) for e, x in zip(marks, xs)]
        seen = float(s.train["step"][-1]) / per_epoch
        notes.append(
            f"{name}{seen:,.1f} epochs seen so far, {max_steps / per_epoch:,.1f} planned: "
            + repetition_note(max_steps / per_epoch)
        )
    if lines:
        add_reference_lines(fig, [], view["log"], vlines=lines)
    return " ".join(notes)


def _cached_noise(series, cfg, world: int):
    """run_noise, computed again only when points arrived (an idle refresh costs nothing)."""
    from dashboard.live_noise import run_noise

    store = st.session_state.setdefault("_live_noise", {})
    key = (len(series.train), world, cfg.micro_batch_size, cfg.seq_len, cfg.grad_accum_steps)
    cached = store.get(str(series.run.path))
    if cached is None or cached[0] != key:
        cached = store[str(series.run.path)] = (key, run_noise(series, cfg, world))
    return cached[1]


def noise_section(all_series: list, configs: dict, view: dict) -> None:
    """The batch size advisor: the noise scale of each run, the batch it uses, the advice."""
    from dashboard.live_noise import EXPLAIN, noise_view

    x_scale, x_title = _x_axis(all_series, view["x"])
    found = []
    for s in all_series:
        rid, cfg = s.run.run_id, configs[s.run.run_id]
        world = int(s.run.read_status().get("world_size") or cfg.nproc)
        x_of = lambda steps, s=s: s.x_at(steps, view["x"]) / x_scale  # noqa: E731
        found.append((rid, _cached_noise(s, cfg, world), cfg.tokens_per_step(world), x_of))
    fig, notes = noise_view(found, color_of=run_color, x_title=x_title)
    if fig is not None:
        st.plotly_chart(fig, key="live_chart_noise", config={"displaylogo": False})
    st.caption(" ".join(notes + [EXPLAIN]))


def run_spikes(series) -> np.ndarray:
    """Spike steps of a run, found incrementally: only new points are checked each refresh."""
    from core.dynamics.spikes import find_spikes

    loss, store = series.train["loss"], st.session_state.setdefault("_live_spikes", {})
    key = str(series.run.path)
    n, found = store.get(key, (0, np.empty(0, dtype=np.int64)))
    if n > loss.size:  # the series started over (a resume rewrote the file)
        n, found = 0, np.empty(0, dtype=np.int64)
    if loss.size > n:
        found = np.concatenate([found, find_spikes(loss, start=n)])
        store[key] = (loss.size, found)
    return found


def add_spikes(fig, all_series: list, view: dict) -> str:
    """Mark each run's spikes on the loss chart; the sentence lists their steps."""
    x_scale, listed = _x_axis(all_series, view["x"])[0], []
    for s in all_series:
        idx = run_spikes(s)
        if not idx.size or not fig.data:
            continue
        x = s.x_values(view["x"])[idx] / x_scale
        name = "spikes" if len(all_series) == 1 else f"{s.run.run_id} spikes"
        fig.add_trace(spike_trace(x, s.train["loss"][idx], s.train["step"][idx], name))
        steps = ", ".join(f"{int(v):,}" for v in s.train["step"][idx][-10:])
        listed.append(("" if len(all_series) == 1 else f"{s.run.run_id}: ") + steps)
    found = f" Spikes at steps {'; '.join(listed)}." if listed else " No spikes so far."
    return EXPLAIN_SPIKES + found


def spike_picker(run, series) -> None:
    """Open a spike's batch in the 'Batch behind a step' tab (its step field is set)."""
    steps = [int(series.train["step"][i]) for i in run_spikes(series)]
    if not steps:
        return

    def open_batch() -> None:
        st.session_state[f"live_batch_{run.run_id}"] = st.session_state["live_spike_pick"]

    picked = st.selectbox(
        "Open a spike's batch",
        steps[::-1],
        index=None,
        key="live_spike_pick",
        on_change=open_batch,
        placeholder="pick a spike: its batch shows in the 'Batch behind a step' tab below",
        help="The tokens that step trained on, each shaded by its loss under the nearest checkpoint",
    )
    if picked is not None:
        replay(run, series, int(picked))


def replay(run, series, step: int) -> None:
    """Replay a spike's batch under the newest checkpoint or snapshot from before it: do the
    earlier weights find it hard too (the data) or not (the model's state)?"""
    from core.dynamics.spikes import WINDOW, replay_loss, verdict
    from dashboard.checkpoint_picker import cached_model

    before = [c for c in run.checkpoints() + run.snapshots() if c[0] < step]
    if not before:
        st.caption(f"No checkpoint or snapshot from before step {step:,} to replay it with.")
        return
    saved_at, path = max(before)
    if not st.button(
        f"Replay step {step:,} with the weights of step {saved_at:,}", key="live_replay"
    ):
        return
    cfg, world = run.read_config(), int(run.read_status().get("world_size") or 1)
    replayed = replay_loss(cached_model(path).model, cfg, step, world)
    train = series.train
    i = int(np.searchsorted(train["step"], step))
    typical = float(np.nanmedian(train["loss"][max(0, i - WINDOW) : i]))
    at_spike = float(train["loss"][i])
    st.info(
        f"Step {step:,}: loss {at_spike:.3f} at the spike, {replayed:.3f} under the weights of "
        f"step {saved_at:,}, {typical:.3f} typical before it: {verdict(replayed, at_spike, typical)} "
        "(PaLM: spikes come from particular batches meeting particular parameter states)."
    )
