"""Reading the New run form: its widgets' values as a config and the problems by field (each
named so the page shows it beside the field), with the tokens of the chosen text, the device the
run would use, and where its weights start from."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.config import TrainConfig, preset
from core.data import dataset as data
from core.runs import preflight
from core.store import pretrained
from core.store import rundir as runsdir
from dashboard import new_run_form

PREFIX = new_run_form.KEY_PREFIX
PRESET_KEY = PREFIX + "preset"
SOURCES = new_run_form.SOURCES
START_FROM = new_run_form.START_FROM


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
        tokens = tokens_of_source(setting, new_run_form.data_mtime(setting))
    except (data.DataError, OSError) as e:
        return None, str(e)
    if {"micro_batch_size", "seq_len", "val_fraction"} & set(problems):
        return tokens, None
    return tokens, new_run_form.size_problem(tokens, cfg)


def start_source(runs_root) -> tuple[str, str | None]:
    """(init_from, a problem or None) from the "Start from" inputs: '' for scratch, another
    run's directory, or a Hugging Face folder or hub name."""
    mode = st.session_state.get(PREFIX + "start", START_FROM[0])
    if mode == START_FROM[1]:
        runs = runsdir.runs_with_checkpoints(runs_root)
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
    shape, problem = source_shape(init_from, runsdir.source_fingerprint(init_from))
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
    choice = None
    if not {"device", "dtype", "compile"} & set(problems):
        choice, device_problems = preflight.device_problems(cfg)
        problems.update(device_problems)
    run_name = (st.session_state.get(PREFIX + "run_name") or "").strip()
    name_problem = runsdir.run_name_problem(runs_root, run_name)
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
