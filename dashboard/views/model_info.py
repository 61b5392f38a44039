"""Model info: architecture, parameters, sizes, hyperparameters and results of a run."""

import dataclasses

import pandas as pd
import streamlit as st

from core.config import TrainConfig
from core.inspect.model_info import (
    architecture,
    meta_breakdown,
    parameter_breakdown,
    training_results,
)
from core.store import checkpoint, export
from core.store.checkpoint import load_model, sizes
from core.units import format_duration, human_bytes
from dashboard.checkpoint_picker import pick_header
from dashboard.glossary import PERPLEXITY

st.title("Model info")


@st.cache_resource(max_entries=4, show_spinner="Reading the checkpoint...")
def _checkpoint_facts(path: str, mtime: float) -> dict:
    """Breakdown and sizes from the checkpoint's real tensors (the state itself is not kept)."""
    ckpt = checkpoint.load(path)
    return {
        "breakdown": parameter_breakdown(ckpt.model),
        "sizes": sizes(ckpt),
        "step": ckpt.step,
        "config": ckpt.config,
    }


picked = pick_header("mi", [3, 2], device=False)
run, chosen = picked.run, picked.choice
ckpt = chosen.path if chosen else None

facts = None
if ckpt is not None:
    try:
        facts = _checkpoint_facts(str(ckpt), ckpt.stat().st_mtime)
    except (ValueError, FileNotFoundError, OSError) as e:
        st.error(f"Cannot read {ckpt.name}: {e}")
        st.stop()
try:
    cfg = facts["config"] if facts else run.read_config()
except ValueError as e:
    st.error(f"Cannot read the run's config: {e}")
    st.stop()
if facts is not None:
    st.caption(
        f"Weights from `{ckpt.relative_to(run.path)}` ({chosen.title}): sizes, parameters "
        "and export below are this file's."
    )
    if facts["step"] == 0:
        st.warning(
            "This is the step-0 snapshot: the untrained, random weights written before the "
            "first step. Its export generates noise; wait for the first checkpoint, or pick one."
        )
else:
    st.info(
        f"Run **{run.run_id}** has no checkpoint yet ({run.effective_state()}): the "
        "architecture and parameter counts below come from its config; sizes and export "
        "appear after the first checkpoint."
    )

breakdown = facts["breakdown"] if facts else meta_breakdown(cfg)
total = dict(breakdown)["total"]

left, right = st.columns(2)
with left:
    st.subheader("Architecture")
    st.table(pd.DataFrame(architecture(cfg), columns=["property", "value"]).set_index("property"))
with right:
    st.subheader("Parameters")
    st.metric("Total parameters", f"{total:,}", help="The tied embedding is counted once")
    rows = [
        {"component": name, "parameters": f"{n:,}", "share": f"{n / total:.1%}"}
        for name, n in breakdown
        if name != "total"
    ]
    st.table(pd.DataFrame(rows).set_index("component"))

st.subheader("Size")
if facts:
    sz = facts["sizes"]
    a, b, c, d = st.columns(4)
    a.metric("Weights, fp32", human_bytes(sz["fp32"]))
    b.metric("Weights, bf16", human_bytes(sz["bf16"]))
    c.metric(
        "Weights + AdamW state",
        human_bytes(sz["fp32_with_optimizer"]) if sz["optimizer"] else "not in this file",
        help=f"optimizer moments: {human_bytes(sz['optimizer'])}"
        if sz["optimizer"]
        else "a weights-only snapshot keeps no optimizer state: pick a step checkpoint",
    )
    d.metric(
        "Checkpoint file",
        human_bytes(sz.get("checkpoint_file", 0)),
        help="weights, optimizer state, RNG and data position, as written by training",
    )
else:
    st.caption(f"fp32 weights will take {human_bytes(total * 4)}; bf16 {human_bytes(total * 2)}.")

st.subheader("Training results")
r = training_results(run)


def _fmt(value, pattern: str, none: str = "-") -> str:
    return none if value is None else pattern.format(value)


