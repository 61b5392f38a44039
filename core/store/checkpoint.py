"""What a checkpoint holds, and the one place that builds, writes and unpacks it.

A checkpoint (`.pt`) is a `torch.save`d dict of tensors and plain values (so `weights_only=True` loads
it): the model's weights, the optimizer state, the step, the data position (micro batches
consumed), the RNG states, the config, and metadata (loss, world size, training time so far,
the best val loss seen). The engine saves through `capture` + `save`; resume, the playground,
sample, export and model info read through `load`.

A snapshot (`.safetensors`) holds the weights alone, in half precision, with the config, step
and val loss in its metadata: cheap enough to keep many, so a run has many points in time for
comparing its output across training. `load` reads both kinds. Where the files live is
core/store/rundir.py's business (`RunDir.checkpoint_path`, `RunDir.snapshot_path`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core import atomic
from core import device as devices
from core.config import DTYPE_ALIASES, TrainConfig
from core.device import DTYPE_NAMES
from core.jsonfile import parse_json
from core.model.gpt import GPT, ModelConfig
from core.store import checkpoint
from core.store.rundir import RunDir

MB = 2**20
TIED = "lm_head.weight"  # the same tensor as transformer.wte.weight: stored once, under wte
WEIGHT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Checkpoint:
    """An unpacked checkpoint. `optimizer` and `rng` are None when loaded for inference."""

    path: Path
    model: dict
    config: TrainConfig
    step: int
    micro_batches_seen: int = 0
    loss: float | None = None
    world_size: int = 1
    train_time_s: float = 0.0
    best_val_loss: float | None = None
    optimizer: dict | None = None
    rng: dict | None = None
    meta: dict = field(default_factory=dict)  # keys this version does not know, kept as read

    def build_model(self) -> GPT:
        """A GPT (fp32, CPU, eval mode) holding these weights; ValueError if they do not fit,
        found before any memory is allocated (a config of 10^9 tokens of vocabulary beside
        small tensors is a damaged file, not an allocation to attempt)."""
        self.check_shapes()
        model = GPT(ModelConfig.of(self.config))
        try:
            model.load_state_dict(self.model)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise ValueError(
                f"{self.path}: the weights do not match the model its config "
                f"describes ({str(e).splitlines()[0][:200]})"
            ) from e
        return model.eval()

    def check_shapes(self) -> None:
        """ValueError naming the first tensor whose shape differs from what the config's model
        has (or that it lacks), compared on the meta device: nothing is allocated."""
        try:
            with torch.device("meta"):
                expected = GPT(ModelConfig.of(self.config)).state_dict()
        except (RuntimeError, ValueError, TypeError) as e:
            raise ValueError(f"{self.path}: its config describes no model ({e})") from e
        for name, tensor in expected.items():
            have = self.model.get(name)
            shape = tuple(getattr(have, "shape", ()))
            if have is None or shape != tuple(tensor.shape):
                raise ValueError(
                    f"{self.path}: the weights do not match the model its config describes "
                    f"({name} is {shape or 'missing'}, the config needs {tuple(tensor.shape)}): "
                    "the file is damaged or from another model; pick another"
                )


_KNOWN = {
    "model",
    "config",
    "step",
    "micro_batches_seen",
    "loss",
    "world_size",
    "train_time_s",
    "best_val_loss",
    "optimizer",
    "rng",
}


def capture(
    model: GPT,
    optimizer,
    cfg: TrainConfig,
    step: int,
    micro_batches_seen: int,
    loss: float,
    world_size: int,
    train_time_s: float,
    best_val_loss: float | None = None,
) -> dict:
    """The state to save: everything an exact resume needs, plus what readers show."""
    return {
        "model": model.state_dict(),  # the uncompiled module: no _orig_mod. prefixes
        "optimizer": optimizer.state_dict(),
        "step": step,
        "micro_batches_seen": micro_batches_seen,
        "loss": loss,
        "world_size": world_size,
        "train_time_s": train_time_s,
        "best_val_loss": best_val_loss,
        "config": cfg.to_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
    }


class DiskFull(OSError):
    """No room for a checkpoint; the message says how much was needed and how much is free."""


def save(state: dict, path: Path) -> Path:
    """Write state to path through a temp file and a rename, so a crash never leaves a half file
    under the final name; on a full disk the temp file is removed and DiskFull says the sizes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic.replacing(path, durable=True) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as e:
        free = shutil.disk_usage(path.parent).free
        needed = state_bytes(state)
        if isinstance(e, OSError) and e.errno not in (28, 122) and free > needed:
            raise
        raise DiskFull(
            28,
            f"no space left on device for checkpoint {path.name} (needed "
            f"~{needed / MB:.0f} MB, free {free / MB:.0f} MB)",
        ) from e
    return path


def save_step(run: RunDir, state: dict, keep: int = 0) -> Path:
    """Save the run's checkpoint for state's step, then keep only the newest `keep` (0 = all)."""
    path = save(state, run.checkpoint_path(int(state["step"])))
    if keep:
        for _, old in run.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
    return path


def state_bytes(state) -> int:
    """Bytes of the tensors in a (nested) state: about the size of its file."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


def load(path: str | Path, map_location="cpu", training: bool = True) -> Checkpoint:
    """Load a checkpoint safely (tensors and plain types only) with clear errors for bad files.

    With training=False the optimizer state and RNG are left unread: the file is memory-mapped,
    so only the model's tensors are read from disk (a fraction of the file for inference).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        return _load_weights_file(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except Exception as e:
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "it may be truncated or not one of ours: pick another checkpoint"
        ) from e
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(
            f"{path} is not a checkpoint of this project (no model weights and config)"
        )
    try:
        cfg = TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} holds a config this version cannot read: {e}") from e
    return Checkpoint(
        path=path,
        model=state["model"],
        config=cfg,
        step=int(state.get("step", 0)),
        micro_batches_seen=int(state.get("micro_batches_seen", 0)),
        loss=state.get("loss"),
        world_size=int(state.get("world_size", 1)),
        train_time_s=float(state.get("train_time_s") or 0.0),
        best_val_loss=state.get("best_val_loss"),
        optimizer=state.get("optimizer") if training else None,
        rng=state.get("rng") if training else None,
        meta={k: v for k, v in state.items() if k not in _KNOWN},
    )


