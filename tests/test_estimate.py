"""Estimates before launch: exact parameter counts, consistent memory, measured or guessed time."""

import json

import pytest
from conftest import make_tiny_config

from core.config import PRESETS, preset
from core.model.gpt import GPT, ModelConfig
from core.store.rundir import RunDir
from core.train import estimate


@pytest.mark.parametrize("name", list(PRESETS))
def test_param_count_is_exact_for_every_preset(name):
    cfg = preset(name)
    with __import__("torch").device("meta"):  # no memory for the 124M weights
        model = GPT(ModelConfig.of(cfg))
    assert estimate.param_count(cfg) == model.num_params()


def test_gpt2_124m_numbers():
    cfg = preset("gpt2-124m")
    assert estimate.param_count(cfg) == 124_475_904
    est = estimate.estimate(cfg, n_tokens=338_025, peak_flops=1e12)
    assert est.tokens_per_step == 2 * 1024 * 16 == 32_768
    assert est.steps_per_epoch == pytest.approx((338_025 - 33_802) / 32_768)
    mem = est.memory_mb
    assert mem["weights"] == pytest.approx(124_475_904 * 4 / 2**20)
    assert mem["gradients"] == mem["weights"]
    assert mem["optimizer (AdamW, 2 x fp32)"] == pytest.approx(2 * mem["weights"])
    assert mem["total"] == pytest.approx(sum(v for k, v in mem.items() if k != "total"))


def test_memory_scales_as_the_formula_says():
    cfg = make_tiny_config("x")
    one = estimate.memory_mb(cfg)["activations"]
    assert estimate.memory_mb(cfg.replace(micro_batch_size=8))["activations"] == pytest.approx(
        2 * one
    )
    # Accumulation reuses one micro batch's activations; bf16 halves the per-block part.
    assert estimate.memory_mb(cfg.replace(grad_accum_steps=9))["activations"] == one
    assert estimate.memory_mb(cfg, "bfloat16")["activations"] < one


# Peak memory measured by `python bench/train.py --compare-loss` (README, "The fused loss":
# peak resident memory of the training process on the 2-core CPU, fp32, 2026-11-30).
MEASURED_PEAK_MIB = [
    ("nano", {}, "plain", 1342),
    ("nano", {}, "fused", 516),
    ("micro", {}, "plain", 2309),
    ("micro", {}, "fused", 699),
    ("gpt2-124m", {"grad_accum_steps": 1}, "plain", 4719),
    ("gpt2-124m", {"grad_accum_steps": 1}, "fused", 3549),
]


@pytest.mark.parametrize("name, overrides, loss, measured", MEASURED_PEAK_MIB)
def test_memory_estimate_of_the_chosen_loss_path_meets_measured_peaks(
    name, overrides, loss, measured
):
    total = estimate.memory_mb(preset(name, **overrides), "float32", loss, "cpu")["total"]
    assert abs(total - measured) / measured < 0.2, (name, loss, round(total), measured)


def test_the_fused_path_counts_no_full_logits():
    cfg = preset("micro")
    plain, fused = estimate.memory_mb(cfg, loss="plain"), estimate.memory_mb(cfg, loss="fused")
    assert plain["activations"] == fused["activations"]
    logits = cfg.micro_batch_size * cfg.seq_len * cfg.vocab_size * 4 / 2**20
    assert plain["output layer and loss (plain)"] > 3 * logits
    assert fused["output layer and loss (fused)"] < logits / 4  # a 128-row chunk, not 2,048
    assert "PyTorch process (CPU)" not in estimate.memory_mb(cfg, loss="fused", device_type="cuda")


def test_time_is_a_labelled_guess_without_history(runs_dir):
    cfg = make_tiny_config("x", max_steps=100)
    est = estimate.estimate(cfg, runs_dir=runs_dir, peak_flops=1e10)
    assert est.time_is_guess and est.time_source.startswith("guess")
    assert est.tokens_per_sec == pytest.approx(0.3 * 1e10 / est.flops_per_token)
    assert est.time_s == pytest.approx(
        100 * est.tokens_per_step / est.tokens_per_sec
        + estimate.overhead_s(cfg, est.tokens_per_sec)
    )


def test_time_uses_the_newest_completed_run_of_the_same_shape(runs_dir):
    cfg = make_tiny_config("x", max_steps=100)

    def fake_run(name, config, rates, state="completed"):
        run = RunDir.create(runs_dir, name, config)
        run.metrics_path.write_text(
            "".join(
                json.dumps({"kind": "train", "step": i + 1, "loss": 5.0, "tokens_per_sec": r})
                + "\n"
                for i, r in enumerate(rates)
            )
        )
        run.write_status(state=state)

    fake_run("other-shape", cfg.replace(n_layer=3), [1, 9000, 9000])
    fake_run("same", cfg, [1, 1000, 3000])  # the first (warm-up) step is left out
    fake_run("still-running", cfg, [1, 50, 50], state="running")
    est = estimate.estimate(cfg, runs_dir=runs_dir, peak_flops=1e10)
    assert not est.time_is_guess and "same" in est.time_source
    assert est.tokens_per_sec == 2000
    assert est.time_s == pytest.approx(
        100 * est.tokens_per_step / 2000 + estimate.overhead_s(cfg, 2000)
    )


def test_total_batch_tokens_sets_accumulation():
    cfg = make_tiny_config("x", total_batch_tokens=4 * 32 * 6)
    est = estimate.estimate(cfg, peak_flops=1e10)
    assert est.grad_accum_steps == 6 and est.tokens_per_step == 768


def test_a_probe_times_real_steps_and_the_estimate_adds_evals_and_start_up(runs_dir):
    from core.train.throughput import probe

    cfg = make_tiny_config("x", max_steps=100, eval_interval=10, eval_batches=4)
    p = probe(cfg)
    assert p.train_tokens_per_sec > 0 and p.eval_tokens_per_sec > p.train_tokens_per_sec
    assert p.sample_s_per_token > 0 and p.seconds > 0
    est = estimate.estimate(cfg, runs_dir=runs_dir, probe=p)
    assert not est.time_is_guess and est.time_source.startswith("measured: a few real training")
    steps_s = 100 * est.tokens_per_step / p.train_tokens_per_sec
    evals_s = 11 * (4 * 4 * 32 / p.eval_tokens_per_sec + 4 * 8 * p.sample_s_per_token)
    assert est.time_s == pytest.approx(steps_s + evals_s + estimate.STARTUP_S)
