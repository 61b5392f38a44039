"""New run: a preset or another run's settings, where the weights start from, every
hyperparameter, the data; before launch what the run means (size, time, data X-ray, disk);
then Launch, or queue it to start after the current run.

The chosen preset is in the URL (`?preset=micro`), so a link opens the form filled with it.
"""

import shutil
from pathlib import Path

import streamlit as st

from core import device
from core.config import PRESETS, ConfigError, TrainConfig, check_run_id, preset
from core.data import dataset as data
from core.model.param_count import param_count
from core.runs import launcher
from core.runs import queue as run_queue
from core.store import pretrained
from core.store.rundir import ACTIVE_STATES, WAITING, RunDir, list_run_dirs, name_taken
from core.train import estimate, throughput
from dashboard import new_run_form, run_actions, state
from dashboard.run_table import escape_md, format_duration

PREFIX = new_run_form.KEY_PREFIX
PRESET_KEY = PREFIX + "preset"
SOURCES = new_run_form.SOURCES
START_FROM = new_run_form.START_FROM
SAVED = "new_run_saved"  # the form's values, kept while the user visits other pages
FROM_RUN = "new_run_from"  # the run whose settings filled the form (its note says so)
QUEUED = "new_run_queued"  # the run just queued (a note says where it is in the queue)
PROBED = "new_run_probed"  # shapes over PROBE_AUTO_PARAMS the user asked to time


@st.cache_resource
def cuda_devices() -> list[str]:
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


@st.cache_data(show_spinner="Counting tokens...")
def tokens_of_source(setting: str, mtime: float):
    """Tokens of a data setting (mtime keys the cache so an edited file is read again)."""
    return data.load_tokens(setting)


@st.cache_data(show_spinner="Reading where the weights come from...", max_entries=64)
def source_shape(source: str, fingerprint: tuple) -> tuple[dict | None, str | None]:
    """(the model shape of init_from source, None) or (None, why it cannot be read); the
    fingerprint (its files' times) keys the cache so a new checkpoint is read again."""
    try:
        return pretrained.source_shape(source), None
    except Exception as e:  # any source that cannot be read is the user's to fix: say why
        return None, str(e)


def source_fingerprint(source: str) -> tuple:
    path = Path(source).expanduser()
    files = [path]
    if path.is_dir():
        run = RunDir(path)
        files = [path / "config.json", run.best_checkpoint_path, *[p for _, p in run.checkpoints()]]
    return tuple((str(f), f.stat().st_mtime) for f in files if f.exists())


@st.cache_data(show_spinner="Timing a few real training steps of this shape...", max_entries=64)
def probe_shape(key: tuple) -> tuple[throughput.Probe | None, str | None]:
    """(core.train.throughput's timing of the shape in key (new_run_form.probe_key), None), or
    (None, why it failed); kept per shape for the server's life."""
    fields = dict(key)
    where = fields.pop("device")
    try:
        return throughput.probe(TrainConfig(**fields), where), None
    except (RuntimeError, ValueError) as e:  # out of memory, a device that went away
        return None, str(e)


@st.cache_data(show_spinner="X-raying the training text...", max_entries=32)
def data_xray(key: tuple, n_params: int, data_mtime: float):
    """core.data.corpus's data X-ray for the config fields in key (new_run_form.xray_key)."""
    from core.data.xray import data_xray

    return data_xray(TrainConfig(**dict(key)), n_params)


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
    ]
    st.session_state[SAVED] = {k: st.session_state[k] for k in keys if k in st.session_state}


# --- reading the form --------------------------------------------------------------------------


def data_setting(source: str, path: str, upload) -> tuple[str, str | None]:
    """(the config's data value, a problem or None) for the chosen source; a valid upload is
    stored first (core.data.dataset keeps it outside the runs directory) and its stored path used."""
    if source == SOURCES[0]:
        return "tinyshakespeare", None
    if source == SOURCES[1]:
        path = (path or "").strip()
        return path, (
            None
            if path
            else "give the path of a .txt file, or of a folder of .txt files, on this machine"
        )
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
        choice = device.choose(cfg.device, cfg.dtype, cfg.compile, loss=cfg.loss_path)
    except ValueError as e:
        problems["device"] = str(e).removeprefix("device: ")
        return None
    gpus = len(cuda_devices())
    if cfg.nproc > 1 and choice.type == "cuda" and cfg.nproc > gpus:
        problems["nproc"] = (
            f"{cfg.nproc} processes but {gpus} GPU(s) visible: use at most one process per GPU"
        )
    return choice


