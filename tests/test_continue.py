"""Continue training: a completed run trained further to a new max_steps, from the launcher and
the command line; the schedule keeps its old length (extra steps at min_lr); plain Resume is
refused where it would train nothing."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, make_tiny_config
from test_launcher import finished, wait_for

from core.config import ConfigError
from core.runs import launcher
from core.store import metrics
from core.store.rundir import RunDir
from core.train import cli
from core.train.optim import get_lr


@pytest.fixture
def completed(trained_run, runs_dir) -> RunDir:
    """A copy of the session's completed 12-step run, free to train further."""
    shutil.copytree(trained_run.path, runs_dir / "done")
    return RunDir(runs_dir / "done")


def check_continued(run: RunDir, time_at_12: float) -> None:
    """Steps 1..20 once, steps after 12 at min_lr, completed at 20, training time grown."""
    cfg = run.read_config()
    assert (cfg.max_steps, cfg.lr_decay_steps) == (20, 12)
    status = run.read_status()
    assert (status["state"], status["step"]) == ("completed", 20)
    assert status["reason"] == "max_steps 20 reached"
    records = metrics.read_all(run.metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 21))
    assert train[11]["lr"] > cfg.min_lr  # step 12 was still on the cosine
    assert all(r["lr"] == pytest.approx(cfg.min_lr) for r in train[12:])
    assert [r["step"] for r in records if r["kind"] == "start"] == [0, 12]
    summary = metrics.summarize(run.metrics_path)
    assert summary.train_time_s > time_at_12 and summary.segment_starts == [0, 12]
    assert summary.train_time_s == pytest.approx(train[-1]["train_time_s"])


def test_continue_a_completed_run_through_the_launcher(completed):
    reason = completed.read_status()["reason"]
    time_at_12 = metrics.summarize(completed.metrics_path).train_time_s
    assert launcher.can_resume(completed) == (
        False,
        "completed: use Continue training with a higher max_steps",
    )
    with pytest.raises(ConfigError, match="done: completed: use Continue training with a higher"):
        launcher.resume(completed)
    for bad in (12, 5, 0, 12.5, "20", True):
        with pytest.raises(ConfigError, match="above the checkpoint's step 12"):
            launcher.continue_run(completed, bad)
    with pytest.raises(ConfigError, match="target_loss"):
        launcher.continue_run(completed, 20, target_loss=-1.0)
    # Refusals change nothing: not the config, not the reason the run ended.
    assert completed.read_config().max_steps == 12 and completed.read_status()["reason"] == reason

    assert launcher.continue_run(completed, 20, target_loss=0.0) == "done"
    assert wait_for(lambda: finished(completed), "the continued run to end") == "completed"
    check_continued(completed, time_at_12)
    assert launcher.can_resume(completed)[0] is False


def test_continue_a_completed_run_from_the_command_line(completed, capsys):
    time_at_12 = metrics.summarize(completed.metrics_path).train_time_s
    # Refused with exit 2 and nothing changed: plain --resume, and --max-steps not above 12.
    assert cli.main(["--run-dir", str(completed.path), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "already reached max_steps 12 (step 12): give --max-steps above 12" in err
    assert cli.main(["--run-dir", str(completed.path), "--resume", "--max-steps", "12"]) == 2
    assert "above the checkpoint's step 12" in capsys.readouterr().err
    assert completed.read_config().max_steps == 12 and completed.read_status()["step"] == 12

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.train",
            "--run-dir",
            str(completed.path),
            "--resume",
            "--max-steps",
            "20",
            "--target-loss",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "resumed from step 12" in result.stdout
    check_continued(completed, time_at_12)


def test_continued_config_keeps_the_schedule_length(small_text):
    cfg = make_tiny_config(small_text, max_steps=100, warmup_steps=10)
    more = launcher.continued_config(cfg, 100, 300, target_loss=0.5)
    assert (more.max_steps, more.lr_decay_steps, more.target_loss) == (300, 100, 0.5)
    assert [get_lr(s, more) for s in range(100)] == [get_lr(s, cfg) for s in range(100)]
    assert get_lr(150, more) == cfg.min_lr
    # An explicit decay length stays, and so does a target loss not given.
    again = launcher.continued_config(more, 300, 400)
    assert (again.lr_decay_steps, again.target_loss) == (100, 0.5)
    # A stopped run continued past its plan follows the old cosine to its end first.
    stopped = launcher.continued_config(cfg, 40, 150)
    assert [get_lr(s, stopped) for s in range(40, 100)] == [get_lr(s, cfg) for s in range(40, 100)]


def test_can_resume_says_why_not(runs_dir, small_text):
    cfg = make_tiny_config(small_text)
    fresh = RunDir.create(runs_dir, "fresh", cfg)
    fresh.write_status(state="failed", error="boom")
    assert launcher.can_resume(fresh) == (
        False,
        "no checkpoint to resume from (it ended before its first save): start a new run instead",
    )
    stopped = RunDir.create(runs_dir, "stopped", cfg)
    stopped.checkpoint_dir.mkdir()
    stopped.checkpoint_path(5).write_bytes(b"")
    stopped.write_status(state="stopped", step=5)
    assert launcher.can_resume(stopped) == (True, "resumes from step 5 of 12")
    stopped.write_status(state="completed", reason="target loss 0.1 reached (loss 0.0900)")
    ok, why = launcher.can_resume(stopped)
    assert not ok and why.startswith("completed (target loss 0.1 reached") and "Continue" in why
    with pytest.raises(ConfigError, match="run stopped: completed"):
        launcher.resume(stopped)
    stopped.write_status(state="running", pid=launcher.os.getpid())
    assert launcher.can_resume(stopped) == (False, "running: stop it before resuming")
    with pytest.raises(ConfigError, match="stop it before continuing"):
        launcher.continue_run(stopped, 20)
