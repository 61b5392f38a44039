"""New run page through AppTest (its pure form logic is tested in test_new_run_form.py)."""

import dataclasses
import socket
import time

import pytest
from conftest import make_tiny_config
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig, cache_dir, preset
from core.model.param_count import param_count
from core.runs import launcher
from core.store import metrics
from core.store.rundir import RunDir
from core.train import estimate, throughput
from core.units import format_duration, format_mib
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
    """The New run page on the smallest CPU preset (the default is micro, see below)."""
    return open_new_run(preset="nano")


def errors(at) -> str:
    return "\n".join(e.value for e in at.error)


def test_preset_fills_every_field_and_estimate_shows(runs_dir):
    page = open_new_run()
    assert page.selectbox(key="nr_preset").value == "micro"  # no GPU here: the 10-minute preset
    micro = preset("micro")
    for key, value in new_run_form.preset_values("micro").items():
        assert page.session_state[key] == value, key
    assert page.number_input(key="nr_n_layer").value == micro.n_layer
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Parameters"] == f"{param_count(micro) / 1e6:,.2f} M"
    xray = xray_of(page)
    assert xray["tokens per optimizer step"].startswith(f"{micro.tokens_per_step():,} ")
    assert float(xray["steps per epoch"].split()[0].replace(",", "")) > 0
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


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe caf\xe9 " * 500, "not UTF-8"),
        (b"too short", "at least 1,024 bytes"),
    ],
)
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
    choices = {"nr_" + f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("choices")}
    for key, value in new_run_form.widget_values(cfg).items():
        if key in choices:
            page.selectbox(key=key).set_value(value)
        elif isinstance(value, bool):
            page.checkbox(key=key).set_value(value)
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
    stored = cache_dir() / "uploads"
    assert run.read_config().data.startswith(str(stored)) and run.read_config().data.endswith(
        "-my-notes.txt"
    )
    assert [p.name for p in runs_dir.iterdir()] == ["from-upload"]  # nothing else written there
    assert wait_until_done(run) == "completed"


def table_with(at, column: str):
    return next(t.value for t in at.table if column in t.value.columns)


def xray_of(at) -> dict:
    """The data X-ray table as {figure: value}."""
    return table_with(at, "figure").set_index("figure")["value"].to_dict()


def caption_text(at) -> str:
    return "\n".join(c.value for c in at.caption)


def test_memory_in_mib_and_whole_parameter_counts(page):
    page.selectbox(key="nr_preset").set_value("gpt2-124m").run()
    memory, params = table_with(page, "MiB"), table_with(page, "component")
    assert list(memory.columns) == ["part", "MiB"]  # 2**20 bytes, as computed
    weights = float(memory.set_index("part").loc["weights", "MiB"].replace(",", ""))
    assert weights == pytest.approx(124_475_904 * 4 / 2**20, abs=0.1)
    # A static table sized to its text: the 10-digit counts were cut to "321..." before.
    assert "38,633,472" in list(params["parameters"])
    assert any("B\\*T\\*(16\\*L" in m.value for m in page.markdown)  # products, not italics


def test_measured_time_says_measured_once(runs_dir):
    done = RunDir.create(runs_dir, "micro-done", preset("micro"))
    log = metrics.MetricsLog(done.metrics_path)
    for step in (1, 2, 3):
        log.write("train", step, time.time(), loss=5.0, dt_ms=50.0, tokens_per_sec=10_240.0)
    log.close()
    done.write_status(state="completed", host=socket.gethostname())
    at = open_new_run()
    assert "Measured: mean throughput of run micro-done (10,240 tokens/s)" in caption_text(at)
    assert "measured measured" not in caption_text(at).lower()


def test_preset_note_gives_one_time_and_ignores_the_forms_steps(page):
    from core.config import PRESET_NOTES

    name = page.selectbox(key="nr_preset").value
    page.number_input(key="nr_max_steps").set_value(60).run()
    note = next(c.value for c in page.caption if c.value.startswith(PRESET_NOTES[name]))
    estimated = next(m.value for m in page.metric if m.label == "Estimated time")
    assert estimated not in note and "steps" not in note.split(PRESET_NOTES[name])[1]


