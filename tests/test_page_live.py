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

from core.store import rundir
from core.store.metrics import MetricsReader
from core.store.rundir import RunDir


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
    raise AssertionError(
        f"no trace named {name!r} in {[t.get('name') for f in figures for t in f['data']]}"
    )


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
            f.write(
                json.dumps(
                    dict(
                        kind="train",
                        step=s,
                        time=time.time() - 100 + s,
                        loss=5.0 / s,
                        lr=1e-3,
                        grad_norm=0.8,
                        dt_ms=250.0,
                        tokens_per_sec=1024.0,
                        tokens_seen=s * 256,
                    )
                )
                + "\n"
            )


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
        f.write(
            json.dumps(
                dict(
                    kind="sample",
                    step=30,
                    time=time.time(),
                    prompt="ROMEO:",
                    text=" *bold* _it_ # $x$",
                )
            )
            + "\n"
        )
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
    _train_lines(run, 5, start=31)
    at.run()
    # The same series read on from where it was (nothing left unread), not a fresh parse.
    assert next(iter(at.session_state["live_series"].values())) is series
    assert series.refresh() == 0
    train, _ = _trace(_figures(at), "train")
    assert _array(train["x"])[-1] == 35


def test_completed_run_shows_all_charts(trained_run, monkeypatch):
    at = _open_live(monkeypatch, trained_run.path.parent, selected_run="trained")
    assert _metric(at, "State").endswith("completed")
    records = MetricsReader(trained_run.metrics_path).read_new()
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    figures = _figures(at)
    titles = [f["layout"]["title"]["text"] for f in figures if "title" in f["layout"]]
    assert {"Loss", "Learning rate", "Gradient norm", "Throughput", "Step time"} <= set(titles)
    raw, _ = _trace(figures, "train (raw)")
    np.testing.assert_allclose(_array(raw["y"]), losses)
    smooth, _ = _trace(figures, "train")
    assert _array(smooth["y"])[0] == pytest.approx(losses[0])  # debiased: starts at the value
    grad, grad_fig = _trace(figures, "gradient norm")
    assert grad_fig["layout"]["shapes"][0]["y0"] == 1.0  # the clip threshold
    assert grad_fig["layout"]["yaxis"]["title"]["text"].startswith("gradient norm")
    assert any(m.value.startswith("**step ") for m in at.markdown)  # samples with their step
    assert any("run completed" in c.value for c in at.code)  # the log tail
    assert at.get("download_button")

    at.segmented_control(key="live_x").set_value("time").run()
    _, loss_fig = _trace(_figures(at), "train")
    assert loss_fig["layout"]["xaxis"]["title"]["text"] == "training time (s)"
    at.toggle(key="live_log").set_value(True).run()
    _, loss_fig = _trace(_figures(at), "train")
    assert loss_fig["layout"]["yaxis"]["type"] == "log"


def test_mfu_names_its_peak_in_plain_words(trained_run, monkeypatch):
    from core.store.metrics import first_start
    from dashboard import glossary

    at = _open_live(monkeypatch, trained_run.path.parent, selected_run="trained")
    start = first_start(trained_run.metrics_path)
    assert start and start["peak_flops"] > 0
    peak = glossary.peak_text(start["peak_flops"], start["peak_source"])
    assert "GFLOP/s" in peak and start["peak_source"] in peak
    assert any(c.value == f"MFU is measured against a peak of {peak}." for c in at.caption)
    mfu = next(m for m in at.metric if m.label == "MFU")
    assert mfu.help.startswith(glossary.MFU) and peak in mfu.help


def test_a_yardstick_sits_beside_the_samples(trained_run, tmp_path, monkeypatch):
    import shutil

    from dashboard import yardstick

    at = _open_live(monkeypatch, trained_run.path.parent, selected_run="trained")
    texts = " ".join(c.value for c in at.caption)
    assert "Measured on tiny shakespeare only" in texts  # the tiny run trains on a slice
    shakespeare = tmp_path / "runs"
    shutil.copytree(trained_run.path, shakespeare / "trained")
    cfg = json.loads((shakespeare / "trained" / "config.json").read_text())
    cfg["data"] = "tinyshakespeare"
    (shakespeare / "trained" / "config.json").write_text(json.dumps(cfg))
    at = _open_live(monkeypatch, shakespeare, selected_run="trained")
    last_val = [
        r for r in MetricsReader(trained_run.metrics_path).read_new() if r["kind"] == "eval"
    ]
    assert yardstick.place(last_val[-1]["val_loss"]) in [c.value for c in at.caption]
    marks = [m.value for m in at.markdown if m.value.startswith("**5.30**")]
    assert marks and "micro, 10 minutes" in marks[0]


