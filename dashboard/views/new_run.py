"""New run: a preset or another run's settings, where the weights start from, every
hyperparameter, the data; before launch what the run means (size, time, data X-ray, disk);
then Launch, or queue it to start after the current run.

The chosen preset is in the URL (`?preset=micro`), so a link opens the form filled with it.
"""

import streamlit as st

from core.config import PRESETS, ConfigError, TrainConfig, preset
from core.data import dataset as data
from core.runs import launcher
from core.runs import queue as run_queue
from core.store import rundir as runsdir
from core.units import escape_md
from dashboard import new_run_form, run_actions, state, time_budget
from dashboard.new_run_estimate import estimate_of, estimate_panel
from dashboard.new_run_read import read_form

PREFIX = new_run_form.KEY_PREFIX
PRESET_KEY = PREFIX + "preset"
SOURCES = new_run_form.SOURCES
START_FROM = new_run_form.START_FROM
SAVED = "new_run_saved"  # the form's values, kept while the user visits other pages
FROM_RUN = "new_run_from"  # the run whose settings filled the form (its note says so)
QUEUED = "new_run_queued"  # the run just queued (a note says where it is in the queue)


@st.cache_resource
def cuda_devices() -> list[str]:
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def apply_preset(runs_root) -> None:
    """Fill every field from the chosen preset (and propose a fresh run name)."""
    name = st.session_state[PRESET_KEY]
    st.session_state.update(new_run_form.preset_values(name))
    st.session_state[PREFIX + "run_name"] = launcher.default_run_name(name, runs_root)
    time_budget.reset_for_preset(name)


def apply_preset_choice(runs_root) -> None:
    """The preset select box changed: its values replace the form's, a copied run's included."""
    st.session_state.pop(FROM_RUN, None)
    apply_preset(runs_root)


def fill_from_run(prefill: dict, runs_root) -> None:
    """Fill the whole form from another run's config ("New run from this one"), once."""
    try:
        cfg = TrainConfig.from_dict(prefill["config"])
    except ConfigError as e:
        st.session_state[FROM_RUN] = (prefill["run_id"], f"its config cannot be read: {e}")
        return
    st.session_state.update(new_run_form.prefill_values(cfg, runs_root))
    st.session_state[PREFIX + "run_name"] = launcher.default_run_name(
        new_run_form.copy_name(prefill["run_id"]), runs_root
    )
    st.session_state[FROM_RUN] = (prefill["run_id"], None)


def init_form(runs_root) -> None:
    """On the first visit: the preset from the URL (a shared link), else the machine's default,
    with its values; when coming back from another page, the form as it was left; coming from
    "New run from this one", that run's settings."""
    prefill = run_actions.take_prefill()
    if PRESET_KEY not in st.session_state:
        if st.session_state.get(SAVED) and "preset" not in st.query_params:
            st.session_state.update(st.session_state[SAVED])  # widgets forget other pages' values
        else:
            if not state.seed_from_url(PRESET_KEY, "preset", state.one_of(PRESETS)):
                st.session_state[PRESET_KEY] = "gpt2-124m" if cuda_devices() else "micro"
            apply_preset(runs_root)
            st.session_state[PREFIX + "data_source"] = SOURCES[0]
            st.session_state[PREFIX + "data_path"] = ""
            st.session_state[PREFIX + "start"] = START_FROM[0]
    if prefill:
        fill_from_run(prefill, runs_root)
    pending = st.session_state.pop(PREFIX + "next_name", None)
    if pending:  # a run was just queued: propose a fresh name (before the widget is drawn)
        st.session_state[PREFIX + "run_name"] = pending


def save_form(value_keys: list[str]) -> None:
    """Remember the form for when the user comes back from another page."""
    keys = [
        *value_keys,
        PRESET_KEY,
        PREFIX + "run_name",
        PREFIX + "data_source",
        PREFIX + "data_path",
        PREFIX + "start",
        PREFIX + "start_run",
        PREFIX + "start_hf",
        time_budget.BUDGET_KEY,
    ]
    st.session_state[SAVED] = {k: st.session_state[k] for k in keys if k in st.session_state}


# --- reading the form --------------------------------------------------------------------------


# --- drawing the form --------------------------------------------------------------------------


def field_error(name: str, problems: dict) -> None:
    if name in problems:
        st.error(f"**{name}**: {problems[name]}", icon="⚠️")


