"""Start a run from existing weights (nanoGPT's init_from): a Hugging Face GPT-2 folder or hub
name such as `gpt2`, or another run's checkpoint, snapshot or run directory.

The source decides the model's shape: `source_shape` reads it (the command line and the New run
form fill the config with it), the pre-launch check refuses a config whose shape differs, and
`load_into` copies the weights into the engine's freshly built model. Hugging Face folders are
read with safetensors' own loader (`model.safetensors`) or torch's weights-only loader
(`pytorch_model.bin`); GPT-2's Conv1D weights are stored (in, out) and are transposed back.
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.config import SHAPE_FIELDS, ConfigError
from core.jsonfile import read_json
from core.model.gpt import GPT

CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
_SKIPPED = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of older transformers


class SourceError(ConfigError):
    """init_from names nothing loadable; the message says what was tried and the fix."""


def _hf_folder(source: str) -> Path | None:
    """The Hugging Face folder behind source: a local folder with config.json, else a hub name
    fetched (or found in the hub cache) by huggingface_hub; None when source is one of ours."""
    path = Path(source).expanduser()
    if path.is_dir() and (path / "config.json").is_file() and not (path / "status.json").exists():
        return path
    if path.exists():
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, allow_patterns=["config.json", "*.safetensors"]))
    except Exception as e:
        raise SourceError(
            f"init_from {source!r}: not a folder, checkpoint or run here, and the Hugging Face "
            f"hub did not give it ({type(e).__name__}; offline?). Download it once where there "
            "is a network (e.g. `huggingface-cli download gpt2`) or give a local folder"
        ) from e


def _our_checkpoint(source: str):
    """A run directory (its best, else newest checkpoint), a .pt checkpoint or a snapshot."""
    from core.store import checkpoint
    from core.store.rundir import RunDir

    path = Path(source).expanduser()
    if path.is_dir():
        run = RunDir(path)
        found = [run.best_checkpoint_path] if run.best_checkpoint_path.is_file() else []
        found += [p for _, p in reversed(run.checkpoints())]
        if not found:
            raise SourceError(f"init_from {source}: that run has no checkpoint yet")
        path = found[0]
    try:
        return checkpoint.load(path, training=False)
    except (OSError, ValueError) as e:
        raise SourceError(f"init_from {source}: {e}") from e


def source_shape(source: str) -> dict[str, int]:
    """The model shape fields (SHAPE_FIELDS) of the weights init_from names."""
    folder = _hf_folder(source)
    if folder is None:
        cfg = _our_checkpoint(source).config
        return {name: getattr(cfg, name) for name in SHAPE_FIELDS}
    try:
        hf = read_json(folder / "config.json")
        return {
            "n_layer": int(hf["n_layer"]),
            "n_head": int(hf["n_head"]),
            "n_embd": int(hf["n_embd"]),
            "vocab_size": int(hf["vocab_size"]),
            "block_size": int(hf.get("n_positions") or hf["n_ctx"]),
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SourceError(
            f"init_from {source}: {folder}/config.json is not a GPT-2 config ({e})"
        ) from e


def shape_conflicts(cfg, source: str) -> list[str]:
    """One 'field: why' line for each shape field of cfg that differs from the source's; when
    they agree, a line for weights that do not fit the shape its config.json describes (found
    from the file headers, before any run directory exists)."""
    shape = source_shape(source)
    conflicts = [
        f"{name}: {getattr(cfg, name)} differs from init_from {source!r}, which has "
        f"{value} (the source decides the model's shape)"
        for name, value in shape.items()
        if getattr(cfg, name) != value
    ]
    return conflicts or weight_conflicts(cfg, source)


def weight_conflicts(cfg, source: str) -> list[str]:
    """A line naming the first tensor of the source whose shape differs from cfg's model (or
    that it lacks), compared on the meta device; [] when every one fits."""
    from core.model.gpt import ModelConfig

    with torch.device("meta"):
        expected = GPT(ModelConfig.of(cfg)).state_dict()
    have = _source_shapes(source)
    for name, tensor in expected.items():
        if have.get(name) != tuple(tensor.shape):
            got = have.get(name) or "missing"
            return [
                f"init_from {source}: its weights do not fit its own config ({name} is {got}, "
                f"the config needs {tuple(tensor.shape)}): the download is damaged; fetch it "
                "again or pick another source"
            ]
    return []


def _source_shapes(source: str) -> dict[str, tuple]:
    """Each tensor's shape under our names, from the safetensors headers alone where there
    are any."""
    folder = _hf_folder(source)
    if folder is None:
        return {k: tuple(v.shape) for k, v in _our_checkpoint(source).model.items()}
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return {k: tuple(v.shape) for k, v in _hf_state(folder).items()}
    from safetensors import safe_open

    shapes = {}
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                ours = _our_name(name)
                if ours:
                    shape = tuple(handle.get_slice(name).get_shape())
                    shapes[ours] = shape[::-1] if ours.endswith(CONV1D) else shape
    shapes.setdefault("lm_head.weight", shapes.get("transformer.wte.weight"))
    return shapes


def _our_name(name: str) -> str | None:
    """A Hugging Face GPT-2 tensor name as ours; None for the causal-mask buffers."""
    if name.endswith(_SKIPPED):
        return None
    return name if name.startswith(("transformer.", "lm_head.")) else f"transformer.{name}"


def _hf_state(folder: Path) -> dict[str, torch.Tensor]:
    """GPT-2 weights of a Hugging Face folder under our names, Conv1D weights transposed."""
    files = sorted(folder.glob("*.safetensors"))
    if files:
        from safetensors.torch import load_file

        raw = {}
        for f in files:
            raw.update(load_file(str(f)))
    elif (folder / "pytorch_model.bin").is_file():
        raw = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise SourceError(f"{folder} has neither model.safetensors nor pytorch_model.bin")
    state = {}
    for name, t in raw.items():
        name = _our_name(name)
        if name:
            state[name] = t.t().contiguous() if name.endswith(CONV1D) else t
    state.setdefault("lm_head.weight", state["transformer.wte.weight"])  # tied
    return state


def load_into(model: GPT, source: str) -> str:
    """Copy the source's weights into model (same shape, checked); returns a line for the log."""
    folder = _hf_folder(source)
    state = _hf_state(folder) if folder is not None else _our_checkpoint(source).model
    try:
        model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    except RuntimeError as e:
        raise SourceError(
            f"init_from {source}: its weights do not fit the model ({str(e).splitlines()[0][:200]})"
        ) from e
    return f"initialised from {source}" + (f" ({folder})" if folder else "")
