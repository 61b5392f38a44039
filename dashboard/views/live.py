"""Live metrics: curves, progress, run controls, samples and log of one run or several overlaid,
refreshed while they train by a fragment that reads only what was appended to metrics.jsonl.
The view (runs, x axis, smoothing, log scale, overlays) survives page switches and lives in
the URL."""

import html
import time

import numpy as np
import streamlit as st

from core.store import metrics
from core.store.rundir import ACTIVE_STATES, CRASHED, STOPPING, RunDir, list_run_dirs
from core.units import escape_md, format_duration
from dashboard import live_insights, live_panels, live_view, run_actions
from dashboard import state as app_state
from dashboard.batch_view import batch_view
from dashboard.colors import run_color
from dashboard.dynamics_live import dynamics_section, mark_induction
from dashboard.live_cards import UNKNOWN, cards
from dashboard.live_figures import OVERLAYS, build_figures
from dashboard.live_series import (
    X_AXES,
    eta_seconds,
    overfitting_since,
    sample_timeline,
    series_for,
    tail_text,
)
from dashboard.run_table import metrics_csv

REFRESH_S = 1.5
VIEW_KEY = "live_view"  # no widget owns it, so it outlives the widgets when another page runs
WIDGETS = {
    "runs": "live_runs",
    "x": "live_x",
    "smoothing": "live_smoothing",
    "log": "live_log",
    "show": "live_show",
}
DEFAULT_PATIENCE = 3  # evals of rising val loss that mean overfitting, when the run sets none
TIMELINE_MAX = 100


# --- the view: session and URL -----------------------------------------------------------------
def restore_view(run_ids: list[str], selected: str | None) -> None:
    """Put the view into the widgets' keys before they are drawn: this session's stored view,
    else the URL's; a run another page selected (Runs: open live view; New run: launch) is
    followed once."""
    view = st.session_state.get(VIEW_KEY) or live_view.from_params(
        app_state.url_values(*live_view.PARAMS), run_ids
    )
    for name, key in WIDGETS.items():
        if key not in st.session_state:
            st.session_state[key] = view[name]
    runs = [r for r in st.session_state["live_runs"] if r in run_ids]  # deleted runs drop out
    if selected in run_ids and st.session_state.get("_live_followed") != selected:
        runs = [selected]
        st.session_state["_live_followed"] = selected
    st.session_state["live_runs"] = runs or [selected if selected in run_ids else run_ids[0]]


def save_view(view: dict) -> None:
    """Keep the view for the next visit and write it into the URL."""
    st.session_state[VIEW_KEY] = view
    app_state.to_url(**live_view.to_params(view))


def view_controls(run_ids: list[str]) -> dict:
    """The runs picker and chart controls; returns the view they describe."""
    top = st.columns([1, 3], vertical_alignment="bottom", gap="medium")
    chosen = top[0].multiselect(
        "Runs", run_ids, key="live_runs", help="Pick one run, or several to overlay their curves"
    )
    show = top[1].pills(
        "Show",
        list(OVERLAYS),
        format_func=OVERLAYS.get,
        selection_mode="multi",
        key="live_show",
        help="What the loss chart draws besides the training "
        "loss; stop/resume points show on every chart",
    )
    cols = st.columns([3, 3, 1.2], vertical_alignment="bottom", gap="large")
    axis = cols[0].segmented_control(
        "X axis",
        list(X_AXES),
        format_func=X_AXES.get,
        key="live_x",
        required=True,
        help="Training time is summed over every segment of a "
        "run: pauses between a stop and a resume do not count",
    )
    weight = cols[1].slider(
        "Smoothing",
        0.0,
        live_view.SMOOTHING_MAX,
        step=0.01,
        key="live_smoothing",
        help="Exponential moving average with TensorBoard's bias "
        "correction; the raw curve stays faint behind. 0 = off",
    )
    log_y = cols[2].toggle("Log loss", key="live_log", help="Logarithmic y axis on the loss chart")
    return {
        "runs": list(chosen),
        "x": axis or "step",
        "smoothing": float(weight),
        "log": bool(log_y),
        "show": list(show or []),
    }


# --- one run's header --------------------------------------------------------------------------
def run_controls(run: RunDir, state: str) -> None:
    """Stop, Resume, Continue training and Open in Playground for a run, beside its curves."""
    rid = run.run_id
    stop_col, resume_col, continue_col, play_col = st.columns(4)
    with stop_col:
        run_actions.stop_button(run, state, f"live_stop_{rid}")
    with resume_col:
        run_actions.resume_button(run, f"live_resume_{rid}")
    with continue_col:
        run_actions.continue_training(run, state, "live")
    if play_col.button(
        "Open in Playground",
        key=f"live_play_{rid}",
        width="stretch",
        help="Generate from this run's checkpoints",
    ):
        app_state.select_run(rid)  # the Playground's run picker opens on the selected run
        st.switch_page("views/playground.py")


