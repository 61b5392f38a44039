"""Run configuration: one typed dataclass, presets, validation and device defaults.

Every field carries a `group` (for forms and --help) and a `help` text in its metadata, so the
command line, the dashboard form and config.json all come from this one definition.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.jsonfile import DamagedFile, read_json

SCHEMA_VERSION = 1
GPT2_VOCAB = 50257  # tokens in the GPT-2 BPE; the model pads to a multiple of 64 for speed
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16")  # fp16 would need loss scaling: not offered
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16"}  # accepted everywhere, stored canonical
COMPILE_MODES = ("auto", "on", "off")
LOSS_PATHS = ("auto", "fused", "plain")  # core.device.LOSSES
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # matched whole (fullmatch)
MAX_SEED = 2**32 - 1  # numpy's limit; torch's generator takes seed + step, far below 2**64
# The model's shape: core.model.gpt.ModelConfig's sizes, what parameter counts depend on, and
# what the weights a run starts from decide. Adding one: a field here and in ModelConfig.
SHAPE_FIELDS = ("n_layer", "n_head", "n_embd", "vocab_size", "block_size")


class ConfigError(ValueError):
    """One or more invalid settings; the message lists each with the field and the fix."""


def _f(default, group: str, help: str, **kw):
    return field(default=default, metadata={"group": group, "help": help, **kw})


@dataclass
class TrainConfig:
    # model
    n_layer: int = _f(12, "model", "transformer blocks")
    n_head: int = _f(12, "model", "attention heads per block")
    n_embd: int = _f(768, "model", "embedding width (must divide by n_head)")
    block_size: int = _f(1024, "model", "context length: learned positions the model has")
    vocab_size: int = _f(50304, "model", "vocabulary size (GPT-2's 50257 padded to 50304)")
    dropout: float = _f(
        0.0,
        "model",
        "dropout on embeddings, attention and residual branches "
        "while training (nanoGPT's; 0 in the GPT-2 recipe): lets a small model "
        "see its data more than once before it overfits",
    )
    init_from: str = _f(
        "",
        "model",
        "start from these weights instead of random ones: a Hugging "
        "Face GPT-2 folder or hub name (gpt2), or a run, checkpoint or snapshot; "
        "the model's shape comes from it ('' = from scratch)",
    )
    # optimisation
    max_lr: float = _f(6e-4, "optimisation", "peak learning rate after warmup")
    min_lr: float = _f(6e-5, "optimisation", "learning rate at the end of the cosine decay")
    weight_decay: float = _f(0.1, "optimisation", "AdamW weight decay on 2-D weights only")
    beta1: float = _f(0.9, "optimisation", "AdamW beta1")
    beta2: float = _f(0.95, "optimisation", "AdamW beta2")
    eps: float = _f(1e-8, "optimisation", "AdamW epsilon")
    grad_clip: float = _f(1.0, "optimisation", "clip the global gradient norm to this (0 = off)")
    # schedule
    warmup_steps: int = _f(200, "schedule", "linear warmup steps")
    max_steps: int = _f(
        2000,
        "schedule",
        "optimizer steps (the cosine decay ends here unless lr_decay_steps is set)",
    )
    lr_decay_steps: int = _f(
        0,
        "schedule",
        "step where the cosine reaches min_lr (0 = max_steps); continuing a "
        "finished run sets it to the old max_steps so the extra steps train at min_lr",
    )
    # batch
    micro_batch_size: int = _f(2, "batch", "sequences per micro step and process")
    seq_len: int = _f(1024, "batch", "tokens per sequence (at most block_size)")
    grad_accum_steps: int = _f(16, "batch", "micro steps per optimizer step and process")
    total_batch_tokens: int = _f(
        0, "batch", "tokens per optimizer step over all processes; sets grad_accum_steps (0 = off)"
    )
    # data
    data: str = _f("tinyshakespeare", "data", "'tinyshakespeare', a .txt file or a folder of them")
    val_fraction: float = _f(0.1, "data", "fraction of tokens held out for validation")
    # device
    device: str = _f("auto", "device", "auto, cpu, cuda, cuda:N or mps", choices=DEVICES)
    dtype: str = _f(
        "auto",
        "device",
        "autocast dtype: auto (bf16 on CUDA, fp32 on CPU), float32 / fp32 or bfloat16 / bf16",
        choices=DTYPES,
    )
    compile: str = _f(
        "auto", "device", "torch.compile: auto (on for CUDA), on or off", choices=COMPILE_MODES
    )
    loss_path: str = _f(
        "auto",
        "device",
        "fused: output layer + cross-entropy in row chunks, no "
        "full logits (faster, less memory on CPU); plain: logits then "
        "cross-entropy; auto picks per device",
        choices=LOSS_PATHS,
    )
    nproc: int = _f(1, "device", "processes (GPUs); above 1 the launcher starts torchrun")
    peak_flops: float = _f(0.0, "device", "peak FLOP/s for MFU (0 = look up the device)")
    # stopping
    target_loss: float = _f(0.1, "stopping", "stop early once the training loss is below (0 = off)")
    early_stop_patience: int = _f(
        0, "stopping", "stop after this many evals without a better val loss (0 = off)"
    )
    # logging
    eval_interval: int = _f(100, "logging", "steps between val loss and text samples (0 = off)")
    eval_batches: int = _f(20, "logging", "micro batches per val loss estimate")
    sample_prompt: str = _f("ROMEO:", "logging", "prompt of the samples logged during training")
    sample_tokens: int = _f(64, "logging", "tokens per logged sample")
    checkpoint_interval: int = _f(250, "logging", "steps between checkpoints (0 = only at the end)")
    keep_checkpoints: int = _f(
        2,
        "logging",
        "newest checkpoints kept on disk (0 = all); the "
        "best-val checkpoint best.pt is kept besides",
    )
    snapshot_interval: int = _f(
        0,
        "logging",
        "steps between weights-only half-precision snapshots for comparing "
        "checkpoints over time (0 = off)",
    )
    snapshot_cap_mb: int = _f(200, "logging", "disk cap of the snapshots; the oldest go first")
    copy_min_len: int = _f(
        8,
        "logging",
        "tokens a span of a sample must share verbatim with "
        "the training text to count as copied (eval copy rate; 0 = off)",
    )
    dynamics_every: int = _f(
        1,
        "logging",
        "measure the training-dynamics probes (induction heads, per-token "
        "curves, memorization) at every Nth eval, and extraction at the end (0 = off)",
    )
    noise_scale: bool = _f(
        True,
        "logging",
        "when accumulating, record one micro batch's gradient norm per step for the gradient "
        "noise scale (McCandlish et al. 2018; no extra forward or backward)",
    )
    seed: int = _f(1337, "logging", "random seed for weights, data order and samples")

    def __post_init__(self):
        self.dtype = DTYPE_ALIASES.get(self.dtype, self.dtype)

    # --- derived values -------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def tokens_per_step(self, world_size: int | None = None) -> int:
        return (
            self.micro_batch_size
            * self.seq_len
            * self.grad_accum_steps
            * (world_size or self.nproc)
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict (config.json, a form), ignoring the schema key; unknown keys fail."""
        if not isinstance(values, dict):
            raise ConfigError(
                f"a config must be a JSON object of settings (got {type(values).__name__})"
            )
        values = {k: v for k, v in values.items() if k != "schema_version"}
        defaults = cls()
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        problems = [f"unknown config field(s): {', '.join(unknown)}"] if unknown else []
        for name, value in values.items():
            kind = type(getattr(defaults, name, None))
            if name not in unknown and not _of_kind(value, kind):
                problems.append(f"{name}: must be {kind.__name__} (got {value!r})")
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(**values)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _of_kind(value, kind: type) -> bool:
    """Whether a JSON value fits a field of this type (an int is a float; a bool is only a bool,
    never a number)."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


PRESETS: dict[str, dict] = {
    # The seed recipe: GPT-2 124M, 32,768 tokens a step, early stop at loss 0.1.
    "gpt2-124m": {},
    # CPU presets, one per time budget (bench/quality.py). The 50k-token output layer is most
    # of a small model's cost, so width costs twice: they stay 128 wide and spend the time on
    # passes over the data with dropout and a high learning rate (8 x 256 and 6 x 256 overfit
    # tiny shakespeare sooner and ended higher).
    "nano": dict(  # about 2 minutes
        n_layer=4,
        n_head=4,
        n_embd=128,
        block_size=128,
        seq_len=128,
        micro_batch_size=8,
        grad_accum_steps=1,
        max_lr=3e-3,
        min_lr=3e-4,
        warmup_steps=20,
        max_steps=300,
        eval_interval=50,
        eval_batches=8,
        sample_tokens=32,
        checkpoint_interval=100,
        snapshot_interval=50,
        target_loss=0.0,
    ),
    "micro": dict(  # about 10 minutes: the CPU default
        n_layer=6,
        n_head=4,
        n_embd=128,
        block_size=128,
        seq_len=128,
        micro_batch_size=16,
        grad_accum_steps=1,
        dropout=0.15,
        max_lr=3e-3,
        min_lr=3e-4,
        warmup_steps=30,
        max_steps=600,
        eval_interval=50,
        eval_batches=16,
        sample_tokens=48,
        checkpoint_interval=100,
        snapshot_interval=50,
        target_loss=0.0,
    ),
    "mini": dict(  # about 15 minutes: the lowest val loss found within an hour
        n_layer=4,
        n_head=4,
        n_embd=128,
        block_size=128,
        seq_len=128,
        micro_batch_size=16,
        grad_accum_steps=1,
        dropout=0.2,
        max_lr=3e-3,
        min_lr=3e-4,
        warmup_steps=100,
        max_steps=1200,
        eval_interval=50,
        eval_batches=16,
        sample_tokens=48,
        checkpoint_interval=200,
        snapshot_interval=50,
        early_stop_patience=8,
        target_loss=0.0,
    ),
}
# What each preset is; its size and duration come from core.train.estimate where shown (one figure).
PRESET_NOTES = {
    "gpt2-124m": "GPT-2 124M, the build-nanogpt recipe (needs a GPU)",
    "nano": "4 layers x 128 wide; measured on a 2-core CPU (bench/quality.py, 2026-11-30): "
    "best val loss 5.92 after 1 min 49 s",
    "micro": "6 layers x 128 wide, dropout 0.15; measured on a 2-core CPU (bench/quality.py, "
    "2026-11-30): best val loss 5.30 after 8 min 4 s, text in the play's form",
    "mini": "4 layers x 128 wide, dropout 0.2, 8 epochs; measured on a 2-core CPU "
    "(bench/quality.py, 2026-11-30): best val loss 5.14 after 15 min 28 s, the lowest "
    "found within an hour (wider and deeper models overfit sooner)",
}


def preset(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return TrainConfig(**{**PRESETS[name], **overrides})


def validate(cfg: TrainConfig) -> None:
    """Gather every problem in the config and raise one ConfigError listing them all."""
    problems = [f"{name}: {why}" for name, why in field_problems(cfg).items()]
    if problems:
        raise ConfigError("; ".join(problems))


# fields that must be whole numbers >= 1
POSITIVE_WHOLE = (
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "vocab_size",
    "max_steps",
    "micro_batch_size",
    "seq_len",
    "grad_accum_steps",
    "nproc",
    "eval_batches",
    "sample_tokens",
)
# fields that must be whole numbers >= 0 (0 often means off)
NONNEGATIVE_WHOLE = (
    "warmup_steps",
    "eval_interval",
    "checkpoint_interval",
    "keep_checkpoints",
    "total_batch_tokens",
    "seed",
    "lr_decay_steps",
    "early_stop_patience",
    "snapshot_interval",
    "snapshot_cap_mb",
    "copy_min_len",
    "dynamics_every",
)
# fields that must be finite numbers >= 0
NONNEGATIVE_NUMBERS = (
    "max_lr",
    "min_lr",
    "weight_decay",
    "eps",
    "grad_clip",
    "target_loss",
    "peak_flops",
)


def _number_problems(cfg: TrainConfig) -> dict[str, str]:
    """The fields that must be whole numbers >= 1 or >= 0, finite numbers >= 0, or a
    probability, and are not."""
    p: dict[str, str] = {}
    for name in POSITIVE_WHOLE:
        if not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
            p[name] = f"must be a positive whole number (got {getattr(cfg, name)!r})"
    for name in NONNEGATIVE_WHOLE:
        if not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 0:
            p[name] = f"must be a whole number >= 0 (got {getattr(cfg, name)!r})"
    if not isinstance(cfg.dropout, (int, float)) or not 0 <= cfg.dropout < 1:
        p["dropout"] = f"must be in [0, 1) (got {cfg.dropout!r})"
    for name in NONNEGATIVE_NUMBERS:
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            p[name] = f"must be a finite number >= 0 (got {value!r})"
    return p


def field_problems(cfg: TrainConfig) -> dict[str, str]:
    """Map each invalid field to what is wrong with it and how to fix it (empty when valid)."""
    p = _number_problems(cfg)
    if "seed" not in p and cfg.seed > MAX_SEED:
        p["seed"] = f"must be at most {MAX_SEED} (2**32 - 1) (got {cfg.seed})"
    if not p.get("max_lr") and cfg.max_lr <= 0:
        p["max_lr"] = "must be above 0"
    if "n_embd" not in p and "n_head" not in p and cfg.n_embd % cfg.n_head:
        p["n_embd"] = f"{cfg.n_embd} does not divide by n_head={cfg.n_head}; pick a multiple"
    if "seq_len" not in p and "block_size" not in p and cfg.seq_len > cfg.block_size:
        p["seq_len"] = f"{cfg.seq_len} is above block_size={cfg.block_size}, the model's context"
    if "vocab_size" not in p and cfg.vocab_size < GPT2_VOCAB:
        p["vocab_size"] = f"must be at least {GPT2_VOCAB}, the GPT-2 tokenizer's size"
    if "min_lr" not in p and "max_lr" not in p and cfg.min_lr > cfg.max_lr:
        p["min_lr"] = f"{cfg.min_lr} is above max_lr={cfg.max_lr}"
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(cfg, name) < 1:
            p[name] = f"must be in [0, 1) (got {getattr(cfg, name)})"
    if not 0 < cfg.val_fraction < 1:
        p["val_fraction"] = f"must be between 0 and 1, exclusive (got {cfg.val_fraction})"
    if not (cfg.device in DEVICES or re.fullmatch(r"cuda:\d+", str(cfg.device))):
        p["device"] = f"unknown device {cfg.device!r}: use auto, cpu, cuda, cuda:N or mps"
    if cfg.dtype not in DTYPES:
        p["dtype"] = f"unknown dtype {cfg.dtype!r}: use one of {', '.join(DTYPES)}"
    if cfg.loss_path not in LOSS_PATHS:
        p["loss_path"] = f"must be one of {', '.join(LOSS_PATHS)} (got {cfg.loss_path!r})"
    if cfg.compile not in COMPILE_MODES:
        p["compile"] = f"must be auto, on or off (got {cfg.compile!r})"
    if not str(cfg.data).strip():
        p["data"] = "give 'tinyshakespeare', a .txt file or a folder of .txt files"
    if cfg.total_batch_tokens and not any(k in p for k in ("micro_batch_size", "seq_len", "nproc")):
        per_micro = cfg.micro_batch_size * cfg.seq_len * cfg.nproc
        if cfg.total_batch_tokens % per_micro:
            p["total_batch_tokens"] = (
                f"{cfg.total_batch_tokens} does not divide by micro_batch_size x seq_len x nproc "
                f"= {per_micro}; use a multiple of {per_micro}"
            )
    return p


def with_derived_accum(cfg: TrainConfig, world_size: int) -> TrainConfig:
    """Return cfg whose grad_accum_steps gives total_batch_tokens on world_size processes."""
    if not cfg.total_batch_tokens:
        return cfg
    per_micro = cfg.micro_batch_size * cfg.seq_len * world_size
    if cfg.total_batch_tokens % per_micro:
        raise ConfigError(
            f"total_batch_tokens={cfg.total_batch_tokens} does not divide by micro_batch_size x "
            f"seq_len x world size = {per_micro}; use a multiple of {per_micro}"
        )
    return cfg.replace(grad_accum_steps=cfg.total_batch_tokens // per_micro, nproc=world_size)


# The fields of schema version 1's first config.json: a run's config.json holds at least these.
# Fields added since default to "off" (or to what runs did before them), so older runs still load.
V1_FIELDS = (
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "vocab_size",
    "max_lr",
    "min_lr",
    "weight_decay",
    "beta1",
    "beta2",
    "eps",
    "grad_clip",
    "warmup_steps",
    "max_steps",
    "micro_batch_size",
    "seq_len",
    "grad_accum_steps",
    "total_batch_tokens",
    "data",
    "val_fraction",
    "device",
    "dtype",
    "compile",
    "nproc",
    "peak_flops",
    "target_loss",
    "eval_interval",
    "eval_batches",
    "sample_prompt",
    "sample_tokens",
    "checkpoint_interval",
    "keep_checkpoints",
    "seed",
)


def missing_fields(values: dict) -> list[str]:
    """The schema-1 fields a run's saved config lacks: such a file was not written whole by this
    tool, and filling them with defaults would describe another model."""
    return [name for name in V1_FIELDS if name not in values]


def load_json(path: str | Path) -> TrainConfig:
    """The settings of a --config file (a JSON object of field: value)."""
    try:
        values = read_json(path, dict, "give a JSON object of settings, as config.json holds")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: check the path") from None
    except DamagedFile as e:
        raise ConfigError(f"config file {e}") from None
    return TrainConfig.from_dict(values)


def check_run_id(run_id: str) -> str:
    """Refuse run names that could escape the runs directory or confuse a shell."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigError(
            f"invalid run name {run_id!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return run_id


def cache_dir() -> Path:
    """Where downloads and token caches go: $GPT_CACHE_DIR, else ~/.cache/gpt-dashboard."""
    path = Path(os.environ.get("GPT_CACHE_DIR") or Path.home() / ".cache" / "gpt-dashboard")
    path.mkdir(parents=True, exist_ok=True)
    return path
