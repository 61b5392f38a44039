"""Playground page (AppTest): runs without checkpoints, generation, clickable tokens with their
popovers (newlines included), the next-token view with top-k/top-p and the training text's own
continuation, copy marking on a model that memorized its text, time travel across checkpoints,
Cancel, bad and over-long prompts, and runs from before snapshots and best.pt existed."""

import base64
import json
import os
import re

import numpy as np
import pytest
import torch
from inspect_runs import PROMPT, make_old_run, memorized_run, untrained_run

from core.data.corpus import load_index
from core.data.dataset import get_tokenizer
from core.data.tokens import encode_prompt
from core.generate import sampling
from core.store.checkpoint import load_model
from core.store.rundir import RunDir
from dashboard import token_view as tv
from dashboard.training_text import copy_report

PAGE = "views/playground.py"
# A newline token: a visible '↵' box with its popover, then the real line break after the box.
NEWLINE_BOX = re.compile(
    r'<span class="t[^"]*" tabindex="0" style="background:[^"]+">'
    r'<span class="g">↵</span><span class="pop">(.*?)</span></span>\n'
)


def texts(at) -> str:
    return " ".join(
        str(e.value)
        for kind in ("info", "error", "warning", "caption", "markdown")
        for e in at.get(kind)
    )


def decode(values):
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"]).tolist()
    return list(values)


