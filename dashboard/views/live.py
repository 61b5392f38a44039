"""Live metrics: curves, progress, samples and log of one run or several overlaid, refreshed
while they train by a fragment that reads only what was appended to metrics.jsonl."""

import time

import numpy as np
import streamlit as st

from core.rundir import ACTIVE_STATES, CRASHED, list_run_dirs
from dashboard.colors import run_color
from dashboard.live_data import X_AXES, build_figures, series_for, tail_text
from dashboard.run_table import format_duration
from dashboard.state import runs_dir, select_run, selected_run

REFRESH_S = 1.5


def _md(text: str) -> str:
    """Escape a run id for markdown (ids may hold `_`, which would turn into italics)."""
    return text.replace("\\", "\\\\").replace("_", "\\_").replace("*", "\\*")


def _duration(seconds: float | None) -> str:
    return format_duration(seconds) or "–"


def _num(value: float, fmt: str) -> str:
    return format(value, fmt) if value is not None and np.isfinite(value) else "–"


st.title("Live metrics")
runs = list_run_dirs(runs_dir())
if not runs:
    st.info("No runs yet. Start a training run and watch its loss fall here, live.")
    st.page_link("views/new_run.py", label="Start a new run", icon="🚀")
    st.stop()

by_id = {r.run_id: r for r in runs}
# Follow the run another page selected (Runs -> open live view, New run -> launch).
selected = selected_run()
if selected in by_id and st.session_state.get("_live_followed") != selected:
    st.session_state["live_runs"] = [selected]
    st.session_state["_live_followed"] = selected
kept = [r for r in st.session_state.get("live_runs", []) if r in by_id]  # deleted runs drop out
st.session_state["live_runs"] = kept or [selected if selected in by_id else runs[0].run_id]

chosen = st.multiselect("Runs", list(by_id), key="live_runs",
                        help="Pick one run, or several to overlay their curves")
controls = st.columns([3, 3, 1.2], vertical_alignment="bottom", gap="large")
axis = controls[0].segmented_control("X axis", list(X_AXES), format_func=X_AXES.get,
                                     default="step", key="live_x", required=True)
weight = controls[1].slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="live_smoothing",
                            help="Exponential moving average with TensorBoard's bias correction; "
                                 "the raw curve stays faint behind. 0 = off")
log_y = controls[2].toggle("Log loss", key="live_log", help="Logarithmic y axis on the loss chart")
if not chosen:
    st.info("Pick at least one run above.")
    st.stop()
select_run(chosen[0])
st.session_state["_live_followed"] = chosen[0]
axis = axis or "step"
chosen_runs = [by_id[r] for r in chosen]
any_active = any(r.effective_state() in ACTIVE_STATES for r in chosen_runs)
series_store = st.session_state.setdefault("live_series", {})


def header(run, series, status: dict, state: str) -> None:
    """Cards, progress bar and, for a failed or crashed run, what went wrong."""
    cfg = run.read_config()
    train = series.train
    step = int(status.get("step") or 0)
    last = (lambda c: float(train[c][-1])) if len(train) else (lambda c: None)
    if len(train):
        step = max(step, int(train["step"][-1]))
    max_steps = int(status.get("max_steps") or cfg.max_steps)
    start = series.start_time() or status.get("started")
    end = status.get("ended") or (status.get("updated") if state == CRASHED else None) or time.time()
    elapsed = end - start if start else None

    if len(chosen_runs) > 1:
        st.markdown(f"<span style='color:{run_color(run.run_id)}'>●</span> **{_md(run.run_id)}**",
                    unsafe_allow_html=True)
    eta = None
    if state == "running" and len(train) >= 2:
        # Wall-clock rate over recent steps: includes eval and checkpoint pauses, unlike dt_ms.
        k = min(len(train), 100)
        t, s = train["time"][-k:], train["step"][-k:]
        eta = (t[-1] - t[0]) / max(s[-1] - s[0], 1) * (max_steps - step)
    row = st.columns(5)
    row[0].metric("State", state, help="crashed: the run says running but its process is gone "
                                        "and its heartbeat stopped")
    row[1].metric("Step", f"{step:,} / {max_steps:,}")
    row[2].metric("ETA", _duration(eta) if eta is not None else "–",
                  help="time left at the pace of the last 100 steps")
    row[3].metric("Elapsed", _duration(elapsed), help="wall time since the first step began")
    row[4].metric("Processes", status.get("world_size") or cfg.nproc,
                  help="world size: data-parallel processes (torchrun) training this run")
    row = st.columns(5)
    row[0].metric("Loss", _num(last("loss"), ".4f"),
                  help=f"training loss at the last step; target {cfg.target_loss:g}"
                  if cfg.target_loss else "training loss at the last step")
    row[1].metric("Learning rate", _num(last("lr"), ".2e"))
    row[2].metric("Grad norm", _num(last("grad_norm"), ".3f"),
                  help="global gradient norm before clipping"
                  + (f" (clipped to {cfg.grad_clip:g})" if cfg.grad_clip else ""))
    row[3].metric("Tokens/s", _num(last("tokens_per_sec"), ",.0f"))
    mfu = last("mfu")
    row[4].metric("MFU", "–" if mfu is None or mfu != mfu else f"{mfu:.1%}",
                  help="model FLOPs utilisation: (6N + 12·L·H·Q·T) FLOPs per token x tokens/s "
                       "over the device's peak")

    fraction = min(1.0, step / max_steps) if max_steps else 0.0
    text = f"{fraction:.0%} of {max_steps:,} steps"
    if eta is not None:
        text += f" · ETA {_duration(eta)}"
    elif state not in ACTIVE_STATES and status.get("reason"):
        text += f" · {status['reason']}"
    st.progress(fraction, text=text)

    if state == "failed":
        st.error(f"Run {run.run_id} failed: {status.get('error') or 'no error was recorded'}. "
                 "The log below has the details.")
    elif state == CRASHED:
        ckpt = run.checkpoints()
        where = f"from its checkpoint at step {ckpt[-1][0]:,}" if ckpt else "from the start (no checkpoint yet)"
        st.error(f"Run {run.run_id} crashed: its process (pid {status.get('pid')}) is gone and its "
                 f"last heartbeat was {_duration(time.time() - status.get('updated', 0))} ago. "
                 f"Resume it {where} on the Runs page."
                 + (f" Last error: {status['error']}" if status.get("error") else ""))


