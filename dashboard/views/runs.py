"""Runs: every run in the runs directory, with stop, resume, delete, CSV download and compare.

The app's first screen, so it imports neither torch nor plotly: the compare chart loads its
helpers when a comparison is drawn. The table, the selected run's line and buttons, and the
comparison follow running runs on their own (fragments that rerun every REFRESH_S seconds).
The selected run, the compared runs and the main controls are in the URL.
"""

import streamlit as st

from core.config import ConfigError
from core.runs import launcher
from core.runs import queue as run_queue
from core.runs.launcher import RunInfo
from core.store import metrics, rundir
from core.store.rundir import ACTIVE_STATES
from dashboard import run_actions, run_table, state

STATE_ORDER = (
    "running",
    "queued",
    "waiting",
    "completed",
    "stopped",
    "failed",
    "crashed",
    "damaged",
)
REFRESH_S = 2.0
TABLE_DRAWN = "runs_table_drawn"  # this session has seen a full table
SMOOTHING_DEFAULT = 0.6
LOSS_FORMAT = st.column_config.NumberColumn(format="%.4f")
TABLE_CONFIG = {
    "name": st.column_config.TextColumn("name", pinned=True),
    "progress": st.column_config.ProgressColumn(
        "progress", min_value=0.0, max_value=1.0, format="percent"
    ),
    "last loss": LOSS_FORMAT,
    "best loss": LOSS_FORMAT,
    "best val loss": LOSS_FORMAT,
    "final loss": LOSS_FORMAT,
    "tokens seen": st.column_config.NumberColumn(format="localized"),
    "tokens / step": st.column_config.NumberColumn(format="localized"),
    "max lr": st.column_config.NumberColumn(format="%.2e"),
    "training time": st.column_config.TextColumn(
        "training time", help="Time spent training, summed over every start and resume"
    ),
    "error": st.column_config.TextColumn("error", width="large"),
}


def refresh_every(infos: list[RunInfo]) -> float | None:
    """How often a panel showing these runs rereads them: while any is active, else never."""
    return REFRESH_S if any(i.state in ACTIVE_STATES for i in infos) else None


def rerun_when_settled(was_active: bool, infos: list[RunInfo]) -> None:
    """Rerun the whole page once the runs a panel follows have all ended, so its timer stops
    and every part of the page shows the final states."""
    if was_active and refresh_every(infos) is None:
        st.rerun()


def fresh_infos(runs_root, run_ids: list[str]) -> list[RunInfo]:
    """The runs with these ids, read again now (deleted ones drop out), in the given order."""
    by_id = {i.run_id: i for i in launcher.list_runs(runs_root)}
    return [by_id[r] for r in run_ids if r in by_id]


def dataframe(rows: list[dict], key: str | None, columns: tuple[str, ...]) -> None:
    """Rows as a sortable table in the given column order, empty cells where a value is
    unknown (never "None")."""
    import pandas as pd

    table = pd.DataFrame(rows)
    for column in ("last loss", "best loss", "best val loss", "final loss"):
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    for column in ("title", "note"):  # shown once some run has one
        if column in table and not table[column].astype(bool).any():
            table = table.drop(columns=column)
    st.dataframe(
        table,
        key=key,
        hide_index=True,
        width="stretch",
        column_order=[c for c in columns if c in table],
        column_config={k: v for k, v in TABLE_CONFIG.items() if k in table},
    )


# --- the table ---------------------------------------------------------------------------------


def state_filter() -> list[str]:
    """The states the table shows (fixed options: a run that changes state stays visible)."""
    state.seed_from_url("runs_state_filter", "states", state.one_of(STATE_ORDER), many=True)
    st.session_state.setdefault("runs_state_filter", list(STATE_ORDER))
    return st.multiselect(
        "Filter by state", STATE_ORDER, key="runs_state_filter", persist_state="session"
    )


