"""New run: a preset, every hyperparameter, the data, an estimate, and Launch.

The chosen preset is in the URL (`?preset=micro`), so a link opens the form filled with it.
"""

import streamlit as st

from core import data, device, estimate, launcher
from core.config import PRESETS, ConfigError, TrainConfig, check_run_id, preset
from core.rundir import name_taken
from dashboard import new_run_form, state
from dashboard.run_table import format_duration

PREFIX = new_run_form.KEY_PREFIX
PRESET_KEY = PREFIX + "preset"
SOURCES = ("tiny shakespeare", "a local path", "upload a .txt file")
SAVED = "new_run_saved"  # the form's values, kept while the user visits other pages


@st.cache_resource
def cuda_devices() -> list[str]:
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


@st.cache_data(show_spinner="Counting tokens...")
def tokens_of_source(setting: str, mtime: float):
    """Tokens of a data setting (mtime keys the cache so an edited file is read again)."""
    return data.load_tokens(setting)


def mtime(setting: str) -> float:
    try:
        return max(p.stat().st_mtime for p in data.resolve_source(setting))
    except (OSError, ValueError):
        return 0.0


def apply_preset(runs_root) -> None:
    """Fill every field from the chosen preset (and propose a fresh run name)."""
    name = st.session_state[PRESET_KEY]
    st.session_state.update(new_run_form.preset_values(name))
    st.session_state[PREFIX + "run_name"] = launcher.default_run_name(name, runs_root)


def init_form(runs_root) -> None:
    """On the first visit: the preset from the URL (a shared link), else the machine's default,
    with its values; when coming back from another page, the form as it was left."""
    if PRESET_KEY in st.session_state:
        return
    if st.session_state.get(SAVED) and "preset" not in st.query_params:
        st.session_state.update(st.session_state[SAVED])  # widgets forget values on other pages
        return
    if not state.seed_from_url(PRESET_KEY, "preset", state.one_of(PRESETS)):
        st.session_state[PRESET_KEY] = "gpt2-124m" if cuda_devices() else "nano"
    apply_preset(runs_root)
    st.session_state[PREFIX + "data_source"] = SOURCES[0]
    st.session_state[PREFIX + "data_path"] = ""


def save_form(value_keys: list[str]) -> None:
    """Remember the form for when the user comes back from another page."""
    keys = [*value_keys, PRESET_KEY, PREFIX + "run_name", PREFIX + "data_source",
            PREFIX + "data_path"]
    st.session_state[SAVED] = {k: st.session_state[k] for k in keys if k in st.session_state}


# --- reading the form --------------------------------------------------------------------------

def data_setting(source: str, path: str, upload) -> tuple[str, str | None]:
    """(the config's data value, a problem or None) for the chosen source; a valid upload is
    stored first (core.data keeps it outside the runs directory) and its stored path used."""
    if source == SOURCES[0]:
        return "tinyshakespeare", None
    if source == SOURCES[1]:
        path = (path or "").strip()
        return path, (None if path else "give the path of a .txt file, or of a folder of .txt "
                      "files, on this machine")
    if upload is None:
        return "", "upload a UTF-8 .txt file (at least 1 KB)"
    raw = upload.getvalue()
    problem = new_run_form.upload_problem(raw, upload.name)
    if problem:
        return "", problem
    return str(data.store_upload(upload.name, raw)), None


def data_tokens(setting: str, cfg: TrainConfig, problems: dict) -> tuple:
    """(tokens or None, problem or None) of a data setting that names a source."""
    try:
        tokens = tokens_of_source(setting, mtime(setting))
    except (data.DataError, OSError) as e:
        return None, str(e)
    if {"micro_batch_size", "seq_len", "val_fraction"} & set(problems):
        return tokens, None
    return tokens, new_run_form.size_problem(tokens, cfg)


def device_choice(cfg: TrainConfig, problems: dict):
    """The resolved device for cfg, or None (with the problem added) when it cannot be used."""
    if {"device", "dtype", "compile"} & set(problems):
        return None
    try:
        choice = device.choose(cfg.device, cfg.dtype, cfg.compile)
    except ValueError as e:
        problems["device"] = str(e).removeprefix("device: ")
        return None
    gpus = len(cuda_devices())
    if cfg.nproc > 1 and choice.type == "cuda" and cfg.nproc > gpus:
        problems["nproc"] = (f"{cfg.nproc} processes but {gpus} GPU(s) visible: use at most "
                             "one process per GPU")
    return choice


