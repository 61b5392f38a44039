"""New run: a preset, every hyperparameter, the data, an estimate, and Launch."""

import pandas as pd
import streamlit as st

from core import data, device, estimate, launcher
from core.config import PRESET_NOTES, PRESETS, ConfigError, check_run_id, preset
from dashboard import new_run_form as form
from dashboard.run_table import format_duration
from dashboard.state import runs_dir

K = form.KEY_PREFIX
SOURCES = ("tiny shakespeare", "a local path", "upload a .txt file")


@st.cache_resource
def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@st.cache_resource
def _cuda_devices() -> list[str]:
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


@st.cache_data(show_spinner="Counting tokens...")
def _tokens_of_source(setting: str, mtime: float):
    """Tokens of a data setting (mtime keys the cache so an edited file is read again)."""
    return data.load_tokens(setting)


@st.cache_data(show_spinner="Tokenizing the upload...")
def _tokens_of_text(raw: bytes):
    return data.encode(raw.decode("utf-8"))


def _mtime(setting: str) -> float:
    try:
        return max(p.stat().st_mtime for p in data.resolve_source(setting))
    except (OSError, ValueError):
        return 0.0


def _apply_preset():
    """Fill every field from the chosen preset (and propose a fresh run name)."""
    name = st.session_state[K + "preset"]
    st.session_state.update(form.preset_values(name))
    st.session_state[K + "run_name"] = launcher.default_run_name(name, runs_root)


# --- state: preset values on first visit, the last values when coming back ------------------
runs_root = runs_dir()
if K + "preset" not in st.session_state:
    saved = st.session_state.get("new_run_saved")
    if saved:  # Streamlit forgets widget values on other pages: restore the form as it was
        st.session_state.update(saved)
    else:
        st.session_state[K + "preset"] = "gpt2-124m" if _has_cuda() else "nano"
        _apply_preset()
        st.session_state[K + "data_source"] = SOURCES[0]
        st.session_state[K + "data_path"] = ""

base = preset(st.session_state[K + "preset"])
values = {k: st.session_state.get(k) for k in form.widget_values(base)}

# Data setting and its problem, before rendering, so every message sits next to its field.
source = st.session_state.get(K + "data_source", SOURCES[0])
upload = st.session_state.get(K + "upload")
upload_raw = upload.getvalue() if upload is not None else None
data_problem, tokens = None, None
if source == SOURCES[0]:
    data_setting = "tinyshakespeare"
elif source == SOURCES[1]:
    data_setting = (st.session_state.get(K + "data_path") or "").strip()
    if not data_setting:
        data_problem = "give the path of a .txt file, or of a folder of .txt files, on this machine"
else:
    data_setting = ""
    if upload_raw is None:
        data_problem = "upload a UTF-8 .txt file (at least 1 KB)"
    else:
        data_problem = form.upload_problem(upload_raw, upload.name)
        data_setting = str(form.upload_path(upload_raw, runs_root))

cfg, problems = form.parse(values, data_setting or "tinyshakespeare", base)
problems.pop("data", None)
if data_problem is None:
    try:
        if upload_raw is not None and source == SOURCES[2]:
            tokens = _tokens_of_text(upload_raw)
        else:
            tokens = _tokens_of_source(data_setting, _mtime(data_setting))
    except (data.DataError, OSError) as e:
        data_problem = str(e)
    if tokens is not None and not {"micro_batch_size", "seq_len", "val_fraction"} & set(problems):
        data_problem = form.size_problem(tokens, cfg)
if data_problem:
    problems["data"] = data_problem

choice = None
if not {"device", "dtype", "compile"} & set(problems):
    try:
        choice = device.choose(cfg.device, cfg.dtype, cfg.compile)
    except ValueError as e:
        problems["device"] = str(e).removeprefix("device: ")
if choice and cfg.nproc > 1 and choice.type == "cuda" and cfg.nproc > len(_cuda_devices()):
    problems["nproc"] = (f"{cfg.nproc} processes but {len(_cuda_devices())} GPU(s) visible: "
                         "use at most one process per GPU")

run_name = (st.session_state.get(K + "run_name") or "").strip()
try:
    check_run_id(run_name)
    if (runs_root / run_name).exists():
        problems["run_name"] = f"a run named {run_name!r} already exists: pick another name"
except ConfigError as e:
    problems["run_name"] = str(e)


def field_error(name: str):
    if name in problems:
        st.error(f"**{name}**: {problems[name]}", icon="⚠️")


def render_field(f):
    key = K + f.name
    label = f.name if f.name != "nproc" else "processes (GPUs)"
    if f.name == "device":
        options = list(dict.fromkeys(["auto", "cpu", *_cuda_devices(), "cuda", "mps"]))
        st.selectbox(label, options, key=key, help=f.metadata["help"])
    elif f.name == "dtype":
        st.selectbox(label, ["auto", "float32", "bfloat16"], key=key, help=f.metadata["help"])
    elif f.name == "compile":
        st.selectbox(label, ["auto", "on", "off"], key=key, help=f.metadata["help"])
    elif form.kind(f) is int:
        st.number_input(label, step=1, key=key, help=f.metadata["help"])
    else:
        st.text_input(label, key=key, help=f.metadata["help"])
    field_error(f.name)


