"""dashboard.live_data: incremental metrics loading, derived series, figures, CSV, log tail."""

import csv
import io
import json

import numpy as np
import pytest

from core import metrics
from core.rundir import RunDir
from dashboard import live_data
from dashboard.charts import ema_debiased
from dashboard.live_data import RunSeries, build_figures, series_for, tail_text


def _train(step, loss=None, t0=1000.0):
    return dict(kind="train", step=step, time=t0 + step * 0.5, loss=loss if loss is not None else 10.0 / step,
                lr=1e-3, grad_norm=0.5 + step % 3, dt_ms=500.0, tokens_per_sec=256.0,
                tokens_seen=step * 128)


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
    _append(run, [_train(11), dict(kind="eval", step=11, time=1006.0, val_loss=2.5),
                  dict(kind="sample", step=11, time=1006.0, prompt="ROMEO:", text=" *hi* _x_")])
    assert series.refresh() == 3
    assert series.parsed_lines == 13
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
    records = []
    for s in range(1, 3001):
        records.append(_train(s))
        if s % 100 == 0:
            records += [dict(kind="eval", step=s, time=1.0 * s, val_loss=1.0 / s),
                        dict(kind="sample", step=s, time=1.0 * s, prompt="A:", text=f"t{s}")]
    _append(run, records)
    monkeypatch.setattr(live_data, "BULK_BYTES", 1024)
    bulk = RunSeries(run)
    bulk.refresh()
    monkeypatch.setattr(live_data, "BULK_BYTES", 1 << 40)
    lines = RunSeries(run)
    lines.refresh()
    assert bulk.reader.offset == lines.reader.offset == run.metrics_path.stat().st_size
    for c in live_data.TRAIN_COLUMNS:
        np.testing.assert_array_equal(bulk.train[c], lines.train[c])
    np.testing.assert_array_equal(bulk.eval["val_loss"], lines.eval["val_loss"])
    assert bulk.samples == lines.samples and len(bulk.samples) == 30


def test_bulk_parse_falls_back_on_a_corrupt_line(run, monkeypatch):
    monkeypatch.setattr(live_data, "BULK_BYTES", 10)
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
    np.testing.assert_allclose(series.smoothed("loss", 0.6), ema_debiased(series.train["loss"], 0.6))


def test_smoothing_extends_and_changes_with_weight(run):
    series = RunSeries(run)
    _append(run, [_train(s) for s in range(1, 50)])
    series.refresh()
    series.smoothed("loss", 0.9)
    _append(run, [_train(s) for s in range(50, 80)])
    series.refresh()
    np.testing.assert_allclose(series.smoothed("loss", 0.9), ema_debiased(series.train["loss"], 0.9))
    np.testing.assert_allclose(series.smoothed("loss", 0.3), ema_debiased(series.train["loss"], 0.3))


def test_x_axes(run):
    _append(run, [_train(s) for s in range(1, 5)] + [dict(kind="eval", step=2, time=1001.5, val_loss=3.0)])
    series = RunSeries(run)
    series.refresh()
    assert series.x_values("step").tolist() == [1, 2, 3, 4]
    assert series.x_values("tokens", "eval").tolist() == [256]
    # The first step ended at 1000.5 after 500 ms: the run started at 1000.0.
    assert series.x_values("time").tolist() == [0.5, 1.0, 1.5, 2.0]
    assert series.x_values("time", "eval").tolist() == [1.5]
    with pytest.raises(ValueError, match="x axis"):
        series.x_values("epoch")


def test_csv_has_every_point_and_val_loss(run):
    _append(run, [_train(s) for s in range(1, 2001)] + [dict(kind="eval", step=1000, time=1.0, val_loss=0.5)])
    series = series_for({}, run)
    rows = list(csv.DictReader(io.StringIO(series.to_csv().decode())))
    assert len(rows) == 2000
    assert rows[0]["step"] == "1" and rows[999]["val_loss"] == "0.5" and rows[0]["val_loss"] == ""
    assert float(rows[-1]["loss"]) == pytest.approx(10.0 / 2000)


def test_series_for_keeps_one_reader_per_run(run):
    store = {}
    _append(run, [_train(1)])
    first = series_for(store, run)
    _append(run, [_train(2)])
    assert series_for(store, run) is first and first.parsed_lines == 2


def test_build_figures_downsamples_and_labels(run):
    _append(run, [_train(s, loss=10.0 / s if s != 7777 else 99.0) for s in range(1, 20_001)])
    series = series_for({}, run)
    figs = build_figures([series], axis="tokens", weight=0.6, log_y=True, color_of=lambda _: "#123456",
                         targets={"live": 0.1}, clips={"live": 1.0})
    assert list(figs) == ["loss", "lr", "grad_norm", "tokens_per_sec", "dt_ms"]
    loss = figs["loss"]
    raw, smooth = loss.data
    assert len(raw.x) <= 2 * live_data.MAX_BUCKETS + 1
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
