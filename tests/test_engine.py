import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, make_tiny_config

from core.model.gpt import GPT
from core.store.metrics import MetricsReader
from core.store.rundir import RunDir
from core.train import engine
from core.train.optim import get_lr
from core.train.system import SystemSampler


def records(run, kind="train"):
    return [r for r in MetricsReader(run.metrics_path).read_new() if r["kind"] == kind]


def start(runs_dir, name, cfg):
    run = RunDir.create(runs_dir, name, cfg)
    return run, engine.train(str(run.path))


def test_run_writes_the_contract(runs_dir, tiny_config):
    run, state = start(runs_dir, "contract", tiny_config)
    assert state == "completed"
    status = run.read_status()
    assert status["state"] == "completed" and status["step"] == 12
    assert "max_steps 12 reached" in status["reason"]
    train = records(run)
    assert [r["step"] for r in train] == list(range(1, 13))
    for key in (
        "time",
        "loss",
        "lr",
        "grad_norm",
        "dt_ms",
        "tokens_per_sec",
        "tokens_seen",
        "mfu",
        "peak_mem_mb",
    ):
        assert all(key in r for r in train), key
    assert train[-1]["tokens_seen"] == 12 * 4 * 32 * 2
    assert train[-1]["loss"] < train[0]["loss"]
    assert [r["step"] for r in records(run, "eval")] == [5, 10, 12]
    samples = records(run, "sample")
    assert samples and all(r["prompt"] == "ROMEO:" and isinstance(r["text"], str) for r in samples)
    log = run.log_path.read_text()
    assert "step    12 | loss" in log and "| lr " in log and "| tok/sec " in log


def test_logged_lr_follows_the_schedule_exactly(runs_dir, tiny_config):
    run, _ = start(runs_dir, "lr", tiny_config)
    assert [r["lr"] for r in records(run)] == [get_lr(s, tiny_config) for s in range(12)]


def test_tiny_model_overfits_and_stops_early(runs_dir, tmp_path, shakespeare_path):
    text = tmp_path / "repeated.txt"
    text.write_text(shakespeare_path.read_text()[:200] * 40)
    cfg = make_tiny_config(
        text,
        grad_accum_steps=1,
        max_lr=2e-2,
        min_lr=1e-3,
        warmup_steps=5,
        max_steps=300,
        target_loss=1.0,
        eval_interval=0,
        checkpoint_interval=0,
        val_fraction=0.2,
    )
    run, state = start(runs_dir, "overfit", cfg)
    status = run.read_status()
    assert state == "completed" and "target loss 1.0 reached" in status["reason"]
    losses = [r["loss"] for r in records(run)]
    assert losses[-1] < 1.0 <= min(losses[:-1]) and len(losses) < 300
    assert run.latest_checkpoint() is not None


def test_same_seed_same_losses(runs_dir, tiny_config):
    a, _ = start(runs_dir, "a", tiny_config)
    b, _ = start(runs_dir, "b", tiny_config)
    assert [r["loss"] for r in records(a)] == [r["loss"] for r in records(b)]


def test_resume_continues_exactly(runs_dir, tiny_config, monkeypatch):
    whole, _ = start(runs_dir, "whole", tiny_config)
    run = RunDir.create(runs_dir, "halves", tiny_config)
    # Ask for a stop once 7 steps are logged, as the dashboard's STOP file would.
    monkeypatch.setattr(RunDir, "stop_requested", lambda self: len(records(self)) >= 7)
    assert engine.train(str(run.path)) == "stopped"
    assert (
        run.read_status()["reason"] == "stop requested"
        and run.latest_checkpoint().name == "step_0000007.pt"
    )
    monkeypatch.undo()
    assert engine.train(str(run.path), resume=True) == "completed"
    assert [r["step"] for r in records(run)] == list(range(1, 13))
    assert [r["loss"] for r in records(run)] == [r["loss"] for r in records(whole)]

    def evals(r):
        return [(e["step"], e["val_loss"]) for e in records(r, "eval")]

    assert evals(run)[-2:] == evals(whole)[-2:]


def test_an_error_ends_the_run_as_failed_with_the_message(runs_dir, tiny_config, monkeypatch):
    def broken(data):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine.dataset, "load_tokens", broken)
    run, state = start(runs_dir, "broken", tiny_config)
    status = run.read_status()
    assert state == "failed" and status["error"] == "RuntimeError: disk on fire"
    assert "Traceback" in run.log_path.read_text()


def test_nan_loss_fails_the_run_instead_of_training_on(runs_dir, tiny_config, monkeypatch):
    forward = GPT.forward

    def poisoned(self, idx, targets=None, cache=None):
        logits, loss = forward(self, idx, targets, cache)
        return logits, (loss * float("nan") if loss is not None else None)

    monkeypatch.setattr(GPT, "forward", poisoned)
    run, state = start(runs_dir, "nan", tiny_config)
    assert state == "failed"
    assert "training diverged" in run.read_status()["error"]
    assert records(run) == []  # nothing logged from the broken step