def test_failed_run_shows_error(runs_dir, tiny_config, monkeypatch):
    run = RunDir.create(runs_dir, "broken", tiny_config)
    run.write_status(
        state="failed", error="TrainingDiverged: loss is nan at step 3", reason="error"
    )
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


# --- issue 11: training time, resume marks, log scale, legend --------------------------------
def _write(run, records):
    with open(run.metrics_path, "a", buffering=1) as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))


def _two_segments(run, gap_s=86_400.0):
    """Steps 1-10, a stop, a day's pause, a resume at 10, steps 11-20; 2 s of training each."""
    t0 = time.time() - gap_s - 100
    records = [dict(kind="start", step=0, time=t0, resumed=False, world_size=1, max_steps=40)]
    for s in range(1, 21):
        t = t0 + 2 * s + (gap_s if s > 10 else 0)
        if s == 11:
            records.append(
                dict(kind="start", step=10, time=t - 2, resumed=True, world_size=1, max_steps=40)
            )
        records.append(
            dict(
                kind="train",
                step=s,
                time=t,
                loss=4.0 - s * 0.1,
                lr=1e-3,
                grad_norm=0.5,
                dt_ms=2000.0,
                tokens_per_sec=100.0,
                tokens_seen=s * 64,
                train_time_s=2.0 * s,
            )
        )
    _write(run, records)


def test_elapsed_is_training_time_and_resumes_are_marked(runs_dir, tiny_config, monkeypatch):
    run = RunDir.create(runs_dir, "resumed", tiny_config.replace(max_steps=40))
    run.write_status(
        state="stopped", step=20, max_steps=40, started=time.time() - 200, ended=time.time()
    )
    _two_segments(run)
    # the resume marks only (the 4-epoch marker of this tiny text is a dotted line too)
    at = _open_live(monkeypatch, runs_dir, live_show=["val", "copy", "best", "resumes"])
    # 20 steps of 2 s: the Runs table's figure, not the day between the stop and the resume.
    assert _metric(at, "Training time") == "40s"
    figures = _figures(at)
    _, loss_fig = _trace(figures, "train")
    marks = [s for s in loss_fig["layout"]["shapes"] if s.get("xref") == "x"]
    assert [(m["x0"], m["line"]["dash"]) for m in marks] == [(10, "dot")]
    assert any(
        a["text"] == "resumed at 10" and a["x"] == 10 for a in loss_fig["layout"]["annotations"]
    )
    _, lr_fig = _trace(figures, "learning rate")
    assert [s["x0"] for s in lr_fig["layout"]["shapes"] if s.get("xref") == "x"] == [10]
    at.segmented_control(key="live_x").set_value("time").run()  # training time: no day-long gap
    train, loss_fig = _trace(_figures(at), "train")
    np.testing.assert_allclose(_array(train["x"])[[9, 10]], [20.0, 22.0])
    assert [s["x0"] for s in loss_fig["layout"]["shapes"] if s.get("xref") == "x"] == [20.0]


def test_log_scale_fits_the_data_with_short_ticks(runs_dir, tiny_config, monkeypatch):
    run = RunDir.create(runs_dir, "far", tiny_config.replace(target_loss=0.1))
    run.write_status(state="completed")
    _write(
        run,
        [dict(kind="train", step=s, time=1000.0 + s, loss=10.0 * 0.95**s) for s in range(1, 31)],
    )  # 9.5 down to 2.15: far above the target 0.1
    at = _open_live(monkeypatch, runs_dir, live_log=True, live_smoothing=0.0)
    _, fig = _trace(_figures(at), "train")
    y = fig["layout"]["yaxis"]
    assert y["type"] == "log"
    assert np.log10(2.0) < y["range"][0] < np.log10(2.15) and np.log10(10) < y["range"][1] < 1.1
    # no target line far below the curve (the baselines' lines are inside its range)
    assert all(s["y0"] != 0.1 for s in fig["layout"].get("shapes", []))
    assert "target 0.1" in fig["layout"]["title"]["text"]
    assert y["ticktext"] and all(len(t) <= 4 and not t.endswith("0000") for t in y["ticktext"])
    assert "5" in y["ticktext"] and "0.1" not in y["ticktext"] and "1" not in y["ticktext"]