def table_panel(runs_root, shown_states: list[str], was_active: bool) -> None:
    """The table of runs in the shown states, reread on every refresh. A session's first table
    is drawn from the status files first, then again with the metrics summaries: reading a
    long run's metrics the first time takes a while, and the table need not wait for it."""
    infos = launcher.list_runs(runs_root)
    shown = [i for i in infos if i.state in shown_states]
    if not shown:
        st.caption("No runs in the chosen states.")
    else:
        slot = st.empty()
        if not st.session_state.get(TABLE_DRAWN):
            with slot:
                dataframe(run_table.table_rows(shown, with_metrics=False), None, run_table.COLUMNS)
        with slot:
            dataframe(run_table.table_rows(shown), "runs_table", run_table.COLUMNS)
        st.session_state[TABLE_DRAWN] = True
    rerun_when_settled(was_active, infos)


# --- the selected run --------------------------------------------------------------------------


def pick_run(ids: list[str]) -> str:
    """The run the actions apply to: from the URL on a reload, else the run selected on any
    page, else the newest. Choosing one (or arriving by a link) selects it for every page."""
    if state.seed_from_url("runs_selected", "run", state.one_of(ids)):
        state.select_run(st.session_state["runs_selected"])
    if st.session_state.get("runs_selected") not in ids:
        elsewhere = state.selected_run()
        st.session_state["runs_selected"] = elsewhere if elsewhere in ids else ids[0]
    return st.selectbox(
        "Run", ids, key="runs_selected", on_change=state.select_run_of, args=("runs_selected",)
    )


def run_line(info: RunInfo) -> None:
    """Title, state and step of the run, its note; for a failed or crashed run, what went
    wrong."""
    # metrics.jsonl has every step; status.json's step is a heartbeat, at most once a second.
    summary = metrics.cached_summary(info.run.metrics_path)
    step = max(info.status.get("step") or 0, summary.last_step)
    notes = info.run.read_notes()
    title = notes["title"] if notes["title"] != info.run_id else ""
    title = f"**{run_table.escape_md(title)}** · " if title else ""
    st.markdown(
        f"{title}State: **{info.state}** · step {step} / {info.status.get('max_steps', '?')}"
    )
    if notes["note"]:
        st.text(notes["note"])  # plain text: a note is never read as markdown or HTML
    if info.state in ("failed", "crashed", "damaged"):
        checkpoints = info.run.checkpoints()
        resume_from = (
            f"Resume continues from the checkpoint at step {checkpoints[-1][0]}."
            if checkpoints
            else "There is no checkpoint to resume from."
        )
        st.error(
            (
                info.status.get("error")
                or "The process ended without writing a final "
                "status (killed, out of memory, or the machine restarted)."
            )
            + " "
            + resume_from
        )


def action_buttons(info: RunInfo) -> None:
    """Open live view, Stop, Resume (where it would train something), Continue training;
    New run from this one, title and note, Delete (asks first) and the metrics CSV."""
    active = info.state in ACTIVE_STATES
    open_col, stop_col, resume_col, more_col = st.columns(4)
    if open_col.button("Open live view", key="runs_open", width="stretch"):
        state.select_run(info.run_id)
        st.switch_page("views/live.py")
    if stop_col.button(
        "Stop",
        key="runs_stop",
        disabled=not active,
        width="stretch",
        help="Checkpoint and stop after the current step; the next queued run then starts",
    ):
        launcher.stop(info.run, wait=False)
        st.toast(
            f"Stop requested for {info.run_id}: it checkpoints and ends after the current step."
        )
        st.rerun()
    can, why = run_actions.resume_reason(info.run)
    if resume_col.button("Resume", key="runs_resume", disabled=not can, width="stretch", help=why):
        resume(info)
    with more_col:
        run_actions.continue_training(info.run, info.state, "runs")
    copy_col, notes_col, delete_col, csv_col = st.columns(4)
    if copy_col.button(
        "New run from this one",
        key="runs_copy",
        width="stretch",
        help="Open the New run form filled with this run's settings",
    ):
        run_actions.open_new_run_from(info.run)
    with notes_col:
        notes_editor(info)
    if delete_col.button(
        "Delete",
        key="runs_delete",
        disabled=active,
        width="stretch",
        help="Stop it first" if active else "Remove the run directory",
    ):
        st.session_state["runs_confirm_delete"] = info.run_id
    csv_col.download_button(
        "Metrics CSV",
        data=lambda run=info.run: run_table.metrics_csv(run),
        file_name=f"{info.run_id}-metrics.csv",
        mime="text/csv",
        key="runs_download",
        width="stretch",
        disabled=not info.run.metrics_path.exists(),
    )


