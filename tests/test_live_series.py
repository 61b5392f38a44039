"""dashboard.live_series (incremental metrics loading, derived series, log tail) and
dashboard.live_figures (the figures drawn from them)."""

import json

import numpy as np
import pytest

from core.store import metrics
from core.store.rundir import RunDir
from dashboard import live_figures
from dashboard.charts import MAX_BUCKETS, ema_debiased
from dashboard.live_figures import build_figures
from dashboard.live_series import (
    RunSeries,
    eta_seconds,
    overfitting_since,
    sample_timeline,
    series_for,
    tail_text,
)


def _train(step, loss=None, t0=1000.0):
    return dict(
        kind="train",
        step=step,
        time=t0 + step * 0.5,
        loss=loss if loss is not None else 10.0 / step,
        lr=1e-3,
        grad_norm=0.5 + step % 3,
        dt_ms=500.0,
        tokens_per_sec=256.0,
        tokens_seen=step * 128,
    )


def _append(run, records, raw_tail=""):
    with open(run.metrics_path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records) + raw_tail)


@pytest.fixture
def run(runs_dir, tiny_config):
    return RunDir.create(runs_dir, "live", tiny_config)


def test_refresh_parses_only_new_lines(run):
    series = RunSeries(run)
    assert series.refresh() == 0  # no metrics file yet
    _append(run, [_train(s) for s in range(1, 11)])
    assert series.refresh() == 10
    offset = series.reader.offset
    assert series.refresh() == 0 and series.reader.offset == offset
    _append(
        run,
        [
            _train(11),
            dict(kind="eval", step=11, time=1006.0, val_loss=2.5),
            dict(kind="sample", step=11, time=1006.0, prompt="ROMEO:", text=" *hi* _x_"),
        ],
    )
    assert series.refresh() == 3
    np.testing.assert_array_equal(series.train["step"], np.arange(1, 12))
    assert series.eval["val_loss"].tolist() == [2.5]
    assert series.samples == [dict(step=11, prompt="ROMEO:", text=" *hi* _x_")]


def test_torn_last_line_waits_for_its_newline(run):
    series = RunSeries(run)
    _append(run, [_train(1)], raw_tail='{"kind": "train", "step": 2, "lo')
    assert series.refresh() == 1
    with open(run.metrics_path, "a") as f:
        f.write('ss": 4.0, "time": 1001.0}\n')
    assert series.refresh() == 1
    assert series.train["loss"].tolist() == [10.0, 4.0]