def test_log_scale_target_label_sits_on_its_line(runs_dir, tiny_config, monkeypatch):
    run = RunDir.create(runs_dir, "near", tiny_config.replace(target_loss=0.5))
    run.write_status(state="completed")
    _write(
        run, [dict(kind="train", step=s, time=1000.0 + s, loss=3.0 * 0.9**s) for s in range(1, 21)]
    )  # down to 0.36, below the target
    at = _open_live(monkeypatch, runs_dir, live_log=True, live_smoothing=0.0)
    _, fig = _trace(_figures(at), "train")
    line = next(s for s in fig["layout"]["shapes"] if s["xref"] == "paper")
    label = next(a for a in fig["layout"]["annotations"] if a["text"] == "target loss 0.5")
    assert line["y0"] == 0.5
    assert label["y"] == pytest.approx(np.log10(0.5))  # annotations on a log axis are in log10
    assert fig["layout"]["yaxis"]["range"][0] < np.log10(0.36)


def test_legend_of_several_runs_is_clear_of_the_title(runs_dir, tiny_config, monkeypatch):
    for name in ("first_run", "second_run"):
        run = RunDir.create(runs_dir, name, tiny_config)
        run.write_status(state="completed")
        _train_lines(run, 10)
    at = _open_live(monkeypatch, runs_dir, live_runs=["first_run", "second_run"])
    _, fig = _trace(_figures(at), "first_run train")
    legend = fig["layout"]["legend"]
    assert fig["layout"]["showlegend"] and fig["layout"]["title"]["text"] == "Loss"
    # At the bottom of the figure, in a margin of its own: the title stays alone at the top.
    assert (legend["yref"], legend["y"], legend["yanchor"]) == ("container", 0, "bottom")
    assert fig["layout"]["margin"]["b"] > 50


# --- issue 13: copy rate, best val, overfitting ---------------------------------------------
def _overfitting_run(runs_dir, tiny_config, patience=0, copy=True):
    """Train loss falls all along; val loss is best at step 30 and rises at 40, 50, 60."""
    run = RunDir.create(
        runs_dir,
        "overfit",
        tiny_config.replace(max_steps=100, early_stop_patience=patience, target_loss=0.0),
    )
    run.write_status(state="completed")
    records = [
        dict(kind="train", step=s, time=1000.0 + s, loss=3.0 - s * 0.02) for s in range(1, 61)
    ]
    for step, val, rate in (
        (10, 2.9, 0.0),
        (20, 2.7, 0.01),
        (30, 2.6, 0.05),
        (40, 2.65, 0.2),
        (50, 2.7, 0.35),
        (60, 2.8, 0.5),
    ):
        records.append(
            dict(
                kind="eval",
                step=step,
                time=1000.0 + step,
                val_loss=val,
                **(dict(copy_rate=rate, longest_copy=step, copy_min_len=8) if copy else {}),
            )
        )
        records.append(
            dict(
                kind="sample",
                step=step,
                time=1000.0 + step,
                prompt="ROMEO:",
                text=f"\nline one at {step}\n  *two* <b>x</b>",
            )
        )
    _write(run, sorted(records, key=lambda r: r["step"]))
    return run


def test_copy_rate_best_val_and_overfitting(runs_dir, tiny_config, monkeypatch):
    _overfitting_run(runs_dir, tiny_config)
    at = _open_live(monkeypatch, runs_dir, live_smoothing=0.0)
    figures = _figures(at)
    copy, fig = _trace(figures, "copied %")
    assert copy["yaxis"] == "y2"
    np.testing.assert_allclose(_array(copy["y"]), [0, 1, 5, 20, 35, 50])
    np.testing.assert_array_equal(_array(copy["x"]), [10, 20, 30, 40, 50, 60])  # the loss chart's x
    assert fig["layout"]["yaxis2"]["title"]["text"] == "copied from training text (%)"
    best, _ = _trace(figures, "best val at step 30")
    assert _array(best["x"]).tolist() == [30] and _array(best["y"]).tolist() == [2.6]
    assert "Best val loss 2.6000 at step 30" in " ".join(c.value for c in at.caption)
    warning = " ".join(w.value for w in at.warning)
    assert "Overfitting since step 30" in warning and "3 evals" in warning


