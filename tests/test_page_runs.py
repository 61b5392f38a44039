"""Runs page (AppTest) and its pure summary logic in dashboard/run_table.py."""

import csv
import io
import json
import os
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, make_tiny_config
from core import metrics, rundir
from core.launcher import RunInfo
from core.rundir import RunDir
from dashboard import run_table
from dashboard.colors import PALETTE, run_color

# Stands in for an engine: running until it sees STOP, then ends as 'stopped' like the real one.
FAKE_ENGINE = """
import os, sys, time
from core.rundir import RunDir
run = RunDir(sys.argv[1])
run.write_status(state="running", pid=os.getpid(), launcher_pid=os.getpid())
print("ready", flush=True)
while not run.stop_requested():
    run.write_status(step=3)
    time.sleep(0.05)
run.write_status(state="stopped", reason="stop requested", ended=time.time())
run.clear_stop()
"""


def write_metrics(run: RunDir, losses, vals=()):
    lines = [dict(kind="train", step=i + 1, loss=x, lr=1e-3, tokens_per_sec=100.0,
                  tokens_seen=(i + 1) * 256, dt_ms=10.0, time=1.0 + i, train_time_s=16.25 * (i + 1))
             for i, x in enumerate(losses)]
    lines += [dict(kind="eval", step=s, val_loss=v) for s, v in vals]
    lines.append(dict(kind="sample", step=len(losses), text="ROMEO: hi, \"there\"\n"))
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in lines))


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
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    crashed = RunDir.create(runs_dir, "crashed", cfg)
    crashed.write_status(state="running", pid=int(gone), step=2)
    live = RunDir.create(runs_dir, "live", cfg)
    engine = subprocess.Popen([sys.executable, "-c", FAKE_ENGINE, str(live.path)], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                              start_new_session=True)
    assert engine.stdout.readline().strip() == b"ready"  # it is the status's only writer now
    time.sleep(1.1)  # the crashed run's heartbeat goes stale
    yield {"done": done, "broken": broken, "crashed": crashed, "live": live}
    if engine.poll() is None:
        engine.kill()
    engine.wait()


def open_runs_page(runs_dir) -> AppTest:
    at = AppTest.from_file("../dashboard/app.py", default_timeout=30)
    at.run()
    assert not at.exception
    return at


def test_no_runs_yet_points_to_new_run(runs_dir):
    at = open_runs_page(runs_dir)
    assert "No runs yet" in at.info[0].value
    links = at.get("page_link")
    assert links and "new_run" in links[0].proto.page


def test_table_shows_every_state(runs, runs_dir):
    at = open_runs_page(runs_dir)
    table = at.dataframe[0].value.set_index("name")
    assert table["state"].to_dict() == {
        "done": "completed", "broken": "failed", "crashed": "crashed", "live": "running"}
    assert table.loc["done", "best loss"] == 3.0 and table.loc["done", "last loss"] == 3.5
    assert table.loc["done", "best val loss"] == 3.9 and table.loc["done", "tokens seen"] == 1024
    assert table.loc["done", "training time"] == "1m 05s"  # from the records, not wall time
    assert table.loc["done", "best val step"] == 4
    assert table.loc["broken", "max lr"] == 1e-2
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


def test_compare_overlays_curves_in_run_colours(runs, runs_dir):
    write_metrics(runs["broken"], [6.0, 5.0])
    at = open_runs_page(runs_dir)
    at.multiselect(key="runs_compare").set_value(["done", "broken"]).run()
    diff = at.dataframe[1].value
    assert list(diff.columns) == ["run", "max_lr"]
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    colors = {t["name"]: t["line"]["color"] for t in fig["data"]}
    assert colors == {"done train": run_color("done"), "done val": run_color("done"),
                      "broken train": run_color("broken")}
    assert "step" in fig["layout"]["xaxis"]["title"]["text"]


def test_open_live_view_sets_the_selected_run(runs, runs_dir):
    at = open_runs_page(runs_dir)
    at.selectbox(key="runs_selected").set_value("done").run()
    at.button(key="runs_open").click().run()
    assert at.session_state["selected_run"] == "done"
    assert not at.exception


def test_summary_csv_and_curves(tmp_path, small_text):
    run = RunDir.create(tmp_path, "r", make_tiny_config(small_text))
    write_metrics(run, [float(x) for x in range(5000, 0, -1)], vals=[(10, 2.0)])
    summary = metrics.cached_summary(run.metrics_path)
    assert (summary.last_step, summary.best_loss, summary.last_loss) == (5000, 1.0, 1.0)
    # Appends are read incrementally; a rewrite (a resume truncates) starts over.
    with open(run.metrics_path, "a") as f:
        f.write(json.dumps(dict(kind="train", step=5001, loss=0.5, tokens_seen=9)) + "\n")
    assert metrics.cached_summary(run.metrics_path).best_loss == 0.5
    write_metrics(run, [7.0])
    assert metrics.cached_summary(run.metrics_path).best_loss == 7.0

    write_metrics(run, [float(x) for x in range(5000, 0, -1)], vals=[(10, 2.0)])
    csv_text = run_table.metrics_csv(run)
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(rows) == 5000 + 1 + 1  # every record, none thinned
    assert rows[-1]["text"] == 'ROMEO: hi, "there"\n' and rows[-2]["val_loss"] == "2.0"
    curves = run_table.loss_curves(run, max_points=1000)
    assert len(curves["loss"][0]) <= 1001 and curves["loss"][0][-1] == 5000
    assert curves["val_loss"] == ([10], [2.0])

    info = RunInfo(run, {"state": "running", "started": 100.0, "step": 7, "max_steps": 12,
                         "created": 50.0}, "crashed")
    row = run_table.summary_row(info, metrics.RunSummary(), run.read_config())
    assert row["state"] == "crashed" and row["progress"] == pytest.approx(7 / 12)
    assert "process gone" in row["error"] and row["training time"] == ""  # no step recorded


def test_colours_are_stable_and_from_the_palette():
    assert run_color("abc") == run_color("abc") and run_color("abc") in PALETTE
    assert len({run_color(f"run-{i}") for i in range(50)}) == len(PALETTE)