def notes_editor(info: RunInfo) -> None:
    """A popover to give the run a title (shown in the table; the run id never changes) and a
    free-text note, stored in the run directory."""
    rid = info.run_id
    with st.popover(
        "Title and note",
        width="stretch",
        help="Rename the run for the tables and keep a note with it",
    ):
        notes = info.run.read_notes()
        st.session_state.setdefault(f"runs_title_{rid}", notes["title"])
        st.session_state.setdefault(f"runs_note_{rid}", notes["note"])
        with st.form(f"runs_notes_{rid}", border=False):
            title = st.text_input(
                "Title",
                key=f"runs_title_{rid}",
                max_chars=rundir.TITLE_MAX,
                help="Shown beside the run id in the tables",
            )
            note = st.text_area(
                "Note",
                key=f"runs_note_{rid}",
                max_chars=rundir.NOTE_MAX,
                placeholder="What this run tries, what you saw...",
            )
            saved = st.form_submit_button("Save", key=f"runs_notes_save_{rid}", type="primary")
        if saved:
            try:
                info.run.write_notes(title=title, note=note)
            except (ConfigError, OSError) as e:
                st.error(str(e))
            else:
                st.toast(f"Saved the title and note of {rid}.")
                st.rerun()


def resume(info: RunInfo) -> None:
    try:
        launcher.resume(info.run)
    except (ConfigError, OSError) as e:
        st.error(str(e))
    else:
        state.select_run(info.run_id)
        st.toast(f"Resumed {info.run_id} from its latest checkpoint.")
        st.rerun()


def confirm_delete(info: RunInfo) -> None:
    """The 'are you sure' row after Delete was pressed for this run."""
    if st.session_state.get("runs_confirm_delete") != info.run_id:
        return
    st.warning(
        f"Delete run **{info.run_id}** with its metrics and checkpoints? This cannot be undone."
    )
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", key="runs_delete_confirm", type="primary"):
        st.session_state.pop("runs_confirm_delete", None)
        try:
            launcher.delete(info.run)
        except ConfigError as e:
            st.error(str(e))
        else:
            state.select_run(None)
            st.session_state.pop("runs_selected", None)
            st.toast(f"Deleted {info.run_id}.")
            st.rerun()
    if no.button("Cancel", key="runs_delete_cancel"):
        st.session_state.pop("runs_confirm_delete", None)
        st.rerun()


def selected_panel(runs_root, run_id: str, was_active: bool) -> None:
    """The selected run's line and buttons, reread on every refresh like the table."""
    infos = fresh_infos(runs_root, [run_id])
    if not infos:
        st.warning(f"Run {run_id} no longer exists (deleted from another tab?).")
        return
    run_line(infos[0])
    action_buttons(infos[0])
    confirm_delete(infos[0])
    rerun_when_settled(was_active, infos)


# --- the run queue ----------------------------------------------------------------------------


def queue_row(runs_root, position: int, run_id: str, last: int) -> None:
    """One waiting run: its place, name, title and size, and Up / Down / Remove."""
    run = rundir.RunDir(runs_root / run_id)
    try:
        cfg = run.read_config()
        title = run_table.note_cells(run_id, run.read_notes())["title"]
        what = " · ".join(
            [
                f"{cfg.n_layer}L x {cfg.n_embd}C",
                f"{cfg.max_steps:,} steps",
                *([title] if title else []),
            ]
        )
    except ConfigError as e:
        what = f"config unreadable: {e}"
    cols = st.columns([5, 1, 1, 1], vertical_alignment="center")
    cols[0].markdown(f"**{position + 1}.** `{run_id}` · {run_table.escape_md(what)}")
    moved = None
    if cols[1].button(
        "Up",
        key=f"runs_q_up_{run_id}",
        disabled=position == 0,
        width="stretch",
        help="Start it one place earlier",
    ):
        moved = -1
    if cols[2].button(
        "Down",
        key=f"runs_q_down_{run_id}",
        disabled=position == last,
        width="stretch",
        help="Start it one place later",
    ):
        moved = 1
    if cols[3].button(
        "Remove",
        key=f"runs_q_remove_{run_id}",
        width="stretch",
        help="Take it out of the queue and delete its (never started) run directory",
    ):
        queue_change(run_queue.remove, run_id, runs_dir=runs_root)
    if moved:
        queue_change(run_queue.move, run_id, offset=moved, runs_dir=runs_root)