def test_no_overfitting_text_before_the_runs_patience(runs_dir, tiny_config, monkeypatch):
    _overfitting_run(runs_dir, tiny_config, patience=4, copy=False)  # 3 rises, patience 4
    at = _open_live(monkeypatch, runs_dir)
    assert not any("Overfitting" in w.value for w in at.warning)
    names = [t.get("name") for f in _figures(at) for t in f["data"]]
    assert "best val at step 30" in names and "copied %" not in names


def test_overlays_can_be_hidden(runs_dir, tiny_config, monkeypatch):
    _overfitting_run(runs_dir, tiny_config)
    at = _open_live(monkeypatch, runs_dir)
    at.pills(key="live_show").set_value(["val"]).run()
    names = [t.get("name") for f in _figures(at) for t in f["data"]]
    assert "val" in names and "copied %" not in names and "best val at step 30" not in names


# --- issue 14: sample timeline and the batch behind a step ------------------------------------
def test_sample_timeline_newest_first_with_val_loss_and_copy_rate(
    runs_dir, tiny_config, monkeypatch
):
    _overfitting_run(runs_dir, tiny_config)
    at = _open_live(monkeypatch, runs_dir)
    headings = [m.value for m in at.markdown if m.value.startswith("**step ")]
    assert headings[:2] == [
        "**step 60** · val loss 2.8000 · copied 50%",
        "**step 50** · val loss 2.7000 · copied 35%",
    ]
    assert len(headings) == 6
    # Verbatim in a code block: newlines kept, markdown and HTML characters not interpreted.
    assert at.code[0].value == "ROMEO:\nline one at 60\n  *two* <b>x</b>"
    assert at.tabs[0].label == "Sample timeline"


def test_batch_view_shows_tokens_with_their_losses(trained_run, monkeypatch):
    import types

    import torch

    from core.inspect import batch as inspect_batch

    x = torch.tensor([[27, 373, 11]])  # "<" first: escaped, never read as HTML
    monkeypatch.setattr(
        inspect_batch,
        "step_batches",
        lambda cfg, step, world_size, walker=None, segments=(): [
            types.SimpleNamespace(number=8, x=x, y=x + 1)
        ],
    )
    monkeypatch.setattr(inspect_batch, "batch_checksum", lambda xs: "feedc0de")
    monkeypatch.setattr(
        inspect_batch, "window_losses", lambda model, x, y, device: np.array([[0.5, 4.0, 9.5]])
    )
    at = _open_live(monkeypatch, trained_run.path.parent, selected_run="trained")
    at.number_input(key="live_batch_trained").set_value(3).run()
    captions = " ".join(c.value for c in at.caption)
    assert "Checksum feedc0de" in captions and "checkpoint of step 5" in captions
    shown = " ".join(h.proto.body for h in at.get("html"))
    assert "title='loss 0.50 nats'" in shown and ">&lt;</span>" in shown
    assert "title='loss 9.50 nats' style='background:rgba(214,39,40,0.75)'" in shown


def test_batch_view_with_core_inspect_batch(trained_run, monkeypatch):
    from core.data.walker import batch_checksum, step_batches

    at = _open_live(monkeypatch, trained_run.path.parent, selected_run="trained")
    at.number_input(key="live_batch_trained").set_value(7).run()
    assert not at.exception, at.exception
    cfg = trained_run.read_config()
    checksum = batch_checksum(b.x for b in step_batches(cfg, 7, 1))
    assert f"Checksum {checksum}" in " ".join(c.value for c in at.caption)
    assert "checkpoint of step 5" in " ".join(c.value for c in at.caption)
    spans = " ".join(h.proto.body for h in at.get("html"))
    assert spans.count("<div") == cfg.micro_batch_size * cfg.grad_accum_steps  # one per window
    assert spans.count("<span") == cfg.micro_batch_size * cfg.grad_accum_steps * cfg.seq_len