def test_bulk_parse_matches_line_by_line(run, monkeypatch):
    records = [dict(kind="start", step=0, time=999.0, resumed=False, world_size=1, max_steps=9)]
    for s in range(1, 3001):
        records.append(_train(s))
        if s % 100 == 0:
            records += [
                dict(
                    kind="eval",
                    step=s,
                    time=1.0 * s,
                    val_loss=1.0 / s,
                    **(dict(copy_rate=s / 3000, longest_copy=s // 100) if s > 1000 else {}),
                ),
                dict(kind="sample", step=s, time=1.0 * s, prompt="A:", text=f"t{s}"),
                dict(kind="system", step=s, time=1.0 * s, cpu_percent=99.0, rss_mb=s / 10),
                dict(kind="future", step=s, time=1.0 * s, whatever=[1, 2]),
            ]
        if s == 1500:
            records.append(dict(kind="start", step=s, time=1.0 * s, resumed=True, world_size=1))
    _append(run, records)
    monkeypatch.setattr(metrics, "BULK_MIN_BYTES", 1024)
    bulk = RunSeries(run)
    n_bulk = bulk.refresh()
    monkeypatch.setattr(metrics, "BULK_MIN_BYTES", 1 << 40)
    lines = RunSeries(run)
    assert lines.refresh() == n_bulk == len(records) - 30  # the unknown kind is skipped
    assert bulk.reader.offset == lines.reader.offset == run.metrics_path.stat().st_size
    for kind, table in bulk.tables.items():
        for c in table.names:
            np.testing.assert_array_equal(bulk.tables[kind][c], lines.tables[kind][c])
    assert bulk.samples == lines.samples and len(bulk.samples) == 30
    assert bulk.resume_steps().tolist() == [1500]
    assert np.isfinite(bulk.eval["copy_rate"]).sum() == 20


def test_bulk_parse_falls_back_on_a_corrupt_line(run, monkeypatch):
    monkeypatch.setattr(metrics, "BULK_MIN_BYTES", 10)
    _append(run, [_train(1)], raw_tail="{not json\n")
    _append(run, [_train(2)])
    series = RunSeries(run)
    assert series.refresh() == 2
    assert series.train["step"].tolist() == [1, 2]


def test_rewritten_file_is_read_again(run):
    _append(run, [_train(s) for s in range(1, 21)])
    series = RunSeries(run)
    series.refresh()
    series.smoothed("loss", 0.6)
    metrics.truncate_after(run.metrics_path, 10)  # what a resume does
    series.refresh()
    assert series.train["step"].tolist() == list(range(1, 11))
    _append(run, [_train(s, loss=1.0) for s in range(11, 14)])
    series.refresh()
    assert series.train["step"].tolist() == list(range(1, 14))
    np.testing.assert_allclose(
        series.smoothed("loss", 0.6), ema_debiased(series.train["loss"], 0.6)
    )


def test_smoothing_extends_and_changes_with_weight(run):
    series = RunSeries(run)
    _append(run, [_train(s) for s in range(1, 50)])
    series.refresh()
    series.smoothed("loss", 0.9)
    _append(run, [_train(s) for s in range(50, 80)])
    series.refresh()
    np.testing.assert_allclose(
        series.smoothed("loss", 0.9), ema_debiased(series.train["loss"], 0.9)
    )
    np.testing.assert_allclose(
        series.smoothed("loss", 0.3), ema_debiased(series.train["loss"], 0.3)
    )


def test_x_axes(run):
    _append(
        run,
        [_train(s) for s in range(1, 5)] + [dict(kind="eval", step=2, time=1001.5, val_loss=3.0)],
    )
    series = RunSeries(run)
    series.refresh()
    assert series.x_values("step").tolist() == [1, 2, 3, 4]
    assert series.x_values("tokens", "eval").tolist() == [256]
    # The first step ended at 1000.5 after 500 ms: the run started at 1000.0.
    # Training time: the step times summed (this run's records predate train_time_s).
    assert series.x_values("time").tolist() == [0.5, 1.0, 1.5, 2.0]
    assert series.x_values("time", "eval").tolist() == [1.0]
    with pytest.raises(ValueError, match="x axis"):
        series.x_values("epoch")


def test_training_time_axis_skips_the_pause_of_a_stop(run):
    records = [dict(kind="start", step=0, time=0.0, resumed=False)]
    for s in range(1, 7):
        if s == 4:
            records.append(dict(kind="start", step=3, time=50_000.0, resumed=True))
        records.append(dict(_train(s), time=(s if s < 4 else 90_000 + s), train_time_s=2.0 * s))
    records.append(dict(kind="eval", step=4, time=90_004.0, val_loss=1.0))
    _append(run, records)
    series = series_for({}, run)
    assert series.x_values("time").tolist() == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    assert series.x_values("time", "eval").tolist() == [8.0]
    assert series.resume_steps().tolist() == [3]
    assert series.x_at(series.resume_steps(), "time").tolist() == [6.0]
    assert series.x_at([3], "tokens").tolist() == [384]


def test_series_for_keeps_one_reader_per_run(run):
    store = {}
    _append(run, [_train(1)])
    first = series_for(store, run)
    _append(run, [_train(2)])
    assert series_for(store, run) is first and first.train["step"].tolist() == [1, 2]


def test_build_figures_downsamples_and_labels(run):
    _append(run, [_train(s, loss=10.0 / s if s != 7777 else 99.0) for s in range(1, 20_001)])
    series = series_for({}, run)
    figs = build_figures(
        [series],
        axis="tokens",
        weight=0.6,
        log_y=True,
        color_of=lambda _: "#123456",
        targets={"live": 0.1},
        clips={"live": 1.0},
    )
    assert list(figs) == ["loss", "lr", "grad_norm", "tokens_per_sec", "system", "dt_ms"]
    loss = figs["loss"]
    raw, smooth = loss.data
    assert len(raw.x) <= 2 * MAX_BUCKETS + 1
    assert 99.0 in set(raw.y) and raw.x[-1] == 20_000 * 128
    assert loss.layout.yaxis.type == "log" and loss.layout.shapes[0].y0 == 0.1
    assert loss.layout.xaxis.title.text == "tokens seen"
    assert figs["grad_norm"].layout.shapes[0].y0 == 1.0
    assert len(figs["lr"].data) == 1  # the learning rate is a schedule: never smoothed


def test_tail_text(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("".join(f"line {i}\n" for i in range(1000)) + "50%\r100%\n")
    tail = tail_text(log, max_lines=3, max_bytes=200)
    assert tail.splitlines() == ["line 998", "line 999", "100%"]
    assert tail_text(tmp_path / "missing.txt") == ""


def test_figures_mark_resumes_copy_rate_and_best_val(run):
    from core.store.metrics import RunSummary, read_all

    _append(
        run,
        [dict(kind="start", step=0, time=0.0, resumed=False)]
        + [_train(s) for s in range(1, 11)]
        + [
            dict(kind="eval", step=5, time=1.0, val_loss=2.0, copy_rate=0.25),
            dict(kind="start", step=5, time=2.0, resumed=True),
            dict(kind="eval", step=10, time=3.0, val_loss=2.5),
        ],
    )
    series = series_for({}, run)
    summary = RunSummary().update(read_all(run.metrics_path))
    figs = build_figures(
        [series],
        axis="step",
        weight=0.0,
        log_y=False,
        color_of=lambda _: "#123456",
        targets={},
        clips={},
        summaries={"live": summary},
    )
    loss = figs["loss"]
    names = [t.name for t in loss.data]
    assert names == ["train", "val", "best val at step 5", "copied %"]
    copy = loss.data[3]
    assert copy.yaxis == "y2" and list(copy.x) == [5] and list(copy.y) == [25.0]
    assert [(s.x0, s.line.dash) for s in loss.layout.shapes] == [(5, "dot")]
    assert loss.layout.annotations[0].text == "resumed at 5"
    assert [s.x0 for s in figs["dt_ms"].layout.shapes] == [5]  # bare lines on the side charts
    assert not figs["dt_ms"].layout.annotations
    hidden = build_figures(
        [series],
        axis="step",
        weight=0.0,
        log_y=False,
        show={"val"},
        color_of=lambda _: "#123456",
        targets={},
        clips={},
        summaries={"live": summary},
    )
    assert [t.name for t in hidden["loss"].data] == ["train", "val"]
    assert not hidden["loss"].layout.shapes and not hidden["dt_ms"].layout.shapes


def test_target_line_only_near_the_curve(run):
    _append(run, [_train(s, loss=5.0 - s * 0.1) for s in range(1, 11)])  # 4.9 down to 4.0
    series = series_for({}, run)
    for log_y in (False, True):
        figs = build_figures(
            [series],
            axis="step",
            weight=0.0,
            log_y=log_y,
            color_of=lambda _: "#123456",
            targets={"live": 0.1},
            clips={},
        )
        assert not figs["loss"].layout.shapes and "target 0.1" in figs["loss"].layout.title.text
        near = build_figures(
            [series],
            axis="step",
            weight=0.0,
            log_y=log_y,
            color_of=lambda _: "#123456",
            targets={"live": 1.5},
            clips={},
        )
        assert near["loss"].layout.shapes[0].y0 == 1.5 and near["loss"].layout.title.text == "Loss"


def test_system_figures(run):
    _append(
        run,
        [_train(s) for s in range(1, 5)]
        + [
            dict(kind="system", step=s, time=1.0, cpu_percent=50.0 * s, rss_mb=100.0)
            for s in (2, 4)
        ],
    )
    figs = build_figures(
        [series_for({}, run)],
        axis="tokens",
        weight=0.0,
        log_y=False,
        color_of=lambda _: "#123456",
        targets={},
        clips={},
    )
    cpu, rss = figs["system"].data
    assert list(cpu.x) == [256, 512] and list(cpu.y) == [100.0, 200.0] and rss.yaxis == "y2"
    assert "gpu" not in figs  # a CPU run: no empty GPU chart


def test_system_figure_waits_for_records(run):
    _append(run, [_train(1)])
    figs = build_figures(
        [series_for({}, run)],
        axis="step",
        weight=0.0,
        log_y=False,
        color_of=lambda _: "#123456",
        targets={},
        clips={},
    )
    assert "No system records yet" in figs["system"].layout.annotations[0].text


def test_eta_from_the_current_segment():
    steps = np.arange(1, 21)
    times = np.where(steps <= 10, steps * 2.0, 100_000 + steps * 3.0)  # resumed at 10, slower
    assert eta_seconds(steps, times, 50, since_step=10) == pytest.approx(30 * 3.0)
    assert eta_seconds(steps, times, 50, since_step=10, window=3) == pytest.approx(90.0)
    assert eta_seconds(steps[:1], times[:1], 50) is None
    assert eta_seconds(steps, times, 50, since_step=19) is None  # one step since the resume
    assert eta_seconds(steps, times, 20, since_step=10) == 0.0
    assert eta_seconds([], [], 10) is None


def _curves(vals, train_drop=0.01):
    ev_s = np.arange(1, len(vals) + 1) * 10
    ts = np.arange(1, ev_s[-1] + 1)
    return ev_s, np.array(vals), ts, 3.0 - train_drop * ts


def test_overfitting_since_the_best_val_step():
    ev_s, ev_v, ts, tl = _curves([2.9, 2.7, 2.6, 2.65, 2.7, 2.8])
    assert overfitting_since(ev_s, ev_v, ts, tl, patience=3) == 30
    assert overfitting_since(ev_s, ev_v, ts, tl, patience=4) is None  # only 3 evals since
    assert overfitting_since(ev_s[:5], ev_v[:5], ts, tl, patience=3) is None
    # Val still improving, or training loss not falling: not overfitting.
    assert overfitting_since(*_curves([2.9, 2.7, 2.6, 2.5]), patience=1) is None
    assert overfitting_since(*_curves([2.9, 2.6, 2.7, 2.8], train_drop=-0.01), patience=2) is None
    # A tie with the best is not a rise; non-finite val points are ignored.
    assert overfitting_since(*_curves([2.9, 2.6, 2.6, 2.8]), patience=2) is None
    ev_s, ev_v, ts, tl = _curves([2.9, 2.6, np.nan, 2.7, 2.8])
    assert overfitting_since(ev_s, ev_v, ts, tl, patience=2) == 20
    assert overfitting_since([], [], [], [], patience=3) is None


def test_sample_timeline(run):
    _append(
        run,
        [_train(s) for s in range(1, 21)]
        + [
            dict(kind="eval", step=10, time=1.0, val_loss=2.5),
            dict(kind="sample", step=10, time=1.0, prompt="A:", text=" one\ntwo"),
            dict(kind="eval", step=20, time=2.0, val_loss=2.0, copy_rate=0.5),
            dict(kind="sample", step=20, time=2.0, prompt="A:", text=" three"),
            dict(kind="sample", step=15, time=2.0, prompt="A:", text=" no eval here"),
        ],
    )
    entries = sample_timeline(series_for({}, run))
    assert [(e.step, e.val_loss, e.copy_rate) for e in entries] == [
        (20, 2.0, 0.5),
        (15, None, None),
        (10, 2.5, None),
    ]
    assert entries[2].prompt + entries[2].text == "A: one\ntwo"


def test_runs_resumed_at_one_step_share_a_resume_line(runs_dir, tiny_config):
    records = (
        [dict(kind="start", step=0, time=0.0, resumed=False)]
        + [_train(s) for s in range(1, 5)]
        + [dict(kind="start", step=2, time=9.0, resumed=True)]
    )
    all_series = []
    for name in ("a", "b"):
        run = RunDir.create(runs_dir, name, tiny_config)
        _append(run, records)
        all_series.append(series_for({}, run))
    lines = live_figures.resume_lines(
        all_series, axis="step", x_scale=1.0, color_of=lambda _: "#123456", labels=True
    )
    assert [(v.x, v.label) for v in lines] == [(2.0, "a, b resumed at 2")]


def _long_run_records(steps: int) -> list[dict]:
    """A 'steps'-step run as the engine writes it: a resume halfway (from an earlier step, so
    the file is rewritten there), evals, samples, system records and a kind from the future."""
    out = [dict(kind="start", step=0, time=0.0, resumed=False, world_size=1, max_steps=steps)]
    for s in range(1, steps + 1):
        out.append(
            dict(_train(s, loss=5 + np.sin(s) - s / steps), train_time_s=s * 0.5, peak_mem_mb=s)
        )
        if s % 100 == 0:
            out.append(dict(kind="eval", step=s, time=s, val_loss=6 + np.cos(s) - s / steps))
            out.append(dict(kind="system", step=s, time=s, cpu_percent=90.0, rss_mb=300.0))
            out.append(dict(kind="telemetry-v9", step=s, time=s, anything=[1]))
        if s == steps // 2:
            out.append(dict(kind="start", step=s, time=s, resumed=True, world_size=1))
    return out


def test_the_summary_and_the_live_series_agree_on_a_100000_step_file(run):
    _append(run, _long_run_records(100_000))
    assert run.metrics_path.stat().st_size > metrics.BULK_MIN_BYTES  # the bulk path reads it
    summary, series = metrics.summarize(run.metrics_path), RunSeries(run)
    series.refresh()
    train, ev = series.train, series.eval
    assert summary.last_step == train["step"][-1] == 100_000 == len(train)
    assert summary.first_loss == train["loss"][0] and summary.last_loss == train["loss"][-1]
    assert summary.best_loss == np.nanmin(train["loss"])
    best = int(np.argmin(ev["val_loss"]))
    assert (summary.best_val_loss, summary.best_val_step) == (
        ev["val_loss"][best],
        ev["step"][best],
    )
    assert summary.last_val_loss == ev["val_loss"][-1] and len(ev) == 1000
    assert summary.tokens_seen == train["tokens_seen"][-1]
    assert summary.train_time_s == series.train_time()[-1] == 50_000
    assert summary.peak_mem_mb == np.nanmax(train["peak_mem_mb"])
    assert summary.segment_starts == [0, 50_000] and series.resume_steps().tolist() == [50_000]
    assert len(series.system) == 1000 and "telemetry-v9" not in series.tables


def test_a_field_added_to_kinds_reaches_the_series(run, monkeypatch):
    monkeypatch.setitem(metrics.KINDS["train"], "weight_norm", metrics.NUMBER)
    log = metrics.MetricsLog(run.metrics_path)
    for s in range(1, 3001):  # long enough for the bulk path; then one appended line by line
        log.write("train", s, 1000.0 + s, loss=1.0, weight_norm=s / 10)
    log.close()
    series = RunSeries(run)
    series.refresh()
    log = metrics.MetricsLog(run.metrics_path)
    log.write("train", 3001, 5000.0, loss=1.0, weight_norm=300.1)
    log.close()
    assert series.refresh() == 1
    np.testing.assert_allclose(series.train["weight_norm"], np.arange(1, 3002) / 10)
