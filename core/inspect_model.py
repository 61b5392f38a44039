"""Load a model from any checkpoint of a run, and describe it: architecture, parameters by
component, sizes and training results, all read from the real tensors and files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from core import device as devices
from core.device import DTYPE_NAMES
from core.config import GPT2_VOCAB, TrainConfig
from core.model import GPT, ModelConfig
from core.rundir import MetricsReader, RunDir, load_checkpoint



@dataclass
class LoadedModel:
    """A model ready for inference, with where it came from."""

    model: GPT
    config: TrainConfig
    step: int
    path: Path
    device: str
    dtype: str


def resolve_checkpoint(run: RunDir, checkpoint: str | Path | None = None) -> Path:
    """The checkpoint file to use: the given one (a path, or a file name inside the run's
    checkpoints folder), else the run's newest. Raises ValueError when there is none."""
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_file() and (run.checkpoint_dir / path.name).is_file():
            path = run.checkpoint_dir / path.name
        if not path.is_file():
            raise ValueError(f"checkpoint {checkpoint} does not exist: pick one of "
                             f"{', '.join(p.name for _, p in run.checkpoints()) or 'none yet'}")
        return path
    if not run.exists():
        raise ValueError(f"{run.path} is not a run directory (no config.json): check --run-dir")
    latest = run.latest_checkpoint()
    if latest is None:
        raise ValueError(f"run {run.run_id} has no checkpoint yet: wait for its first one "
                         "(see checkpoint_interval) or train it")
    return latest


def model_from_state(state: dict, path: Path | str = "?") -> tuple[GPT, TrainConfig]:
    """A GPT (fp32, CPU, eval mode) holding a checkpoint's weights; ValueError if they do not fit."""
    try:
        cfg = TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} holds a config this version cannot read: {e}") from e
    model = GPT(ModelConfig.of(cfg))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: the weights do not match the model its config describes "
                         f"({str(e).splitlines()[0][:200]})") from e
    return model.eval(), cfg