def frame(at, column: str):
    """The first st.dataframe with this column, as a pandas DataFrame."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def token_view(at) -> str:
    """The body of the st.html element holding the tokens (not the legend)."""
    views = [h.proto.body for h in at.get("html") if 'class="tv"' in h.proto.body]
    assert views, "no token view on the page"
    return views[0]


@pytest.fixture(scope="module")
def memorized():
    return memorized_run()


def generate(at, prompt: str = PROMPT, n: int = 20, **widgets):
    at.text_area(key="pg_prompt").set_value(prompt)
    at.slider(key="pg_max_new").set_value(n)
    for key, value in widgets.items():
        widget = at.toggle(key=key) if key == "pg_copy" else at.checkbox(key=key)
        widget.set_value(value)
    return at.button(key="pg_generate").click().run()


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
    assert at.selectbox(key="pg_ckpt").options[1].startswith("best (val): step ")

    # Markdown characters in the prompt must come back verbatim, never reformatted.
    prompt = "*ROMEO* _said_ # $x$ <b>:"
    generate(at, prompt, 10)
    assert not at.exception
    result = at.session_state.pg_result
    assert 1 <= len(result["events"]) <= 10 and result["done"] and not result.get("cancelled")
    shown = [e.value for e in at.text]
    assert any(v.startswith(prompt) and v == prompt + result["text"] for v in shown)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tokens"] == str(len(result["events"]))
    assert "Time to first token" in metrics and "Tokens/s" in metrics

    # Same seed: the same text again; the token view escapes the model's text.
    at.checkbox(key="pg_colour").check()
    at.button(key="pg_generate").click().run()
    assert at.session_state.pg_result["text"] == result["text"]
    coloured = token_view(at)
    assert 'tabindex="0"' in coloured and "*ROMEO* _said_ # $x$ &lt;b&gt;:" in coloured
    assert "<b>:" not in coloured
    assert coloured.count('class="pop"') == sum(1 for e in result["events"] if e["text"])
    legend = [h.proto.body for h in at.get("html") if 'class="tvl"' in h.proto.body]
    assert legend and "probability 0%" in legend[0] and "100%" in legend[0]

    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    raw, sampled = fig["data"]
    probs = decode(raw["x"])
    assert len(probs) == 10 and probs == sorted(probs, reverse=True) and max(probs) <= 1
    assert all(label.split(". ", 1)[0].isdigit() for label in decode(raw["y"]))
    assert sum(decode(sampled["x"])) == pytest.approx(1.0, abs=1e-4)  # top-k 10 of 10 shown
    assert any("Entropy" in m.label for m in at.metric)


def test_every_token_has_a_popover_newlines_included(open_app, memorized):
    at = open_app(PAGE, memorized.path.parent)
    generate(at, n=20, pg_colour=True)
    assert not at.exception
    events = at.session_state.pg_result["events"]
    assert any(e["text"] == "\n" for e in events)  # a small model's favourite token
    body = token_view(at)
    boxes = NEWLINE_BOX.findall(body)
    assert len(boxes) == sum(e["text"] == "\n" for e in events)
    popover = boxes[0]
    first_newline = next(e for e in events if e["text"] == "\n")
    assert f"p = <b>{tv.fmt_prob(first_newline['prob'])}</b>" in popover
    assert "log p = " in popover and "top alternatives" in popover
    alt_text, alt_p = first_newline["top"][1]
    assert tv.readable(alt_text) in popover and tv.fmt_prob(alt_p) in popover


def test_copy_marking_on_a_model_that_memorized_its_text(open_app, memorized):
    at = open_app(PAGE, memorized.path.parent)
    generate(at, n=30, pg_copy=True)
    assert not at.exception
    ids = [e["id"] for e in at.session_state.pg_result["events"]]
    index = load_index(memorized.read_config().data, memorized.read_config().val_fraction)
    stats = index.copy_stats(ids, 8)
    assert stats.share > 0.5  # it recites the text it was trained on
    body = token_view(at)
    assert body.count('class="t copy"') == sum(s.length for s in stats.spans if s.split == "train")
    assert "Copied from the training text" in body and "tiny.txt line" in body
    assert "First Citizen" in body  # the speaker, and the context lines
    summary = next(m.value for m in at.markdown if "lie in copied spans" in m.value)
    longest = max(s.length for s in stats.spans)
    assert f"{stats.share:.0%} of the generated tokens" in summary
    assert f"the longest is {longest} tokens (lines " in summary
    spans = frame(at, "found in")
    assert list(spans["found in"]) == ["training text"] * len(stats.spans)
    assert any("copied from the training text" in h.proto.body for h in at.get("html"))

    at.slider(key="pg_copy_min").set_value(32).run()  # no span that long: marks go, text stays
    assert "No span of 32 or more generated tokens" in texts(at)
    assert 'class="t copy"' not in token_view(at)


def test_spans_only_in_the_held_out_text_are_labelled_apart(memorized):
    cfg = memorized.read_config()
    index = load_index(cfg.data, cfg.val_fraction)
    ids = index.val.tokens[10:40].tolist()  # a passage of the val split: never trained on
    report = copy_report(index, ids, 8)
    assert report.rows and all(r["found in"] == "also in held-out text" for r in report.rows)
    assert "only in the held-out text" in report.summary
    events = [dict(text=f"t{i}", prob=0.5, top=[], eot=False, id=t) for i, t in enumerate(ids)]
    body = tv.render(tv.generated_cells(events, True, report.notes))
    assert 'class="t held"' in body and "Also in held-out text" in body
    assert 'class="t copy"' not in body


def test_next_token_view_top_k_top_p_log_scale_and_training_text(open_app, memorized):
    at = open_app(PAGE, memorized.path.parent)
    at.text_area(key="pg_prompt").set_value(PROMPT + "\nBefore we")
    at.slider(key="pg_temperature").set_value(1.0)
    at.slider(key="pg_top_k").set_value(3)
    at.checkbox(key="pg_nt_log").check().run()
    assert not at.exception
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    raw, sampled = (decode(t["x"]) for t in fig["data"])
    model = load_model(memorized.latest_checkpoint()).model
    prompt_ids, _ = encode_prompt(PROMPT + "\nBefore we", model.config.block_size)
    logits = sampling.next_token_logits(model, prompt_ids)
    expected = sampling.probabilities(logits, 1.0, 3, 1.0)
    assert sum(p > 0 for p in sampled) == 3 and sum(sampled) == pytest.approx(1.0, abs=1e-5)
    top = torch.topk(sampling.probabilities(logits, 1.0), 10)
    assert raw == pytest.approx(top.values.tolist(), rel=1e-4)
    assert sampled == pytest.approx(expected[top.indices].tolist(), rel=1e-4, abs=1e-7)
    assert fig["layout"]["xaxis"]["type"] == "log"
    labels = fig["layout"]["xaxis"]["ticktext"]
    assert labels[-3:] == ["1%", "10%", "100%"] and "0%" not in labels
    assert len(set(labels)) == len(labels)  # every tick says something different
    assert at.metric[3].value == "3"  # tokens left to sample from

    cfg = memorized.read_config()
    cont = load_index(cfg.data, cfg.val_fraction).continuation(prompt_ids, 10)
    line = next(m.value for m in at.markdown if m.value.startswith("The training text continues"))
    assert f"after the prompt's last {cont.suffix_len} tokens" in line
    assert f"{cont.count:,} occurrence" in line
    table = frame(at, "count")
    assert list(table["id"]) == cont.tokens and list(table["count"]) == cont.counts


def test_append_buttons_step_through_a_continuation(open_app, memorized):
    at = open_app(PAGE, memorized.path.parent)
    at.text_area(key="pg_prompt").set_value(PROMPT).run()
    at.button(key="pg_append_0").click().run()
    assert at.text_area(key="pg_prompt").value == PROMPT + "\n"  # the model's top token
    at.button(key="pg_append_0").click().run()
    assert at.text_area(key="pg_prompt").value == PROMPT + "\nBefore"
    assert not at.exception


def test_time_travel_generates_from_each_checkpoint(open_app, memorized):
    at = open_app(PAGE, memorized.path.parent)
    chosen = at.multiselect(key="pg_tt_many").value
    assert chosen == ["step 0 (snapshot)", "step 30 (snapshot)", "step 90 (snapshot)", "step 120"]
    at.slider(key="pg_max_new").set_value(20)
    at.toggle(key="pg_copy").set_value(True)
    at.button(key="pg_tt_go").click().run()
    assert not at.exception
    items = at.session_state.pg_tt_result["items"]
    assert [i["step"] for i in items] == [0, 30, 90, 120]
    headers = [m.value for m in at.markdown if m.value.startswith("**step ")]
    assert headers == [
        "**step 0** (snapshot)",
        "**step 30** (snapshot)",
        "**step 90** (snapshot)",
        "**step 120**",
    ]
    val = {e.value for e in at.caption if e.value.startswith("val loss")}
    assert "val loss not measured" in val  # step 0: before any eval
    assert any(v[9:].replace(".", "").isdigit() for v in val)
    assert items[0]["text"] != items[-1]["text"]  # noise at step 0, recitation at the end
    assert sum("lie in copied spans" in e.value for e in at.caption) >= 1
    assert not any("turn on snapshot_interval" in e.value for e in at.caption)


def test_cancel_keeps_the_text_so_far(open_app, memorized, monkeypatch):
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    real = sampling.stream_tokens

    def interrupted(*args, **kwargs):  # as a click on Cancel ends the run: at the next redraw
        for i, event in enumerate(real(*args, **kwargs)):
            yield event
            if i == 2:
                raise StopException()

    monkeypatch.setattr(sampling, "stream_tokens", interrupted)
    at = open_app(PAGE, memorized.path.parent)
    generate(at, n=50)
    assert not at.exception
    assert at.button(key="pg_cancel")  # shown while generating
    at.button(key="pg_cancel").click().run()
    result = at.session_state.pg_result
    assert len(result["events"]) == 3 and result["cancelled"] == "button"
    assert "Cancelled after 3 of 50 tokens" in texts(at)
    assert any(e.value == PROMPT + result["text"] for e in at.text)


def test_a_bad_prompt_keeps_the_previous_result(open_app, memorized):
    at = open_app(PAGE, memorized.path.parent)
    generate(at, n=10)
    text = at.session_state.pg_result["text"]
    at.text_area(key="pg_prompt").set_value("   ").run()
    assert not at.exception
    assert "prompt is empty" in texts(at)
    assert at.button(key="pg_generate").disabled
    assert any(e.value == PROMPT + text for e in at.text)  # still there
    assert "Fix the prompt" in texts(at)


def test_an_over_long_prompt_marks_what_the_model_saw(open_app, memorized):
    at = open_app(PAGE, memorized.path.parent)
    long_prompt = "one two three four five six seven eight nine ten " * 6  # context: 32 tokens
    ids, dropped = encode_prompt(long_prompt, 32)
    generate(at, long_prompt, 10, pg_colour=True)
    assert not at.exception
    assert dropped > 20 and f"the first {dropped} are dropped" in texts(at)
    body = token_view(at)
    dropped = re.search(
        r'<span class="dropped"[^>]*>(.*?)</span><span class="pr">(.*?)</span>', body, re.S
    )
    assert dropped and dropped.group(1) + dropped.group(2) == long_prompt
    assert dropped.group(2) == get_tokenizer().decode(ids)  # exactly what the model read


def test_a_run_from_before_snapshots_and_best_checkpoints(open_app, runs_dir, trained_run):
    old = make_old_run(trained_run, runs_dir)
    at = open_app(PAGE, runs_dir)
    assert not at.exception
    assert [o for o in at.selectbox(key="pg_ckpt").options if "best" in o] == []
    assert "turn on snapshot_interval for more points in time" in texts(at)
    assert at.multiselect(key="pg_tt_many").value == [f"step {s}" for s, _ in old.checkpoints()]
    at.button(key="pg_tt_go").click().run()
    assert len(at.session_state.pg_tt_result["items"]) == len(old.checkpoints())
    generate(at, "ROMEO:", 10, pg_copy=True)
    assert not at.exception and at.session_state.pg_result["done"]


def test_a_vanished_data_file_is_said_and_the_rest_works(open_app, runs_dir, tiny_config):
    untrained_run(runs_dir, tiny_config)
    os.remove(tiny_config.data)
    at = open_app(PAGE, runs_dir)
    generate(at, "ROMEO:", 10, pg_copy=True)
    assert not at.exception
    assert at.session_state.pg_result["done"] and at.session_state.pg_result["events"]
    assert "training text of this run cannot be read" in texts(at)
    assert "data file of this run is missing" in texts(at)
    assert at.get("plotly_chart")  # the next-token view still draws


def test_settings_survive_a_page_switch_and_a_reload(open_app, trained_run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    at = open_app(PAGE, trained_run.path.parent)
    at.text_area(key="pg_prompt").set_value("JULIET:")
    at.slider(key="pg_temperature").set_value(1.2)
    at.slider(key="pg_top_k").set_value(40)
    at.checkbox(key="pg_colour").check()
    at.checkbox(key="pg_stop_eot").uncheck()
    at.toggle(key="pg_copy").set_value(True).run()
    at.slider(key="pg_copy_min").set_value(12).run()
    expected = {
        "pg_prompt": "JULIET:",
        "pg_temperature": 1.2,
        "pg_top_k": 40,
        "pg_colour": True,
        "pg_stop_eot": False,
        "pg_copy": True,
        "pg_copy_min": 12,
    }
    at.switch_page("views/runs.py").run()
    at.switch_page(PAGE).run()
    assert not at.exception
    for key, value in expected.items():
        assert at.session_state[key] == value, key
    assert at.slider(key="pg_temperature").value == 1.2 and at.checkbox(key="pg_colour").value
    # a reload (a fresh session) with the page's URL shows the same settings
    url = dict(at.query_params)
    assert url["temperature"] == "1.2" and url["stop_eot"] == "0" and url["run"]
    assert "max_new" not in url  # defaults stay out of the URL
    monkeypatch.setenv("GPT_RUNS_DIR", str(trained_run.path.parent))
    again = AppTest.from_file("../dashboard/app.py", default_timeout=60)
    again.query_params.update(url)
    again.run()
    again.switch_page(PAGE).run()
    assert not again.exception
    for key, value in expected.items():
        assert again.session_state[key] == value, key
    assert not again.warning  # no "default value but also set via Session State" warning


def test_time_travel_follows_new_checkpoints_until_chosen_by_hand(open_app, runs_dir, trained_run):
    import shutil

    run = RunDir.create(runs_dir, "growing", trained_run.read_config())
    run.checkpoint_dir.mkdir(parents=True)
    steps = [s for s, _ in trained_run.checkpoints()]
    first, rest = trained_run.checkpoints()[:1], trained_run.checkpoints()[1:]
    for s, p in first:
        shutil.copy(p, run.checkpoint_path(s))
    at = open_app(PAGE, runs_dir)
    assert at.multiselect(key="pg_tt_many").value == [f"step {steps[0]}"]
    for s, p in rest:  # the run trains on: more checkpoints appear
        shutil.copy(p, run.checkpoint_path(s))
    at.run()
    assert at.multiselect(key="pg_tt_many").value[-1] == f"step {steps[-1]}"
    at.multiselect(key="pg_tt_many").set_value([f"step {steps[0]}"]).run()  # by hand
    at.run()
    assert at.multiselect(key="pg_tt_many").value == [f"step {steps[0]}"]


def test_model_info_and_playground_follow_the_run_chosen_elsewhere(open_app, runs_dir, trained_run):
    import shutil

    for name in ("alpha", "beta"):
        shutil.copytree(trained_run.path, runs_dir / name)
    at = open_app("views/model_info.py", runs_dir)
    first = at.selectbox(key="mi_run").value
    other = "alpha" if first == "beta" else "beta"
    at.session_state["selected_run"] = other  # as Runs or Live select a run
    at.switch_page("views/model_info.py").run()
    assert at.selectbox(key="mi_run").value == other
    at.switch_page(PAGE).run()
    assert at.selectbox(key="pg_run").value == other


def test_generate_says_when_a_training_run_slows_it(open_app, runs_dir, trained_run):
    import shutil
    import subprocess
    import time

    shutil.copytree(trained_run.path, runs_dir / "done")
    busy = RunDir.create(runs_dir, "busy", trained_run.read_config())
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        busy.write_status(state="running", pid=sleeper.pid, started=time.time(), step=1)
        at = open_app(PAGE, runs_dir)
        at.selectbox(key="pg_run").set_value("done").run()
        assert "busy is training on this machine" in texts(at)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_generate_brings_the_text_into_view(open_app, trained_run):
    at = open_app(PAGE, trained_run.path.parent)
    assert not [h for h in at.get("html") if "scrollIntoView" in h.proto.body]
    generate(at, "ROMEO:", 10)
    scripts = [h.proto.body for h in at.get("html") if "scrollIntoView" in h.proto.body]
    assert scripts and ".st-key-pg_result_box" in scripts[0]
    at.slider(key="pg_temperature").set_value(0.7).run()  # another control: no jump
    assert not [h for h in at.get("html") if "scrollIntoView" in h.proto.body]
