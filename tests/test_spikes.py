"""core.dynamics.spikes: a spike in a noisy falling curve is found, noise alone is not."""

import numpy as np

from core.dynamics.spikes import find_spikes


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
