"""dashboard.charts: debiased EMA, min/max downsampling with stable buckets, figures."""

import numpy as np
import pytest

from dashboard.charts import (
    Downsampler,
    EmaState,
    HLine,
    Trace,
    VLine,
    bucket_width,
    ema_debiased,
    line_figure,
    log_range,
    log_ticks,
)


def downsample_indices(y, max_buckets=512):
    """One-off downsampling: what a fresh Downsampler picks."""
    return Downsampler(max_buckets).indices(y)


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
        out.append(last / (1 - weight**count))
    return np.array(out)


@pytest.mark.parametrize("weight", [0.0, 0.05, 0.6, 0.9, 0.99, 0.999])
def test_ema_matches_tensorboard_loop_on_long_series(weight):
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 1.0, 20_000)
    values[[5, 700]] = [np.nan, np.inf]  # passed through, and not counted
    np.testing.assert_allclose(
        ema_debiased(values, weight), _reference(values, weight), rtol=1e-9, atol=1e-9
    )


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
    b = downsample_indices(y[: 4000 + w], 64)  # same width: bucket_width(4000 + w) == w
    assert bucket_width(4000 + w, 64) == w
    finished = a[a < (4000 // w) * w]
    np.testing.assert_array_equal(finished, b[b < (4000 // w) * w])


def test_nan_never_wins_a_bucket():
    y = np.array([np.nan, 1.0, 3.0, np.nan] * 4)
    idx = downsample_indices(y, 2)
    assert set(idx[:-1].tolist()) <= {1, 2, 5, 6, 9, 10, 13, 14}


def test_line_figure_has_labelled_axes_lines_and_uirevision():
    x = np.arange(5.0)
    fig = line_figure(
        [
            Trace(x, x, "train (raw)", "#1f77b4", "raw", uid="r:raw"),
            Trace(x, x * 2, "train", "#1f77b4", "smooth", uid="r"),
        ],
        x_title="step",
        y_title="loss (nats)",
        uirevision="loss:step",
        log_y=True,
        hlines=[HLine(0.1, "target loss 0.1")],
    )
    spec = fig.to_plotly_json()
    assert spec["layout"]["xaxis"]["title"]["text"] == "step"
    assert spec["layout"]["yaxis"]["type"] == "log"
    assert spec["layout"]["uirevision"] == "loss:step"
    assert spec["layout"]["shapes"][0]["y0"] == 0.1
    raw, smooth = spec["data"]
    assert raw["showlegend"] is False and raw["line"]["color"] == "rgba(31,119,180,0.25)"
    assert smooth["line"]["color"] == "#1f77b4" and smooth["uid"] == "r"


def test_a_single_point_is_drawn_as_a_point():
    one, two = np.array([1.0]), np.arange(2.0)
    fig = line_figure(
        [Trace(one, one, "train", "#1f77b4", "smooth"), Trace(two, two, "other", "#ff7f0e")],
        x_title="step",
        y_title="loss (nats)",
        uirevision="loss:step",
    )
    first, second = fig.to_plotly_json()["data"]
    assert first["mode"] == "lines+markers"  # a line through one point would be invisible
    assert second["mode"] == "lines"


def test_log_ticks_are_short_and_inside_the_range():
    assert log_ticks(0.08, 12.0) == (
        [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0],
        ["0.1", "0.2", "0.5", "1", "2", "5", "10"],
    )
    values, texts = log_ticks(2.1, 9.9)  # under a decade: finer steps
    assert texts == ["3", "5", "7"] and values[0] == 3.0
    assert log_ticks(2.1, 6.0)[1] == ["2.5", "3", "4", "5", "6"]
    values, texts = log_ticks(1e-4, 10.0)
    assert texts == ["0.0001", "0.001", "0.01", "0.1", "1", "10"]
    assert log_ticks(2.01, 2.05) == ([], [])  # no two round ticks: plotly chooses
    assert log_ticks(0.0, 1.0) == ([], []) and log_ticks(3.0, 2.0) == ([], [])


def test_log_range_fits_positive_finite_values():
    lo, hi = log_range([np.array([10.0, 1.0, np.nan, 0.0, -1.0]), np.array([np.inf])])
    assert -0.1 < lo < 0 < 1 < hi < 1.1
    assert log_range([np.array([np.nan])]) is None and log_range([]) is None


def test_log_figure_range_from_data_and_labels_on_their_lines():
    x = np.arange(1.0, 6.0)
    fig = line_figure(
        [
            Trace(x, 10 / x, "train", "#1f77b4", "smooth"),
            Trace(x, x * 10, "copied %", "#1f77b4", "copy", yaxis="y2"),
        ],
        x_title="step",
        y_title="loss",
        log_y=True,
        y2_title="copied (%)",
        hlines=[HLine(1.5, "target loss 1.5")],
        vlines=[VLine(3.0, "resumed at 3")],
    )
    layout = fig.to_plotly_json()["layout"]
    lo, hi = layout["yaxis"]["range"]
    assert np.log10(1.5) - 0.1 < lo < np.log10(1.5) and 1.0 < hi < 1.1  # y2 values not counted
    assert layout["yaxis"]["ticktext"][0] == "1.5" and "10" in layout["yaxis"]["ticktext"]
    target, resumed = layout["annotations"]
    assert target["y"] == pytest.approx(np.log10(1.5)) and target["yref"] == "y"
    assert resumed["x"] == 3.0 and resumed["yref"] == "paper"
    assert layout["shapes"][1]["line"]["dash"] == "dot" and layout["shapes"][1]["xref"] == "x"
    assert layout["yaxis2"]["overlaying"] == "y" and layout["yaxis2"]["side"] == "right"
    assert fig.to_plotly_json()["data"][1]["yaxis"] == "y2"


def test_legend_sits_under_the_plot():
    x = np.arange(3.0)
    fig = line_figure(
        [Trace(x, x, f"run{i} train", "#1f77b4") for i in range(4)],
        x_title="step",
        y_title="loss",
        title="Loss",
    )
    layout = fig.to_plotly_json()["layout"]
    legend = layout["legend"]
    assert (legend["yref"], legend["y"], legend["yanchor"]) == ("container", 0, "bottom")
    assert layout["margin"]["b"] >= 50 + 2 * 24 and layout["height"] == 320 + 2 * 24  # 2 rows
