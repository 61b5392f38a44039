"""New run page through AppTest (its pure form logic is tested in test_new_run_form.py)."""

import socket
import time

import pytest
from streamlit.testing.v1 import AppTest

from conftest import make_tiny_config
from core import data, launcher, metrics
from core.config import preset
from core.rundir import RunDir
from dashboard import new_run_form
from dashboard.state import SELECTED_RUN


def open_new_run(**query) -> AppTest:
    at = AppTest.from_file("../dashboard/app.py", default_timeout=30)
    at.run()
    at.query_params.update(query)
    at.switch_page("views/new_run.py").run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def page(runs_dir):
    return open_new_run()


def errors(at) -> str:
    return "\n".join(e.value for e in at.error)


def test_preset_fills_every_field_and_estimate_shows(page):
    assert page.selectbox(key="nr_preset").value == "nano"  # no GPU here
    page.selectbox(key="nr_preset").set_value("micro").run()
    micro = preset("micro")
    for key, value in new_run_form.preset_values("micro").items():
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


def fill(page, cfg) -> None:
    """Type a config's values into the form's fields."""
    for key, value in new_run_form.widget_values(cfg).items():
        if key in ("nr_device", "nr_dtype", "nr_compile"):
            page.selectbox(key=key).set_value(value)
        elif isinstance(value, int):
            page.number_input(key=key).set_value(value)
        else:
            page.text_input(key=key).input(value)
    page.run()


def wait_until_done(run: RunDir) -> str:
    deadline = time.monotonic() + 180
    while launcher.state_of(run) in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
    return launcher.state_of(run)


def test_launch_creates_the_run_and_opens_the_live_page(page, runs_dir, small_text):
    fill(page, make_tiny_config(small_text, max_steps=2, eval_interval=0))
    page.radio(key="nr_data_source").set_value("a local path").run()
    page.text_input(key="nr_data_path").input(str(small_text)).run()
    page.text_input(key="nr_run_name").input("from-page").run()
    assert not errors(page)
    page.button(key="nr_launch").click().run()
    assert not page.exception
    assert page.session_state[SELECTED_RUN] == "from-page"
    run = RunDir(runs_dir / "from-page")
    assert run.read_config() == make_tiny_config(small_text, max_steps=2, eval_interval=0)
    assert wait_until_done(run) == "completed"


def test_an_upload_is_stored_by_core_outside_the_runs_directory(page, runs_dir, small_text):
    fill(page, make_tiny_config(small_text, max_steps=1, eval_interval=0))
    page.radio(key="nr_data_source").set_value("upload a .txt file").run()
    page.get("file_uploader")[0].upload("my notes.txt", small_text.read_bytes(), "text/plain")
    page.run()
    page.text_input(key="nr_run_name").input("from-upload").run()
    assert not errors(page)
    page.button(key="nr_launch").click().run()
    run = RunDir(runs_dir / "from-upload")
    stored = data.cache_dir() / "uploads"
    assert run.read_config().data.startswith(str(stored)) and run.read_config().data.endswith(
        "-my-notes.txt")
    assert [p.name for p in runs_dir.iterdir()] == ["from-upload"]  # nothing else written there
    assert wait_until_done(run) == "completed"


def caption_text(at) -> str:
    return "\n".join(c.value for c in at.caption)


def test_memory_in_mib_and_whole_parameter_counts(page):
    page.selectbox(key="nr_preset").set_value("gpt2-124m").run()
    memory, params = page.table
    assert list(memory.value.columns) == ["part", "MiB"]  # 2**20 bytes, as computed
    weights = float(memory.value.set_index("part").loc["weights", "MiB"].replace(",", ""))
    assert weights == pytest.approx(124_475_904 * 4 / 2**20, abs=0.1)
    # A static table sized to its text: the 10-digit counts were cut to "321..." before.
    assert "38,633,472" in list(params.value["parameters"])
    assert any("B\\*T\\*(16\\*L" in m.value for m in page.markdown)  # products, not italics


def test_measured_time_says_measured_once(runs_dir):
    done = RunDir.create(runs_dir, "nano-done", preset("nano"))
    log = metrics.MetricsLog(done.metrics_path)
    for step in (1, 2, 3):
        log.write("train", step, time.time(), loss=5.0, dt_ms=50.0, tokens_per_sec=10_240.0)
    log.close()
    done.write_status(state="completed", host=socket.gethostname())
    at = open_new_run()
    assert "Measured: mean throughput of run nano-done (10,240 tokens/s)" in caption_text(at)
    assert "measured measured" not in caption_text(at).lower()


def test_preset_note_and_estimate_are_one_figure(page):
    estimated = next(m.value for m in page.metric if m.label == "Estimated time")
    note = next(c.value for c in page.caption if c.value.startswith("2 layers x 64 wide"))
    assert f"about {estimated} for 200 steps" in note and "minute" not in note
    assert "3.32 M parameters" in note


def test_a_field_error_keeps_the_rows_of_three(page):
    page.number_input(key="nr_n_embd").set_value(33).run()
    leaves = [c for c in page.columns if not c.columns]
    fields = {id(c): [w.key for kind in ("number_input", "text_input", "selectbox")
                      for w in c.get(kind)] for c in leaves}
    assert all(len(keys) <= 1 for keys in fields.values()), fields  # one field per cell
    assert not any(c.error for c in leaves if fields[id(c)])  # the message spans the row
    assert any("does not divide by n_head" in e.value for e in page.error)


def test_a_link_with_a_preset_opens_the_form_filled(runs_dir):
    at = open_new_run(preset="micro")
    assert at.selectbox(key="nr_preset").value == "micro"
    assert at.number_input(key="nr_n_layer").value == preset("micro").n_layer
    at.selectbox(key="nr_preset").set_value("mini").run()
    assert at.query_params["preset"] == "mini"
    assert open_new_run(preset="no-such").selectbox(key="nr_preset").value == "nano"
