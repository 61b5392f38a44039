"""Load a model from any checkpoint of a run, and describe it: architecture, parameters by
component, sizes and training results, all read from the real tensors and files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from core import device as devices
from core.device import DTYPE_NAMES
from core.config import DTYPE_ALIASES, GPT2_VOCAB, TrainConfig
from core.model import GPT, ModelConfig
from core import checkpoint, metrics
from core.metrics import RunSummary
from core.rundir import RunDir



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


def load_model(checkpoint_path: str | Path, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """Load a checkpoint's weights alone (the optimizer state is left on disk) onto a device in
    fp32 or bf16 for inference.

    A missing, truncated or foreign file raises ValueError / FileNotFoundError with a clear
    message; so do an unknown dtype or an unavailable device.
    """
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16 (got {dtype!r})")
    choice = devices.choose(device, "float32", "off")
    ckpt = checkpoint.load(checkpoint_path, map_location="cpu", training=False)
    model = ckpt.build_model().to(device=choice.device, dtype=DTYPE_NAMES[dtype])
    return LoadedModel(model, ckpt.config, ckpt.step, ckpt.path, choice.device, dtype)


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


def sizes(ckpt: checkpoint.Checkpoint) -> dict[str, int]:
    """Byte sizes from a loaded checkpoint: the weights in fp32 and in bf16, the optimizer state
    (AdamW's two moments), weights + optimizer, and the checkpoint file on disk."""
    n = sum(t.numel() for t in _unique(ckpt.model).values())
    out = {
        "fp32": n * 4,
        "bf16": n * 2,
        "optimizer": checkpoint.state_bytes((ckpt.optimizer or {}).get("state", {})),
    }
    out["fp32_with_optimizer"] = out["fp32"] + out["optimizer"]
    if ckpt.path.is_file():
        out["checkpoint_file"] = ckpt.path.stat().st_size
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


def training_results(run: RunDir, summary: RunSummary | None = None) -> dict:
    """Results of a run from its metrics summary and status.json: initial and final loss,
    reduction, best val loss, its step and perplexity, steps, stop reason, training time (summed
    over every stop and resume), mean step time and tokens/s, peak memory. Missing figures are
    None. The summary comes from core.metrics' shared cache, which reads only what was appended
    since the last call (a rerun on a million-step run costs a stat)."""
    s = summary or metrics.cached_summary(run.metrics_path)
    status = run.read_status()
    out = {
        "initial_loss": s.first_loss, "final_loss": s.last_loss, "loss_reduction": None,
        "best_val_loss": s.best_val_loss, "best_val_step": s.best_val_step,
        "best_val_perplexity": math.exp(min(s.best_val_loss, 700)) if s.best_val_loss is not None else None,
        "total_time_s": s.train_time_s if s.last_step else None,
        "mean_step_ms": s.mean_step_ms, "mean_tokens_per_sec": s.mean_tokens_per_sec,
        "peak_mem_mb": s.peak_mem_mb, "steps": s.last_step or int(status.get("step") or 0),
        "max_steps": status.get("max_steps"), "state": run.effective_state(status),
        "stop_reason": status.get("reason"),
    }
    if s.first_loss and s.last_loss is not None:
        out["loss_reduction"] = 1 - s.last_loss / s.first_loss
    return out
