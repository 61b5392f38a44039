import json
import os
import subprocess
import time

import pytest

from core.config import ConfigError, preset
from core.store.rundir import RunDir, default_run_name, list_run_dirs, pid_alive, process_start_time


def test_create_writes_config_and_queued_status(runs_dir):
    run = RunDir.create(runs_dir, "first", preset("nano"))
    assert run.read_config() == preset("nano")
    assert json.loads((run.path / "config.json").read_text())["schema_version"] == 1
    assert run.read_status()["state"] == "queued"
    with pytest.raises(ConfigError, match="already exists"):
        RunDir.create(runs_dir, "first", preset("nano"))
    with pytest.raises(ConfigError, match="invalid run name"):
        RunDir.create(runs_dir, "../escape", preset("nano"))
    assert [r.run_id for r in list_run_dirs(runs_dir)] == ["first"]


def test_running_run_with_dead_process_and_stale_heartbeat_is_crashed(runs_dir):
    run = RunDir.create(runs_dir, "r", preset("nano"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    run.write_status(state="running", pid=dead.pid)
    assert run.effective_state() == "crashed"  # its process is gone: fresh heartbeat or not
    status = run.read_status()
    status["updated"] = time.time() - 30
    assert run.effective_state(status) == "crashed"
    status["pid"] = os.getpid()  # alive: a long step, not a crash
    assert run.effective_state(status) == "running"
    status["updated"] = time.time() - 3600  # an hour without a heartbeat: that pid is not ours
    assert run.effective_state(status) == "crashed"
    status["pid_start"] = process_start_time(os.getpid())  # unless its start time proves it
    assert run.effective_state(status) == "running"


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(None)
    child = subprocess.Popen(["true"])
    child.wait()
    assert not pid_alive(child.pid)


def test_stop_request_round_trip(runs_dir):
    run = RunDir.create(runs_dir, "s", preset("nano"))
    assert not run.stop_requested()
    run.request_stop()
    assert run.stop_requested()
    run.clear_stop()
    assert not run.stop_requested()


def test_default_run_name_is_unique(runs_dir):
    first = default_run_name("nano", runs_dir)
    (runs_dir / first).mkdir(parents=True)
    second = default_run_name("nano", runs_dir)
    assert second != first and second.startswith(first)
    assert default_run_name("../x y", runs_dir).startswith("x-y-")


def test_a_stop_sent_while_starting_survives_the_start(runs_dir):
    run = RunDir.create(runs_dir, "early", preset("nano"))
    run.request_stop()
    os.utime(run.path / "STOP", (time.time() - 10, time.time() - 10))
    run.clear_stop(older_than=time.time() - 20)  # the stop is newer than this start: kept
    assert run.stop_requested()
    run.clear_stop(older_than=time.time())
    assert not run.stop_requested()


def test_same_process_tells_a_reused_pid():
    from core.store.rundir import same_process

    me = process_start_time(os.getpid())
    assert me and same_process(os.getpid(), me) is True
    assert same_process(os.getpid(), me + 1) is False  # someone else with this pid
    assert same_process(os.getpid(), None) is None  # alive, but nothing to compare
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert same_process(gone.pid, me) is False


def test_a_failed_status_write_leaves_no_temp_file(runs_dir, monkeypatch):
    run = RunDir.create(runs_dir, "t", preset("nano"))

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        run.write_status(step=1)
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "status.json"]
    monkeypatch.undo()
    run.write_status(state="running", command=["python"] * 50)
    run.write_status_in_place(state="failed", error="disk full")
    status = run.read_status()
    assert status["state"] == "failed" and "command" not in status  # shortened, still JSON


def test_status_fields_of_the_wrong_type_read_as_damaged(runs_dir):
    run = RunDir.create(runs_dir, "d", preset("nano"))
    (run.path / "status.json").write_text('{"state": "running", "step": "7"}')
    status = run.read_status()
    assert status["state"] == "damaged" and "step='7'" in status["error"]
    assert run.effective_state() == "damaged"


def test_shown_state_names_starting_and_stopping_apart_from_waiting(tmp_path, tiny_config):
    from core.store.rundir import STARTING, STOPPING

    run = RunDir.create(tmp_path, "r", tiny_config)
    assert run.shown_state("queued") == STARTING  # its process is starting
    assert run.shown_state("waiting") == "waiting"  # in the run queue
    run.request_stop()
    assert run.shown_state("running") == STOPPING and run.shown_state("queued") == STOPPING
    assert run.shown_state("stopped") == "stopped"