def charts_section(all_series: list) -> None:
    """The loss chart across the top, then learning rate, gradient norm, throughput, step time."""
    configs = {s.run.run_id: s.run.read_config() for s in all_series}
    figures = build_figures(all_series, axis=axis, weight=weight, log_y=log_y, color_of=run_color,
                            targets={r: c.target_loss for r, c in configs.items()},
                            clips={r: c.grad_clip for r, c in configs.items()})
    plotly_config = {"displaylogo": False}
    st.plotly_chart(figures.pop("loss"), key="live_chart_loss", config=plotly_config)
    grid = st.columns(2)
    for i, (name, fig) in enumerate(figures.items()):
        with grid[i % 2]:
            st.plotly_chart(fig, key=f"live_chart_{name}", config=plotly_config)


def details(run, series, status: dict) -> None:
    """Samples from training (newest first) and the tail of the log."""
    left, right = st.columns(2)
    with left:
        st.subheader("Samples")
        with st.container(height=420, border=True):
            if not series.samples:
                st.caption("No samples yet: one is generated at every evaluation.")
            for sample in reversed(series.samples[-30:]):
                st.caption(f"step {sample['step']:,}")
                # st.code, not markdown: model text full of `*`, `_`, `#` must show as written.
                st.code(sample["prompt"] + sample["text"], language=None, wrap_lines=True)
    with right:
        st.subheader("Log")
        # autoscroll: the newest lines, at the bottom, stay in view as the log grows.
        with st.container(height=420, border=True, autoscroll=True):
            st.code(tail_text(run.log_path) or "(the log is empty)", language=None,
                    wrap_lines=True)


@st.fragment(run_every=REFRESH_S if any_active else None)
def live_panel() -> None:
    """Everything that changes while a run trains; reruns on its own every REFRESH_S seconds."""
    gone = [run.run_id for run in chosen_runs if not run.exists()]
    if gone:
        st.warning(f"Run {', '.join(gone)} no longer exists (deleted from another tab?): "
                   "pick another run above.")
        st.stop()
    all_series, states = [], {}
    for run in chosen_runs:
        status = run.read_status()
        states[run.run_id] = run.effective_state(status)
        series = series_for(series_store, run)
        all_series.append(series)
        header(run, series, status, states[run.run_id])
    charts_section(all_series)

    focus = chosen_runs[0]
    if len(chosen_runs) > 1:
        focus_id = st.selectbox("Samples and log of", chosen, key="live_focus")
        focus = by_id.get(focus_id, focus)
    focus_series = all_series[chosen_runs.index(focus)]
    details(focus, focus_series, focus.read_status())
    for s in all_series:
        st.download_button(f"Download {s.run.run_id} metrics (CSV, every point)", data=s.to_csv,
                           file_name=f"{s.run.run_id}-metrics.csv", mime="text/csv",
                           on_click="ignore", key=f"live_csv_{s.run.run_id}", icon="⬇️")
    if any_active and not any(state in ACTIVE_STATES for state in states.values()):
        st.rerun()  # the last run ended: rerun the page so the fragment stops refreshing


live_panel()