def _measured(runs_dir, name: str, tokens_per_sec: float) -> None:
    """A completed run of the preset's shape on this host that trained at tokens_per_sec."""
    done = RunDir.create(runs_dir, f"{name}-done", preset(name))
    log = metrics.MetricsLog(done.metrics_path)
    for step in (1, 2, 3):
        log.write("train", step, time.time(), loss=5.0, dt_ms=50.0, tokens_per_sec=tokens_per_sec)
    log.close()
    done.write_status(state="completed", host=socket.gethostname())


def test_a_budget_of_n_minutes_fills_max_steps_from_the_measured_speed(runs_dir):
    from core.train import budget

    _measured(runs_dir, "micro", 500.0)
    at = open_new_run(preset="micro")
    assert at.number_input(key="nr_budget_minutes").value == 10  # the preset's label
    at.number_input(key="nr_budget_minutes").set_value(4).run()
    expected = budget.steps_for_seconds(preset("micro"), 4 * 60, 500.0)
    assert at.number_input(key="nr_max_steps").value == expected
    # and back: the estimate of those steps is within the budget, and says so in words
    est = estimate.estimate(preset("micro", max_steps=expected), runs_dir=runs_dir)
    assert est.time_s <= 4 * 60
    assert metric_values(at)["Estimated time"] == format_duration(est.time_s)
    assert f"max_steps {expected:,} takes about {format_duration(est.time_s)}" in caption_text(at)
    assert not at.exception


def test_launch_warns_when_the_preset_is_slow_here_and_fixes_it_in_one_click(runs_dir):
    from core.train import budget

    _measured(runs_dir, "micro", 300.0)  # a busy machine: micro's 600 steps take ~70 min
    at = open_new_run(preset="micro")
    warning = next(w.value for w in at.warning if "these settings take" in w.value)
    assert "300 tokens/s" in warning and "not about 10 minutes" in warning
    at.button(key="nr_fit_budget").click().run()
    steps = budget.steps_for_seconds(preset("micro"), 600, 300.0)
    assert at.number_input(key="nr_max_steps").value == steps
    assert not any("these settings take" in w.value for w in at.warning)
    # the other fix: the smaller preset, with its own label's budget
    at.number_input(key="nr_max_steps").set_value(600).run()
    at.button(key="nr_smaller_preset").click().run()
    assert at.selectbox(key="nr_preset").value == "nano"
    assert at.number_input(key="nr_budget_minutes").value == 2
    assert not at.exception


def test_a_field_error_keeps_the_rows_of_three(page):
    page.number_input(key="nr_n_embd").set_value(33).run()
    leaves = [c for c in page.columns if not c.columns]
    fields = {
        id(c): [w.key for kind in ("number_input", "text_input", "selectbox") for w in c.get(kind)]
        for c in leaves
    }
    assert all(len(keys) <= 1 for keys in fields.values()), fields  # one field per cell
    assert not any(c.error for c in leaves if fields[id(c)])  # the message spans the row
    assert any("does not divide by n_head" in e.value for e in page.error)


def test_a_link_with_a_preset_opens_the_form_filled(runs_dir):
    at = open_new_run(preset="micro")
    assert at.selectbox(key="nr_preset").value == "micro"
    assert at.number_input(key="nr_n_layer").value == preset("micro").n_layer
    at.selectbox(key="nr_preset").set_value("mini").run()
    assert at.query_params["preset"] == "mini"
    assert open_new_run(preset="no-such").selectbox(key="nr_preset").value == "micro"


# --- launch after the current run, and the queue on disk ----------------------------------------


@pytest.fixture
def busy(runs_dir, small_text):
    """A run that trains: its status says running, its pid is a sleep this test owns."""
    import subprocess

    sleeper = subprocess.Popen(["sleep", "600"])
    run = RunDir.create(runs_dir, "busy", make_tiny_config(small_text))
    run.write_status(state="running", pid=sleeper.pid, host=socket.gethostname(), step=3)
    yield run
    sleeper.kill()
    sleeper.wait()


