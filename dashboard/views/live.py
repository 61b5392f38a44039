"""Live metrics: curves, progress, run controls, samples and log of one run or several overlaid,
refreshed while they train by a fragment that reads only what was appended to metrics.jsonl.
The view (runs, x axis, smoothing, log scale, overlays) survives page switches and lives in
the URL."""

import html
import time

import numpy as np
import streamlit as st

from core.config import ConfigError
from core.runs import launcher
from core.store import metrics
from core.store.rundir import ACTIVE_STATES, CRASHED, RunDir, list_run_dirs
from dashboard import live_view, run_actions
from dashboard.colors import run_color
from dashboard.live_figures import OVERLAYS, build_figures
from dashboard.live_series import (
    X_AXES,
    eta_seconds,
    overfitting_since,
    sample_timeline,
    series_for,
    tail_text,
)
from dashboard.run_table import format_duration, metrics_csv
from dashboard.state import runs_dir, select_run, selected_run

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


def _md(text: str) -> str:
    """Escape a run id for markdown (ids may hold `_`, which would turn into italics)."""
    return text.replace("\\", "\\\\").replace("_", "\\_").replace("*", "\\*")


def _duration(seconds: float | None) -> str:
    return format_duration(seconds) or "–"


def _num(value: float, fmt: str) -> str:
    return format(value, fmt) if value is not None and np.isfinite(value) else "–"


# --- the view: session and URL -----------------------------------------------------------------
def restore_view(run_ids: list[str], selected: str | None) -> None:
    """Put the view into the widgets' keys before they are drawn: this session's stored view,
    else the URL's; a run another page selected (Runs: open live view; New run: launch) is
    followed once."""
    view = st.session_state.get(VIEW_KEY) or live_view.from_params(
        st.query_params.to_dict(), run_ids
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
    params = live_view.to_params(view)
    for key in [k for k in st.query_params if k not in params]:  # another page's view
        del st.query_params[key]
    for key, value in params.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value


def view_controls(run_ids: list[str]) -> dict:
    """The runs picker and chart controls; returns the view they describe."""
    top = st.columns([3, 2], vertical_alignment="bottom", gap="medium")
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
    """Stop, Resume and Open in Playground for a run, beside its curves."""
    rid = run.run_id
    stop_col, resume_col, continue_col, play_col = st.columns(4)
    if stop_col.button(
        "Stop",
        key=f"live_stop_{rid}",
        disabled=state not in ACTIVE_STATES,
        width="stretch",
        help="Checkpoint and stop after the current step",
    ):
        launcher.stop(run, wait=False)
        st.toast(f"Stop requested for {rid}: it checkpoints and ends after the current step.")
    can, why = launcher.can_resume(run)
    if resume_col.button(
        "Resume",
        key=f"live_resume_{rid}",
        disabled=not can,
        width="stretch",
        help=why[:1].upper() + why[1:],
    ):
        try:
            launcher.resume(run)
        except ConfigError as e:
            st.error(str(e))
        else:
            select_run(rid)
            st.rerun()  # the whole page: the panel refreshes again while the run trains
    if play_col.button(
        "Open in Playground",
        key=f"live_play_{rid}",
        width="stretch",
        help="Generate from this run's checkpoints",
    ):
        select_run(rid)
        st.session_state["pg_run"] = rid  # the Playground's run picker
        st.switch_page("views/playground.py")
    with continue_col:
        run_actions.continue_training(run, state, "live")


def _cards(
    step: int, max_steps: int, eta: float | None, state: str, series, summary, status, cfg
) -> None:
    train = series.train
    last = (lambda c: float(train[c][-1])) if len(train) else (lambda c: None)
    row = st.columns(5)
    row[0].metric(
        "State",
        state,
        help="crashed: the run says running but its process is gone and its heartbeat stopped",
    )
    row[1].metric("Step", f"{step:,} / {max_steps:,}")
    row[2].metric(
        "ETA",
        _duration(eta),
        help="time left at the wall-clock pace of the last "
        "100 steps since the latest start or resume",
    )
    row[3].metric(
        "Training time",
        _duration(summary.train_time_s if summary.last_step else None),
        help="time spent training, summed over every segment of the run (a stop's "
        "pause does not count): the figure the Runs page and Model info show",
    )
    row[4].metric(
        "Processes",
        status.get("world_size") or cfg.nproc,
        help="world size: data-parallel processes (torchrun) training this run",
    )
    row = st.columns(5)
    row[0].metric(
        "Loss",
        _num(last("loss"), ".4f"),
        help=f"training loss at the last step; target {cfg.target_loss:g}"
        if cfg.target_loss
        else "training loss at the last step",
    )
    row[1].metric("Learning rate", _num(last("lr"), ".2e"))
    row[2].metric(
        "Grad norm",
        _num(last("grad_norm"), ".3f"),
        help="global gradient norm before clipping"
        + (f" (clipped to {cfg.grad_clip:g})" if cfg.grad_clip else ""),
    )
    row[3].metric("Tokens/s", _num(last("tokens_per_sec"), ",.0f"))
    mfu = last("mfu")
    row[4].metric(
        "MFU",
        "–" if mfu is None or mfu != mfu else f"{mfu:.1%}",
        help="model FLOPs utilisation: (6N + 12·L·H·Q·T) FLOPs per token x tokens/s "
        "over the device's peak",
    )


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
            f"last heartbeat was {_duration(time.time() - status.get('updated', 0))} ago. "
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
        if state == "running"
        else None
    )
    if show_name:
        name = html.escape(_md(run.run_id))  # a folder name is not trusted HTML
        st.markdown(
            f"<span style='color:{run_color(run.run_id)}'>●</span> **{name}**",
            unsafe_allow_html=True,
        )
    _cards(step, max_steps, eta, state, series, summary, status, cfg)
    fraction = min(1.0, step / max_steps) if max_steps else 0.0
    text = f"{fraction:.0%} of {max_steps:,} steps"
    if eta is not None:
        text += f" · ETA {_duration(eta)}"
    elif state not in ACTIVE_STATES and status.get("reason"):
        text += f" · {status['reason']}"
    st.progress(fraction, text=text)
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
    st.plotly_chart(figures.pop("loss"), key="live_chart_loss", config=plotly_config)
    grid = st.columns(2)
    for i, (name, fig) in enumerate(figures.items()):
        with grid[i % 2]:
            st.plotly_chart(fig, key=f"live_chart_{name}", config=plotly_config)


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