def run_name_problem(run_name: str, runs_root) -> str | None:
    try:
        check_run_id(run_name)
    except ConfigError as e:
        return str(e)
    if name_taken(runs_root, run_name):
        return f"a run named {run_name!r} already exists: pick another name"
    return None


def read_form(runs_root) -> dict:
    """Everything the form's values mean: config, problems by field, tokens, device choice."""
    base = preset(st.session_state[PRESET_KEY])
    values = {k: st.session_state.get(k) for k in new_run_form.widget_values(base)}
    source = st.session_state.get(PREFIX + "data_source", SOURCES[0])
    setting, data_problem = data_setting(source, st.session_state.get(PREFIX + "data_path"),
                                         st.session_state.get(PREFIX + "upload"))
    cfg, problems = new_run_form.parse(values, setting or "tinyshakespeare", base)
    problems.pop("data", None)
    tokens = None
    if data_problem is None:
        tokens, data_problem = data_tokens(setting, cfg, problems)
    if data_problem:
        problems["data"] = data_problem
    choice = device_choice(cfg, problems)
    run_name = (st.session_state.get(PREFIX + "run_name") or "").strip()
    name_problem = run_name_problem(run_name, runs_root)
    if name_problem:
        problems["run_name"] = name_problem
    return dict(cfg=cfg, problems=problems, tokens=tokens, choice=choice, source=source,
                run_name=run_name, value_keys=list(values))


def estimate_of(cfg: TrainConfig, tokens, choice, runs_root) -> estimate.Estimate:
    """core.estimate's figures for cfg on the chosen device (one place for every figure shown)."""
    return estimate.estimate(
        cfg, n_tokens=len(tokens) if tokens is not None else None, runs_dir=runs_root,
        dtype=choice.dtype, device_type=choice.type,
        peak_flops=device.peak_flops(choice, cfg.peak_flops).value or None)


# --- drawing the form --------------------------------------------------------------------------

def field_error(name: str, problems: dict) -> None:
    if name in problems:
        st.error(f"**{name}**: {problems[name]}", icon="⚠️")


def render_field(f) -> None:
    """One config field: a select box for fields with fixed choices (core.config's), a number
    input for integers, a text input otherwise."""
    key, helptext = PREFIX + f.name, f.metadata["help"]
    label = f.name if f.name != "nproc" else "processes (GPUs)"
    choices = f.metadata.get("choices")
    if choices:
        options = list(dict.fromkeys([*choices, *(cuda_devices() if f.name == "device" else [])]))
        st.selectbox(label, options, key=key, help=helptext)
    elif new_run_form.kind(f) is int:
        st.number_input(label, step=1, key=key, help=helptext)
    else:
        st.text_input(label, key=key, help=helptext)


def data_inputs(source: str, tokens, problems: dict) -> None:
    """The training text: tiny shakespeare, a local path or an upload, and its token count."""
    st.radio("Training text", SOURCES, key=PREFIX + "data_source", horizontal=True)
    if source == SOURCES[1]:
        st.text_input("Path of a .txt file or a folder of them", key=PREFIX + "data_path",
                      placeholder="/home/me/corpus.txt")
    elif source == SOURCES[2]:
        st.file_uploader("A UTF-8 .txt file", type=["txt"], key=PREFIX + "upload")
    field_error("data", problems)
    if tokens is not None and "data" not in problems:
        st.caption(f"{len(tokens):,} GPT-2 tokens")


def field_groups(form: dict) -> None:
    """Every config field in its group's expander, in rows of three."""
    problems, groups = form["problems"], new_run_form.fields_by_group()
    for group in new_run_form.GROUPS:
        fields = [f for f in groups[group] if f.name not in new_run_form.SPECIAL]
        expanded = group in ("model", "batch", "data") or any(f.name in problems
                                                              for f in groups[group])
        with st.expander(group.capitalize(), expanded=expanded):
            if group == "data":
                data_inputs(form["source"], form["tokens"], problems)
            if group == "device" and form["choice"]:
                choice = form["choice"]
                st.info(f"This machine: **{choice.device}**, **{choice.dtype}**, compile "
                        f"**{'on' if choice.compile else 'off'}** ({choice.why})")
            for row in new_run_form.rows_of(fields):
                for column, f in zip(st.columns(new_run_form.ROW), row):
                    with column:
                        render_field(f)
                for f in row:  # under the row, full width: the columns stay aligned
                    field_error(f.name, problems)