def queue_change(change, *args, **kwargs) -> None:
    """Apply a change to the queue, then rerun the page (the table shows the waiting runs); a
    run that started or left the queue meanwhile is said so."""
    try:
        change(*args, **kwargs)
    except (ConfigError, OSError) as e:
        st.error(str(e))
    else:
        st.rerun()


def queue_panel(runs_root, shown: list[str]) -> None:
    """The waiting runs in the order they start, with Up / Down / Remove and Clear queue;
    reread on every refresh while a run trains (the whole page reruns once the queue moved)."""
    waiting = run_queue.queued(runs_root)
    if waiting != shown:
        st.rerun()  # a run started (or another tab changed the queue): redraw everything
    if not waiting:
        st.caption(
            'No runs are waiting. On the New run page, "Launch after the current run '
            'ends" adds a run here.'
        )
        return
    st.caption(
        "These runs start one after another, each when nothing else in this runs "
        "directory is training. Stopping the current run lets the next one start."
    )
    for position, run_id in enumerate(waiting):
        queue_row(runs_root, position, run_id, len(waiting) - 1)
    with st.popover("Clear queue", help="Remove every waiting run"):
        st.markdown(
            f"Remove all {len(waiting)} waiting runs and their (never started) run directories?"
        )
        if st.button("Yes, clear the queue", key="runs_q_clear", type="primary"):
            queue_change(run_queue.clear, runs_dir=runs_root)


def queue_section(runs_root, infos: list[RunInfo]) -> None:
    st.subheader("Queue")
    waiting = run_queue.queued(runs_root)
    every = refresh_every(infos) if waiting else None
    st.fragment(queue_panel, run_every=every)(runs_root, waiting)


# --- compare -----------------------------------------------------------------------------------


def pick_compared(ids: list[str]) -> list[str]:
    """The runs to compare (kept when the user visits another page and comes back)."""
    state.seed_from_url("runs_compare", "compare", state.one_of(ids), many=True)
    kept = [r for r in st.session_state.get("runs_compare", []) if r in ids]  # deleted drop out
    st.session_state["runs_compare"] = kept
    return st.multiselect(
        "Runs to compare",
        ids,
        key="runs_compare",
        persist_state="session",
        placeholder="Pick two or more runs",
    )


def chart_controls(axes: dict[str, str]) -> tuple[str, float, bool]:
    """The Live page's chart choices: x axis, smoothing and log scale (in the URL)."""
    state.seed_from_url("runs_cmp_x", "x", state.one_of(axes))
    state.seed_from_url("runs_cmp_smooth", "smooth", state.number_in(0.0, 0.99))
    state.seed_from_url("runs_cmp_log", "log", state.flag)
    st.session_state.setdefault("runs_cmp_x", "step")
    st.session_state.setdefault("runs_cmp_smooth", SMOOTHING_DEFAULT)
    cols = st.columns([3, 3, 1.2], vertical_alignment="bottom", gap="large")
    axis = cols[0].segmented_control(
        "X axis",
        list(axes),
        format_func=axes.get,
        key="runs_cmp_x",
        required=True,
        persist_state="session",
    )
    weight = cols[1].slider(
        "Smoothing",
        0.0,
        0.99,
        step=0.01,
        key="runs_cmp_smooth",
        persist_state="session",
        help="Exponential moving average, the raw curve faint behind; 0 = off",
    )
    log_y = cols[2].toggle("Log loss", key="runs_cmp_log", persist_state="session")
    return axis or "step", weight, log_y