def _token_html(tokens: list[str], losses, lo: float, hi: float) -> str:
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


def _step_batch(inspect_batch, run: RunDir, step: int, world_size: int) -> dict:
    """What the batch view shows for a step: each micro batch's windows as token strings with
    their losses under the nearest checkpoint, and the checksums. Kept for the last step asked,
    so the refreshes of a training run do not run the model again."""
    found = run.checkpoints()
    nearest = min(found, key=lambda c: (abs(c[0] - step), -c[0])) if found else None
    key = (str(run.path), step, world_size, str(nearest[1]) if nearest else None)
    cached = st.session_state.get("_live_batch")
    if cached and cached[0] == key:
        return cached[1]
    from core.data.dataset import get_tokenizer
    from dashboard.checkpoint_picker import cached_model

    batches = inspect_batch.step_batches(run.read_config(), step, world_size)
    model = cached_model(nearest[1]).model if nearest else None
    enc = get_tokenizer()
    shown = dict(
        checkpoint_step=nearest[0] if nearest else None,
        checksum=inspect_batch.batch_checksum(b.x for b in batches),
        recorded=next(
            (
                r.get("batch_checksum")
                for r in metrics.read_all(run.metrics_path)
                if r["kind"] == "train" and r["step"] == step
            ),
            None,
        ),
        windows=[
            (
                b.number,
                [[enc.decode([t]) for t in row] for row in b.x.tolist()],
                inspect_batch.window_losses(model, b.x, b.y)
                if model is not None
                else np.zeros(tuple(b.x.shape)),
            )
            for b in batches
        ],
    )
    st.session_state["_live_batch"] = (key, shown)
    return shown


def batch_view(run: RunDir, series, world_size: int) -> None:
    """The exact token windows of one step's micro batches, decoded, each token shaded by its
    loss under the checkpoint nearest that step."""
    from core.inspect import batch as inspect_batch

    steps = series.train["step"]
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
    if not len(steps) or step > steps[-1]:
        st.caption(f"Step {step:,} is not trained yet.")
        return
    shown = _step_batch(inspect_batch, run, step, world_size)
    recorded, checksum = shown["recorded"], shown["checksum"]
    st.caption(
        f"Checksum {checksum}: "
        + (
            "the one the engine recorded for this step."
            if recorded == checksum
            else "the engine recorded none for this step (an older run)."
            if recorded is None
            else f"the engine recorded {recorded}: the data changed since."
        )
    )
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
                st.html(_token_html(tokens, row_losses, lo, hi))


def details(run: RunDir, series, status: dict, cfg) -> None:
    """Sample timeline, log tail and the batch behind a step, in tabs."""
    samples, log, batch = st.tabs(["Sample timeline", "Log", "Batch behind a step"])
    with samples, st.container(height=480, border=False):
        timeline(series)
    with log, st.container(height=480, border=False, autoscroll=True):
        # autoscroll: the newest lines, at the bottom, stay in view as the log grows.
        st.code(tail_text(run.log_path) or "(the log is empty)", language=None, wrap_lines=True)
    with batch:
        batch_view(run, series, int(status.get("world_size") or cfg.nproc))


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
all_runs = [r for r in list_run_dirs(runs_dir()) if r.config_problem() is None]
if not all_runs:
    st.info("No runs yet. Start a training run and watch its loss fall here, live.")
    st.page_link("views/new_run.py", label="Start a new run", icon="🚀")
    st.stop()
by_id = {r.run_id: r for r in all_runs}
restore_view(list(by_id), selected_run())
current = view_controls(list(by_id))
save_view(current)
if not current["runs"]:
    st.info("Pick at least one run above.")
    st.stop()
select_run(current["runs"][0])
st.session_state["_live_followed"] = current["runs"][0]
chosen_runs = [by_id[r] for r in current["runs"]]
active = any(r.effective_state() in ACTIVE_STATES for r in chosen_runs)
st.fragment(live_panel, run_every=REFRESH_S if active else None)(chosen_runs, current, active)