def preset_and_name(form: dict, runs_root) -> None:
    """The preset (with its note, figures from core.estimate) and the run name."""
    top = st.columns(2)
    name = top[0].selectbox("Preset", list(PRESETS), key=PRESET_KEY, on_change=apply_preset,
                            args=(runs_root,), help="Fills every field below")
    chosen = preset(name)
    est = None
    if form["choice"] is not None:
        est = estimate_of(chosen, form["tokens"], form["choice"], runs_root)
    top[0].caption(new_run_form.preset_note(name, est, chosen.max_steps))
    with top[1]:
        st.text_input("Run name", key=PREFIX + "run_name",
                      help="Letters, digits, '-' and '_': also the run's folder name")
        field_error("run_name", form["problems"])


# --- the estimate and launch -------------------------------------------------------------------

def estimate_metrics(est: estimate.Estimate) -> None:
    a, b = st.columns(2)
    a.metric("Parameters", f"{est.params / 1e6:,.2f} M")
    b.metric("Tokens per step", f"{est.tokens_per_step:,}",
             help=f"micro_batch_size x seq_len x grad_accum_steps ({est.grad_accum_steps}) x nproc")
    a.metric("Steps per epoch", f"{est.steps_per_epoch:,.1f}" if est.steps_per_epoch else "?",
             help="optimizer steps for one pass over the training split")
    b.metric("Estimated time", format_duration(est.time_s) if est.time_s else "unknown",
             help=est.time_source)
    st.caption(new_run_form.time_note(est))


def estimate_tables(est: estimate.Estimate, cfg: TrainConfig) -> None:
    """Memory per process (in MiB, as computed) and how the figures are estimated."""
    st.markdown("**Estimated memory per process**")
    st.table({"part": list(est.memory_mb),
              "MiB": [f"{v:,.1f}" for v in est.memory_mb.values()]}, hide_index=True)
    with st.expander("How these are estimated"):
        formula = estimate.ACTIVATION_FORMULA.replace("*", "\\*")  # products, not emphasis
        st.markdown(f"- {formula}\n"
                    f"- {est.flops_per_token / 1e6:,.1f} MFLOPs per token (6N + 12·L·H·Q·T); "
                    f"{est.total_tokens:,} tokens in {cfg.max_steps:,} steps.")
        st.table({"component": list(est.params_by_component),
                  "parameters": [f"{n:,}" for n in est.params_by_component.values()]},
                 hide_index=True)


def estimate_panel(form: dict, runs_root) -> bool:
    """What the run means, or what to fix first; returns whether Launch was pressed."""
    st.subheader("What this run means")
    problems = form["problems"]
    if problems:
        st.error("Fix these fields to launch:\n\n" + "\n".join(
            f"- **{name}**: {why}" for name, why in problems.items()))
    else:
        est = estimate_of(form["cfg"], form["tokens"], form["choice"], runs_root)
        estimate_metrics(est)
        estimate_tables(est, form["cfg"])
    return st.button("Launch", key=PREFIX + "launch", type="primary", disabled=bool(problems),
                     width="stretch")


def launch(form: dict, runs_root) -> None:
    """Start the run and open its live view; a refusal is shown where the button is."""
    try:
        run_id = launcher.launch(form["cfg"], runs_root, form["run_name"])
    except (ConfigError, data.DataError, OSError) as e:
        st.error(f"Not launched: {e}")
        return
    state.select_run(run_id)
    # The next visit proposes a fresh name (widget state is restored from the saved form).
    st.session_state[SAVED][PREFIX + "run_name"] = launcher.default_run_name(
        st.session_state[PRESET_KEY], runs_root)
    st.switch_page("views/live.py")


def main() -> None:
    runs_root = state.runs_dir()
    init_form(runs_root)
    form = read_form(runs_root)
    st.title("New run")
    left, right = st.columns([3, 2], gap="large")
    with left:
        preset_and_name(form, runs_root)
        field_groups(form)
    with right:
        pressed = estimate_panel(form, runs_root)
    save_form(form["value_keys"])
    state.to_url(preset=st.session_state[PRESET_KEY])
    if pressed:
        launch(form, runs_root)


main()