def hyperparameter_diff(infos: list[RunInfo]) -> None:
    """The config fields whose values differ between the runs."""
    import pandas as pd

    configs = {}
    for info in infos:
        try:
            configs[info.run_id] = info.run.read_config()
        except ConfigError as e:
            st.error(f"{info.run_id}: {e}")
    diff = run_table.differing_hyperparameters(configs)
    if diff:
        st.dataframe(
            pd.DataFrame(diff).rename_axis("run").reset_index(),
            hide_index=True,
            key="runs_compare_diff",
        )
    else:
        st.caption("These runs share every hyperparameter.")


def compare_chart(infos: list[RunInfo], axis: str, weight: float, log_y: bool) -> None:
    """The loss curves of the runs overlaid, drawn as the Live page draws them."""
    from dashboard.colors import run_color
    from dashboard.live_figures import build_figures
    from dashboard.live_series import series_for

    store = st.session_state.setdefault("runs_compare_series", {})
    all_series = [series_for(store, info.run) for info in infos]
    configs = {info.run_id: info.run.read_config() for info in infos}
    figures = build_figures(
        all_series,
        axis=axis,
        weight=weight,
        log_y=log_y,
        color_of=run_color,
        targets={r: c.target_loss for r, c in configs.items()},
        clips={r: c.grad_clip for r, c in configs.items()},
    )
    st.plotly_chart(figures["loss"], key="runs_compare_chart", config={"displaylogo": False})


def compare_panel(runs_root, run_ids: list[str], was_active: bool) -> None:
    """A summary row per run, the hyperparameters that differ, and the loss curves with the
    Live page's chart choices (in the URL); reread on every refresh while any run trains."""
    from dashboard.live_series import X_AXES

    infos = fresh_infos(runs_root, run_ids)
    dataframe(run_table.compare_rows(infos), "runs_compare_table", run_table.COMPARE_COLUMNS)
    hyperparameter_diff(infos)
    axis, weight, log_y = chart_controls(X_AXES)
    try:
        compare_chart(infos, axis, weight, log_y)
    except ConfigError as e:
        st.error(f"Cannot draw the curves: {e}")
    state.to_url(
        x=None if axis == "step" else axis,
        smooth=None if weight == SMOOTHING_DEFAULT else weight,
        log=log_y,
    )
    rerun_when_settled(was_active, infos)


def compare_section(runs_root, infos: list[RunInfo]) -> list[str]:
    """Pick runs, then their comparison (a fragment: its chart choices rerun only it);
    returns the compared run ids."""
    st.subheader("Compare runs")
    chosen = pick_compared([i.run_id for i in infos])
    if len(chosen) < 2:
        st.caption(
            "Pick at least one more run."
            if chosen
            else "Pick two or more runs to see their losses side by side."
        )
        state.to_url(x=None, smooth=None, log=None)
    else:
        every = refresh_every([i for i in infos if i.run_id in chosen])
        st.fragment(compare_panel, run_every=every)(runs_root, chosen, every is not None)
    return chosen


# --- the page ----------------------------------------------------------------------------------


def no_runs(runs_root) -> None:
    st.info(
        f"No runs yet in `{runs_root}`. Start one: pick a preset, press Launch, and watch it learn."
    )
    st.page_link("views/new_run.py", label="New run", icon=":material/rocket_launch:")
    st.stop()


def main() -> None:
    st.title("Runs")
    runs_root = state.runs_dir()
    infos = launcher.list_runs(runs_root)
    if not infos:
        no_runs(runs_root)
    shown = state_filter()
    every = refresh_every(infos)
    st.fragment(table_panel, run_every=every)(runs_root, shown, every is not None)
    hidden = ", ".join(run_table.HYPERPARAMETER_COLUMNS)
    st.caption(
        f"Click a column header to sort; scroll the table sideways for the "
        f"hyperparameters ({hidden}). Crashed: the process is gone without a final status."
    )

    st.subheader("Selected run")
    ids = [i.run_id for i in infos]
    selected = pick_run(ids)
    info = next(i for i in infos if i.run_id == selected)
    every = refresh_every([info])
    st.fragment(selected_panel, run_every=every)(runs_root, selected, every is not None)

    queue_section(runs_root, infos)
    chosen = compare_section(runs_root, infos)
    state.to_url(
        run=selected, compare=chosen, states=None if set(shown) == set(STATE_ORDER) else shown
    )


main()
