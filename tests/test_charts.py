"""dashboard.charts: debiased EMA, min/max downsampling with stable buckets, figures."""

import numpy as np
import pytest

from dashboard.charts import (Downsampler, EmaState, HLine, Trace, bucket_width,
                              downsample_indices, ema_debiased, line_figure)


def test_ema_matches_hand_computation():
    # weight 0.5: biased a1 = 0.5*2 = 1, a2 = 0.5*1 + 0.5*4 = 2.5, a3 = 0.5*2.5 + 0.5*8 = 5.25;
    # debiased by 1 - 0.5^n: 1/0.5 = 2, 2.5/0.75 = 3.3333, 5.25/0.875 = 6.
    out = ema_debiased([2.0, 4.0, 8.0], 0.5)
    np.testing.assert_allclose(out, [2.0, 10 / 3, 6.0])


def _reference(values, weight):
    """TensorBoard's loop, written out."""
    last, count, out = 0.0, 0, []
    for v in values:
        if not np.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        count += 1
        out.append(last / (1 - weight ** count))
    return np.array(out)


@pytest.mark.parametrize("weight", [0.0, 0.05, 0.6, 0.9, 0.99, 0.999])
def test_ema_matches_tensorboard_loop_on_long_series(weight):
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 1.0, 20_000)
    values[[5, 700]] = [np.nan, np.inf]  # passed through, and not counted
    np.testing.assert_allclose(ema_debiased(values, weight), _reference(values, weight),
                               rtol=1e-9, atol=1e-9)


def test_ema_first_point_is_the_value_and_constant_stays_constant():
    assert ema_debiased([7.5], 0.99)[0] == pytest.approx(7.5)
    np.testing.assert_allclose(ema_debiased(np.full(5000, 4.2), 0.95), 4.2)


def test_ema_continues_incrementally():
    values = np.random.default_rng(1).random(3000)
    state = EmaState()
    parts = [ema_debiased(values[a:b], 0.9, state) for a, b in [(0, 1), (1, 1000), (1000, 3000)]]
    np.testing.assert_allclose(np.concatenate(parts), ema_debiased(values, 0.9), rtol=1e-12)
    assert state.count == 3000


def test_ema_rejects_bad_weight():
    with pytest.raises(ValueError, match="smoothing weight"):
        ema_debiased([1.0], 1.0)


def test_bucket_width_is_power_of_two_and_bounds_buckets():
    assert bucket_width(10, 512) == 1
    assert bucket_width(512, 512) == 1
    assert bucket_width(513, 512) == 2
    for n in (1, 999, 100_000, 1_000_000):
        w = bucket_width(n, 512)
        assert w & (w - 1) == 0 and -(-n // w) <= 512 and (w == 1 or -(-n // (w // 2)) > 512)


def test_downsampling_keeps_spikes_last_point_and_is_bounded():
    rng = np.random.default_rng(2)
    y = rng.random(100_000)
    y[12_345], y[54_321] = 50.0, -50.0
    idx = downsample_indices(y, max_buckets=256)
    assert idx.size <= 2 * 256 + 1
    assert {12_345, 54_321} <= set(idx.tolist())
    assert idx[-1] == y.size - 1
    assert np.all(np.diff(idx) > 0)


def test_small_series_is_drawn_whole():
    y = np.arange(10.0)
    np.testing.assert_array_equal(downsample_indices(y, 512), np.arange(10))
    assert downsample_indices(np.empty(0)).size == 0


def test_buckets_stay_put_as_points_arrive():
    rng = np.random.default_rng(3)
    y = rng.random(5000)
    incremental = Downsampler(64)
    for n in range(100, 5001, 137):
        got = incremental.indices(y[:n])
        fresh = downsample_indices(y[:n], 64)
        np.testing.assert_array_equal(got, fresh)  # the cache gives what a fresh pass gives
    # Indices chosen in finished buckets never change when points are appended within a width.
    w = bucket_width(4000, 64)
    a = downsample_indices(y[:4000], 64)
    b = downsample_indices(y[:4000 + w], 64)  # same width: bucket_width(4000 + w) == w
    assert bucket_width(4000 + w, 64) == w
    finished = a[a < (4000 // w) * w]
    np.testing.assert_array_equal(finished, b[b < (4000 // w) * w])


def test_nan_never_wins_a_bucket():
    y = np.array([np.nan, 1.0, 3.0, np.nan] * 4)
    idx = downsample_indices(y, 2)
    assert set(idx[:-1].tolist()) <= {1, 2, 5, 6, 9, 10, 13, 14}


def test_line_figure_has_labelled_axes_lines_and_uirevision():
    x = np.arange(5.0)
    fig = line_figure([Trace(x, x, "train (raw)", "#1f77b4", "raw", uid="r:raw"),
                       Trace(x, x * 2, "train", "#1f77b4", "smooth", uid="r")],
                      x_title="step", y_title="loss (nats)", uirevision="loss:step",
                      log_y=True, hlines=[HLine(0.1, "target loss 0.1")])
    spec = fig.to_plotly_json()
    assert spec["layout"]["xaxis"]["title"]["text"] == "step"
    assert spec["layout"]["yaxis"]["type"] == "log"
    assert spec["layout"]["uirevision"] == "loss:step"
    assert spec["layout"]["shapes"][0]["y0"] == 0.1
    raw, smooth = spec["data"]
    assert raw["showlegend"] is False and "rgba(31,119,180,0.25)" == raw["line"]["color"]
    assert smooth["line"]["color"] == "#1f77b4" and smooth["uid"] == "r"