def test_only_launch_while_nothing_trains(page):
    assert page.button(key="nr_launch").label == "Launch"
    assert not [b for b in page.button if b.key == "nr_enqueue"]


def test_launch_after_the_current_run_queues_it_and_the_queue_outlives_the_app(
    busy, runs_dir, small_text
):
    from core.runs import queue as run_queue

    at = open_new_run()
    assert at.button(key="nr_launch").label == "Launch now"
    fill(at, make_tiny_config(small_text, max_steps=2, eval_interval=0))
    at.text_input(key="nr_run_name").input("later").run()
    at.button(key="nr_enqueue").click().run()
    assert not at.exception, at.exception
    assert run_queue.queued(runs_dir) == ["later"]
    assert RunDir(runs_dir / "later").read_status()["state"] == "waiting"
    assert "Queued **later**: number 1 of 1 in the queue" in at.success[0].value
    assert at.text_input(key="nr_run_name").value != "later"  # a fresh name for the next one
    at.text_input(key="nr_run_name").input("later-2").run()
    at.button(key="nr_enqueue").click().run()
    assert "number 2 of 2" in at.success[0].value
    # A fresh app (a restart): the queue is on disk, and the Runs page lists it in order.
    again = AppTest.from_file("../dashboard/app.py", default_timeout=30)
    again.run()
    listed = [m.value.split("`")[1] for m in again.markdown if "`later" in m.value]
    assert listed == ["later", "later-2"]
    assert busy.read_status()["state"] == "running"


# --- before launch: the data X-ray, disk, time --------------------------------------------------


