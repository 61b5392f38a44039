"""The launcher: detached engine processes, stop (with escalation), crash detection, resume, delete."""

import os
import signal
import subprocess
import sys

import pytest
from conftest import WAIT_S, make_tiny_config, wait_for

from core.config import ConfigError
from core.runs import launcher
from core.store import rundir
from core.store.rundir import RunDir


def finished(run: RunDir):
    state = launcher.state_of(run)
    return state if state not in ("queued", "running") else None


def test_launch_trains_in_the_background_to_completion(runs_dir, small_text):
    run_id = launcher.launch(
        make_tiny_config(small_text, max_steps=4, eval_interval=0), runs_dir, "bg"
    )
    run = RunDir(runs_dir / run_id)
    status = run.read_status()
    assert status["launcher_pid"] and status["command"][:3] == [sys.executable, "-m", "core.train"]
    assert os.getpgid(status["launcher_pid"]) == status["launcher_pid"]  # its own session
    assert wait_for(lambda: finished(run), "the run to end") == "completed"
    assert run.read_status()["step"] == 4
    assert run.latest_checkpoint() is not None
    assert "run completed" in run.log_path.read_text()  # stdout went to log.txt
    assert [i.run_id for i in launcher.list_runs(runs_dir)] == ["bg"]


class FakePopen:
    calls = []

    def __init__(self, args, **kwargs):
        FakePopen.calls.append((args, kwargs))
        self.pid = 999_999_999

    def poll(self):
        return 0


def test_commands_are_argument_lists_never_shell_strings(runs_dir, small_text, monkeypatch):
    FakePopen.calls.clear()
    monkeypatch.setattr(launcher.subprocess, "Popen", FakePopen)
    launcher.launch(make_tiny_config(small_text), runs_dir, "one")
    launcher.launch(make_tiny_config(small_text, nproc=2), runs_dir, "two")
    (one, kw1), (two, kw2) = FakePopen.calls
    assert one == [
        sys.executable,
        "-m",
        "core.train",
        "--run-dir",
        str((runs_dir / "one").resolve()),
    ]
    assert two[:7] == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
    ]
    assert two[7:9] == ["core.train", "--run-dir"]
    for kw in (kw1, kw2):
        assert not kw.get("shell") and kw["start_new_session"] is True
        assert kw["env"]["PYTHONUNBUFFERED"] == "1"
        assert kw["stderr"] == subprocess.STDOUT
        assert str(kw["cwd"]) == str(launcher.PROJECT_ROOT)


@pytest.mark.parametrize("name", ["../evil", "a/b", "rm -rf x", "$(id)", "-x", ""])
def test_unsafe_names_and_invalid_configs_create_nothing(runs_dir, small_text, name):
    cfg = make_tiny_config(small_text)
    if name:
        with pytest.raises(ConfigError, match="invalid run name"):
            launcher.launch(cfg, runs_dir, name)
    with pytest.raises(ConfigError, match="n_embd"):
        launcher.launch(cfg.replace(n_embd=33), runs_dir, "bad")
    with pytest.raises(ValueError, match="neither"):
        launcher.launch(cfg.replace(data=str(runs_dir / "missing.txt")), runs_dir, "bad")
    assert list(runs_dir.iterdir()) == []


def test_default_names_are_unique(runs_dir):
    first = launcher.default_run_name("nano", runs_dir)
    (runs_dir / first).mkdir()
    second = launcher.default_run_name("nano", runs_dir)
    assert first.startswith("nano-") and second == f"{first}-2"


def test_kill_shows_crashed_then_resume_and_stop(runs_dir, small_text, monkeypatch):
    monkeypatch.setattr(rundir, "HEARTBEAT_GRACE_S", 0.5)
    cfg = make_tiny_config(small_text, max_steps=100_000, eval_interval=0, checkpoint_interval=2)
    run = RunDir(runs_dir / launcher.launch(cfg, runs_dir, "long"))
    wait_for(
        lambda: run.read_status().get("step", 0) >= 3 and run.latest_checkpoint(),
        "two checkpointed steps",
    )
    with pytest.raises(ConfigError, match="stop it before deleting"):
        launcher.delete(run)
    with pytest.raises(ConfigError, match="stop it before resuming"):
        launcher.resume(run)

    os.kill(run.read_status()["pid"], signal.SIGKILL)
    assert wait_for(lambda: finished(run), "crash detection") == "crashed"
    saved_step = run.checkpoints()[-1][0]

    launcher.resume(run)
    assert launcher.state_of(run) in ("queued", "running")
    wait_for(
        lambda: (
            run.read_status().get("state") == "running"
            and run.read_status().get("step", 0) > saved_step
        ),
        "the resumed run to step on",
    )
    assert "resumed from step" in run.log_path.read_text()

    assert launcher.stop(run, timeout=WAIT_S) == "stopped"
    status = run.read_status()
    assert status["reason"] == "stop requested"
    assert run.checkpoints()[-1][0] == status["step"]  # stopped runs end with a checkpoint
    assert not run.stop_requested()
    launcher.delete(run)
    assert not run.path.exists()


def test_stop_escalates_to_signals_when_stop_is_ignored(runs_dir, small_text, monkeypatch):
    monkeypatch.setattr(rundir, "HEARTBEAT_GRACE_S", 0.5)
    monkeypatch.setattr(launcher, "HEARTBEAT_FRESH_S", 0.5)  # it never stamps a heartbeat
    run = RunDir.create(runs_dir, "deaf", make_tiny_config(small_text))
    # A process that never reads STOP and ignores SIGTERM: only SIGKILL ends it.
    deaf = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, "
            "signal.SIG_IGN); print('ready', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert deaf.stdout.readline().strip() == b"ready"
        run.write_status(
            state="running",
            pid=deaf.pid,
            launcher_pid=deaf.pid,
            pid_start=rundir.process_start_time(deaf.pid),
        )
        assert launcher.stop(run, timeout=0.5) == "failed"
        deaf.wait(timeout=10)  # ended (the launcher's liveness probe may have reaped it)
        assert "SIGKILL" in run.read_status()["error"]
        assert "no heartbeat" in run.read_status()["error"]
    finally:
        if deaf.poll() is None:
            deaf.kill()
            deaf.wait()


def test_resume_and_delete_rules(runs_dir, small_text):
    run = RunDir.create(runs_dir, "nockpt", make_tiny_config(small_text))
    run.write_status(state="failed", error="boom")
    with pytest.raises(ConfigError, match="no checkpoint"):
        launcher.resume(run)
    with pytest.raises(ConfigError, match="no run"):
        launcher.resume(runs_dir / "missing")
    alive = RunDir.create(runs_dir, "alive", make_tiny_config(small_text))
    alive.write_status(state="running", pid=os.getpid())
    with pytest.raises(ConfigError, match="running: stop it"):
        launcher.delete(alive)
    assert {i.run_id: i.state for i in launcher.list_runs(runs_dir)} == {
        "nockpt": "failed",
        "alive": "running",
    }
    launcher.delete(run)
    assert [i.run_id for i in launcher.list_runs(runs_dir)] == ["alive"]
