"""Runs: every run in the runs directory, with stop, resume, delete, CSV download and compare."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import launcher, metrics
from core.config import ConfigError
from core.rundir import ACTIVE_STATES
from dashboard import run_table
from dashboard.colors import run_color
from dashboard.state import runs_dir

STATE_ORDER = ("running", "queued", "completed", "stopped", "failed", "crashed", "damaged")

st.title("Runs")
runs_root = runs_dir()
infos = launcher.list_runs(runs_root)

if not infos:
    st.info(f"No runs yet in `{runs_root}`. Start one: pick a preset, press Launch, and watch "
            "it learn.")
    st.page_link("views/new_run.py", label="New run", icon="🚀")
    st.stop()

# --- the table -----------------------------------------------------------------------------
# Fixed options: a state that appears later (a run stops) is shown, not silently filtered out.
shown_states = st.multiselect("Filter by state", STATE_ORDER, default=STATE_ORDER,
                              key="runs_state_filter")
shown = [i for i in infos if i.state in shown_states]


@st.fragment(run_every=2 if any(i.state in ACTIVE_STATES for i in infos) else None)
def runs_table():
    # Re-read while any run is active, so steps and states move without a page rerun.
    fresh = {i.run_id: i for i in launcher.list_runs(runs_root)}
    rows = run_table.table_rows([fresh.get(i.run_id, i) for i in shown])
    if not rows:
        st.caption("No runs in the chosen states.")
        return
    table = pd.DataFrame(rows)
    for column in ("last loss", "best loss", "best val loss"):  # empty cells, not "None"
        table[column] = pd.to_numeric(table[column], errors="coerce")
    st.dataframe(
        table, key="runs_table", hide_index=True, width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0,
                                                        format="percent"),
            "last loss": st.column_config.NumberColumn(format="%.4f"),
            "best loss": st.column_config.NumberColumn(format="%.4f"),
            "best val loss": st.column_config.NumberColumn(format="%.4f"),
            "tokens seen": st.column_config.NumberColumn(format="localized"),
            "tokens / step": st.column_config.NumberColumn(format="localized"),
            "max lr": st.column_config.NumberColumn(format="%.2e"),
        },
    )


runs_table()
st.caption("Click a column header to sort. Crashed: the process is gone without a final status.")

# --- actions on one run --------------------------------------------------------------------
st.subheader("Selected run")
ids = [i.run_id for i in infos]
preselected = st.session_state.get("selected_run")
selected = st.selectbox("Run", ids, index=ids.index(preselected) if preselected in ids else 0,
                        key="runs_selected")
info = next(i for i in infos if i.run_id == selected)
active = info.state in ACTIVE_STATES
has_checkpoint = info.run.latest_checkpoint() is not None
# metrics.jsonl has every step; status.json's step is a heartbeat written at most once a second.
step_done = max(info.status.get("step") or 0, metrics.cached_summary(info.run.metrics_path).last_step)
st.markdown(f"State: **{info.state}** · step {step_done} / "
            f"{info.status.get('max_steps', '?')}")
if info.state in ("failed", "crashed", "damaged"):
    checkpoints = info.run.checkpoints()
    resume_from = (f"Resume continues from the checkpoint at step {checkpoints[-1][0]}."
                   if checkpoints else "There is no checkpoint to resume from.")
    st.error((info.status.get("error") or "The process ended without writing a final status "
              "(killed, out of memory, or the machine restarted).") + " " + resume_from)

open_col, stop_col, resume_col, delete_col, csv_col = st.columns(5)
if open_col.button("Open live view", key="runs_open", width="stretch"):
    st.session_state["selected_run"] = selected
    st.switch_page("views/live.py")
if stop_col.button("Stop", key="runs_stop", disabled=not active, width="stretch",
                   help="Checkpoint and stop after the current step"):
    launcher.stop(info.run, wait=False)
    st.toast(f"Stop requested for {selected}: it checkpoints and ends after the current step.")
    st.rerun()
if resume_col.button("Resume", key="runs_resume", disabled=active or not has_checkpoint,
                     width="stretch",
                     help="Continue from the latest checkpoint" if has_checkpoint else
                     "No checkpoint yet: nothing to resume from"):
    try:
        launcher.resume(info.run)
    except ConfigError as e:
        st.error(str(e))
    else:
        st.session_state["selected_run"] = selected
        st.toast(f"Resumed {selected} from its latest checkpoint.")
        st.rerun()
if delete_col.button("Delete", key="runs_delete", disabled=active, width="stretch",
                     help="Stop it first" if active else "Remove the run directory"):
    st.session_state["confirm_delete"] = selected
csv_col.download_button("Metrics CSV", data=lambda run=info.run: run_table.metrics_csv(run),
                        file_name=f"{selected}-metrics.csv", mime="text/csv",
                        key="runs_download", width="stretch",
                        disabled=not info.run.metrics_path.exists())

if st.session_state.get("confirm_delete") == selected:
    st.warning(f"Delete run **{selected}** with its metrics and checkpoints? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", key="runs_delete_confirm", type="primary"):
        st.session_state.pop("confirm_delete", None)
        try:
            launcher.delete(info.run)
        except ConfigError as e:
            st.error(str(e))
        else:
            if st.session_state.get("selected_run") == selected:
                st.session_state.pop("selected_run")
            st.toast(f"Deleted {selected}.")
            st.rerun()
    if no.button("Cancel", key="runs_delete_cancel"):
        st.session_state.pop("confirm_delete", None)
        st.rerun()

# --- compare -------------------------------------------------------------------------------
st.subheader("Compare runs")
chosen = st.multiselect("Runs to compare", ids, key="runs_compare",
                        placeholder="Pick two or more runs")
if len(chosen) >= 2:
    by_id = {i.run_id: i for i in infos}
    configs = {}
    for rid in chosen:
        try:
            configs[rid] = by_id[rid].run.read_config()
        except ConfigError as e:
            st.error(f"{rid}: {e}")
    diff = run_table.differing_hyperparameters(configs)
    if diff:
        st.dataframe(pd.DataFrame(diff).rename_axis("run").reset_index(), hide_index=True,
                     key="runs_compare_table")
    else:
        st.caption("These runs share every hyperparameter.")
    fig = go.Figure()
    for rid in chosen:
        curves = run_table.loss_curves(by_id[rid].run)
        color = run_color(rid)
        fig.add_scatter(x=curves["loss"][0], y=curves["loss"][1], mode="lines", name=f"{rid} train",
                        line=dict(color=color), legendgroup=rid)
        if curves["val_loss"][0]:
            fig.add_scatter(x=curves["val_loss"][0], y=curves["val_loss"][1], mode="lines+markers",
                            name=f"{rid} val", line=dict(color=color, dash="dash"),
                            legendgroup=rid)
    fig.update_layout(xaxis_title="step (optimizer steps)", yaxis_title="loss (cross-entropy, nats)",
                      height=420, margin=dict(t=30, b=40), uirevision="runs-compare",
                      legend=dict(orientation="h", y=-0.2))
    st.plotly_chart(fig, key="runs_compare_chart", width="stretch")
elif chosen:
    st.caption("Pick at least one more run.")
