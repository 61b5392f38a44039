"""Runs: every run in the runs directory, with stop, resume, delete, CSV download and compare.

The app's first screen, so it imports neither torch nor plotly: the compare chart loads its
helpers when a comparison is drawn. The table, the selected run's line and buttons, and the
comparison follow running runs on their own (fragments that rerun every REFRESH_S seconds).
The selected run, the compared runs and the main controls are in the URL.
"""

import streamlit as st

from core.config import ConfigError
from core.runs import launcher
from core.runs.launcher import RunInfo
from core.store import rundir
from dashboard import run_table, state
from dashboard.run_follow import fresh_infos, refresh_every, rerun_when_settled
from dashboard.run_queue_panel import queue_section
from dashboard.run_selected import selected_panel

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
    "best val bpc": st.column_config.NumberColumn(
        format="%.3f",
        help="Best val loss in bits per character of the val split's text: unlike nats per "
        "token it does not depend on the tokenizer (nanochat reports bits per byte likewise)",
    ),
    "final loss": LOSS_FORMAT,
    "tokens seen": st.column_config.NumberColumn(format="localized"),
    "tokens / step": st.column_config.NumberColumn(format="localized"),
    "max lr": st.column_config.NumberColumn(format="%.2e"),
    "training time": st.column_config.TextColumn(
        "training time", help="Time spent training, summed over every start and resume"
    ),
    "error": st.column_config.TextColumn("error", width="large"),
}


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
        placeholder="–",  # an unknown value (no eval yet), not a grey "None"
    )


# --- the table ---------------------------------------------------------------------------------


def state_filter() -> list[str]:
    """The states the table shows (fixed options: a run that changes state stays visible)."""
    state.seed_from_url("runs_state_filter", "states", state.one_of(STATE_ORDER), many=True)
    st.session_state.setdefault("runs_state_filter", list(STATE_ORDER))
    return st.multiselect(
        "Filter by state",
        STATE_ORDER,
        key="runs_state_filter",
        persist_state="session",
        format_func=lambda s: rundir.STARTING if s == "queued" else s,
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


# --- the run queue ----------------------------------------------------------------------------


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
    if st.button(
        "Start a new run", key="runs_first_new", type="primary", icon=":material/rocket_launch:"
    ):
        st.switch_page("views/new_run.py")
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
