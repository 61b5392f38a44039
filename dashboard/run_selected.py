"""The Runs page's selected run: its title, state and step, its note, what went wrong for a
failed or crashed run, and its buttons (Open live view, Stop, Resume, Continue training, New run
from this one, Title and note, Delete with a confirmation, the metrics CSV)."""

from __future__ import annotations

import streamlit as st

from core.config import ConfigError
from core.runs import launcher
from core.runs.launcher import RunInfo
from core.store import metrics, rundir
from core.store.rundir import ACTIVE_STATES
from core.units import escape_md
from dashboard import run_actions, run_table, state
from dashboard.run_follow import fresh_infos, rerun_when_settled


def run_line(info: RunInfo) -> None:
    """Title, state and step of the run, its note; for a failed or crashed run, what went
    wrong."""
    # metrics.jsonl has every step; status.json's step is a heartbeat, at most once a second.
    summary = metrics.cached_summary(info.run.metrics_path)
    step = max(info.status.get("step") or 0, summary.last_step)
    notes = info.run.read_notes()
    title = notes["title"] if notes["title"] != info.run_id else ""
    title = f"**{escape_md(title)}** · " if title else ""
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
    with stop_col:
        run_actions.stop_button(info.run, info.state, "runs_stop")
    with resume_col:
        run_actions.resume_button(info.run, "runs_resume")
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