def render_field(f, locked: bool = False) -> None:
    """One config field: a select box for fields with fixed choices (core.config's), a number
    input for integers, a checkbox for flags, a text input otherwise; locked fields are shown
    read-only."""
    key, helptext = PREFIX + f.name, f.metadata["help"]
    label = f.name if f.name != "nproc" else "processes (GPUs)"
    if locked:
        helptext += " (set by the weights the run starts from)"
    choices = f.metadata.get("choices")
    if choices:
        options = list(dict.fromkeys([*choices, *(cuda_devices() if f.name == "device" else [])]))
        st.selectbox(label, options, key=key, help=helptext, disabled=locked)
    elif new_run_form.kind(f) is int:
        st.number_input(label, step=1, key=key, help=helptext, disabled=locked)
    elif new_run_form.kind(f) is bool:
        st.checkbox(label, key=key, help=helptext, disabled=locked)
    else:
        st.text_input(label, key=key, help=helptext, disabled=locked)


def start_inputs(form: dict, runs_root) -> None:
    """Where the weights come from: scratch, another run's checkpoint, or GPT-2 (a Hugging Face
    folder or hub name). A source decides the model's shape."""
    st.radio(
        "Start from",
        START_FROM,
        key=PREFIX + "start",
        horizontal=True,
        help="Random weights, or fine-tune existing ones (nanoGPT's init_from)",
    )
    mode = st.session_state.get(PREFIX + "start")
    if mode == START_FROM[1]:
        runs = runsdir.runs_with_checkpoints(runs_root)
        if runs:
            st.selectbox(
                "Run",
                runs,
                key=PREFIX + "start_run",
                help="Its best checkpoint (best val loss), else its newest",
            )
    elif mode == START_FROM[2]:
        st.session_state.setdefault(PREFIX + "start_hf", "gpt2")
        st.text_input(
            "Hugging Face folder or hub name",
            key=PREFIX + "start_hf",
            help="A folder holding GPT-2's config.json and model.safetensors (or "
            "pytorch_model.bin), or a hub name such as gpt2 already downloaded",
        )
    field_error("init_from", form["problems"])
    if form["shape_locked"]:
        st.caption(
            "The source decides the model's shape: "
            + ", ".join(
                f"{name} {st.session_state[PREFIX + name]:,}" for name in new_run_form.SHAPE_FIELDS
            )
            + " (read-only below)."
        )


def data_inputs(source: str, tokens, problems: dict) -> None:
    """The training text: tiny shakespeare, a local path or an upload, and its token count."""
    st.radio("Training text", SOURCES, key=PREFIX + "data_source", horizontal=True)
    if source == SOURCES[1]:
        st.text_input(
            "Path of a .txt file or a folder of them",
            key=PREFIX + "data_path",
            placeholder="/home/me/corpus.txt",
        )
    elif source == SOURCES[2]:
        st.file_uploader("A UTF-8 .txt file", type=["txt"], key=PREFIX + "upload")
    field_error("data", problems)
    if tokens is not None and "data" not in problems:
        st.caption(f"{len(tokens):,} GPT-2 tokens")


def field_groups(form: dict, runs_root) -> None:
    """Every config field in its group's expander, in rows of three."""
    problems, groups = form["problems"], new_run_form.fields_by_group()
    locked = set(new_run_form.SHAPE_FIELDS) if form["shape_locked"] else set()
    for group in new_run_form.GROUPS:
        fields = [f for f in groups[group] if f.name not in new_run_form.SPECIAL]
        expanded = group in ("model", "batch", "data") or any(
            f.name in problems for f in groups[group]
        )
        with st.expander(group.capitalize(), expanded=expanded):
            if group == "model":
                start_inputs(form, runs_root)
            if group == "data":
                data_inputs(form["source"], form["tokens"], problems)
            if group == "device" and form["choice"]:
                choice = form["choice"]
                st.info(
                    f"This machine: **{choice.device}**, **{choice.dtype}**, compile "
                    f"**{'on' if choice.compile else 'off'}** ({choice.why})"
                )
            for row in new_run_form.rows_of(fields):
                for column, f in zip(st.columns(new_run_form.ROW), row):
                    with column:
                        render_field(f, f.name in locked)
                for f in row:  # under the row, full width: the columns stay aligned
                    field_error(f.name, problems)