def run_name_problem(run_name: str, runs_root) -> str | None:
    try:
        check_run_id(run_name)
    except ConfigError as e:
        return str(e)
    if name_taken(runs_root, run_name):
        return f"a run named {run_name!r} already exists: pick another name"
    return None


def runs_with_checkpoints(runs_root) -> list[str]:
    """The runs of this runs directory a new run can start from (those with a checkpoint)."""
    return [
        r.run_id
        for r in list_run_dirs(runs_root)
        if r.checkpoints() or r.best_checkpoint_path.is_file()
    ]


def start_source(runs_root) -> tuple[str, str | None]:
    """(init_from, a problem or None) from the "Start from" inputs: '' for scratch, another
    run's directory, or a Hugging Face folder or hub name."""
    mode = st.session_state.get(PREFIX + "start", START_FROM[0])
    if mode == START_FROM[1]:
        runs = runs_with_checkpoints(runs_root)
        if not runs:
            return "", "no run in this runs directory has a checkpoint yet: start from scratch"
        if st.session_state.get(PREFIX + "start_run") not in runs:
            st.session_state[PREFIX + "start_run"] = runs[0]
        return str((Path(runs_root) / st.session_state[PREFIX + "start_run"]).resolve()), None
    if mode == START_FROM[2]:
        source = (st.session_state.get(PREFIX + "start_hf") or "").strip()
        return source, None if source else (
            "give a Hugging Face GPT-2 folder, or a hub name such as gpt2"
        )
    return "", None


def apply_source_shape(init_from: str) -> str | None:
    """Put the source's model shape into the shape fields (then drawn read-only); returns why
    the source cannot be read, or None."""
    if not init_from:
        return None
    shape, problem = source_shape(init_from, source_fingerprint(init_from))
    if shape:
        st.session_state.update({PREFIX + name: value for name, value in shape.items()})
        return None
    for named in (f"init_from {init_from}: ", f"init_from {init_from!r}: "):
        problem = problem.removeprefix(named)  # the input above shows the source already
    return problem


def read_form(runs_root) -> dict:
    """Everything the form's values mean: config, problems by field, tokens, device choice."""
    init_from, start_problem = start_source(runs_root)
    start_problem = start_problem or apply_source_shape(init_from)
    base = preset(st.session_state[PRESET_KEY])
    values = {k: st.session_state.get(k) for k in new_run_form.widget_values(base)}
    source = st.session_state.get(PREFIX + "data_source", SOURCES[0])
    setting, data_problem = data_setting(
        source, st.session_state.get(PREFIX + "data_path"), st.session_state.get(PREFIX + "upload")
    )
    cfg, problems = new_run_form.parse(values, setting or "tinyshakespeare", base, init_from)
    problems.pop("data", None)
    if start_problem:
        problems["init_from"] = start_problem
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
    return dict(
        cfg=cfg,
        problems=problems,
        tokens=tokens,
        choice=choice,
        source=source,
        run_name=run_name,
        value_keys=list(values),
        init_from=init_from,
        shape_locked=bool(init_from) and not start_problem,
    )


def probe_for(cfg: TrainConfig, choice, runs_root) -> throughput.Probe | None:
    """A timing of a few real training steps of cfg's shape, where no completed run of the shape
    measured it here: taken without asking below PROBE_AUTO_PARAMS parameters (seconds), for a
    bigger model once the user asked; None otherwise."""
    if estimate.measured_throughput(cfg, runs_root):
        return None
    key = new_run_form.probe_key(cfg, str(choice.device))
    if param_count(cfg) >= new_run_form.PROBE_AUTO_PARAMS and key not in st.session_state.get(
        PROBED, ()
    ):
        return None
    probe, problem = probe_shape(key)
    if problem:
        st.caption(f"Timing this shape failed ({problem}): the time below is a guess.")
    return probe


