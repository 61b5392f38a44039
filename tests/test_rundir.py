import json
import os
import subprocess
import time

import pytest
import torch

from core.config import ConfigError, preset
from core.rundir import MetricsReader, RunDir, list_runs, load_checkpoint, pid_alive


def test_create_writes_config_and_queued_status(runs_dir):
    run = RunDir.create(runs_dir, "first", preset("nano"))
    assert run.read_config() == preset("nano")
    assert json.loads((run.path / "config.json").read_text())["schema_version"] == 1
    assert run.read_status()["state"] == "queued"
    with pytest.raises(ConfigError, match="already exists"):
        RunDir.create(runs_dir, "first", preset("nano"))
    with pytest.raises(ConfigError, match="invalid run name"):
        RunDir.create(runs_dir, "../escape", preset("nano"))
    assert [r.run_id for r in list_runs(runs_dir)] == ["first"]


def test_reader_is_incremental_and_tolerates_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    reader = MetricsReader(path)
    assert [r["step"] for r in reader.read_new()] == [1, 2]
    assert reader.read_new() == []
    with open(path, "a") as f:
        f.write('ss": 1.5}\n{"step": 4}\n')
    assert reader.read_new() == [{"step": 3, "loss": 1.5}, {"step": 4}]


def test_reader_skips_a_corrupt_line_and_restarts_after_a_rewrite(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n\x00\x00garbage\n{"step": 2}\n')
    reader = MetricsReader(path)
    assert [r["step"] for r in reader.read_new()] == [1, 2]
    path.write_text('{"step": 1}\n')  # a resume truncated the file
    assert reader.read_new() == [{"step": 1}]


def test_missing_metrics_file_reads_as_empty(tmp_path):
    assert MetricsReader(tmp_path / "none.jsonl").read_new() == []


def test_running_run_with_dead_process_and_stale_heartbeat_is_crashed(runs_dir):
    run = RunDir.create(runs_dir, "r", preset("nano"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    run.write_status(state="running", pid=dead.pid)
    assert run.effective_state() == "running"  # heartbeat still fresh
    status = run.read_status()
    status["updated"] = time.time() - 60
    assert run.effective_state(status) == "crashed"
    status["pid"] = os.getpid()  # alive: a long step, not a crash
    assert run.effective_state(status) == "running"


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(None)
    child = subprocess.Popen(["true"])
    child.wait()
    assert not pid_alive(child.pid)


def test_checkpoints_atomic_listing_and_retention(runs_dir):
    run = RunDir.create(runs_dir, "ck", preset("nano"))
    for step in (5, 10, 15):
        run.save_checkpoint({"model": {"w": torch.ones(2)}, "config": {}, "step": step}, step, keep=2)
    (run.checkpoint_dir / "step_0000020.pt.tmp").write_bytes(b"half a file")
    assert [s for s, _ in run.checkpoints()] == [10, 15]
    assert run.latest_checkpoint().name == "step_0000015.pt"
    assert load_checkpoint(run.latest_checkpoint())["step"] == 15


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    torch.save({"model": {"w": torch.ones(1000)}, "config": {}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state": torch.ones(1)}, foreign)
    with pytest.raises(ValueError, match="not a checkpoint of this project"):
        load_checkpoint(foreign)


class Pickled:  # arbitrary objects must not be unpickled from a checkpoint
    pass


def test_checkpoints_with_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": Pickled()}, path)
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(path)


def test_stop_request_round_trip(runs_dir):
    run = RunDir.create(runs_dir, "s", preset("nano"))
    assert not run.stop_requested()
    run.request_stop()
    assert run.stop_requested()
    run.clear_stop()
    assert not run.stop_requested()


def test_reader_starts_over_when_a_resume_replaces_the_file(runs_dir):
    run = RunDir.create(runs_dir, "rewritten", preset("nano"))
    run.metrics_path.write_text("".join(json.dumps({"step": s, "loss": 9.0}) + "\n" for s in range(1, 21)))
    reader = MetricsReader(run.metrics_path)
    assert len(reader.read_new()) == 20
    run.truncate_metrics_after(10)  # what a resume from step 10 does
    with open(run.metrics_path, "a") as f:  # and the resumed engine soon writes past the old end
        f.write("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(11, 41)))
    chunk, restarted = reader.read_new_bytes()
    assert restarted
    records = [json.loads(line) for line in chunk.splitlines()]
    assert [r["step"] for r in records] == list(range(1, 41))
    assert all(r["loss"] == 1.0 for r in records if r["step"] > 10)