def preset_and_name(form: dict, runs_root) -> None:
    """The preset (with its note, figures from core.train.estimate) and the run name."""
    top = st.columns(2)
    name = top[0].selectbox(
        "Preset",
        list(PRESETS),
        key=PRESET_KEY,
        on_change=apply_preset_choice,
        args=(runs_root,),
        help="Fills every field below",
    )
    chosen = preset(name)
    est = None
    if form["choice"] is not None:
        est = estimate_of(chosen, form["tokens"], form["choice"], runs_root)
    top[0].caption(new_run_form.preset_note(name, est))
    with top[1]:
        st.text_input(
            "Run name",
            key=PREFIX + "run_name",
            help="Letters, digits, '-' and '_': also the run's folder name",
        )
        field_error("run_name", form["problems"])


# --- what the run means: estimate, data X-ray, disk ---------------------------------------------


def launch_buttons(form: dict, runs_root) -> str | None:
    """Launch; while a run trains or waits, "Launch after the current run ends" first and
    "Launch now" under it. Returns "now", "queue" or None (nothing pressed)."""
    blocked = bool(form["problems"])
    if not run_queue.anything_training(runs_root):
        pressed = st.button(
            "Launch", key=PREFIX + "launch", type="primary", disabled=blocked, width="stretch"
        )
        return "now" if pressed else None
    later = st.button(
        "Launch after the current run ends",
        key=PREFIX + "enqueue",
        type="primary",
        disabled=blocked,
        width="stretch",
        help="Queue it: it starts by itself when the runs before it have ended",
    )
    now = st.button(
        "Launch now",
        key=PREFIX + "launch",
        disabled=blocked,
        width="stretch",
        help="Start it beside the run that trains: on a small machine two runs at "
        "once halve each other's speed",
    )
    return "queue" if later else "now" if now else None


def queued_note(runs_root) -> None:
    """Where the run queued last sits in the queue (while it waits)."""
    run_id = st.session_state.get(QUEUED)
    where = run_queue.position(run_id, runs_root) if run_id else None
    if where is None:
        st.session_state.pop(QUEUED, None)
        return
    place, length = where
    ahead = (
        "next, once the current run ends"
        if place == 1
        else f"after the {place - 1} queued run{'s' if place > 2 else ''} before it"
    )
    st.success(
        f"Queued **{run_id}**: number {place} of {length} in the queue; it starts "
        f"{ahead}. The Runs page shows the queue and can reorder it."
    )


def launch(form: dict, runs_root, when: str) -> None:
    """Start the run and open its live view, or queue it and say where it is; a refusal is
    shown where the buttons are."""
    starter = launcher.launch if when == "now" else run_queue.enqueue
    try:
        run_id = starter(form["cfg"], runs_root, form["run_name"])
    except (ConfigError, data.DataError, OSError) as e:
        st.error(f"Not launched: {e}")
        return
    # The next visit proposes a fresh name (widget state is restored from the saved form).
    fresh = launcher.default_run_name(st.session_state[PRESET_KEY], runs_root)
    st.session_state[SAVED][PREFIX + "run_name"] = fresh
    st.session_state.pop(FROM_RUN, None)
    if when == "queue":
        st.session_state[QUEUED] = run_id
        st.session_state[PREFIX + "next_name"] = fresh
        st.rerun()
    state.select_run(run_id)
    st.switch_page("views/live.py")


def from_run_note() -> None:
    """Which run's settings filled the form (until the preset changes)."""
    source = st.session_state.get(FROM_RUN)
    if source:
        run_id, problem = source
        if problem:
            st.error(f"Could not copy the settings of {run_id}: {problem}")
        else:
            st.info(
                f"Filled in from run **{escape_md(run_id)}**: change what you want, name it, "
                "and launch."
            )


def main() -> None:
    runs_root = state.runs_dir()
    init_form(runs_root)
    form = read_form(runs_root)
    st.title("New run")
    from_run_note()
    left, right = st.columns([3, 2], gap="large")
    with left:
        preset_and_name(form, runs_root)
        field_groups(form, runs_root)
    with right:
        estimate_panel(
            form, runs_root, st.session_state[PRESET_KEY], lambda: apply_preset(runs_root)
        )
        when = launch_buttons(form, runs_root)
        queued_note(runs_root)
    save_form(form["value_keys"])
    state.to_url(preset=st.session_state[PRESET_KEY])
    if when:
        launch(form, runs_root, when)


main()
