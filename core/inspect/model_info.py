"""Describe a run's model: architecture, parameters by component and training results, all
read from the real tensors and files."""

from __future__ import annotations

import math

import torch

from core.config import GPT2_VOCAB, TrainConfig
from core.model.gpt import GPT, ModelConfig
from core.store import metrics
from core.store.checkpoint import unique_tensors
from core.store.metrics import RunSummary
from core.store.rundir import RunDir


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
        (
            "vocabulary",
            f"{cfg.vocab_size:,} ({GPT2_VOCAB:,} GPT-2 BPE tokens + {pad} padding)"
            if pad > 0
            else f"{cfg.vocab_size:,}",
        ),
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


def parameter_breakdown(state_dict: dict) -> list[tuple[str, int]]:
    """Parameters per component from the real tensors (the tied embedding counted once),
    with a final ('total', n) row."""
    tensors = unique_tensors(state_dict)
    rows = []
    for label, match in _COMPONENTS:
        rows.append((label, sum(t.numel() for n, t in tensors.items() if match(n))))
    other = sum(
        t.numel() for n, t in tensors.items() if not any(match(n) for _, match in _COMPONENTS)
    )
    if other:
        rows.append(("other (untied lm_head)", other))
    rows.append(("total", sum(t.numel() for t in tensors.values())))
    return rows


def meta_breakdown(cfg: TrainConfig) -> list[tuple[str, int]]:
    """Parameter breakdown of the model a config describes, without allocating its weights."""
    with torch.device("meta"):
        model = GPT(ModelConfig.of(cfg))
    return parameter_breakdown(dict(model.named_parameters()))


def training_results(run: RunDir, summary: RunSummary | None = None) -> dict:
    """Results of a run from its metrics summary and status.json: initial and final loss,
    reduction, best val loss, its step and perplexity, steps, stop reason, training time (summed
    over every stop and resume), mean step time and tokens/s, peak memory. Missing figures are
    None. The summary comes from core.store.metrics' shared cache, which reads only what was appended
    since the last call (a rerun on a million-step run costs a stat)."""
    s = summary or metrics.cached_summary(run.metrics_path)
    status = run.read_status()
    out = {
        "initial_loss": s.first_loss,
        "final_loss": s.last_loss,
        "loss_reduction": None,
        "best_val_loss": s.best_val_loss,
        "best_val_step": s.best_val_step,
        "best_val_perplexity": math.exp(min(s.best_val_loss, 700))
        if s.best_val_loss is not None
        else None,
        "total_time_s": s.train_time_s if s.last_step else None,
        "mean_step_ms": s.mean_step_ms,
        "mean_tokens_per_sec": s.mean_tokens_per_sec,
        "peak_mem_mb": s.peak_mem_mb,
        "steps": s.last_step or int(status.get("step") or 0),
        "max_steps": status.get("max_steps"),
        "state": run.effective_state(status),
        "stop_reason": status.get("reason"),
    }
    if s.first_loss and s.last_loss is not None:
        out["loss_reduction"] = 1 - s.last_loss / s.first_loss
    return out