# --- issue 11: run controls ---------------------------------------------------------------------
def test_stop_on_the_live_page_writes_a_stop_request(runs_dir, tiny_config, monkeypatch, sleeper):
    run = RunDir.create(runs_dir, "busy", tiny_config.replace(max_steps=100))
    run.write_status(state="running", pid=sleeper.pid, started=time.time(), step=3)
    _train_lines(run, 3)
    at = _open_live(monkeypatch, runs_dir)
    assert at.button(key="live_resume_busy").disabled
    stop = at.button(key="live_stop_busy")
    assert not stop.disabled and not run.stop_requested()
    stop.click().run()
    assert not at.exception
    assert run.stop_requested()
    # at once, not after the final eval and checkpoint: "stopping", no ETA, Stop disabled
    assert _metric(at, "State") == "stopping"
    assert _metric(at, "ETA") == "–"
    assert "stopping: final eval, sample and checkpoint" in at.get("progress")[0].proto.text
    stop = at.button(key="live_stop_busy")
    assert stop.disabled and stop.label == "Stopping..."
    assert at.button(key="live_more_busy").disabled  # no Continue while it still trains
    # a second tab (a fresh session) sees the same
    again = _open_live(monkeypatch, runs_dir)
    assert _metric(again, "State") == "stopping" and again.button(key="live_stop_busy").disabled


def test_a_finished_run_points_to_the_run_the_queue_started_after_it(
    runs_dir, tiny_config, monkeypatch, sleeper
):
    ended = time.time() - 5
    first = RunDir.create(runs_dir, "first", tiny_config)
    first.write_status(state="stopped", step=3, ended=ended, reason="stopped by request")
    _train_lines(first, 3)
    after = RunDir.create(runs_dir, "second", tiny_config)
    after.write_status(state="running", pid=sleeper.pid, started=ended + 1, from_queue=ended + 1)
    unrelated = RunDir.create(runs_dir, "older", tiny_config)
    unrelated.write_status(state="completed", from_queue=ended - 600)
    at = _open_live(monkeypatch, runs_dir, **{"selected_run": "first"})
    at.multiselect(key="live_runs").set_value(["first"]).run()
    note = next(i.value for i in at.info if "The queue started the next run" in i.value)
    assert "second" in note
    at.button(key="live_next_first").click().run()
    assert not at.exception
    assert at.multiselect(key="live_runs").value == ["second"]


def test_resume_only_where_it_does_something(runs_dir, tiny_config, monkeypatch):
    from core.runs import launcher

    resumed = []
    monkeypatch.setattr(launcher, "resume", lambda run, max_steps=None: resumed.append(run.run_id))
    for name, state in (("done", "completed"), ("paused", "stopped"), ("early", "stopped")):
        run = RunDir.create(runs_dir, name, tiny_config)
        run.write_status(state=state, step=5)
        _train_lines(run, 5)
        if name != "early":  # no checkpoint: nothing to resume from
            run.checkpoint_dir.mkdir()
            run.checkpoint_path(5).write_bytes(b"")
    at = _open_live(monkeypatch, runs_dir, live_runs=["done", "paused", "early"])
    assert at.button(key="live_stop_paused").disabled
    assert at.button(key="live_resume_done").disabled
    assert at.button(key="live_resume_early").disabled
    at.button(key="live_resume_paused").click().run()
    assert resumed == ["paused"]


def test_open_in_playground_selects_the_run(trained_run, monkeypatch):
    at = _open_live(monkeypatch, trained_run.path.parent, selected_run="trained")
    at.button(key="live_play_trained").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Playground"
    assert at.selectbox(key="pg_run").value == "trained"


