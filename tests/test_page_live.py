"""Live metrics page through AppTest: no runs, running, completed, failed, crashed."""

import base64
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import rundir
from core.metrics import MetricsReader
from core.rundir import RunDir


def _array(value):
    """A plotly 7 array from a figure spec: base64 {dtype, bdata} or a plain list."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def _figures(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def _trace(figures, name):
    for fig in figures:
        for trace in fig["data"]:
            if trace.get("name") == name:
                return trace, fig
    raise AssertionError(f"no trace named {name!r} in {[t.get('name') for f in figures for t in f['data']]}")


def _open_live(monkeypatch, runs_dir, **state):
    monkeypatch.setenv("GPT_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file("../dashboard/app.py", default_timeout=30)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("views/live.py").run()
    assert not at.exception, at.exception
    return at


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def _train_lines(run, steps, start=1):
    with open(run.metrics_path, "a", buffering=1) as f:
        for s in range(start, start + steps):
            f.write(json.dumps(dict(kind="train", step=s, time=time.time() - 100 + s, loss=5.0 / s,
                                    lr=1e-3, grad_norm=0.8, dt_ms=250.0, tokens_per_sec=1024.0,
                                    tokens_seen=s * 256)) + "\n")


def test_no_runs_points_to_new_run(runs_dir, monkeypatch):
    at = _open_live(monkeypatch, runs_dir)
    assert "No runs yet" in at.info[0].value
    links = at.get("page_link")
    assert links and "new_run" in links[0].proto.page
    assert not at.get("plotly_chart")


def test_running_run_updates_incrementally(runs_dir, tiny_config, monkeypatch):
    run = RunDir.create(runs_dir, "training", tiny_config.replace(max_steps=100, target_loss=0.5))
    run.write_status(state="running", pid=os.getpid(), started=time.time() - 100, step=30)
    _train_lines(run, 30)
    with open(run.metrics_path, "a", buffering=1) as f:
        f.write(json.dumps(dict(kind="eval", step=30, time=time.time(), val_loss=0.9)) + "\n")
        f.write(json.dumps(dict(kind="sample", step=30, time=time.time(), prompt="ROMEO:",
                                text=" *bold* _it_ # $x$")) + "\n")
    at = _open_live(monkeypatch, runs_dir, live_smoothing=0.0)

    assert _metric(at, "State").endswith("running")
    assert _metric(at, "Step") == "30 / 100"
    assert _metric(at, "Loss") == f"{5.0 / 30:.4f}"
    assert "ETA" in at.get("progress")[0].proto.text
    figures = _figures(at)
    train, loss_fig = _trace(figures, "train")
    np.testing.assert_allclose(_array(train["y"]), 5.0 / np.arange(1, 31))
    np.testing.assert_array_equal(_array(_trace(figures, "val")[0]["y"]), [0.9])
    assert loss_fig["layout"]["shapes"][0]["y0"] == 0.5  # the target loss line
    assert loss_fig["layout"]["uirevision"] == "loss:step:False"
    assert "loss" in loss_fig["layout"]["yaxis"]["title"]["text"]
    # The sample is shown verbatim as code (never markdown), newest first.
    assert any(c.value == "ROMEO: *bold* _it_ # $x$" for c in at.code)

    series = next(iter(at.session_state["live_series"].values()))
    parsed = series.parsed_lines
    _train_lines(run, 5, start=31)
    at.run()
    assert series.parsed_lines == parsed + 5  # only the appended lines were read
    train, _ = _trace(_figures(at), "train")
    assert _array(train["x"])[-1] == 35


def test_completed_run_shows_all_charts(trained_run, monkeypatch):
    at = _open_live(monkeypatch, trained_run.path.parent, selected_run="trained")
    assert _metric(at, "State").endswith("completed")
    records = MetricsReader(trained_run.metrics_path).read_new()
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    figures = _figures(at)
    titles = [f["layout"]["title"]["text"] for f in figures]
    assert set(titles) == {"Loss", "Learning rate", "Gradient norm", "Throughput", "Step time"}
    raw, _ = _trace(figures, "train (raw)")
    np.testing.assert_allclose(_array(raw["y"]), losses)
    smooth, _ = _trace(figures, "train")
    assert _array(smooth["y"])[0] == pytest.approx(losses[0])  # debiased: starts at the value
    grad, grad_fig = _trace(figures, "gradient norm")
    assert grad_fig["layout"]["shapes"][0]["y0"] == 1.0  # the clip threshold
    assert grad_fig["layout"]["yaxis"]["title"]["text"].startswith("gradient norm")
    assert any("step " in c.value for c in at.caption)  # samples with their step
    assert any("run completed" in c.value for c in at.code)  # the log tail
    assert at.get("download_button")

    at.segmented_control(key="live_x").set_value("time").run()
    _, loss_fig = _trace(_figures(at), "train")
    assert loss_fig["layout"]["xaxis"]["title"]["text"] == "wall time since start (s)"
    at.toggle(key="live_log").set_value(True).run()
    _, loss_fig = _trace(_figures(at), "train")
    assert loss_fig["layout"]["yaxis"]["type"] == "log"


def test_failed_run_shows_error(runs_dir, tiny_config, monkeypatch):
    run = RunDir.create(runs_dir, "broken", tiny_config)
    run.write_status(state="failed", error="TrainingDiverged: loss is nan at step 3", reason="error")
    run.log_path.write_text("Traceback (most recent call last):\nTrainingDiverged: loss is nan\n")
    at = _open_live(monkeypatch, runs_dir)
    assert _metric(at, "State").endswith("failed")
    assert "loss is nan at step 3" in at.error[0].value
    assert any("Traceback" in c.value for c in at.code)
    assert "No training steps" in json.dumps(_figures(at)[0])


def test_crashed_run_is_detected(runs_dir, tiny_config, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = RunDir.create(runs_dir, "gone", tiny_config)
    _train_lines(run, 4)
    with monkeypatch.context() as m:  # a heartbeat from long ago
        m.setattr(rundir.time, "time", lambda: 1e9)
        run.write_status(state="running", pid=dead.pid, step=4)
    at = _open_live(monkeypatch, runs_dir)
    assert _metric(at, "State").endswith("crashed")
    assert f"pid {dead.pid}" in at.error[0].value and "Resume" in at.error[0].value


def test_several_runs_overlay_in_their_colours(runs_dir, tiny_config, monkeypatch):
    from dashboard.colors import run_color

    for name in ("alpha", "beta"):
        run = RunDir.create(runs_dir, name, tiny_config)
        run.write_status(state="completed")
        _train_lines(run, 10)
    at = _open_live(monkeypatch, runs_dir, live_runs=["alpha", "beta"], live_smoothing=0.0)
    figures = _figures(at)
    for name in ("alpha", "beta"):
        trace, _ = _trace(figures, f"{name} train")
        assert trace["line"]["color"] == run_color(name)
