"""The Live page's additions to the loss chart through AppTest: baselines with their sources
and val loss in bits per character."""

import base64
import json
import os
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data.baselines import val_size
from core.store.rundir import RunDir


def _write(run: RunDir, records: list[dict]) -> None:
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _curve(steps=40, evals=(10, 20, 30, 40)) -> list[dict]:
    records = [
        dict(kind="train", step=s, time=1000.0 + s, loss=10.0 * s**-0.3 + 2.0, lr=1e-3)
        for s in range(1, steps + 1)
    ]
    return records + [
        dict(kind="eval", step=s, time=1000.0 + s, val_loss=6.0 - s / 20) for s in evals
    ]


def _open(monkeypatch, runs_dir, **state) -> AppTest:
    monkeypatch.setenv("GPT_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file("../dashboard/app.py", default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("views/live.py").run()
    assert not at.exception, at.exception
    return at


def _loss_figure(at) -> dict:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("live_chart_loss"))
    return json.loads(chart.proto.spec)


def _array(value) -> np.ndarray:
    """A plotly 7 array from a figure spec: base64 {dtype, bdata} or a plain list."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def _captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def test_baselines_on_tiny_shakespeare_are_labelled_with_their_source(
    runs_dir, tiny_config, shakespeare_path, monkeypatch
):
    cfg = tiny_config.replace(data=str(shakespeare_path))
    run = RunDir.create(runs_dir, "shakes", cfg)
    run.write_status(state="completed")
    _write(run, _curve())
    at = _open(monkeypatch, runs_dir)
    fig = _loss_figure(at)
    labels = [a["text"] for a in fig["layout"]["annotations"]]
    for name in ("unigram model", "bigram model", "nanoGPT char-level 4.55"):
        assert any(label.startswith(name) for label in labels), labels
    assert "GPT-2 124M, no fine-tuning 4.03" in labels
    text = _captions(at)
    assert "Kneser-Ney" in text and "nanoGPT issue 210" in text
    assert "last 10% of the characters" in text  # how our split differs from nanoGPT's
    tokens, chars = val_size(str(shakespeare_path), cfg.val_fraction)
    assert f"latest val loss 4.0000 = {4.0 * tokens / chars / 0.6931471805599453:.3f}" in text
    val = next(t for t in fig["data"] if t.get("name") == "val")
    assert "bits/char" in val["hovertemplate"] and len(val["customdata"]) == 4


def test_baselines_can_be_switched_off_and_own_data_has_no_published_lines(
    runs_dir, tiny_config, monkeypatch
):
    run = RunDir.create(runs_dir, "own", tiny_config)
    run.write_status(state="completed")
    _write(run, _curve())
    at = _open(monkeypatch, runs_dir)
    labels = [a["text"] for a in _loss_figure(at)["layout"]["annotations"]]
    assert any(label.startswith("bigram model") for label in labels)
    assert not any("nanoGPT" in label for label in labels)
    at = _open(monkeypatch, runs_dir, live_show=["val"])
    assert not any("model" in a["text"] for a in _loss_figure(at)["layout"].get("annotations", []))
    assert "Kneser-Ney" not in _captions(at)


def test_a_run_whose_data_is_gone_says_so_and_still_draws(runs_dir, tiny_config, monkeypatch):
    run = RunDir.create(runs_dir, "gone", tiny_config)
    run.write_status(state="completed")
    _write(run, _curve())
    os.remove(tiny_config.data)
    at = _open(monkeypatch, runs_dir)
    assert "No reference lines: gone: its data cannot be read" in _captions(at)
    assert _loss_figure(at)["data"]  # the curves are still there
    assert any("Cannot show the batch" in w.value for w in at.warning)  # and the page works


@pytest.fixture(autouse=True)
def _fresh_cache():
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _law_run(runs_dir, tiny_config, name="fc", done=200, max_steps=400, noise=0.03):
    """A stopped run whose losses follow the forecast's law with known parameters (and a
    checkpoint at its last step, so it can be continued)."""
    from core.dynamics.forecast import LawFit, run_areas

    cfg = tiny_config.replace(max_steps=max_steps, warmup_steps=20)
    run = RunDir.create(runs_dir, name, cfg)
    run.write_status(state="stopped", max_steps=max_steps, step=done)
    areas = run_areas(cfg)
    law = LawFit(3.0, 2.5, 0.5, 0.5 / areas.s2[-1], 0.0)
    rng = np.random.default_rng(0)
    train = [
        dict(
            kind="train",
            step=s,
            time=1000.0 + s,
            tokens_seen=256 * s,
            lr=1e-3,
            loss=float(law.predict(areas.s1[s - 1], areas.s2[s - 1]) + rng.normal(0, noise)),
        )
        for s in range(1, done + 1)
    ]
    evals = [
        dict(
            kind="eval",
            step=s,
            time=1000.0 + s,
            val_loss=float(law.predict(areas.s1[s], areas.s2[s]) + 0.2),
        )
        for s in range(20, done + 1, 20)
    ]
    _write(run, train + evals)
    run.checkpoint_dir.mkdir(exist_ok=True)
    run.checkpoint_path(done).write_bytes(b"")  # only its name is read here
    return run, float(law.predict(areas.s1[max_steps - 1], areas.s2[max_steps - 1]))


def test_forecast_line_band_and_statement(runs_dir, tiny_config, monkeypatch):
    _, truth = _law_run(runs_dir, tiny_config)
    at = _open(monkeypatch, runs_dir)
    fig = _loss_figure(at)
    line = next(t for t in fig["data"] if t.get("name") == "train forecast")
    assert line["line"]["dash"] == "dash"
    x = _array(line["x"])
    assert x[-1] == 400 and x[0] <= 200  # from the last fitted point to max_steps
    bands = [t for t in fig["data"] if t.get("fill") == "tonexty"]
    assert len(bands) == 2  # train and val
    assert any(t.get("name") == "val forecast" for t in fig["data"])
    text = _captions(at)
    found = re.search(r"at step 400: final train loss about ([\d.]+) \(([\d.]+)-([\d.]+)\)", text)
    assert found, text
    mean, lo, hi = map(float, found.groups())
    assert abs(mean - truth) < 0.1 and lo <= truth + 0.01 and truth - 0.01 <= hi
    assert "Tissue et al. 2024" in text and "val loss about" in text


def test_no_forecast_before_enough_points_says_when(runs_dir, tiny_config, monkeypatch):
    _law_run(runs_dir, tiny_config, done=30)
    at = _open(monkeypatch, runs_dir)
    assert "No forecast yet: the forecast is drawn from step 40 (now 30)" in _captions(at)
    assert not any("forecast" in (t.get("name") or "") for t in _loss_figure(at)["data"])


def test_continue_training_shows_the_forecast_for_the_new_max_steps(
    runs_dir, tiny_config, monkeypatch
):
    _law_run(runs_dir, tiny_config, done=400, max_steps=400)
    at = _open(monkeypatch, runs_dir)
    at.number_input(key="live_more_steps_fc").set_value(800).run()
    text = _captions(at)
    assert "Forecast at step 800: final train loss about" in text, text
    assert "fitted to the steps so far" in text
    at.number_input(key="live_more_steps_fc").set_value(1600).run()
    assert "Forecast at step 1,600" in _captions(at)


def test_epoch_markers_and_the_repetition_sentence(runs_dir, tiny_config, monkeypatch):
    from core.data.repetition import steps_per_epoch, train_tokens

    cfg = tiny_config.replace(max_steps=200)
    run = RunDir.create(runs_dir, "ep", cfg)
    run.write_status(state="completed", max_steps=200)
    _write(run, _curve())
    per_epoch = steps_per_epoch(train_tokens(cfg.data, cfg.val_fraction), cfg)
    at = _open(monkeypatch, runs_dir)
    fig = _loss_figure(at)
    marks = {a["text"]: a["x"] for a in fig["layout"]["annotations"] if "epochs" in a["text"]}
    assert marks["4 epochs"] == pytest.approx(4 * per_epoch)
    assert marks["16 epochs"] == pytest.approx(16 * per_epoch)
    text = _captions(at)
    assert f"{40 / per_epoch:,.1f} epochs seen so far, {200 / per_epoch:,.1f} planned" in text
    assert "Muennighoff et al. 2023" in text


def test_noise_scale_chart_and_advice(runs_dir, tiny_config, monkeypatch):
    rng = np.random.default_rng(0)
    records = []
    for s in range(1, 61):  # |G|^2 = 1, tr(Sigma) = 500 tokens: B_simple = 500
        small = np.sqrt(1 + 500 / 128 + rng.normal(0, 0.3))  # one micro batch: 4 x 32 tokens
        big = np.sqrt(1 + 500 / 256 + rng.normal(0, 0.1))  # the step: 2 micro batches
        records.append(
            dict(
                kind="train",
                step=s,
                time=1000.0 + s,
                loss=5.0,
                grad_norm=big,
                micro_grad_norm=small,
            )
        )
    run = RunDir.create(runs_dir, "noisy", tiny_config)
    run.write_status(state="completed")
    _write(run, records)
    plain = RunDir.create(runs_dir, "plain", tiny_config.replace(grad_accum_steps=1))
    plain.write_status(state="completed")
    _write(plain, _curve())
    at = _open(monkeypatch, runs_dir, live_runs=["noisy", "plain"])
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("live_chart_noise"))
    fig = json.loads(chart.proto.spec)
    assert fig["layout"]["yaxis"]["type"] == "log"
    scale = _array(fig["data"][0]["y"])
    assert 300 < scale[-1] < 800  # about 500 tokens
    assert any(a["text"] == "noisy batch 256 tokens" for a in fig["layout"]["annotations"])
    text = _captions(at)
    assert "noisy: Critical batch about" in text and "this run uses 256 tokens a step" in text
    assert "plain cannot estimate it" in text and "grad_accum_steps to 2 or more" in text
    assert "McCandlish et al. 2018" in text


def test_a_spike_is_marked_and_opens_its_batch(runs_dir, tiny_config, monkeypatch):
    rng = np.random.default_rng(0)
    loss = 3 + 2 * np.exp(-np.arange(120) / 60) + rng.normal(0, 0.03, 120)
    loss[80] += 1.5  # the step whose batch was one repeated token
    run = RunDir.create(runs_dir, "spiky", tiny_config.replace(max_steps=120))
    run.write_status(state="completed", max_steps=120)
    _write(
        run,
        [
            dict(kind="train", step=s + 1, time=1000.0 + s, loss=float(v))
            for s, v in enumerate(loss)
        ],
    )
    at = _open(monkeypatch, runs_dir)
    marks = next(t for t in _loss_figure(at)["data"] if t.get("name") == "spikes")
    assert _array(marks["x"]).tolist() == [81]
    assert "Spikes at steps 81." in _captions(at) and "PaLM" in _captions(at)
    at.selectbox(key="live_spike_pick").set_value(81).run()
    assert at.number_input(key="live_batch_spiky").value == 81  # the batch tab shows step 81


def test_replay_a_spike_with_the_weights_from_before(runs_dir, trained_run, monkeypatch):
    import shutil

    cfg = trained_run.read_config().replace(max_steps=120)
    rng = np.random.default_rng(0)
    loss = 6 + rng.normal(0, 0.03, 120)
    loss[80] += 3.0
    run = RunDir.create(runs_dir, "replayed", cfg)
    run.write_status(state="completed", max_steps=120)
    _write(
        run,
        [
            dict(kind="train", step=s + 1, time=1000.0 + s, loss=float(v))
            for s, v in enumerate(loss)
        ],
    )
    run.checkpoint_dir.mkdir(exist_ok=True)
    shutil.copy(trained_run.checkpoints()[-1][1], run.checkpoint_path(50))
    at = _open(monkeypatch, runs_dir)
    at.selectbox(key="live_spike_pick").set_value(81).run()
    at.button(key="live_replay").click().run()
    assert not at.exception, at.exception
    shown = " ".join(i.value for i in at.info)
    assert "under the weights of step 50" in shown and "likely cause" in shown
