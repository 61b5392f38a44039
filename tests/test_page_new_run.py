"""New run page (AppTest) and its pure form logic."""

import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import make_tiny_config
from core import launcher
from core.config import preset
from core.rundir import RunDir
from dashboard import new_run_form as form


@pytest.fixture
def page(runs_dir):
    at = AppTest.from_file("../dashboard/app.py", default_timeout=30)
    at.run()
    at.switch_page("views/new_run.py").run()
    assert not at.exception
    return at


def errors(at) -> str:
    return "\n".join(e.value for e in at.error)


def test_preset_fills_every_field_and_estimate_shows(page):
    assert page.selectbox(key="nr_preset").value == "nano"  # no GPU here
    page.selectbox(key="nr_preset").set_value("micro").run()
    micro = preset("micro")
    for key, value in form.preset_values("micro").items():
        assert page.session_state[key] == value, key
    assert page.number_input(key="nr_n_layer").value == micro.n_layer
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Parameters"] == "7.25 M"
    assert metrics["Tokens per step"] == f"{micro.tokens_per_step():,}"
    assert float(metrics["Steps per epoch"]) > 0
    assert not page.button(key="nr_launch").disabled
    assert page.session_state["nr_run_name"].startswith("micro-")


def test_invalid_fields_show_errors_disable_launch_and_create_nothing(page, runs_dir):
    page.number_input(key="nr_n_embd").set_value(33).run()
    page.text_input(key="nr_max_lr").input("fast").run()
    page.text_input(key="nr_run_name").input("../escape").run()
    text = errors(page)
    assert "n_embd" in text and "does not divide by n_head" in text
    assert "max_lr" in text and "must be a number" in text
    assert "invalid run name" in text
    assert page.button(key="nr_launch").disabled  # AppTest refuses to click it, as a browser does
    assert list(runs_dir.iterdir()) == []


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe caf\xe9 " * 500, "not UTF-8"),
    (b"too short", "at least 1,024 bytes"),
])
def test_bad_uploads_are_refused(page, runs_dir, content, message):
    page.radio(key="nr_data_source").set_value("upload a .txt file").run()
    page.get("file_uploader")[0].upload("data.txt", content, "text/plain")
    page.run()
    assert message in errors(page)
    assert page.button(key="nr_launch").disabled
    assert list(runs_dir.iterdir()) == []


def test_upload_too_few_tokens_for_the_batch(page, runs_dir, small_text):
    page.radio(key="nr_data_source").set_value("upload a .txt file").run()
    page.get("file_uploader")[0].upload("small.txt", small_text.read_bytes()[:3000], "text/plain")
    page.run()
    assert "fewer than one micro batch needs" in errors(page)
    assert page.button(key="nr_launch").disabled


def test_launch_creates_the_run_and_opens_the_live_page(page, runs_dir, small_text):
    tiny = form.widget_values(make_tiny_config(small_text, max_steps=2, eval_interval=0))
    for key, value in tiny.items():
        if key in ("nr_device", "nr_dtype", "nr_compile"):
            page.selectbox(key=key).set_value(value)
        elif isinstance(value, int):
            page.number_input(key=key).set_value(value)
        else:
            page.text_input(key=key).input(value)
    page.run()
    page.radio(key="nr_data_source").set_value("a local path").run()
    page.text_input(key="nr_data_path").input(str(small_text)).run()
    page.text_input(key="nr_run_name").input("from-page").run()
    assert not errors(page)
    page.button(key="nr_launch").click().run()
    assert not page.exception
    assert page.session_state["selected_run"] == "from-page"
    run = RunDir(runs_dir / "from-page")
    assert run.read_config() == make_tiny_config(small_text, max_steps=2, eval_interval=0)
    deadline = time.monotonic() + 180
    while launcher.state_of(run) in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert launcher.state_of(run) == "completed"


def test_form_parsing_and_upload_paths(tmp_path, small_text):
    base = preset("nano")
    values = form.preset_values("nano")
    cfg, problems = form.parse(values, "tinyshakespeare", base)
    assert cfg == base and problems == {}
    cfg, problems = form.parse({**values, "nr_max_lr": " 1e-3 ", "nr_eps": "x"}, "t", base)
    assert cfg.max_lr == 1e-3 and set(problems) == {"eps"}
    raw = small_text.read_bytes()
    path = form.save_upload(raw, tmp_path)
    assert path == form.upload_path(raw, tmp_path) and path.read_bytes() == raw
    assert path.parent.name == "_uploads" and len(path.stem) == 16
    assert form.upload_problem(raw, "s.txt") is None
    cfg = make_tiny_config(small_text)
    assert form.size_problem(np.zeros(10_000, np.uint16), cfg) is None
    assert "validation split" in form.size_problem(np.zeros(1_000, np.uint16), cfg)
