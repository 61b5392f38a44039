"""Export a trained model: our weights alone as safetensors (fp32, fp16 or bf16), or a
Hugging Face GPT-2 folder that `transformers.GPT2LMHeadModel.from_pretrained` loads.

Command line: `python -m core.store.export --run-dir DIR [--checkpoint FILE] --format hf|safetensors
[--dtype float32|float16|bfloat16] --out FOLDER`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import torch

from core.config import TrainConfig
from core.data import hf_tokenizer
from core.data.dataset import EOT_TOKEN
from core.model.gpt import GPT
from core.store import checkpoint
from core.store.checkpoint import WEIGHT_DTYPES, resolve_checkpoint, sizes
from core.store.rundir import RunDir
from core.units import human_bytes

FORMATS = ("safetensors", "hf")
# GPT-2's Conv1D stores these weights as (in, out), nn.Linear as (out, in).
_CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


def safetensors_bytes(model: GPT, cfg: TrainConfig, dtype: str = "float32", step: int = 0) -> bytes:
    """The model alone as a safetensors file (bytes); the config rides in the metadata."""
    return checkpoint.weights_bytes(model, cfg, dtype, step)


def hf_config(cfg: TrainConfig, dtype: str = "float32") -> dict:
    """config.json of the equivalent transformers GPT2LMHeadModel (padded vocabulary kept)."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,  # 50304: the padding rows are exported too
        "n_positions": cfg.block_size,
        "n_ctx": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": None,  # 4 * n_embd
        "activation_function": "gelu_new",  # the tanh approximation our MLP uses
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "layer_norm_epsilon": 1e-5,  # nn.LayerNorm's default
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "bos_token_id": EOT_TOKEN,
        "eos_token_id": EOT_TOKEN,
        "torch_dtype": dtype,
        "use_cache": True,
    }


def hf_tensors(model: GPT, dtype: str = "float32") -> dict[str, torch.Tensor]:
    """Our weights under GPT2LMHeadModel's names, Conv1D weights transposed to (in, out)."""
    out = {}
    for name, t in checkpoint.model_tensors(model, dtype).items():
        out[name] = t.t().contiguous() if name.endswith(_CONV1D) else t
    return out


def hf_shell_snippet(zip_name: str) -> str:
    """The commands that get a downloaded Hugging Face zip ready (install, unzip)."""
    return f"pip install transformers torch safetensors\nunzip {zip_name}\n"


def hf_python_snippet(folder: str) -> str:
    """Python that loads an exported Hugging Face folder and generates from it: the text Model
    info shows and the README quotes (tests/test_export.py runs it against a real export)."""
    return f"""from transformers import AutoTokenizer, GPT2LMHeadModel

tokenizer = AutoTokenizer.from_pretrained("{folder}")
model = GPT2LMHeadModel.from_pretrained("{folder}")
ids = tokenizer("ROMEO:", return_tensors="pt").input_ids
room = model.config.n_positions - ids.shape[1]  # the model sees at most n_positions tokens
out = model.generate(
    ids,
    max_new_tokens=min(100, room),
    do_sample=True,
    temperature=0.5,
    top_k=10,
    pad_token_id=tokenizer.eos_token_id,
)
print(tokenizer.decode(out[0]))
"""


def write_hf(model: GPT, cfg: TrainConfig, folder: str | Path, dtype: str = "float32") -> Path:
    """Write a Hugging Face GPT-2 folder (config.json, model.safetensors and GPT-2's tokenizer
    files from the local tiktoken data); returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf_config(cfg, dtype), indent=2))
    for file_name, text in hf_tokenizer.files_for(cfg.block_size).items():
        (folder / file_name).write_text(text, encoding="utf-8")
    save_file(
        hf_tensors(model, dtype), str(folder / "model.safetensors"), metadata={"format": "pt"}
    )
    return folder


def hf_zip_bytes(
    model: GPT, cfg: TrainConfig, dtype: str = "float32", name: str = "model"
) -> bytes:
    """The Hugging Face folder (write_hf's files) as a zip archive, for a download button."""
    from safetensors.torch import save

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:  # weights do not compress
        z.writestr(f"{name}/config.json", json.dumps(hf_config(cfg, dtype), indent=2))
        z.writestr(
            f"{name}/model.safetensors", save(hf_tensors(model, dtype), metadata={"format": "pt"})
        )
        for file_name, text in hf_tokenizer.files_for(cfg.block_size).items():
            z.writestr(f"{name}/{file_name}", text, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def export(
    run_dir: str | Path,
    fmt: str,
    out: str | Path,
    dtype: str = "float32",
    checkpoint_file: str | Path | None = None,
) -> dict[str, int | str]:
    """Export a run's checkpoint (newest by default) into folder `out`; returns the sizes in
    bytes of the training checkpoint (with optimizer state), and the written model file."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(WEIGHT_DTYPES)} (got {dtype!r})")
    run = RunDir(run_dir)
    path = resolve_checkpoint(run, checkpoint_file)
    ckpt = checkpoint.load(path)
    model, cfg, step = ckpt.build_model(), ckpt.config, ckpt.step
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder")
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        written = write_hf(model, cfg, out, dtype) / "model.safetensors"
    else:
        written = out / f"{run.run_id}-step{step}-{dtype}.safetensors"
        written.write_bytes(safetensors_bytes(model, cfg, dtype, step))
    weights = sizes(ckpt)
    return {
        "checkpoint": path.stat().st_size,
        "model": written.stat().st_size,
        "fp32": weights["fp32"],
        "half": weights["bf16"],
        "path": str(written),
        "source": str(path),
        "step": step,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.store.export", description="Export a trained model's weights."
    )
    parser.add_argument("--run-dir", required=True, help="the run directory")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the run's newest)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="safetensors",
        help="safetensors: our model alone; hf: a Hugging Face GPT-2 folder",
    )
    parser.add_argument(
        "--dtype",
        choices=list(WEIGHT_DTYPES),
        default="float32",
        help="weight precision of the export",
    )
    parser.add_argument("--out", required=True, help="folder to write into (created if missing)")
    args = parser.parse_args(argv)
    try:
        result = export(args.run_dir, args.format, args.out, args.dtype, args.checkpoint)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {result['path']} ({human_bytes(result['model'])}, {args.dtype})")
    print(f"from {result['source']} (step {result['step']:,})")
    if result["step"] == 0:
        print(
            "note: step 0 is the untrained model (random weights): it generates noise",
            file=sys.stderr,
        )
    print(
        f"sizes: training checkpoint with optimizer state {human_bytes(result['checkpoint'])} | "
        f"fp32 model {human_bytes(result['fp32'])} | fp16/bf16 model {human_bytes(result['half'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