a, b, c, d = st.columns(4)
a.metric("Initial loss", _fmt(r["initial_loss"], "{:.4f}"))
b.metric(
    "Final loss",
    _fmt(r["final_loss"], "{:.4f}"),
    _fmt(r["loss_reduction"], "-{:.1%}", none=None),
    delta_color="inverse",
)
c.metric(
    "Best val loss",
    _fmt(r["best_val_loss"], "{:.4f}"),
    help=_fmt(r["best_val_step"], "at step {}", none=None),
)
d.metric("Best val perplexity", _fmt(r["best_val_perplexity"], "{:,.1f}"), help=PERPLEXITY)
a, b, c, d = st.columns(4)
a.metric("Steps", f"{r['steps']:,}" + (f" / {r['max_steps']:,}" if r["max_steps"] else ""))
b.metric(
    "Training time",
    format_duration(r["total_time_s"], "-"),
    help="Time spent training, summed over every stop and resume (not wall time)",
)
c.metric("Mean step time", _fmt(r["mean_step_ms"], "{:,.1f} ms"))
d.metric("Mean tokens/s", _fmt(r["mean_tokens_per_sec"], "{:,.0f}"))
a, b = st.columns([1, 3])
a.metric("Peak memory", _fmt(r["peak_mem_mb"], "{:,.0f} MiB"))
b.markdown(f"**State:** {r['state']}  \n**Stop reason:** {r['stop_reason'] or 'not finished yet'}")

st.subheader("Training hyperparameters")
hp = [
    {
        "group": f.metadata["group"],
        "setting": f.name,
        "value": str(getattr(cfg, f.name)),
        "meaning": f.metadata["help"],
    }
    for f in dataclasses.fields(TrainConfig)
]
st.table(pd.DataFrame(hp), hide_index=True)  # a static table wraps the meanings whole


def use_this_model(folder: str, run_path) -> None:
    """How to use the Hugging Face download elsewhere: install, unzip, load, generate (the code
    core.store.export writes, which the README quotes and a test runs)."""
    st.markdown(
        "**Use this model** with Hugging Face `transformers`, anywhere: the zip holds the "
        "weights, the config and GPT-2's tokenizer."
    )
    st.code(export.hf_shell_snippet(f"{folder}-hf.zip"), language="bash")
    st.code(export.hf_python_snippet(folder), language="python")
    st.caption(
        "From the command line, without the browser: `python -m core.store.export "
        f"--run-dir {run_path} --format hf --out FOLDER`."
    )


st.subheader("Export")
if facts is None:
    st.caption("Export is possible once the run has a checkpoint.")
else:
    path, name, step = str(ckpt), run.run_id, facts["step"]

    def _safetensors(dtype: str):
        def build() -> bytes:  # runs on click: the model is loaded only when asked for
            loaded = load_model(path)
            return export.safetensors_bytes(loaded.model, loaded.config, dtype, step)

        return build

    def _hf() -> bytes:
        loaded = load_model(path)
        return export.hf_zip_bytes(loaded.model, loaded.config, name=f"{name}-step{step}")

    a, b, c = st.columns(3)
    a.download_button(
        "Weights, fp32 (.safetensors)",
        _safetensors("float32"),
        file_name=f"{name}-step{step}-fp32.safetensors",
        key="mi_dl_fp32",
        mime="application/octet-stream",
        on_click="ignore",
    )
    b.download_button(
        "Weights, bf16 (.safetensors)",
        _safetensors("bfloat16"),
        file_name=f"{name}-step{step}-bf16.safetensors",
        key="mi_dl_bf16",
        mime="application/octet-stream",
        on_click="ignore",
    )
    c.download_button(
        "Hugging Face GPT-2 folder (.zip)",
        _hf,
        file_name=f"{name}-step{step}-hf.zip",
        key="mi_dl_hf",
        mime="application/zip",
        on_click="ignore",
    )
    use_this_model(f"{name}-step{step}", run.path)
