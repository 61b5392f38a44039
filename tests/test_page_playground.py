"""Playground page (AppTest): no runs, no checkpoint, generation, next-token chart, bad input."""

import base64
import json

import numpy as np

from core.rundir import RunDir

PAGE = "views/playground.py"


def texts(at) -> str:
    return " ".join(str(e.value) for kind in ("info", "error", "warning", "caption")
                    for e in at.get(kind))


def decode(values):
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"]).tolist()
    return list(values)


def test_no_runs(open_app, runs_dir):
    at = open_app(PAGE, runs_dir)
    assert not at.exception
    assert "No runs" in texts(at)


def test_run_without_checkpoint(open_app, runs_dir, tiny_config):
    RunDir.create(runs_dir, "fresh", tiny_config)
    at = open_app(PAGE, runs_dir)
    assert not at.exception
    assert "has no checkpoint yet" in texts(at)


def test_unreadable_checkpoint_is_an_error_not_a_traceback(open_app, runs_dir, tiny_config):
    run = RunDir.create(runs_dir, "broken", tiny_config)
    run.checkpoint_dir.mkdir()
    (run.checkpoint_dir / "step_0000005.pt").write_bytes(b"not a checkpoint")
    at = open_app(PAGE, runs_dir)
    assert not at.exception
    assert "Cannot load this checkpoint" in texts(at)


def test_controls_generate_and_next_token_chart(open_app, trained_run):
    at = open_app(PAGE, trained_run.path.parent)
    assert not at.exception
    s = at.slider(key="pg_max_new")
    assert (s.value, s.min, s.max) == (90, 10, 200)
    t = at.slider(key="pg_temperature")
    assert (t.value, t.min, t.max) == (0.5, 0.1, 2.0)
    k = at.slider(key="pg_top_k")
    assert (k.value, k.min, k.max) == (10, 0, 100)
    assert at.selectbox(key="pg_ckpt").value == "latest"

    # Markdown characters in the prompt must come back verbatim, never reformatted.
    prompt = "*ROMEO* _said_ # $x$ <b>:"
    at.text_area(key="pg_prompt").set_value(prompt)
    at.slider(key="pg_max_new").set_value(10)
    at.button(key="pg_generate").click().run()
    assert not at.exception
    result = at.session_state.pg_result
    assert 1 <= len(result["events"]) <= 10
    shown = [e.value for e in at.text]
    assert any(v.startswith(prompt) and v == prompt + result["text"] for v in shown)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tokens"] == str(len(result["events"]))
    assert "Time to first token" in metrics and "Tokens/s" in metrics

    # Same seed: the same text again; the coloured view escapes the model's text.
    at.checkbox(key="pg_colour").check()
    at.button(key="pg_generate").click().run()
    assert at.session_state.pg_result["text"] == result["text"]
    coloured = at.get("html")[0].proto.body
    assert "<span title=" in coloured and "*ROMEO* _said_ # $x$ &lt;b&gt;:" in coloured
    assert "<b>" not in coloured

    chart = at.get("plotly_chart")[0]
    fig = json.loads(chart.proto.spec)
    bars = fig["data"]
    assert len(bars) == 2  # at the chosen temperature and at T = 1
    probs = decode(bars[0]["x"])
    assert len(probs) == 10 and probs == sorted(probs, reverse=True) and max(probs) <= 1
    assert all(label.split(". ", 1)[0].isdigit() for label in decode(bars[0]["y"]))
    assert any("Entropy" in m.label for m in at.metric)


def test_empty_prompt_is_a_clear_error(open_app, trained_run):
    at = open_app(PAGE, trained_run.path.parent)
    at.text_area(key="pg_prompt").set_value("   ").run()
    assert not at.exception
    assert "prompt is empty" in texts(at)