def load_model(checkpoint: str | Path, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """Load a checkpoint safely (weights only) onto a device in fp32 or bf16 for inference.

    A missing, truncated or foreign file raises ValueError / FileNotFoundError with a clear
    message; so do an unknown dtype or an unavailable device.
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16 (got {dtype!r})")
    choice = devices.choose(device, "float32", "off")
    path = Path(checkpoint)
    state = load_checkpoint(path, map_location="cpu")
    model, cfg = model_from_state(state, path)
    model = model.to(device=choice.device, dtype=DTYPE_NAMES[dtype])
    return LoadedModel(model, cfg, int(state.get("step", 0)), path, choice.device, dtype)


# --- description -------------------------------------------------------------------------------

def architecture(cfg: TrainConfig) -> list[tuple[str, str]]:
    """The architecture in words and numbers, one (property, value) row each."""
    pad = cfg.vocab_size - GPT2_VOCAB
    return [
        ("type", "GPT-2 (decoder-only transformer)"),
        ("layers", str(cfg.n_layer)),
        ("attention heads", str(cfg.n_head)),
        ("embedding width", str(cfg.n_embd)),
        ("head dimension", str(cfg.n_embd // cfg.n_head)),
        ("MLP hidden width", f"{4 * cfg.n_embd} (4 x embedding)"),
        ("vocabulary", f"{cfg.vocab_size:,} ({GPT2_VOCAB:,} GPT-2 BPE tokens + {pad} padding)"
         if pad > 0 else f"{cfg.vocab_size:,}"),
        ("context length", f"{cfg.block_size:,} tokens"),
        ("position embeddings", "learned, absolute"),
        ("attention", "causal multi-head self-attention (scaled dot product)"),
        ("activation", "GELU (tanh approximation)"),
        ("normalisation", "LayerNorm before each sub-layer (pre-LN) and after the last block"),
        ("weight tying", "token embedding = output projection (lm_head)"),
    ]


_COMPONENTS = (
    ("token embedding (wte, tied with lm_head)", lambda n: n.startswith("transformer.wte")),
    ("position embedding (wpe)", lambda n: n.startswith("transformer.wpe")),
    ("attention (c_attn, c_proj)", lambda n: ".attn." in n),
    ("MLP (c_fc, c_proj)", lambda n: ".mlp." in n),
    ("LayerNorms (ln_1, ln_2, ln_f)", lambda n: ".ln_" in n),
)


def _unique(state_dict: dict) -> dict[str, torch.Tensor]:
    """The tensors of a state dict with tied ones (same storage) kept once, first name wins."""
    seen, out = set(), {}
    for name, t in state_dict.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)) \
            if t.device.type != "meta" else name
        if key in seen:
            continue
        seen.add(key)
        out[name] = t
    return out


def parameter_breakdown(state_dict: dict) -> list[tuple[str, int]]:
    """Parameters per component from the real tensors (the tied embedding counted once),
    with a final ('total', n) row."""
    tensors = _unique(state_dict)
    rows = []
    for label, match in _COMPONENTS:
        rows.append((label, sum(t.numel() for n, t in tensors.items() if match(n))))
    other = sum(t.numel() for n, t in tensors.items()
                if not any(match(n) for _, match in _COMPONENTS))
    if other:
        rows.append(("other (untied lm_head)", other))
    rows.append(("total", sum(t.numel() for t in tensors.values())))
    return rows


def _tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def sizes(state: dict, checkpoint_path: str | Path | None = None) -> dict[str, int]:
    """Byte sizes from a loaded checkpoint: the weights in fp32 and in bf16, the optimizer state
    (AdamW's two moments), weights + optimizer, and the checkpoint file on disk."""
    n = sum(t.numel() for t in _unique(state["model"]).values())
    out = {
        "fp32": n * 4,
        "bf16": n * 2,
        "optimizer": _tensor_bytes(state.get("optimizer", {}).get("state", {})),
    }
    out["fp32_with_optimizer"] = out["fp32"] + out["optimizer"]
    if checkpoint_path and Path(checkpoint_path).is_file():
        out["checkpoint_file"] = Path(checkpoint_path).stat().st_size
    return out


def meta_breakdown(cfg: TrainConfig) -> list[tuple[str, int]]:
    """Parameter breakdown of the model a config describes, without allocating its weights."""
    with torch.device("meta"):
        model = GPT(ModelConfig.of(cfg))
    return parameter_breakdown(dict(model.named_parameters()))


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def training_results(run: RunDir) -> dict:
    """Results of a run from metrics.jsonl and status.json: initial and final loss, reduction,
    best val loss and its perplexity, steps, stop reason, total time, mean step time and
    tokens/s, peak memory. Missing figures are None."""
    records = MetricsReader(run.metrics_path).read_new()
    train = [r for r in records if r.get("kind", "train") == "train" and "loss" in r]
    evals = [r for r in records if r.get("kind") == "eval" and "val_loss" in r]
    status = run.read_status()
    out: dict = dict.fromkeys(("initial_loss", "final_loss", "loss_reduction", "best_val_loss",
                               "best_val_step", "best_val_perplexity", "total_time_s",
                               "mean_step_ms", "mean_tokens_per_sec", "peak_mem_mb"))
    out["steps"] = train[-1]["step"] if train else int(status.get("step", 0))
    out["max_steps"] = status.get("max_steps")
    out["state"] = run.effective_state(status)
    out["stop_reason"] = status.get("reason")
    if train:
        out["initial_loss"], out["final_loss"] = train[0]["loss"], train[-1]["loss"]
        if out["initial_loss"]:
            out["loss_reduction"] = 1 - out["final_loss"] / out["initial_loss"]
        steps = [r for r in train if "dt_ms" in r]
        # The first step pays for warm-up (allocation, compilation): leave it out of the means.
        timed = steps[1:] or steps
        if timed:
            out["mean_step_ms"] = sum(r["dt_ms"] for r in timed) / len(timed)
            out["mean_tokens_per_sec"] = sum(r.get("tokens_per_sec", 0) for r in timed) / len(timed)
        mems = [r["peak_mem_mb"] for r in train if r.get("peak_mem_mb") is not None]
        out["peak_mem_mb"] = max(mems) if mems else None
    if evals:
        best = min(evals, key=lambda r: r["val_loss"])
        out["best_val_loss"], out["best_val_step"] = best["val_loss"], best["step"]
        out["best_val_perplexity"] = math.exp(min(best["val_loss"], 700))
    started = status.get("started")
    ended = status.get("ended") or (status.get("updated") if out["state"] == "running" else None)
    if started and ended:
        out["total_time_s"] = max(0.0, ended - started)
    return out
