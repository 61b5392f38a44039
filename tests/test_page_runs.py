"""Runs page through AppTest: the table, the selected run's actions, compare, the URL.
(The pure logic behind it is tested in test_run_table.py.)"""

import base64
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import streamlit
from conftest import ROOT, make_tiny_config
from streamlit.testing.v1 import AppTest
from test_run_table import write_metrics

from core.store import rundir
from core.store.rundir import RunDir
from dashboard import run_table
from dashboard.colors import run_color
from dashboard.state import SELECTED_RUN

# Stands in for an engine: running until it sees STOP, then ends as 'stopped' like the real one.
FAKE_ENGINE = """
import os, sys, time
from core.store.rundir import RunDir
run = RunDir(sys.argv[1])
run.write_status(state="running", pid=os.getpid(), launcher_pid=os.getpid())
print("ready", flush=True)
while not run.stop_requested():
    run.write_status(step=3)
    time.sleep(0.05)
run.write_status(state="stopped", reason="stop requested", ended=time.time())
run.clear_stop()
"""


@pytest.fixture
def runs(runs_dir, small_text, monkeypatch):
    """One run in each state; 'live' is driven by a fake engine process."""
    monkeypatch.setattr(rundir, "HEARTBEAT_GRACE_S", 1.0)
    cfg = make_tiny_config(small_text, max_steps=10)
    done = RunDir.create(runs_dir, "done", cfg)
    write_metrics(done, [5.0, 4.0, 3.0, 3.5], vals=[(2, 4.5), (4, 3.9)])
    done.write_status(state="completed", step=4, started=time.time() - 65, ended=time.time())
    broken = RunDir.create(runs_dir, "broken", cfg.replace(max_lr=1e-2))
    broken.write_status(state="failed", error="TrainingDiverged: loss is nan at step 2")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    crashed = RunDir.create(runs_dir, "crashed", cfg)
    crashed.write_status(state="running", pid=int(gone), step=2)
    live = RunDir.create(runs_dir, "live", cfg)
    engine = subprocess.Popen(
        [sys.executable, "-c", FAKE_ENGINE, str(live.path)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert engine.stdout.readline().strip() == b"ready"  # it is the status's only writer now
    time.sleep(1.1)  # the crashed run's heartbeat goes stale
    yield {"done": done, "broken": broken, "crashed": crashed, "live": live}
    if engine.poll() is None:
        engine.kill()
    engine.wait()


def open_runs_page(runs_dir, **query) -> AppTest:
    at = AppTest.from_file("../dashboard/app.py", default_timeout=30)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def table_with(at, column: str):
    """The first st.dataframe that has this column (AppTest does not expose their keys)."""
    return next(d for d in at.dataframe if column in d.value.columns)


def figure(at, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def values(array) -> np.ndarray:
    """A plotly 7 array from a figure spec: base64 {dtype, bdata} or a plain list."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def test_no_runs_yet_points_to_new_run(runs_dir):
    at = open_runs_page(runs_dir)
    assert "No runs yet" in at.info[0].value
    start = at.button(key="runs_first_new")  # the obvious button, not a small link
    assert start.proto.type == "primary"
    start.click().run()
    assert not at.exception
    assert any(t.value == "New run" for t in at.title)


def test_table_shows_every_state(runs, runs_dir):
    at = open_runs_page(runs_dir)
    table = at.dataframe[0].value.set_index("name")
    assert table["state"].to_dict() == {
        "done": "completed",
        "broken": "failed",
        "crashed": "crashed",
        "live": "running",
    }
    assert table.loc["done", "best loss"] == 3.0 and table.loc["done", "last loss"] == 3.5
    assert table.loc["done", "best val loss"] == 3.9 and table.loc["done", "tokens seen"] == 1024
    assert table.loc["done", "training time"] == "1m 05s"  # from the records, not wall time
    assert table.loc["done", "best val step"] == 4
    assert table.loc["broken", "max lr"] == 1e-2
    assert at.dataframe[0].proto.placeholder == "–"  # unknown values (no eval) read as a dash
    at.selectbox(key="runs_selected").set_value("broken").run()
    assert "TrainingDiverged" in at.error[0].value
    assert at.button(key="runs_resume").disabled  # no checkpoint
    at.multiselect(key="runs_state_filter").set_value(["crashed"]).run()
    assert list(at.dataframe[0].value["name"]) == ["crashed"]


def test_stop_action_stops_a_running_run(runs, runs_dir):
    at = open_runs_page(runs_dir)
    at.selectbox(key="runs_selected").set_value("live").run()
    assert at.button(key="runs_delete").disabled and at.button(key="runs_resume").disabled
    at.button(key="runs_stop").click().run()
    deadline = time.monotonic() + 60
    while runs["live"].read_status()["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runs["live"].read_status()["state"] == "stopped"
    at.run()
    assert at.dataframe[0].value.set_index("name").loc["live", "state"] == "stopped"


def test_a_stop_request_shows_stopping_until_the_run_ends(runs_dir, small_text):
    # An engine that takes its time over the final eval and checkpoint (a sleeping process).
    sleeper = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        busy = RunDir.create(runs_dir, "busy", make_tiny_config(small_text, max_steps=10))
        busy.write_status(state="running", pid=sleeper.pid, started=time.time(), step=3)
        at = open_runs_page(runs_dir)
        at.selectbox(key="runs_selected").set_value("busy").run()
        assert at.dataframe[0].value.set_index("name").loc["busy", "state"] == "running"
        at.button(key="runs_stop").click().run()
        assert busy.stop_requested()
        assert at.dataframe[0].value.set_index("name").loc["busy", "state"] == "stopping"
        stop = at.button(key="runs_stop")
        assert stop.disabled and stop.label == "Stopping..."
        assert "final eval, sample and checkpoint" in stop.help
    finally:
        sleeper.kill()
        sleeper.wait()


def test_delete_asks_for_confirmation(runs, runs_dir):
    at = open_runs_page(runs_dir)
    at.selectbox(key="runs_selected").set_value("done").run()
    at.button(key="runs_delete").click().run()
    assert runs["done"].path.exists() and "cannot be undone" in at.warning[0].value
    at.button(key="runs_delete_cancel").click().run()
    assert runs["done"].path.exists() and not at.warning
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_confirm").click().run()
    assert not runs["done"].path.exists()
    assert "done" not in list(at.dataframe[0].value["name"])


def test_open_live_view_sets_the_selected_run(runs, runs_dir):
    at = open_runs_page(runs_dir)
    at.selectbox(key="runs_selected").set_value("done").run()
    at.button(key="runs_open").click().run()
    assert at.session_state[SELECTED_RUN] == "done"
    assert not at.exception


def test_table_columns_progress_first_hyperparameters_after_with_a_hint(runs, runs_dir):
    at = open_runs_page(runs_dir)
    table = at.dataframe[0]
    assert list(table.value.columns)[:3] == ["name", "state", "progress"]
    shown = [c for c in table.proto.column_order]
    assert shown == [c for c in run_table.COLUMNS if c in table.value.columns]
    assert shown.index("training time") < shown.index("model")  # results before settings
    config = json.loads(table.proto.columns)
    assert config["name"]["pinned"] is True  # the name stays in view while scrolling sideways
    hint = " ".join(c.value for c in at.caption)
    assert "scroll the table sideways" in hint and "max lr" in hint


def test_selected_run_and_compare_follow_active_runs(runs, runs_dir, monkeypatch):
    """Like the table, the selected run's line and buttons and the comparison are fragments
    that rerun on a timer while a run they show is active (bug: they went stale)."""
    calls = []
    real = streamlit.fragment

    def recording(func=None, *, run_every=None):
        calls.append((func.__name__, run_every))
        return real(func, run_every=run_every)

    monkeypatch.setattr(streamlit, "fragment", recording)
    at = open_runs_page(runs_dir, run="live", compare=["live", "done"])
    timers = dict(calls)
    assert timers["table_panel"] and timers["selected_panel"] and timers["compare_panel"]
    assert "State: **running**" in at.markdown[0].value or any(
        "State: **running**" in m.value for m in at.markdown
    )
    calls.clear()
    at.selectbox(key="runs_selected").set_value("done").run()
    at.multiselect(key="runs_compare").set_value(["done", "broken"]).run()
    assert dict(calls)["selected_panel"] is None and dict(calls)["compare_panel"] is None


def test_compare_summary_rows_diff_and_curves(runs, runs_dir):
    write_metrics(runs["broken"], [6.0, 5.0])
    at = open_runs_page(runs_dir)
    at.multiselect(key="runs_compare").set_value(["done", "broken"]).run()
    summary = table_with(at, "final loss").value.set_index("run")
    assert summary.loc["done", "final loss"] == 3.5 and summary.loc["done", "best loss"] == 3.0
    assert summary.loc["done", "best val loss"] == 3.9 and summary.loc["done", "best val step"] == 4
    assert summary.loc["done", "tokens seen"] == 1024
    table = at.dataframe[0].value.set_index("name")  # the same training time as the table
    assert summary.loc["done", "training time"] == table.loc["done", "training time"] == "1m 05s"
    diff = table_with(at, "max_lr").value
    assert list(diff.columns) == ["run", "max_lr"]
    fig = figure(at)
    colors = {t["name"]: t["line"]["color"] for t in fig["data"] if t.get("showlegend", True)}
    assert colors["done train"] == colors["done val"] == run_color("done")
    assert colors["broken train"] == run_color("broken")
    assert "step" in fig["layout"]["xaxis"]["title"]["text"]


def test_compare_has_the_live_pages_chart_choices(runs, runs_dir):
    at = open_runs_page(runs_dir, compare=["done", "broken"], log="1", smooth="0", x="tokens")
    fig = figure(at)
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert "tokens" in fig["layout"]["xaxis"]["title"]["text"]
    done = next(t for t in fig["data"] if t["name"] == "done train")
    assert list(values(done["x"])) == [256, 512, 768, 1024]  # tokens seen
    assert not any("raw" in t["name"] for t in fig["data"])  # smoothing 0: only the raw curve
    at.slider(key="runs_cmp_smooth").set_value(0.5).run()
    assert any(t["name"] == "done train (raw)" for t in figure(at)["data"])


def test_the_view_is_in_the_url(runs, runs_dir):
    at = open_runs_page(
        runs_dir, run="broken", compare=["done", "nope", "broken"], states=["failed", "completed"]
    )
    assert at.selectbox(key="runs_selected").value == "broken"
    assert at.multiselect(key="runs_compare").value == ["done", "broken"]  # unknown run dropped
    assert set(at.dataframe[0].value["name"]) == {"done", "broken"}
    at.selectbox(key="runs_selected").set_value("done").run()
    at.toggle(key="runs_cmp_log").set_value(True).run()
    assert at.query_params["run"] == "done" and at.query_params["log"] == "1"
    assert at.query_params["compare"] == ["done", "broken"]
    assert "x" not in at.query_params and "smooth" not in at.query_params  # defaults stay out
    # A link to a run that is gone opens on the newest run instead of failing.
    again = open_runs_page(runs_dir, run="deleted-meanwhile")
    assert again.selectbox(key="runs_selected").value == again.dataframe[0].value["name"][0]


def test_compare_selection_survives_visiting_another_page(runs, runs_dir):
    at = open_runs_page(runs_dir)
    at.multiselect(key="runs_compare").set_value(["done", "broken"]).run()
    at.switch_page("views/new_run.py").run()
    at.switch_page("views/runs.py").run()
    assert at.multiselect(key="runs_compare").value == ["done", "broken"]


# --- resume, continue, title and note, new run from this one ------------------------------------


@pytest.fixture
def trained(runs_dir, trained_run):
    """A completed run with checkpoints up to its max_steps (12), inside runs_dir."""
    import shutil

    shutil.copytree(trained_run.path, runs_dir / "trained")
    return RunDir(runs_dir / "trained")


def test_resume_is_disabled_on_a_completed_run_with_the_reason(trained, runs_dir):
    at = open_runs_page(runs_dir, run="trained")
    resume = at.button(key="runs_resume")
    assert resume.disabled
    assert resume.help == "Completed: use Continue training with a higher max_steps"


def test_continue_training_passes_the_chosen_values(trained, runs_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "core.runs.launcher.continue_run", lambda run, n, t: calls.append((run.run_id, n, t))
    )
    at = open_runs_page(runs_dir, run="trained")
    assert at.number_input(key="runs_more_steps_trained").value == 24  # twice max_steps
    note = " ".join(c.value for c in at.caption)
    assert "the cosine ends at step 12 as planned" in note and "min_lr (0.0003)" in note
    at.number_input(key="runs_more_steps_trained").set_value(40).run()
    at.number_input(key="runs_more_target_trained").set_value(0.5).run()
    at.button(key="runs_more_go_trained").click().run()
    assert calls == [("trained", 40, 0.5)] and not at.exception


def test_title_and_note_are_stored_and_shown(runs, runs_dir):
    at = open_runs_page(runs_dir, run="done")
    assert "title" not in at.dataframe[0].value.columns  # no run has one yet
    at.text_input(key="runs_title_done").input("baseline *3e-3*")
    at.text_area(key="runs_note_done").input("no warmup\nloss flat after step 3")
    at.button(key="runs_notes_save_done").click().run()
    assert runs["done"].read_notes() == {
        "title": "baseline *3e-3*",
        "note": "no warmup\nloss flat after step 3",
    }
    table = at.dataframe[0].value
    assert list(table.columns)[:2] == ["name", "title"]
    assert table.set_index("name").loc["done", "title"] == "baseline *3e-3*"
    assert table.set_index("name").loc["done", "note"] == "no warmup …"
    assert any(t.value == "no warmup\nloss flat after step 3" for t in at.text)  # whole, as text
    assert any("baseline \\*3e\\-3\\*" in m.value for m in at.markdown)  # escaped, not italics


def test_a_title_that_is_refused_says_why(runs, runs_dir):
    at = open_runs_page(runs_dir, run="done")
    at.text_input(key="runs_title_done").input("   ")
    at.button(key="runs_notes_save_done").click().run()
    assert any("title: give 1-80 characters" in e.value for e in at.error)
    assert runs["done"].read_notes()["title"] == "done"


def test_new_run_from_this_one_fills_the_form_once(runs, runs_dir, small_text):
    at = open_runs_page(runs_dir, run="done")
    at.button(key="runs_copy").click().run()
    assert not at.exception, at.exception
    cfg = runs["done"].read_config()
    assert at.number_input(key="nr_n_embd").value == cfg.n_embd == 32
    assert at.number_input(key="nr_max_steps").value == cfg.max_steps == 10
    assert at.text_input(key="nr_max_lr").value == "0.003"
    assert at.radio(key="nr_data_source").value == "a local path"
    assert at.text_input(key="nr_data_path").value == str(small_text)
    assert at.text_input(key="nr_run_name").value.startswith("done-")
    assert any("Filled in from run" in i.value for i in at.info)
    at.number_input(key="nr_n_layer").set_value(3).run()  # loaded once: an edit stays
    at.run()
    assert at.number_input(key="nr_n_layer").value == 3
    assert at.number_input(key="nr_n_embd").value == 32


# --- the run queue ----------------------------------------------------------------------------


def queue_of(runs_dir) -> list[str]:
    from core.runs import queue as run_queue

    return run_queue.queued(runs_dir)


def test_queue_panel_lists_moves_removes_and_clears(runs, runs_dir, small_text):
    """While 'live' trains nothing starts: the panel shows the queue and changes it."""
    from core.runs import queue as run_queue

    for name in ("q1", "q2", "q3"):
        run_queue.enqueue(make_tiny_config(small_text), runs_dir, name)
    at = open_runs_page(runs_dir)
    listed = [m.value for m in at.markdown if "`q" in m.value]
    assert [line.split("`")[1] for line in listed] == ["q1", "q2", "q3"]
    assert "Stopping the current run lets the next one start" in " ".join(
        c.value for c in at.caption
    )
    assert at.button(key="runs_q_up_q1").disabled and at.button(key="runs_q_down_q3").disabled
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["q2", "state"] == "waiting"
    at.button(key="runs_q_down_q1").click().run()
    assert queue_of(runs_dir) == ["q2", "q1", "q3"]
    at.button(key="runs_q_up_q3").click().run()
    assert queue_of(runs_dir) == ["q2", "q3", "q1"]
    at.button(key="runs_q_remove_q3").click().run()
    assert queue_of(runs_dir) == ["q2", "q1"] and not (runs_dir / "q3").exists()
    listed = [m.value for m in at.markdown if "`q" in m.value]
    assert [line.split("`")[1] for line in listed] == ["q2", "q1"]
    at.button(key="runs_q_clear").click().run()
    assert queue_of(runs_dir) == [] and not (runs_dir / "q1").exists()
    assert "No runs are waiting" in " ".join(c.value for c in at.caption)
    assert runs["live"].read_status()["state"] == "running"  # the queue never touched it


def test_the_app_starts_the_next_queued_run_on_a_page_load(runs_dir, small_text, monkeypatch):
    """Nothing trains: the first page load starts the queue's first run (and says so)."""
    from core.runs import launcher
    from core.runs import queue as run_queue

    started = []

    def launch_prepared(run):  # as the launcher does, the run leaves the state 'waiting'
        run.write_status(state="queued")
        started.append(run.run_id)
        return run.run_id

    monkeypatch.setattr(launcher, "launch_prepared", launch_prepared)
    run_queue.enqueue(make_tiny_config(small_text), runs_dir, "first")
    run_queue.enqueue(make_tiny_config(small_text), runs_dir, "second")
    at = open_runs_page(runs_dir)
    assert started == ["first"] and queue_of(runs_dir) == ["second"]
    assert any("Started first from the run queue" in t.value for t in at.toast)


def test_a_broken_queue_never_breaks_a_page(runs_dir, monkeypatch):
    from core.runs import queue as run_queue

    def broken(root):
        raise OSError("disk on fire")

    monkeypatch.setattr(run_queue, "start_next", broken)
    at = open_runs_page(runs_dir)
    assert "No runs yet" in at.info[0].value