def test_too_small_data_fails_before_training(runs_dir, tmp_path, tiny_config):
    text = tmp_path / "tiny.txt"
    text.write_text("To be or not to be.")
    run, state = start(runs_dir, "small", tiny_config.replace(data=str(text)))
    assert state == "failed" and "fewer than one micro batch needs" in run.read_status()["error"]


def _spawn(run):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    log = open(run.log_path, "a")
    return subprocess.Popen(
        [sys.executable, "-m", "core.train", "--run-dir", str(run.path)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_for_steps(run, proc, n, timeout=60):
    deadline = time.time() + timeout
    while len(records(run)) < n:
        assert proc.poll() is None, run.log_path.read_text()
        assert time.time() < deadline, "no progress"
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["stop file", "SIGTERM"])
def test_stop_request_saves_a_checkpoint_and_ends_stopped(runs_dir, tiny_config, how):
    run = RunDir.create(
        runs_dir, "stoppable", tiny_config.replace(max_steps=100_000, eval_interval=0)
    )
    proc = _spawn(run)
    _wait_for_steps(run, proc, 2)
    if how == "stop file":
        run.request_stop()
    else:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    status = run.read_status()
    assert status["state"] == "stopped"
    assert status["reason"] == ("stop requested" if how == "stop file" else "signal SIGTERM")
    step = status["step"]
    assert run.latest_checkpoint().name == f"step_{step:07d}.pt"
    assert not run.stop_requested()  # the request is consumed


def test_copy_rate_start_and_system_records(runs_dir, tiny_config, monkeypatch):
    monkeypatch.setattr(
        SystemSampler, "sample", lambda self, choice: {"cpu_percent": 95.0, "rss_mb": 321.0}
    )
    run, state = start(runs_dir, "records", tiny_config)
    assert state == "completed"
    evals = records(run, "eval")
    assert all(
        0 <= e["copy_rate"] <= 1 and e["longest_copy"] >= 0 and e["copy_min_len"] == 8
        for e in evals
    )
    starts = records(run, "start")
    assert [(s["step"], s["resumed"]) for s in starts] == [(0, False)]
    assert starts[0]["peak_flops"] > 0 and starts[0]["peak_source"]
    system = records(run, "system")
    assert len(system) == 12 and system[0] == {
        "kind": "system",
        "step": 1,
        "time": system[0]["time"],
        "cpu_percent": 95.0,
        "rss_mb": 321.0,
    }
    train = records(run)
    assert all(len(r["batch_checksum"]) == 16 for r in train)
    assert 0 < train[0]["train_time_s"] < train[-1]["train_time_s"]


def test_memorizing_a_tiny_text_shows_as_copying(tmp_path, runs_dir):
    text = tmp_path / "verse.txt"
    text.write_text(
        (
            "ROMEO:\nBut soft, what light through yonder window breaks?\n"
            "It is the east, and Juliet is the sun.\n\n"
        )
        * 40
    )
    cfg = make_tiny_config(
        text,
        max_steps=60,
        max_lr=1e-2,
        min_lr=1e-3,
        eval_interval=60,
        sample_tokens=24,
        val_fraction=0.2,
        copy_min_len=6,
    )
    run, state = start(runs_dir, "memorize", cfg)
    assert state == "completed"
    final = records(run, "eval")[-1]
    assert final["copy_rate"] > 0.3 and final["longest_copy"] >= 6, final  # random text: ~0


def test_best_val_checkpoint_survives_pruning_and_patience_stops_early(runs_dir, tiny_config):
    from core.store import checkpoint

    # A learning rate this high makes val loss rise after its first evals.
    cfg = tiny_config.replace(
        max_steps=200,
        eval_interval=2,
        keep_checkpoints=1,
        checkpoint_interval=2,
        max_lr=0.3,
        min_lr=0.3,
        warmup_steps=0,
        early_stop_patience=2,
    )
    run, state = start(runs_dir, "patience", cfg)
    assert state == "completed"
    status = run.read_status()
    assert "no val improvement in 2 evals" in status["reason"], status["reason"]
    evals = [(e["step"], e["val_loss"]) for e in records(run, "eval")]
    best_step, best_val = min(evals, key=lambda e: e[1])
    assert status["step"] < 200 and evals[-1][0] == status["step"]
    assert [e[0] for e in evals[-3:]] == [best_step, best_step + 2, best_step + 4]
    assert [s for s, _ in run.checkpoints()] == [status["step"]]  # keep_checkpoints=1
    best = checkpoint.load(run.best_checkpoint_path)
    assert best.step == best_step and best.best_val_loss == pytest.approx(best_val)