# --- the page ------------------------------------------------------------------------------
st.title("New run")
left, right = st.columns([3, 2], gap="large")

with left:
    top = st.columns(2)
    top[0].selectbox("Preset", list(PRESETS), key=K + "preset", on_change=_apply_preset,
                     help="Fills every field below")
    top[0].caption(PRESET_NOTES.get(st.session_state[K + "preset"], ""))
    with top[1]:
        st.text_input("Run name", key=K + "run_name",
                      help="Letters, digits, '-' and '_': also the run's folder name")
        field_error("run_name")

    groups = form.fields_by_group()
    for group in form.GROUPS:
        fields = [f for f in groups[group] if f.name not in form.SPECIAL]
        with st.expander(group.capitalize(),
                         expanded=group in ("model", "batch", "data") or any(
                             f.name in problems for f in groups[group])):
            if group == "data":
                st.radio("Training text", SOURCES, key=K + "data_source", horizontal=True)
                if source == SOURCES[1]:
                    st.text_input("Path of a .txt file or a folder of them", key=K + "data_path",
                                  placeholder="/home/me/corpus.txt")
                elif source == SOURCES[2]:
                    st.file_uploader("A UTF-8 .txt file", type=["txt"], key=K + "upload")
                field_error("data")
                if tokens is not None and "data" not in problems:
                    st.caption(f"{len(tokens):,} GPT-2 tokens")
            if group == "device":
                if choice:
                    st.info(f"This machine: **{choice.device}**, **{choice.dtype}**, "
                            f"compile **{'on' if choice.compile else 'off'}** ({choice.why})")
            cols = st.columns(3)
            for i, f in enumerate(fields):
                with cols[i % 3]:
                    render_field(f)

with right:
    st.subheader("What this run means")
    if problems:
        st.error("Fix these fields to launch:\n\n" + "\n".join(
            f"- **{name}**: {why}" for name, why in problems.items()))
    else:
        est = estimate.estimate(
            cfg, n_tokens=len(tokens) if tokens is not None else None, runs_dir=runs_root,
            dtype=choice.dtype, device_type=choice.type,
            peak_flops=device.peak_flops(choice, cfg.peak_flops) or None)
        a, b = st.columns(2)
        a.metric("Parameters", f"{est.params / 1e6:,.2f} M")
        b.metric("Tokens per step", f"{est.tokens_per_step:,}",
                 help=f"micro_batch_size x seq_len x grad_accum_steps ({est.grad_accum_steps}) "
                      "x nproc")
        a.metric("Steps per epoch", f"{est.steps_per_epoch:,.1f}" if est.steps_per_epoch else "?",
                 help="optimizer steps for one pass over the training split")
        b.metric("Estimated time", format_duration(est.time_s) if est.time_s else "unknown",
                 help=est.time_source)
        label = "Measured" if not est.time_is_guess else "⚠️ Rough"
        st.caption(f"{label} {est.time_source.split(': ', 1)[0]}: "
                   f"{est.time_source.split(': ', 1)[-1]}. "
                   + " ".join(n[0].upper() + n[1:] + "." for n in est.notes))
        mem = pd.DataFrame({"part": list(est.memory_mb), "MB": [round(v, 1) for v in
                                                                 est.memory_mb.values()]})
        st.markdown("**Estimated memory per process**")
        st.dataframe(mem, hide_index=True, key=K + "memory_table", width="stretch")
        with st.expander("How these are estimated"):
            st.markdown(f"- {estimate.ACTIVATION_FORMULA}\n"
                        f"- {est.flops_per_token / 1e6:,.1f} MFLOPs per token (6N + 12·L·H·Q·T); "
                        f"{est.total_tokens:,} tokens in {cfg.max_steps:,} steps.")
            st.dataframe(pd.DataFrame({"component": list(est.params_by_component),
                                       "parameters": list(est.params_by_component.values())}),
                         hide_index=True, key=K + "params_table")
    launch = st.button("Launch", key=K + "launch", type="primary", disabled=bool(problems),
                       width="stretch")

# Remember the form for when the user comes back from another page.
st.session_state["new_run_saved"] = {
    k: st.session_state[k] for k in [*values, K + "preset", K + "run_name", K + "data_source",
                                      K + "data_path"] if k in st.session_state}

if launch:
    try:
        if source == SOURCES[2]:
            cfg = cfg.replace(data=str(form.save_upload(upload_raw, runs_root)))
        run_id = launcher.launch(cfg, runs_root, run_name)
    except (ConfigError, data.DataError, OSError) as e:
        st.error(f"Not launched: {e}")
    else:
        st.session_state["selected_run"] = run_id
        # The next visit proposes a fresh name (widget state is restored from this dict).
        saved = st.session_state.get("new_run_saved", {})
        saved[K + "run_name"] = launcher.default_run_name(st.session_state[K + "preset"], runs_root)
        st.switch_page("views/live.py")
