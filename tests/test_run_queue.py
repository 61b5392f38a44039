"""The run queue: waiting runs start one after another, survive a restart, can be reordered,
removed and cleared; a failure does not stop the queue; two starters at once start one run."""

import json
import os
import shutil
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, make_tiny_config
from test_launcher import WAIT_S, wait_for

from core.config import ConfigError
from core.runs import launcher
from core.runs import queue as run_queue
from core.store import rundir
from core.store.rundir import RunDir
from core.train import cli


@pytest.fixture
def queue_dir(runs_dir):
    """runs_dir, with every queued run dropped and every active run stopped afterwards (a
    failing test must not leave engines training)."""
    yield runs_dir
    run_queue.clear(runs_dir)
    for info in launcher.list_runs(runs_dir):
        if info.state in rundir.ACTIVE_STATES:
            launcher.stop(info.run, timeout=30)


def ended(run: RunDir):
    """The end state of a run, or None while it waits, is queued or runs."""
    state = launcher.state_of(run)
    return state if state not in ("waiting", "queued", "running") else None


def states(runs_dir) -> dict:
    return {i.run_id: i.state for i in launcher.list_runs(runs_dir)}


def test_queued_runs_start_in_order_when_the_current_one_ends_and_survive_a_failure(
    queue_dir, small_text, tmp_path
):
    runs = queue_dir
    current = RunDir(
        runs
        / launcher.launch(
            make_tiny_config(small_text, max_steps=100_000, eval_interval=0, checkpoint_interval=0),
            runs,
            "current",
        )
    )
    doomed_text = tmp_path / "doomed.txt"
    shutil.copy(small_text, doomed_text)
    quick = dict(max_steps=3, eval_interval=0, checkpoint_interval=0)
    run_queue.enqueue(make_tiny_config(doomed_text, **quick), runs, "doomed")
    run_queue.enqueue(make_tiny_config(small_text, **quick), runs, "later")
    run_queue.enqueue(make_tiny_config(small_text, **quick), runs, "sooner")
    doomed_text.unlink()  # its data goes away after it was queued: it will fail
    assert run_queue.move("sooner", offset=-1, runs_dir=runs) == ["doomed", "sooner", "later"]
    wait_for(lambda: current.read_status().get("state") == "running", "the current run to start")
    assert run_queue.start_next(runs) is None  # something is training: nothing starts
    assert run_queue.queued(runs) == ["doomed", "sooner", "later"]
    assert states(runs) == {
        "current": "running",
        "doomed": "waiting",
        "sooner": "waiting",
        "later": "waiting",
    }

    assert launcher.stop(current, timeout=WAIT_S) == "stopped"  # its engine starts the queue
    wait_for(lambda: ended(RunDir(runs / "later")), "the last queued run to end")
    assert states(runs) == {
        "current": "stopped",
        "doomed": "failed",
        "sooner": "completed",
        "later": "completed",
    }
    doomed, sooner, later = (RunDir(runs / r).read_status() for r in ("doomed", "sooner", "later"))
    assert "neither 'tinyshakespeare' nor an existing file" in doomed["error"]
    assert doomed["ended"] <= sooner["started"] < sooner["ended"] <= later["started"]
    assert later["step"] == 3 and run_queue.queued(runs) == []
    assert "run queue: started doomed" in current.log_path.read_text()


