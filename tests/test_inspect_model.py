"""core.inspect.model_info: loading checkpoints (weights only) and describing models."""

import math

import pytest
import torch

from core.data.tokens import encode_prompt
from core.generate import sampling
from core.inspect.model_info import (
    architecture,
    meta_breakdown,
    parameter_breakdown,
    training_results,
)
from core.store import checkpoint
from core.store.checkpoint import load_model, resolve_checkpoint, sizes
from core.store.rundir import RunDir


def test_load_model_from_a_trained_run(trained_run):
    path = resolve_checkpoint(trained_run)
    assert path == trained_run.latest_checkpoint()
    loaded = load_model(path)
    assert loaded.step == 12 and loaded.config.n_embd == 32
    ids, _ = encode_prompt("ROMEO:", loaded.model.config.block_size)
    events = list(
        sampling.stream_tokens(loaded.model, ids, sampling.SamplingSettings(max_new_tokens=5))
    )
    assert 1 <= len(events) <= 5 and all(isinstance(e.text, str) for e in events)
    bf16 = load_model(path, dtype="bfloat16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    assert list(
        sampling.stream_tokens(
            bf16.model, [464], sampling.SamplingSettings(max_new_tokens=3, stop_at_eot=False)
        )
    )


def test_missing_truncated_and_foreign_checkpoints(trained_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(trained_run.latest_checkpoint().read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated"):
        load_model(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a checkpoint of this project"):
        load_model(foreign)
    with pytest.raises(ValueError, match="dtype"):
        load_model(trained_run.latest_checkpoint(), dtype="int8")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_checkpoint(trained_run, "step_9999999.pt")


def test_run_without_checkpoint_says_so(runs_dir, tiny_config):
    run = RunDir.create(runs_dir, "fresh", tiny_config)
    with pytest.raises(ValueError, match="no checkpoint yet"):
        resolve_checkpoint(run)


def test_breakdown_and_sizes_from_real_tensors(trained_run):
    path = trained_run.latest_checkpoint()
    ckpt = checkpoint.load(path)
    rows = dict(parameter_breakdown(ckpt.model))
    model = load_model(path).model
    assert rows["total"] == model.num_params()
    assert rows["token embedding (wte, tied with lm_head)"] == 50304 * 32
    assert sum(v for k, v in rows.items() if k != "total") == rows["total"]
    assert dict(meta_breakdown(trained_run.read_config())) == rows
    sz = sizes(ckpt)
    assert sz["fp32"] == rows["total"] * 4 and sz["bf16"] == rows["total"] * 2
    assert sz["optimizer"] >= 2 * sz["fp32"]  # AdamW keeps two moments per weight
    assert sz["checkpoint_file"] > sz["fp32_with_optimizer"] * 0.9
    names = [name for name, _ in architecture(trained_run.read_config())]
    assert {"layers", "head dimension", "weight tying", "vocabulary"} <= set(names)


def test_training_results(trained_run):
    r = training_results(trained_run)
    assert r["steps"] == 12 and r["state"] == "completed"
    assert r["final_loss"] < r["initial_loss"] and 0 < r["loss_reduction"] < 1
    assert r["best_val_perplexity"] == pytest.approx(math.exp(r["best_val_loss"]))
    assert r["mean_step_ms"] > 0 and r["mean_tokens_per_sec"] > 0 and r["total_time_s"] > 0
    assert "max_steps" in r["stop_reason"]
