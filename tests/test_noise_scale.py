"""core.dynamics.noise_scale: the estimator recovers a known B_simple from simulated gradients,
and the engine records one micro batch's gradient norm only when it accumulates."""

import numpy as np
import pytest

from core.dynamics.noise_scale import advice, grad_sq, noise_scale
from core.store import metrics


def test_a_known_noise_scale_is_recovered_from_two_batch_sizes():
    """Per-example gradients G + noise with covariance sigma^2 I in d dimensions: B_simple =
    d sigma^2 / |G|^2. Batches of 8 and 64 examples give its value back."""
    rng = np.random.default_rng(0)
    d, sigma = 200, 3.0
    g = rng.normal(size=d)
    g *= 2.0 / np.linalg.norm(g)  # |G|^2 = 4
    truth = d * sigma**2 / 4.0  # 450 examples
    small_norms, big_norms = [], []
    for _ in range(2000):
        grads = g + sigma * rng.normal(size=(64, d))
        small_norms.append(np.linalg.norm(grads[:8].mean(axis=0)))
        big_norms.append(np.linalg.norm(grads.mean(axis=0)))
    found = noise_scale(small_norms, big_norms, 8, 64, weight=0.999)
    assert found[-1] == pytest.approx(truth, rel=0.15)
    assert np.isnan(noise_scale([1.0], [0.1], 8, 64)[0])  # |G|^2 estimate <= 0: not a number


def test_two_batch_sizes_are_required():
    with pytest.raises(ValueError, match="b_big > b_small"):
        noise_scale([1.0], [1.0], 64, 64)


def test_advice_in_words():
    assert "4 times that" in advice(256.0, 1024) and "smaller batch" in advice(256.0, 1024)
    assert "bigger steps" in advice(10_000.0, 1024)
    assert "not measurable" in advice(float("nan"), 1024)


def test_grad_sq_is_the_squared_norm():
    import torch

    model = torch.nn.Linear(3, 2)
    model.weight.grad = torch.ones(2, 3)
    model.bias.grad = torch.full((2,), 2.0)
    assert grad_sq(model) == pytest.approx(6 + 8)


@pytest.mark.parametrize(
    "accum, noise, recorded", [(2, True, True), (1, True, False), (2, False, False)]
)
def test_the_engine_records_the_micro_norm_only_when_it_can(
    tmp_path, small_text, accum, noise, recorded
):
    from conftest import make_tiny_config

    from core.store.rundir import RunDir
    from core.train.engine import train

    cfg = make_tiny_config(
        small_text, grad_accum_steps=accum, noise_scale=noise, max_steps=3, eval_interval=0
    )
    run = RunDir.create(tmp_path, "n", cfg)
    assert train(str(run.path)) == "completed"
    steps = [r for r in metrics.read_all(run.metrics_path) if r["kind"] == "train"]
    assert all(("micro_grad_norm" in r) == recorded for r in steps)
    if recorded:  # one micro batch's gradient is noisier than the mean of two: larger
        assert all(r["micro_grad_norm"] > 0 for r in steps)
        assert np.mean([r["micro_grad_norm"] for r in steps]) > 0.5 * np.mean(
            [r["grad_norm"] for r in steps]
        )