def metric_values(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_data_xray_of_the_default_run(page):
    shown = {figure: value.split(" (")[0] for figure, value in xray_of(page).items()}
    nano = preset("nano")
    assert shown["tokens in the data"] == "338,025"
    assert shown["train / val tokens"] == "304,223 / 33,802"
    assert shown["tokens per optimizer step"] == "1,024"  # 8 x 128 x 1 x 1
    assert shown["steps per epoch"] == "297.0"  # 304,222 // 1,024 whole micro batches
    assert shown["epochs"] == f"{nano.max_steps / 297:.2f}"
    assert "Muennighoff et al. 2023" in xray_of(page)["repeated data"]  # where that lands
    assert shown["parameters per training token"] == f"{param_count(nano) / 304_223:,.2f}"
    assert not [w for w in page.warning if "memorize" in w.value]  # about one epoch: no warning
    where = [m.value for m in page.markdown if "times; first at" in m.value]
    assert len(where) == 3 and "tinyshakespeare\\.txt line" in where[0]
    assert any("KING RICHARD III:" in c.value for c in page.code)  # the passage as text


def test_a_long_run_is_warned_that_it_will_memorize(page):
    page.selectbox(key="nr_preset").set_value("gpt2-124m").run()
    assert xray_of(page)["epochs"] == "216 (in 2,000 steps)"
    assert xray_of(page)["repeated data"].startswith("216.2 epochs: past ~16, where Muennighoff")
    assert page.warning[0].value == (
        "2,000 steps x 32,768 tokens = 216 epochs of this text: expect it to memorize."
    )


def test_disk_figures(page):
    from core.train.estimate import checkpoint_disk_mb

    nano = preset("nano", snapshot_interval=0)
    page.number_input(key="nr_snapshot_interval").set_value(0).run()
    shown = metric_values(page)
    assert shown["Checkpoints on disk"] == format_mib(checkpoint_disk_mb(nano))
    assert shown["Snapshots"] == "off"
    page.number_input(key="nr_snapshot_interval").set_value(60).run()
    one = 2 * param_count(nano) / 2**20  # half-precision weights
    assert metric_values(page)["Snapshots"] == format_mib(6 * one)  # 0,60,...,300
    page.number_input(key="nr_snapshot_cap_mb").set_value(20).run()
    assert metric_values(page)["Snapshots"] == "20 MiB"  # the cap (above one snapshot)
    disk = next(c.value for c in page.caption if c.value.startswith("Disk needed at most"))
    assert "free where the run is written" in disk


FIXED_PROBE = throughput.Probe(
    train_tokens_per_sec=1000.0,
    eval_tokens_per_sec=3000.0,
    sample_s_per_token=0.001,
    seconds=0.1,
    load_avg=0.5,
)


@pytest.fixture
def probes(monkeypatch):
    """throughput.probe replaced by a fixed timing; the calls it got, by n_embd."""
    import streamlit as st

    calls = []
    monkeypatch.setattr(
        throughput, "probe", lambda cfg, where: calls.append((cfg.n_embd, where)) or FIXED_PROBE
    )
    st.cache_data.clear()  # a probe cached by an earlier test would hide the call
    yield calls
    st.cache_data.clear()


def test_an_unseen_small_shape_is_timed_by_a_probe(runs_dir, probes):
    at = open_new_run(preset="nano")
    assert probes == [(128, "cpu")]  # nano's shape, once (the note and the panel share it)
    note = caption_text(at)
    assert (
        "Measured: a few real training steps of this shape just now (1,000 tokens/s, "
        "machine load 0.5)" in note
    )
    est = estimate.estimate(preset("nano"), n_tokens=338_025, probe=FIXED_PROBE)
    assert metric_values(at)["Estimated time"] == format_duration(est.time_s)
    at.number_input(key="nr_n_embd").set_value(96).run()
    assert probes[-1] == (96, "cpu")
    at.number_input(key="nr_n_embd").set_value(128).run()
    assert len(probes) == 2  # cached per shape


def test_a_big_shape_is_timed_only_when_asked(runs_dir, probes):
    at = open_new_run(preset="gpt2-124m")
    assert probes == [] and "Rough guess" in caption_text(at)
    at.button(key="nr_probe").click().run()
    assert probes == [(768, "cpu")]
    assert "a few real training steps of this shape" in caption_text(at)
    assert not [b for b in at.button if b.key == "nr_probe"]


# --- start from another run or GPT-2 -------------------------------------------------------------


@pytest.fixture
def trained(runs_dir, trained_run):
    import shutil

    shutil.copytree(trained_run.path, runs_dir / "trained")
    return RunDir(runs_dir / "trained")


def test_start_from_another_run_takes_its_shape_read_only(trained, runs_dir, monkeypatch):
    launched = []
    monkeypatch.setattr(launcher, "launch", lambda cfg, root, name: launched.append(cfg) or name)
    at = open_new_run()
    at.radio(key="nr_start").set_value("another run").run()
    assert at.selectbox(key="nr_start_run").value == "trained"
    for name, value in dict(n_layer=2, n_head=2, n_embd=32, block_size=32).items():
        field = at.number_input(key=f"nr_{name}")
        assert field.value == value and field.disabled, name
    assert not at.number_input(key="nr_max_steps").disabled
    assert "seq_len" in errors(at)  # nano's 64 tokens do not fit the source's 32 positions
    at.number_input(key="nr_seq_len").set_value(32).run()
    assert not errors(at)
    at.button(key="nr_launch").click().run()
    assert launched[0].init_from == str(trained.path.resolve()) and launched[0].n_embd == 32


def test_start_from_a_bad_gpt2_folder_says_why_and_disables_launch(page, tmp_path):
    folder = tmp_path / "not-gpt2"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    page.radio(key="nr_start").set_value("GPT-2").run()
    assert page.text_input(key="nr_start_hf").value == "gpt2"
    page.text_input(key="nr_start_hf").input(str(folder)).run()
    assert f"init_from**: {folder}/config.json is not a GPT-2 config" in errors(page)
    assert page.button(key="nr_launch").disabled
    assert not page.number_input(key="nr_n_embd").disabled  # no shape was read
    page.radio(key="nr_start").set_value("scratch").run()
    assert not errors(page) and not page.number_input(key="nr_n_embd").disabled


def test_start_from_a_run_needs_one_with_a_checkpoint(page):
    page.radio(key="nr_start").set_value("another run").run()
    assert "no run in this runs directory has a checkpoint yet" in errors(page)
    assert page.button(key="nr_launch").disabled
