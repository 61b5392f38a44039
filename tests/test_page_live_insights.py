"""The Live page's additions to the loss chart through AppTest: baselines with their sources
and val loss in bits per character."""

import json
import os

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