def load_latest(run: RunDir, map_location="cpu") -> tuple[Checkpoint, list[str]]:
    """The newest checkpoint of the run that loads, and a line for each newer one skipped
    (truncated by a crash or a full disk, say). FileNotFoundError when none loads."""
    skipped = []
    for _, path in reversed(run.checkpoints()):
        try:
            return load(path, map_location), skipped
        except ValueError as e:
            skipped.append(f"skipped {path.name}: {e}")
    raise FileNotFoundError(
        f"cannot resume {run.run_id}: it has no checkpoint that loads"
        + (f" ({'; '.join(skipped)})" if skipped else " yet")
        + "; start it again instead"
    )


# --- weights-only files: snapshots and the safetensors export ------------------------------------


def model_tensors(model: GPT, dtype: str = "float32") -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors in dtype, the tied lm_head left out."""
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(WEIGHT_DTYPES)} (got {dtype!r})")
    return {
        name: t.detach().to("cpu", WEIGHT_DTYPES[dtype]).contiguous()
        for name, t in model.state_dict().items()
        if name != TIED
    }


def weights_bytes(
    model: GPT,
    cfg: TrainConfig,
    dtype: str = "float32",
    step: int = 0,
    val_loss: float | None = None,
) -> bytes:
    """The model alone as a safetensors file; config, step and val loss ride in the metadata."""
    from safetensors.torch import save

    meta = {
        "format": "pt",
        "config": json.dumps(cfg.to_dict()),
        "step": str(step),
        "tied": f"{TIED}=transformer.wte.weight",
    }
    if val_loss is not None:
        meta["val_loss"] = repr(float(val_loss))
    return save(model_tensors(model, dtype), metadata=meta)


def _load_weights_file(path: Path) -> Checkpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
    except Exception as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e}): pick another") from e
    if "config" not in meta or "transformer.wte.weight" not in tensors:
        raise ValueError(f"{path} has no config in its metadata: not written by this project")
    try:
        cfg = TrainConfig.from_dict(parse_json(meta["config"], dict, f"{path}'s config"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} holds a config this version cannot read: {e}") from e
    tensors[TIED] = tensors["transformer.wte.weight"]
    val = meta.get("val_loss")
    return Checkpoint(
        path=path,
        model=tensors,
        config=cfg,
        step=int(meta.get("step", 0)),
        best_val_loss=float(val) if val else None,
    )


def save_snapshot(
    run: RunDir, model: GPT, cfg: TrainConfig, step: int, val_loss: float | None = None
) -> Path:
    """A half-precision weights-only snapshot of this step; the oldest snapshots go once they
    together exceed cfg.snapshot_cap_mb."""
    path = run.snapshot_path(step)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, weights_bytes(model, cfg, "float16", step, val_loss))
    found = run.snapshots()
    total = sum(p.stat().st_size for _, p in found)
    for _, old in found[:-1]:  # never the newest
        if total <= cfg.snapshot_cap_mb * MB:
            break
        total -= old.stat().st_size
        old.unlink(missing_ok=True)
    return path


def restore(ckpt: Checkpoint, model: GPT, optimizer) -> None:
    """Put a training checkpoint's weights, optimizer state and RNG back for an exact resume."""
    model.load_state_dict(ckpt.model)
    optimizer.load_state_dict(ckpt.optimizer)
    torch.set_rng_state(ckpt.rng["torch"].cpu())
    if ckpt.rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in ckpt.rng["cuda"]])


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
            raise ValueError(
                f"checkpoint {checkpoint} does not exist: pick one of "
                f"{', '.join(p.name for _, p in run.checkpoints()) or 'none yet'}"
            )
        return path
    if not run.exists():
        raise ValueError(f"{run.path} is not a run directory (no config.json): check --run-dir")
    latest = run.latest_checkpoint()
    if latest is None:
        raise ValueError(
            f"run {run.run_id} has no checkpoint yet: wait for its first one "
            "(see checkpoint_interval) or train it"
        )
    return latest


def load_model(
    checkpoint_path: str | Path, device: str = "cpu", dtype: str = "float32"
) -> LoadedModel:
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


def unique_tensors(state_dict: dict) -> dict[str, torch.Tensor]:
    """The tensors of a state dict with tied ones (same storage) kept once, first name wins."""
    seen, out = set(), {}
    for name, t in state_dict.items():
        key = (
            (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
            if t.device.type != "meta"
            else name
        )
        if key in seen:
            continue
        seen.add(key)
        out[name] = t
    return out


def sizes(ckpt: checkpoint.Checkpoint) -> dict[str, int]:
    """Byte sizes from a loaded checkpoint: the weights in fp32 and in bf16, the optimizer state
    (AdamW's two moments), weights + optimizer, and the checkpoint file on disk."""
    n = sum(t.numel() for t in unique_tensors(ckpt.model).values())
    out = {
        "fp32": n * 4,
        "bf16": n * 2,
        "optimizer": checkpoint.state_bytes((ckpt.optimizer or {}).get("state", {})),
    }
    out["fp32_with_optimizer"] = out["fp32"] + out["optimizer"]
    if ckpt.path.is_file():
        out["checkpoint_file"] = ckpt.path.stat().st_size
    return out
