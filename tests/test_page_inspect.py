"""Inspect page (AppTest): token surprise with its totals equal to the core's, the difference
between two checkpoints, a random val passage, the logit lens and attention views on a trained
tiny checkpoint, the run preselected from the session, and older or broken runs."""

import base64
import json
import os

import numpy as np
import pytest
import streamlit as st
from conftest import ROOT
from inspect_runs import make_old_run, memorized_run, untrained_run
from streamlit.testing.v1 import AppTest

from core.data.tokens import encode_for_model
from core.inspect.logit_lens import logit_lens_text
from core.inspect.surprise import random_val_passage, surprise, surprise_diff
from core.store.checkpoint import load_model
from core.store.rundir import RunDir
from dashboard import token_view as tv
from dashboard.checkpoint_picker import NO_BEST, NO_SNAPSHOTS

PAGE = "views/inspect.py"


def texts(at) -> str:
    return " ".join(
        str(e.value)
        for kind in ("info", "error", "warning", "caption", "markdown")
        for e in at.get(kind)
    )


def decode(values):
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"])
    return np.array(values, dtype=float)


def encode(text: str, model) -> list[int]:
    return encode_for_model(text, model.config.block_size)[0]


def frame(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def views(at) -> list[str]:
    return [h.proto.body for h in at.get("html") if 'class="tv"' in h.proto.body]


def figure(at, i: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[i].proto.spec)


@pytest.fixture(scope="module")
def memorized():
    return memorized_run()


@pytest.fixture(scope="module")
def model(memorized):
    return load_model(memorized.latest_checkpoint()).model


def test_no_runs_and_no_checkpoint(open_app, runs_dir, tiny_config):
    at = open_app(PAGE, runs_dir)
    assert not at.exception and "No runs" in texts(at)
    RunDir.create(runs_dir, "fresh", tiny_config)
    at = open_app(PAGE, runs_dir)
    assert not at.exception and "has no checkpoint yet" in texts(at)


def test_surprise_totals_equal_the_cores(open_app, memorized, model):
    at = open_app(PAGE, memorized.path.parent)
    assert not at.exception
    assert at.radio(key="ins_view").value == "Token surprise"
    text = at.text_area(key="ins_text").value
    res = surprise(model, text)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Mean loss"] == f"{res.mean_loss:.3f} nats"  # the unit named, bits beside
    assert metrics["Perplexity"] == f"{res.perplexity:,.2f}"
    assert metrics["Bits per character"] == f"{res.bits_per_char:.3f}"
    assert metrics["Tokens scored"] == f"{res.n_scored:,}"
    body = views(at)[0]
    assert body.count('class="pop"') == len(res.tokens)  # every token clickable
    worst = res.most_surprising[0]
    assert f"p = <b>{tv.fmt_prob(worst.prob)}</b>" in body and f"rank {worst.rank:,}" in body
    top10 = frame(at, "the model expected")
    assert list(top10["position"]) == [t.index for t in res.most_surprising]
    assert list(top10["bits"]) == [round(t.bits, 2) for t in res.most_surprising]
    assert any("surprise 0 bits" in h.proto.body for h in at.get("html"))


def test_random_val_passage_and_the_difference_view(open_app, memorized, model):
    at = open_app(PAGE, memorized.path.parent)
    at.button(key="ins_random").click().run()
    cfg = memorized.read_config()
    passage = random_val_passage(cfg, 32, seed=1)
    assert at.text_area(key="ins_text").value == passage.text
    assert "from the val split" in texts(at) and "never trained on" in texts(at)
    # memorized training text costs almost nothing; the held-out passage costs bits
    assert float(at.metric[0].value.split()[0]) > 1.0  # nats

    at.selectbox(key="ins_cmp").set_value("step 0 (snapshot)").run()
    assert not at.exception
    early = load_model(memorized.snapshot_path(0)).model
    d = surprise_diff(early, model, passage.text)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Mean bits, step 0"] == f"{d.mean_bits_a:.3f}"
    assert metrics["Mean bits, step 120"] == f"{d.mean_bits_b:.3f}"
    body = views(at)[1]
    assert body.count('class="pop"') == len(d.tokens)
    assert tv.delta_colour(d.tokens[1].delta_bits) in body
    easiest = frame(at, "change")
    assert list(easiest["change"]) == [
        round(t.delta_bits, 2) for t in d.easiest if t.delta_bits < 0
    ]


def test_logit_lens_heatmap_and_a_chosen_cell(open_app, memorized, model):
    at = open_app(PAGE, memorized.path.parent)
    at.radio(key="ins_view").set_value("Logit lens").run()
    assert not at.exception
    text = at.text_area(key="ins_text").value
    n = len(encode(text, model))
    assert at.slider(key="ins_lens_last").max == min(n, 64)
    last = at.slider(key="ins_lens_last").value
    lens = logit_lens_text(model, text, top_k=10, last=last)
    heat = figure(at)["data"][0]
    z = decode(heat["z"]).reshape(len(lens.layers), -1)
    assert z.shape == (3, last) and np.allclose(z, np.array(lens.grid("prob")), atol=1e-5)
    width = tv.cell_chars(last)
    assert heat["text"][-1] == [tv.clip(tv.readable(t), width) for t in lens.grid("text")[-1]]
    assert all(len(label) <= width for row in heat["text"] for label in row)
    assert list(heat["y"]) == ["embedding", "block 1", "block 2"]

    at.selectbox(key="ins_lens_layer").set_value("block 1")
    at.selectbox(key="ins_lens_pos").set_value(at.selectbox(key="ins_lens_pos").options[0]).run()
    cell = lens.cells[1][0]
    top = frame(at, "p")
    assert list(top["id"]) == [i for i, _, _ in cell.top]

    at.slider(key="ins_lens_last").set_value(8).run()
    assert f"The last 8 of {n} positions" in texts(at)
    assert decode(figure(at)["data"][0]["x"]).size == 8
    if n >= 32:  # 32 positions: labels of at most 2 characters, so they never overlap
        at.slider(key="ins_lens_last").set_value(32).run()
        labels = figure(at)["data"][0]["text"]
        assert all(len(label) <= tv.cell_chars(32) for row in labels for label in row)


def test_attention_grid_head_labels_and_one_large_head(open_app, memorized, model):
    at = open_app(PAGE, memorized.path.parent)
    at.radio(key="ins_view").set_value("Attention").run()
    assert not at.exception
    grid = figure(at, 0)
    heads = [t for t in grid["data"] if t["type"] == "heatmap"]
    assert len(heads) == 2 * 2  # n_layer x n_head
    titles = [a["text"] for a in grid["layout"]["annotations"]]
    assert titles[:4] == [o for o in at.selectbox(key="ins_head").options]
    assert all(
        t.startswith(f"L{layer} H{head}")
        for t, (layer, head) in zip(titles, [(1, 1), (1, 2), (2, 1), (2, 2)])
    )
    at.selectbox(key="ins_head").set_value(at.selectbox(key="ins_head").options[2]).run()
    big = figure(at, 1)
    assert big["layout"]["title"]["text"] == "layer 2, head 1"
    z = decode(big["data"][0]["z"])
    n = len(encode(at.text_area(key="ins_text").value, model))
    z = z.reshape(n, n)
    assert np.allclose(np.nansum(z, axis=1), 1, atol=1e-4)  # each query's weights sum to 1
    assert np.isnan(z[np.triu_indices(n, 1)]).all()  # causal: nothing from the future
    scores = frame(at, "induction")
    assert len(scores) == 4 and set(scores.columns) >= {"previous-token", "first-token", "kind"}


def test_the_run_is_preselected_from_the_session(monkeypatch, runs_dir, trained_run):
    make_old_run(trained_run, runs_dir, "first")
    make_old_run(trained_run, runs_dir, "second")
    monkeypatch.setenv("GPT_RUNS_DIR", str(runs_dir))
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.session_state["selected_run"] = "first"
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.selectbox(key="ins_run").value == "first"


def test_playground_and_inspect_link_to_each_other_on_the_same_checkpoint(
    open_app, runs_dir, trained_run
):
    make_old_run(trained_run, runs_dir, "first")
    make_old_run(trained_run, runs_dir, "second")
    at = open_app("views/playground.py", runs_dir)
    at.selectbox(key="pg_run").set_value("first").run()
    at.selectbox(key="pg_ckpt").set_value("step 5").run()
    at.button(key="pg_to_inspect").click().run()
    assert not at.exception
    assert at.selectbox(key="ins_run").value == "first"
    assert at.selectbox(key="ins_ckpt").value == "step 5"
    assert "step 5 · val loss" in texts(at)
    at.switch_page(PAGE)  # AppTest reruns the page it last opened, not where st.switch_page went
    at.selectbox(key="ins_ckpt").set_value("step 10").run()
    at.button(key="ins_to_playground").click().run()
    assert at.selectbox(key="pg_run").value == "first"
    assert at.selectbox(key="pg_ckpt").value == "step 10"


def test_a_run_from_before_this_change_opens_in_every_view(open_app, runs_dir, trained_run):
    make_old_run(trained_run, runs_dir)
    for page in (PAGE, "views/model_info.py"):
        at = open_app(page, runs_dir)
        assert not at.exception
    at = open_app(PAGE, runs_dir)
    assert NO_BEST in texts(at) and NO_SNAPSHOTS in texts(at)
    for view in ("Token surprise", "Logit lens", "Attention"):
        at.radio(key="ins_view").set_value(view).run()
        assert not at.exception, view
        assert at.get("plotly_chart") or views(at)
    at.radio(key="ins_view").set_value("Token surprise").run()
    first = at.selectbox(key="ins_cmp").options[-1]
    at.selectbox(key="ins_cmp").set_value(first).run()
    assert not at.exception and len(views(at)) == 2


def test_a_vanished_data_file_leaves_the_views_working(open_app, runs_dir, tiny_config):
    untrained_run(runs_dir, tiny_config)
    os.remove(tiny_config.data)
    at = open_app(PAGE, runs_dir)
    at.button(key="ins_random").click().run()
    assert not at.exception
    assert "No passage from the val split" in texts(at)
    for view in ("Logit lens", "Attention"):
        at.radio(key="ins_view").set_value(view).run()
        assert not at.exception and at.get("plotly_chart")


def test_the_pickers_follow_a_run_selected_on_another_page(open_app, runs_dir, trained_run):
    """Each page owns its picker; the selected run is the one thing pages share."""
    make_old_run(trained_run, runs_dir, "first")
    make_old_run(trained_run, runs_dir, "second")
    at = open_app("views/playground.py", runs_dir)
    one, other = sorted(["first", "second"], key=lambda r: r == at.selectbox(key="pg_run").value)
    at.selectbox(key="pg_run").set_value(one).run()  # one is not the run shown first
    assert at.session_state["selected_run"] == one
    at.switch_page("views/model_info.py").run()
    assert at.selectbox(key="mi_run").value == one
    at.selectbox(key="mi_run").set_value(other).run()
    at.switch_page("views/playground.py").run()
    assert not at.exception and at.selectbox(key="pg_run").value == other