def estimate_of(cfg: TrainConfig, tokens, choice, runs_root) -> estimate.Estimate:
    """core.train.estimate's figures for cfg on the chosen device (one place for every figure shown),
    with a probe of its shape where one is due (probe_for)."""
    return estimate.estimate(
        cfg,
        n_tokens=len(tokens) if tokens is not None else None,
        runs_dir=runs_root,
        dtype=choice.dtype,
        device_type=choice.type,
        peak_flops=device.peak_flops(choice, cfg.peak_flops).value or None,
        probe=probe_for(cfg, choice, runs_root),
    )


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
        runs = runs_with_checkpoints(runs_root)
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
    top[0].caption(new_run_form.preset_note(name, est, chosen.max_steps))
    with top[1]:
        st.text_input(
            "Run name",
            key=PREFIX + "run_name",
            help="Letters, digits, '-' and '_': also the run's folder name",
        )
        field_error("run_name", form["problems"])


# --- what the run means: estimate, data X-ray, disk ---------------------------------------------


def estimate_metrics(est: estimate.Estimate, cfg: TrainConfig, choice) -> None:
    """Parameters and the time, with where the time comes from; a bigger model not timed yet
    gets a button that times a few real steps of its shape."""
    a, b = st.columns(2)
    a.metric("Parameters", f"{est.params / 1e6:,.2f} M")
    b.metric(
        "Estimated time",
        format_duration(est.time_s) if est.time_s else "unknown",
        help=est.time_source,
    )
    st.caption(new_run_form.time_note(est))
    probe_allowed = est.time_is_guess and est.params >= new_run_form.PROBE_AUTO_PARAMS
    if probe_allowed and st.button(
        "Time a few real steps",
        key=PREFIX + "probe",
        help="Builds this model and times a few training steps of it "
        "on this machine (a minute or more for GPT-2 124M on a CPU)",
    ):
        key = new_run_form.probe_key(cfg, str(choice.device))
        st.session_state.setdefault(PROBED, set()).add(key)
        st.rerun()


XRAY_ROWS = (
    "tokens in the data",
    "train / val tokens",
    "tokens per optimizer step",
    "steps per epoch",
    "epochs",
    "parameters per training token",
)


def xray_panel(cfg: TrainConfig, n_params: int) -> None:
    """core.data.corpus's data X-ray: sizes, passes over the text, parameters per training
    token, the longest passages the text repeats, and a warning when it will likely memorize."""
    st.markdown("**Data X-ray**")
    try:
        x = data_xray(new_run_form.xray_key(cfg), n_params, mtime(cfg.data))
    except (data.DataError, OSError, ValueError) as e:
        st.caption(f"No X-ray of this data: {e}")
        return
    st.table(
        {"figure": list(XRAY_ROWS), "value": new_run_form.xray_values(x, cfg)}, hide_index=True
    )
    if x.warning:
        st.warning(x.warning[:1].upper() + x.warning[1:] + ".")
    if x.repeats:
        with st.expander("Longest passages repeated inside the text"):
            for r in x.repeats:
                where = r.location
                lines = (
                    f"line {where.line:,}"
                    if where.line == where.end_line
                    else f"lines {where.line:,}-{where.end_line:,}"
                )
                speaker = f", {where.speaker}" if where.speaker else ""
                st.markdown(
                    escape_md(
                        f"{r.length:,} tokens, {r.count:,} times; first at "
                        f"{where.file} {lines}{speaker}"
                    )
                )
                st.code(r.text, language=None, wrap_lines=True)  # the text as itself


def free_mib(runs_root) -> float | None:
    """Free space where the run directory will be written (its nearest existing folder)."""
    path = Path(runs_root).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free / new_run_form.MIB
    except OSError:
        return None


