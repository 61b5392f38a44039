"""core.dynamics.spikes: a spike in a noisy falling curve is found, noise alone is not; a
batch replayed under given weights, and the verdict."""

import numpy as np
import torch

from core.dynamics.spikes import find_spikes, replay_loss, verdict


def _curve(n=600, seed=0):
    rng = np.random.default_rng(seed)
    return 3 + 5 * np.exp(-np.arange(n) / 150) + rng.normal(0, 0.05, n)


def test_a_spike_is_found_and_noise_is_not():
    loss = _curve()
    assert find_spikes(loss).size == 0
    loss[300] += 1.0  # e.g. a batch of one repeated token
    loss[450] = np.nan  # a missing point is neither a spike nor part of a median
    assert find_spikes(loss).tolist() == [300]


def test_only_new_points_are_checked_from_start():
    loss = _curve()
    loss[[100, 500]] += 1.0
    assert find_spikes(loss).tolist() == [100, 500]
    assert find_spikes(loss, start=400).tolist() == [500]
    assert find_spikes(loss[:40]).size == 0  # shorter than a window


def test_verdicts():
    assert "data is the likely cause" in verdict(replayed=7.0, at_spike=8.0, typical=5.0)
    assert "model's state" in verdict(replayed=5.2, at_spike=8.0, typical=5.0)
    assert "not above" in verdict(replayed=5.0, at_spike=4.0, typical=5.0)


def test_replay_is_the_batch_loss_under_the_weights(tiny_config):
    from core.data.walker import step_batches
    from core.model.gpt import GPT, ModelConfig

    torch.manual_seed(0)
    model = GPT(ModelConfig.of(tiny_config))
    batches = step_batches(tiny_config, 3)
    with torch.no_grad():
        expected = sum(float(model(b.x, b.y)[1]) for b in batches) / len(batches)
    assert abs(replay_loss(model, tiny_config, 3) - expected) < 1e-6
    assert len(batches) == tiny_config.grad_accum_steps