def learning_notes(run: RunDir, series, summary, cfg) -> None:
    """Best val loss and its step, the copy rate, and a warning once the run overfits."""
    if summary.best_val_step is None:
        return
    note = f"Best val loss {summary.best_val_loss:.4f} at step {summary.best_val_step:,}"
    if summary.copy_rate is not None:
        note += (
            f" · latest samples copied {summary.copy_rate:.0%} from the training text "
            f"(longest span {summary.longest_copy or 0:,} tokens)"
        )
    st.caption(note)
    patience = cfg.early_stop_patience or DEFAULT_PATIENCE
    since = overfitting_since(
        series.eval["step"],
        series.eval["val_loss"],
        series.train["step"],
        series.train["loss"],
        patience,
    )
    if since is not None:
        evals = int(np.sum(series.eval["step"] > since))
        kept = (
            " checkpoints/best.pt keeps its weights." if run.best_checkpoint_path.exists() else ""
        )
        st.warning(
            f"Overfitting since step {since:,}: the val loss has been above its best for "
            f"{evals} evals while the training loss kept falling.{kept}"
        )


def _problems(run: RunDir, status: dict, state: str) -> None:
    """What went wrong, for a failed or crashed run."""
    if state == "failed":
        st.error(
            f"Run {run.run_id} failed: {status.get('error') or 'no error was recorded'}. "
            "The log below has the details."
        )
    elif state == CRASHED:
        ckpt = run.checkpoints()
        where = (
            f"from its checkpoint at step {ckpt[-1][0]:,}"
            if ckpt
            else "from the start (no checkpoint yet)"
        )
        st.error(
            f"Run {run.run_id} crashed: its process (pid {status.get('pid')}) is gone and its "
            f"last heartbeat was {format_duration(time.time() - (status.get('updated') or 0), UNKNOWN)} ago. "
            f"Resume continues {where}."
            + (f" Last error: {status['error']}" if status.get("error") else "")
        )


def run_header(
    run: RunDir, series, summary, status: dict, state: str, cfg, show_name: bool
) -> None:
    """Cards, progress bar, learning notes, controls and, for a failed or crashed run, what
    went wrong."""
    train = series.train
    step = max(int(status.get("step") or 0), int(train["step"][-1]) if len(train) else 0)
    max_steps = int(status.get("max_steps") or cfg.max_steps)
    resumes = series.resume_steps()
    eta = (
        eta_seconds(
            train["step"],
            train["time"],
            max_steps,
            since_step=int(resumes[-1]) if resumes.size else 0,
        )
        if state == "running" and not run.stop_requested()
        else None
    )
    shown = run.shown_state(state)
    if show_name:
        name = html.escape(escape_md(run.run_id))  # a folder name is not trusted HTML
        st.markdown(
            f"<span style='color:{run_color(run.run_id)}'>●</span> **{name}**",
            unsafe_allow_html=True,
        )
    cards(run, step, max_steps, eta, shown, series, summary, status, cfg)
    fraction = min(1.0, step / max_steps) if max_steps else 0.0
    text = f"{fraction:.0%} of {max_steps:,} steps"
    if eta is not None:
        text += f" · ETA {format_duration(eta, UNKNOWN)}"
    elif shown == STOPPING:
        text += f" · {run_actions.STOPPING_NOTE}"
    elif state not in ACTIVE_STATES and status.get("reason"):
        text += f" · {status['reason']}"
    st.progress(fraction, text=text)
    if state not in ACTIVE_STATES:
        live_panels.handover_note(run)
    learning_notes(run, series, summary, cfg)
    run_controls(run, state)
    _problems(run, status, state)


# --- charts and details ------------------------------------------------------------------------
def charts_section(all_series: list, summaries: dict, configs: dict, view: dict) -> None:
    """The loss chart across the top, then learning rate, gradient norm, throughput beside
    CPU and memory, step time, and GPU figures when there are any."""
    figures = build_figures(
        all_series,
        axis=view["x"],
        weight=view["smoothing"],
        log_y=view["log"],
        color_of=run_color,
        summaries=summaries,
        show=set(view["show"]),
        targets={r: c.target_loss for r, c in configs.items()},
        clips={r: c.grad_clip for r, c in configs.items()},
    )
    plotly_config = {"displaylogo": False}
    mark_induction(figures["loss"], [s.run for s in all_series], all_series, view["x"])
    loss = figures.pop("loss")
    notes = live_insights.decorate_loss(loss, all_series, configs, view)
    st.plotly_chart(loss, key="live_chart_loss", config=plotly_config)
    live_insights.explain(notes)
    grid = st.columns(2)
    for i, (name, fig) in enumerate(figures.items()):
        with grid[i % 2]:
            st.plotly_chart(fig, key=f"live_chart_{name}", config=plotly_config)
    live_insights.noise_section(all_series, configs, view)


