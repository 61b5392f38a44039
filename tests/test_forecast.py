"""core.schedule and core.dynamics.forecast: the schedule as one array, the areas under it, the
non-negative fit, and a law with known parameters recovered from part of its curve."""

import math

import numpy as np
import pytest

from core.config import TrainConfig
from core.dynamics.forecast import (
    DECAY,
    LawFit,
    NotEnoughData,
    fit_law,
    forecast,
    nnls_batch,
    run_areas,
    schedule_areas,
    train_forecast,
    val_forecast,
)
from core.schedule import get_lr, lr_curve

CFG = TrainConfig(max_steps=2000, warmup_steps=100, max_lr=6e-4, min_lr=6e-5)


@pytest.mark.parametrize(
    "cfg",
    [
        CFG,
        CFG.replace(warmup_steps=0),
        CFG.replace(max_steps=3000, lr_decay_steps=2000),  # continued: a flat tail at min_lr
    ],
)
def test_lr_curve_is_get_lr_at_every_step(cfg):
    assert np.allclose(lr_curve(cfg), [get_lr(s, cfg) for s in range(cfg.max_steps)], rtol=1e-12)


def test_areas_of_a_constant_rate_and_of_one_drop():
    flat = schedule_areas(np.full(50, 3e-4), warmup_steps=0)
    assert np.allclose(flat.s1, np.arange(51))  # in units of the peak rate
    assert np.allclose(flat.s2, 0)
    # the rate halves at update 10: the momentum of that drop decays by DECAY each update
    lr = np.where(np.arange(30) < 10, 1.0, 0.5)
    areas = schedule_areas(lr, warmup_steps=0)
    m = np.where(np.arange(30) >= 10, 0.5 * DECAY ** (np.arange(30) - 10.0), 0.0)
    assert np.allclose(areas.s2[1:], np.cumsum(m))
    assert areas.s1[-1] == pytest.approx(10 + 0.5 * 20)


def test_warmup_is_not_annealing():
    lr = np.concatenate([np.linspace(0.1, 1, 10), np.ones(10)])
    assert np.allclose(schedule_areas(lr, warmup_steps=10).s2, 0)


def test_nnls_clamps_a_negative_coefficient():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    y = x @ np.array([2.0, -1.0, 0.5]) + 0.01 * rng.normal(size=40)
    gram, rhs = x.T @ x, x.T @ y
    theta, sse = nnls_batch(gram[None], rhs[None], float(y @ y))
    assert theta[0, 1] == 0 and np.all(theta >= 0)
    # the same as least squares on the other two columns, which are then both positive
    sub, *_ = np.linalg.lstsq(x[:, [0, 2]], y, rcond=None)
    assert np.allclose(theta[0, [0, 2]], sub)
    assert sse[0] == pytest.approx(float(np.sum((x[:, [0, 2]] @ sub - y) ** 2)))


def _law_curve(cfg, law, steps):
    areas = run_areas(cfg)
    return law.predict(areas.s1[steps - 1], areas.s2[steps - 1])


def test_a_law_with_known_parameters_is_recovered_from_half_its_curve():
    areas = run_areas(CFG)
    law = LawFit(3.0, 2.5, 0.5, 0.5 / areas.s2[-1], 0.0)
    steps = np.arange(1, CFG.max_steps + 1)
    truth = _law_curve(CFG, law, steps)
    found = train_forecast(CFG, steps[:1000], truth[:1000])
    assert found.law.alpha == pytest.approx(0.5, rel=0.05)
    assert found.law.l0 == pytest.approx(3.0, abs=0.02)
    assert found.law.c == pytest.approx(law.c, rel=0.05)
    mean, lo, hi = found.final
    assert mean == pytest.approx(truth[-1], abs=0.005)
    assert lo <= truth[-1] <= hi
    assert found.updates[-1] == CFG.max_steps - 1  # the last train record: max_steps - 1 updates


def test_noisy_curve_final_loss_within_a_tenth_from_half_the_run():
    areas = run_areas(CFG)
    law = LawFit(3.0, 2.5, 0.5, 0.5 / areas.s2[-1], 0.0)
    steps = np.arange(1, CFG.max_steps + 1)
    truth = _law_curve(CFG, law, steps)
    noisy = truth + np.random.default_rng(0).normal(0, 0.05, truth.size)
    found = train_forecast(CFG, steps[:1000], noisy[:1000])
    mean, lo, hi = found.final
    assert abs(mean - truth[-1]) < 0.1 and lo < truth[-1] < hi
    assert hi - lo < 1.0
    # less of the curve: a wider band
    early = train_forecast(CFG, steps[:500], noisy[:500]).final
    assert early[2] - early[1] > hi - lo


def test_the_flat_tail_of_continue_training_is_forecast():
    """A run planned for 1,000 steps continued to 2,000: the cosine ends at 1,000, the rest trains
    at min_lr, and the law (fitted before the end) predicts the slow gain of that tail."""
    cfg = CFG.replace(max_steps=1000)
    areas = run_areas(cfg, max_steps=2000)
    assert np.allclose(np.diff(areas.s1[1001:]), cfg.min_lr / cfg.max_lr)
    law = LawFit(3.0, 2.5, 0.5, 0.5 / areas.s2[1000], 0.0)
    n = np.arange(0, 2000)
    truth = law.predict(areas.s1[n], areas.s2[n])
    found = forecast(n[:800], truth[:800], areas, cfg.warmup_steps)
    assert found.final[0] == pytest.approx(truth[-1], abs=0.01)
    assert truth[-1] < truth[999]  # the tail still gains a little


def test_too_few_points_say_how_many_more():
    steps = np.arange(1, 60)
    with pytest.raises(NotEnoughData, match="drawn from step 120"):
        train_forecast(CFG, steps, np.full(steps.size, 5.0))
    steps = np.arange(1, 1001)
    train = train_forecast(CFG, steps, np.linspace(6, 4, steps.size))
    with pytest.raises(NotEnoughData, match="needs 2 evals after warmup"):
        val_forecast(CFG, np.array([50, 400]), np.array([5.0, 4.5]), train)


def test_the_val_forecast_is_the_train_law_shifted_by_the_latest_gap():
    areas = run_areas(CFG)
    law = LawFit(3.0, 2.5, 0.5, 0.5 / areas.s2[-1], 0.0)
    steps = np.arange(1, 1001)
    train = train_forecast(CFG, steps, _law_curve(CFG, law, steps))
    evals = np.arange(100, 1001, 100)
    gap = np.where(evals < 500, 0.05, 0.2)  # the gap widened lately: the latest evals count
    val = law.predict(areas.s1[evals], areas.s2[evals]) + gap
    found = val_forecast(CFG, evals, val, train)
    assert found.final[0] == pytest.approx(law.predict(areas.s1[-1], areas.s2[-1]) + 0.2, abs=0.01)
    assert found.updates[-1] == CFG.max_steps


def test_fit_law_is_exact_on_a_pure_power_law():
    s1 = np.linspace(10, 1000, 200)
    y = 2.0 + 4.0 * s1**-0.7
    law = fit_law(s1, np.zeros_like(s1), y)
    assert (law.l0, law.a, law.alpha) == pytest.approx((2.0, 4.0, 0.7), rel=0.01)
    assert math.isclose(law.c, 0.0, abs_tol=1e-9)