def disk_panel(cfg: TrainConfig, runs_root) -> None:
    """The disk the run's checkpoints and snapshots need at most, beside the free space."""
    need = new_run_form.disk_need(cfg)
    a, b = st.columns(2)
    a.metric(
        "Checkpoints on disk",
        new_run_form.format_mib(need["checkpoints"]),
        help="at most keep_checkpoints + 1 full checkpoints (the newest is written before "
        "the oldest goes; all of them with keep_checkpoints 0) and best.pt: fp32 "
        "weights and AdamW's two moments, 12 bytes a parameter",
    )
    count = estimate.snapshot_count(cfg)
    b.metric(
        "Snapshots",
        new_run_form.format_mib(need["snapshots"]) if count else "off",
        help=f"{count:,} half-precision snapshots of "
        f"{new_run_form.format_mib(need['snapshot'])}, capped at "
        f"snapshot_cap_mb = {cfg.snapshot_cap_mb:,} MiB (the oldest go first)"
        if count
        else "snapshot_interval is 0: no weights-only snapshots",
    )
    free = free_mib(runs_root)
    text = f"Disk needed at most: {new_run_form.format_mib(need['total'])}"
    if free is not None:
        text += f"; {new_run_form.format_mib(free)} free where the run is written."
    if free is not None and need["total"] > free:
        st.warning(f"{text} Free some space or keep fewer checkpoints (keep_checkpoints).")
    else:
        st.caption(text)


def estimate_tables(est: estimate.Estimate, cfg: TrainConfig) -> None:
    """Memory per process (in MiB, as computed) and how the figures are estimated."""
    st.markdown("**Estimated memory per process**")
    st.table(
        {"part": list(est.memory_mb), "MiB": [f"{v:,.1f}" for v in est.memory_mb.values()]},
        hide_index=True,
    )
    with st.expander("How these are estimated"):
        formula = estimate.ACTIVATION_FORMULA.replace("*", "\\*")  # products, not emphasis
        st.markdown(
            f"- {formula}\n"
            f"- {est.flops_per_token / 1e6:,.1f} MFLOPs per token (6N + 12·L·H·Q·T); "
            f"{est.total_tokens:,} tokens in {cfg.max_steps:,} steps."
        )
        st.table(
            {
                "component": list(est.params_by_component),
                "parameters": [f"{n:,}" for n in est.params_by_component.values()],
            },
            hide_index=True,
        )


def estimate_panel(form: dict, runs_root) -> None:
    """What the run means, or what to fix first."""
    st.subheader("What this run means")
    problems = form["problems"]
    if problems:
        st.error(
            "Fix these fields to launch:\n\n"
            + "\n".join(f"- **{name}**: {why}" for name, why in problems.items())
        )
        return
    cfg = form["cfg"]
    est = estimate_of(cfg, form["tokens"], form["choice"], runs_root)
    estimate_metrics(est, cfg, form["choice"])
    xray_panel(cfg, est.params)
    disk_panel(cfg, runs_root)
    estimate_tables(est, cfg)


# --- launch ------------------------------------------------------------------------------------


def something_training(runs_root) -> bool:
    """Whether a run in runs_root is training, starting or waiting in the queue."""
    return any(r.effective_state() in (*ACTIVE_STATES, WAITING) for r in list_run_dirs(runs_root))


def launch_buttons(form: dict, runs_root) -> str | None:
    """Launch; while a run trains or waits, "Launch after the current run ends" first and
    "Launch now" under it. Returns "now", "queue" or None (nothing pressed)."""
    blocked = bool(form["problems"])
    if not something_training(runs_root):
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
    if not run_id:
        return
    waiting = run_queue.queued(runs_root)
    if run_id not in waiting:
        st.session_state.pop(QUEUED, None)
        return
    place = waiting.index(run_id) + 1
    ahead = (
        "next, once the current run ends"
        if place == 1
        else f"after the {place - 1} queued run{'s' if place > 2 else ''} before it"
    )
    st.success(
        f"Queued **{run_id}**: number {place} of {len(waiting)} in the queue; it starts "
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
        estimate_panel(form, runs_root)
        when = launch_buttons(form, runs_root)
        queued_note(runs_root)
    save_form(form["value_keys"])
    state.to_url(preset=st.session_state[PRESET_KEY])
    if when:
        launch(form, runs_root, when)


main()