def timeline(series) -> None:
    """The samples logged at each eval, newest first, with that step's val loss and copy rate;
    shown as code (monospace, newlines kept, never read as markdown)."""
    entries = sample_timeline(series)
    if not entries:
        st.caption("No samples yet: one is generated at every evaluation.")
    for e in entries[:TIMELINE_MAX]:
        figures = [f"**step {e.step:,}**"]
        if e.val_loss is not None:
            figures.append(f"val loss {e.val_loss:.4f}")
        if e.copy_rate is not None:
            figures.append(f"copied {e.copy_rate:.0%}")
        st.markdown(" · ".join(figures))
        st.code(e.prompt + e.text, language=None, wrap_lines=True)
    if len(entries) > TIMELINE_MAX:
        st.caption(f"{len(entries) - TIMELINE_MAX} older samples are in the metrics CSV.")


def details(run: RunDir, series, status: dict, cfg) -> None:
    """Sample timeline, log tail and the batch behind a step, in tabs."""
    live_insights.spike_picker(run, series)
    samples, log, batch = st.tabs(["Sample timeline", "Log", "Batch behind a step"])
    with samples:
        left, right = st.columns([3, 1])
        with left, st.container(height=480, border=False):
            timeline(series)
        with right:
            live_panels.yardstick_panel(series, cfg)
    with log, st.container(height=480, border=False, autoscroll=True):
        # autoscroll: the newest lines, at the bottom, stay in view as the log grows.
        st.code(tail_text(run.log_path) or "(the log is empty)", language=None, wrap_lines=True)
    with batch:
        batch_view(run, series.train["step"], int(status.get("world_size") or cfg.nproc))


def live_panel(runs: list[RunDir], view: dict, watching: bool) -> None:
    """Everything that changes while a run trains; as a fragment it reruns on its own every
    REFRESH_S seconds while one of the runs is active (watching)."""
    gone = [run.run_id for run in runs if not run.exists()]
    if gone:
        st.warning(
            f"Run {', '.join(gone)} no longer exists (deleted from another tab?): "
            "pick another run above."
        )
        st.stop()
    store = st.session_state.setdefault("live_series", {})
    all_series, states, summaries, configs, statuses = [], {}, {}, {}, {}
    for run in runs:
        rid = run.run_id
        statuses[rid] = run.read_status()
        states[rid] = run.effective_state(statuses[rid])
        configs[rid] = run.read_config()
        summaries[rid] = metrics.cached_summary(run.metrics_path)
        all_series.append(series_for(store, run))
        run_header(
            run,
            all_series[-1],
            summaries[rid],
            statuses[rid],
            states[rid],
            configs[rid],
            show_name=len(runs) > 1,
        )
    charts_section(all_series, summaries, configs, view)
    dynamics_section(runs, all_series)

    focus = runs[0]
    if len(runs) > 1:
        focus_id = st.selectbox("Samples and log of", [r.run_id for r in runs], key="live_focus")
        focus = next((r for r in runs if r.run_id == focus_id), focus)
    details(focus, all_series[runs.index(focus)], statuses[focus.run_id], configs[focus.run_id])
    for run in runs:
        st.download_button(
            f"Download {run.run_id} metrics (CSV, every record)",
            data=lambda run=run: metrics_csv(run),
            file_name=f"{run.run_id}-metrics.csv",
            mime="text/csv",
            on_click="ignore",
            key=f"live_csv_{run.run_id}",
            icon="⬇️",
        )
    if watching and not any(state in ACTIVE_STATES for state in states.values()):
        st.rerun()  # the last run ended: rerun the page so the fragment stops refreshing


st.title("Live metrics")
# A run whose config.json is damaged cannot be drawn: the Runs page shows it and what is wrong.
all_runs = [r for r in list_run_dirs(app_state.runs_dir()) if r.config_problem() is None]
if not all_runs:
    st.info("No runs yet. Start a training run and watch its loss fall here, live.")
    st.page_link("views/new_run.py", label="Start a new run", icon="🚀")
    st.stop()
by_id = {r.run_id: r for r in all_runs}
restore_view(list(by_id), app_state.selected_run())
current = view_controls(list(by_id))
save_view(current)
if not current["runs"]:
    st.info("Pick at least one run above.")
    st.stop()
app_state.select_run(current["runs"][0])
st.session_state["_live_followed"] = current["runs"][0]
chosen_runs = [by_id[r] for r in current["runs"]]
active = any(r.effective_state() in ACTIVE_STATES for r in chosen_runs)
st.fragment(live_panel, run_every=REFRESH_S if active else None)(chosen_runs, current, active)