def test_order_move_remove_clear_and_a_fresh_process_reads_the_queue(runs_dir, small_text):
    cfg = make_tiny_config(small_text)
    for name in ("a", "b", "c"):
        run_queue.enqueue(cfg, runs_dir, name)
    assert run_queue.queued(runs_dir) == ["a", "b", "c"]  # nothing started by itself
    assert states(runs_dir) == {"a": "waiting", "b": "waiting", "c": "waiting"}
    assert run_queue.move("c", index=0, runs_dir=runs_dir) == ["c", "a", "b"]
    assert run_queue.move("c", offset=5, runs_dir=runs_dir) == ["a", "b", "c"]
    assert run_queue.move("a", offset=-1, runs_dir=runs_dir) == ["a", "b", "c"]
    assert run_queue.move("b", offset=1, runs_dir=runs_dir) == ["a", "c", "b"]
    with pytest.raises(ConfigError, match="'zz' is not in the queue"):
        run_queue.move("zz", offset=1, runs_dir=runs_dir)
    with pytest.raises(ConfigError, match="either offset or index"):
        run_queue.move("a", runs_dir=runs_dir)

    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from core.runs import queue as run_queue; "
            "print(json.dumps(run_queue.queued(sys.argv[1])))",
            str(runs_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(fresh.stdout) == ["a", "c", "b"], fresh.stderr

    run_queue.remove("c", runs_dir)  # a never-started run: its directory goes too
    assert not (runs_dir / "c").exists() and run_queue.queued(runs_dir) == ["a", "b"]
    with pytest.raises(ConfigError, match="not in the queue"):
        run_queue.remove("c", runs_dir)
    launcher.delete(runs_dir / "a")  # waiting runs are not active: the runs page may delete them
    assert run_queue.queued(runs_dir) == ["b"]
    assert run_queue.clear(runs_dir) == ["b"]
    assert run_queue.queued(runs_dir) == [] and states(runs_dir) == {}


def test_enqueue_validates_like_launch_and_creates_nothing_when_refused(runs_dir, small_text):
    cfg = make_tiny_config(small_text)
    with pytest.raises(ConfigError, match="n_embd"):
        run_queue.enqueue(cfg.replace(n_embd=33), runs_dir, "bad")
    with pytest.raises(ValueError, match="neither"):
        run_queue.enqueue(cfg.replace(data=str(runs_dir / "missing.txt")), runs_dir, "bad")
    with pytest.raises(ConfigError, match="invalid run name"):
        run_queue.enqueue(cfg, runs_dir, "../evil")
    assert list(runs_dir.iterdir()) == []
    first = run_queue.enqueue(cfg, runs_dir)  # a default name, like launch
    assert first.startswith("run-")
    with pytest.raises(ConfigError, match="already exists"):
        run_queue.enqueue(cfg, runs_dir, first)
    assert run_queue.queued(runs_dir) == [first]


def test_a_waiting_run_is_never_crashed_and_cannot_be_resumed(runs_dir, small_text, monkeypatch):
    monkeypatch.setattr(rundir, "HEARTBEAT_GRACE_S", 0.0)
    run = RunDir(runs_dir / run_queue.enqueue(make_tiny_config(small_text), runs_dir, "w"))
    run.write_status(updated=0)
    assert launcher.state_of(run) == "waiting"
    assert [r.run_id for r in rundir.list_run_dirs(runs_dir)] == ["w"]
    assert launcher.can_resume(run) == (
        False,
        "waiting in the run queue: it starts when the runs before it end",
    )
    with pytest.raises(ConfigError, match="no checkpoint"):
        launcher.continue_run(run, 20)


class FakePopen:
    """Starts nothing; its pid is this test process, so the run reads as alive and active."""

    calls = []

    def __init__(self, args, **kwargs):
        FakePopen.calls.append((args, kwargs["env"]))
        self.pid = os.getpid()

    def poll(self):
        return None


def test_start_next_starts_one_run_at_a_time_even_when_called_twice_at_once(
    runs_dir, small_text, monkeypatch
):
    assert run_queue.start_next(runs_dir) is None
    assert list(runs_dir.iterdir()) == []  # no queue: nothing written
    FakePopen.calls.clear()
    monkeypatch.setattr(launcher.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(launcher, "_children", {})  # the fakes never end: forget them after
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, value)  # as on rank 0 of torchrun: the next run must not see it
    cfg = make_tiny_config(small_text)
    for name in ("broken", "gone", "one", "two"):
        run_queue.enqueue(cfg, runs_dir, name)
    (runs_dir / "broken" / "config.json").write_text("{")  # cannot start: marked failed, skipped
    launcher.delete(runs_dir / "gone")  # deleted while waiting: skipped

    barrier, results = threading.Barrier(2), []

    def starter():
        barrier.wait()
        results.append(run_queue.start_next(runs_dir))

    threads = [threading.Thread(target=starter) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results, key=str) == [None, "one"]
    ((args, env),) = FakePopen.calls
    assert str((runs_dir / "one").resolve()) in args and args[1:3] == ["-m", "core.train"]
    assert not {"RANK", "WORLD_SIZE", "MASTER_PORT"} & set(env)
    # its config is damaged, so that is what it shows; its status records the failed start
    assert states(runs_dir) == {"broken": "damaged", "one": "queued", "two": "waiting"}
    broken = RunDir(runs_dir / "broken").read_status()
    assert broken["state"] == "failed" and "could not start it" in broken["error"]
    assert run_queue.start_next(runs_dir) is None  # "one" is active

    RunDir(runs_dir / "one").write_status(state="failed", error="boom")  # a failure: go on
    assert run_queue.start_next(runs_dir) == "two"
    RunDir(runs_dir / "two").write_status(state="completed")
    assert run_queue.start_next(runs_dir) is None and run_queue.queued(runs_dir) == []


def test_the_training_process_starts_the_queue_and_never_fails_because_of_it(
    runs_dir, small_text, monkeypatch, capsys
):
    calls = []

    def broken_start_next(path):
        calls.append(path)
        raise RuntimeError("queue exploded")

    monkeypatch.setattr(run_queue, "start_next", broken_start_next)
    flags = [
        "--preset",
        "nano",
        "--n-embd",
        "32",
        "--block-size",
        "32",
        "--seq-len",
        "32",
        "--micro-batch-size",
        "4",
        "--max-steps",
        "2",
        "--eval-interval",
        "0",
        "--data",
        str(small_text),
        "--device",
        "cpu",
        "--runs-dir",
        str(runs_dir),
        "--name",
        "solo",
    ]
    assert cli.main(flags) == 0
    assert calls == [runs_dir]
    err = capsys.readouterr().err
    assert "run queue: could not start the next run: RuntimeError: queue exploded" in err
    assert RunDir(runs_dir / "solo").read_status()["state"] == "completed"


def test_started_after_names_the_run_the_queue_launched_when_one_ended(runs_dir, small_text):
    cfg = make_tiny_config(small_text)
    ended = 1_000_000.0
    first = RunDir.create(runs_dir, "first", cfg)
    first.write_status(state="stopped", ended=ended)
    for name, started in (("before", ended - 5), ("next", ended + 2), ("later", ended + 90)):
        RunDir.create(runs_dir, name, cfg).write_status(state="completed", from_queue=started)
    assert run_queue.started_after(first, runs_dir) == "next"
    running = RunDir.create(runs_dir, "running", cfg)
    running.write_status(state="running")  # never ended: nothing followed it
    assert run_queue.started_after(running, runs_dir) is None


def test_a_run_the_queue_starts_records_when(runs_dir, small_text, monkeypatch):
    monkeypatch.setattr(launcher, "_spawn", lambda run, cmd: None)  # no engine process
    run_id = run_queue.enqueue(make_tiny_config(small_text), runs_dir, "waits")
    assert run_queue.start_next(runs_dir) == run_id
    status = RunDir(runs_dir / run_id).read_status()
    assert status["state"] == "queued" and isinstance(status["from_queue"], float)