# --- issue 11 ask 5 and bug 9: the view survives navigation and reloads ------------------------
def test_view_survives_navigation_and_is_in_the_url(runs_dir, tiny_config, monkeypatch):
    for name in ("one", "two"):
        run = RunDir.create(runs_dir, name, tiny_config)
        run.write_status(state="completed")
        _train_lines(run, 10)
    at = _open_live(monkeypatch, runs_dir)
    at.multiselect(key="live_runs").set_value(["two", "one"]).run()
    at.segmented_control(key="live_x").set_value("tokens").run()
    at.slider(key="live_smoothing").set_value(0.8).run()
    at.toggle(key="live_log").set_value(True).run()
    at.pills(key="live_show").set_value(["val", "resumes"]).run()
    # The Live page's own parameters; another page's (the Runs page's `run`, which AppTest
    # keeps across switch_page where a browser drops it) are not its to delete.
    assert {k: v for k, v in at.query_params.items() if k != "run"} == {
        "runs": "two,one",
        "x": "tokens",
        "smooth": "0.8",
        "log": "1",
        "show": "val,resumes",
    }
    at.switch_page("views/runs.py").run()
    at.switch_page("views/live.py").run()
    assert at.multiselect(key="live_runs").value == ["two", "one"]
    assert at.segmented_control(key="live_x").value == "tokens"
    assert at.slider(key="live_smoothing").value == 0.8
    assert at.toggle(key="live_log").value is True
    assert at.pills(key="live_show").value == ["val", "resumes"]

    # A reload: a new session with only the URL.
    fresh = AppTest.from_file("../dashboard/app.py", default_timeout=30)
    fresh.run()
    fresh.query_params.update(runs="one,gone", x="time", smooth="0.3", log="1", show="best")
    fresh.switch_page("views/live.py").run()
    assert not fresh.exception
    assert fresh.multiselect(key="live_runs").value == ["one"]
    assert fresh.segmented_control(key="live_x").value == "time"
    assert fresh.slider(key="live_smoothing").value == 0.3
    assert fresh.pills(key="live_show").value == ["best"]


# --- issue 11 ask 7: system metrics -------------------------------------------------------------
def test_system_metrics_are_charted_beside_throughput(runs_dir, tiny_config, monkeypatch):
    run = RunDir.create(runs_dir, "sys", tiny_config)
    run.write_status(state="completed")
    _train_lines(run, 6)
    _write(
        run,
        [
            dict(
                kind="system",
                step=s,
                time=1000.0 + s,
                cpu_percent=95.0 + s,
                rss_mb=500.0 + s,
                **(dict(gpu_mem_mb=2048.0, gpu_util=80.0) if s > 3 else {}),
            )
            for s in range(1, 7)
        ],
    )
    at = _open_live(monkeypatch, runs_dir)
    cpu, fig = _trace(_figures(at), "CPU %")
    assert fig["layout"]["title"]["text"] == "CPU and memory"
    np.testing.assert_allclose(_array(cpu["y"]), 95.0 + np.arange(1, 7))
    memory, _ = _trace(_figures(at), "memory")
    assert (
        memory["yaxis"] == "y2"
        and fig["layout"]["yaxis2"]["title"]["text"] == "resident memory (MiB)"
    )
    gpu, gpu_fig = _trace(_figures(at), "GPU memory")
    assert gpu_fig["layout"]["title"]["text"] == "GPU" and _array(gpu["x"]).tolist() == [4, 5, 6]
    titles = [f["layout"].get("title", {}).get("text") for f in _figures(at)]
    # Two columns under the loss chart (listed column by column): throughput beside system.
    assert titles[1:] == [
        "Learning rate",
        "Throughput",
        "Step time",
        "Gradient norm",
        "CPU and memory",
        "GPU",
    ]


def test_continue_training_from_the_live_page(trained_run, monkeypatch, tmp_path):
    import shutil

    from core.runs import launcher

    runs = tmp_path / "more-runs"
    runs.mkdir()
    shutil.copytree(trained_run.path, runs / "trained")
    calls = []
    monkeypatch.setattr(
        launcher, "continue_run", lambda run, n, t: calls.append((run.run_id, n, t))
    )
    at = _open_live(monkeypatch, runs, selected_run="trained")
    assert at.button(key="live_resume_trained").disabled  # completed: Resume would do nothing
    assert at.number_input(key="live_more_steps_trained").value == 24  # twice max_steps
    at.number_input(key="live_more_steps_trained").set_value(30).run()
    at.button(key="live_more_go_trained").click().run()
    assert calls == [("trained", 30, 0.0)]


def test_continue_training_warns_when_another_run_trains(
    trained_run, monkeypatch, tmp_path, sleeper
):
    import shutil

    runs = tmp_path / "more-runs"
    runs.mkdir()
    shutil.copytree(trained_run.path, runs / "trained")
    at = _open_live(monkeypatch, runs, selected_run="trained")
    assert not [w for w in at.warning if "is training now" in w.value]
    busy = RunDir.create(runs, "busy", trained_run.read_config())
    busy.write_status(state="running", pid=sleeper.pid, started=time.time(), step=1)
    at.run()
    warning = next(w.value for w in at.warning if "is training now" in w.value)
    assert warning.startswith("busy is training now: continuing starts beside it")
