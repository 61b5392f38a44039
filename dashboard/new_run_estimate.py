"""The New run page's "What this run means" panel: parameters and time (core.train.estimate,
with a timing of a few real steps where no finished run measured the shape), the data X-ray
(core.data.xray), the disk the run needs beside the free space, and memory per process."""

from __future__ import annotations

import streamlit as st

from core import device
from core.config import TrainConfig
from core.data import dataset as data
from core.data.xray import too_large_to_wait
from core.model.param_count import param_count
from core.train import estimate, throughput
from core.units import escape_md, format_duration, format_mib
from dashboard import new_run_form, time_budget
from dashboard.lr_range_panel import lr_range_panel

PREFIX = new_run_form.KEY_PREFIX
PROBED = "new_run_probed"  # shapes over PROBE_AUTO_PARAMS the user asked to time


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
        loss=choice.loss,
    )


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
    "repeated data",
    "parameters per training token",
)


def xray_panel(cfg: TrainConfig, n_params: int) -> None:
    """core.data.corpus's data X-ray: sizes, passes over the text, parameters per training
    token, the longest passages the text repeats, and a warning when it will likely memorize."""
    st.markdown("**Data X-ray**")
    too_large = too_large_to_wait(cfg.data)
    if too_large:
        st.caption(f"No X-ray of this data: {too_large}.")
        return
    try:
        x = data_xray(new_run_form.xray_key(cfg), n_params, new_run_form.data_mtime(cfg.data))
    except (data.DataError, OSError, ValueError, MemoryError) as e:
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


def disk_panel(cfg: TrainConfig, runs_root) -> None:
    """The disk the run's checkpoints and snapshots need at most, beside the free space."""
    need = new_run_form.disk_need(cfg)
    a, b = st.columns(2)
    a.metric(
        "Checkpoints on disk",
        format_mib(need["checkpoints"]),
        help="at most keep_checkpoints + 1 full checkpoints (the newest is written before "
        "the oldest goes; all of them with keep_checkpoints 0) and best.pt: fp32 "
        "weights and AdamW's two moments, 12 bytes a parameter",
    )
    count = estimate.snapshot_count(cfg)
    b.metric(
        "Snapshots",
        format_mib(need["snapshots"]) if count else "off",
        help=f"{count:,} half-precision snapshots of "
        f"{format_mib(need['snapshot'])}, capped at "
        f"snapshot_cap_mb = {cfg.snapshot_cap_mb:,} MiB (the oldest go first)"
        if count
        else "snapshot_interval is 0: no weights-only snapshots",
    )
    free = estimate.free_disk_mb(runs_root)
    text = f"Disk needed at most: {format_mib(need['total'])}"
    if free is not None:
        text += f"; {format_mib(free)} free where the run is written."
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


def estimate_panel(form: dict, runs_root, preset_name: str, apply_preset) -> None:
    """What the run means, or what to fix first; the time budget, and above Launch the warning
    when the settings take much longer than the budget here (apply_preset: the page's own)."""
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
    probe = probe_for(cfg, form["choice"], runs_root)
    time_budget.budget_input(cfg, est, probe)
    xray_panel(cfg, est.params)
    lr_range_panel(cfg, est.tokens_per_sec)
    disk_panel(cfg, runs_root)
    estimate_tables(est, cfg)
    time_budget.slow_warning(cfg, est, preset_name, probe, apply_preset)  # right above Launch
