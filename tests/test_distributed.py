"""Data-parallel training under torchrun (gloo on CPU): the same numbers as one process with the
same global batch, failures that end the whole job, STOP on every rank, and resuming an N-rank
checkpoint in one process.

The slow tests start real `torch.distributed.run` jobs of 2 ranks with the command the launcher
uses (15-25 s each on 2 cores, most of it three processes importing torch).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_config

from core.data.walker import step_checksum
from core.runs import launcher
from core.store import checkpoint
from core.store.metrics import MetricsReader
from core.store.rundir import RunDir
from core.train.distributed import Dist
from core.train.engine import train

ROOT = Path(__file__).resolve().parent.parent
JOB_TIMEOUT_S = 120  # a safety net against a hung job, not a performance assertion


@pytest.fixture(autouse=True)
def _one_thread():
    """In-process reference runs use one thread too: beside two ranks on two cores, more
    threads only wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _start(run: RunDir, *extra: str, nproc: int = 2) -> subprocess.Popen:
    """Start torchrun on a prepared run, as the launcher does, in a session of its own."""
    cmd = launcher.engine_command(run.path, nproc) + list(extra)
    # One thread per rank: two ranks on a 2-core machine must not oversubscribe it.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    with open(run.log_path, "ab") as log:
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _finish(proc: subprocess.Popen, run: RunDir) -> int:
    try:
        return proc.wait(JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"torchrun did not end; log:\n{run.log_path.read_text()[-3000:]}")


def _records(run: RunDir, kind: str) -> dict[int, dict]:
    return {
        r["step"]: r for r in MetricsReader(run.metrics_path).read_new() if r.get("kind") == kind
    }


def _wait_for_step(run: RunDir, proc: subprocess.Popen, step: int) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not any(s >= step for s in _records(run, "train")):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"no step {step} (rc {proc.poll()}); log:\n{run.log_path.read_text()[-3000:]}"
            )
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    """Direct children of pid, from /proc (torchrun starts each rank in a session of its own,
    so the process group alone does not find them)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(v[len(b"RANK=") :]) for v in env if v.startswith(b"RANK=")]
    return ranks[0] if ranks else None


def _alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _assert_close(a: dict[int, dict], b: dict[int, dict], field: str, steps) -> None:
    for step in steps:
        assert a[step][field] == pytest.approx(b[step][field], abs=1e-4, rel=0), (field, step)


@pytest.mark.slow
def test_two_ranks_match_one_process_with_twice_the_accumulation(small_text, runs_dir):
    # eval_batches=3 does not split evenly over 2 ranks: the val loss must still be the mean.
    common = dict(
        max_steps=4,
        eval_interval=2,
        eval_batches=3,
        micro_batch_size=2,
        checkpoint_interval=0,
        dtype="float32",
    )
    two = RunDir.create(
        runs_dir, "two", make_tiny_config(small_text, grad_accum_steps=2, nproc=2, **common)
    )
    proc = _start(two)
    one = RunDir.create(runs_dir, "one", make_tiny_config(small_text, grad_accum_steps=4, **common))
    assert train(str(one.path)) == "completed"  # meanwhile, in this process
    assert _finish(proc, two) == 0, two.log_path.read_text()[-3000:]

    status = two.read_status()
    assert status["state"] == "completed" and status["world_size"] == 2
    train2, train1 = _records(two, "train"), _records(one, "train")
    assert sorted(train2) == sorted(train1) == [1, 2, 3, 4]
    _assert_close(train2, train1, "loss", range(1, 5))
    _assert_close(train2, train1, "grad_norm", range(1, 5))
    assert train2[4]["tokens_seen"] == train1[4]["tokens_seen"] == 4 * (4 * 2 * 32)
    eval2, eval1 = _records(two, "eval"), _records(one, "eval")
    assert sorted(eval2) == sorted(eval1) == [2, 4]
    _assert_close(eval2, eval1, "val_loss", [2, 4])
    assert train1[4]["loss"] < train1[1]["loss"]  # it learned something: not a trivial match
    # The batch view rebuilds each step's tokens from the config: the engine's checksums agree,
    # and two ranks trained on exactly the tokens of one process.
    cfg2 = two.read_config()
    for step in range(1, 5):
        assert train2[step]["batch_checksum"] == step_checksum(cfg2, step, 2)
        assert train2[step]["batch_checksum"] == train1[step]["batch_checksum"]

    # Only rank 0 writes: one line per step, and both final weights are the same model.
    lines = two.metrics_path.read_text().splitlines()
    assert len(lines) == len(set(lines))
    w2 = checkpoint.load(two.latest_checkpoint()).model
    w1 = checkpoint.load(one.latest_checkpoint()).model
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_killing_a_rank_fails_the_job_and_leaves_no_process(small_text, runs_dir):
    run = RunDir.create(
        runs_dir,
        "killed",
        make_tiny_config(
            small_text, nproc=2, max_steps=10_000, eval_interval=0, checkpoint_interval=0
        ),
    )
    proc = _start(run)
    _wait_for_step(run, proc, 2)
    tree = _descendants(proc.pid)
    ranks = {_rank_of(pid): pid for pid in tree}
    assert set(ranks) >= {0, 1}, ranks
    os.kill(ranks[1], signal.SIGKILL)

    assert _finish(proc, run) != 0
    status = run.read_status()
    assert status["state"] == "failed", status
    # The survivor says it lost its peer; the log has torchrun's summary naming the killed rank.
    assert "rank" in status["error"] and "another rank" in status["error"], status["error"]
    assert status["ended"] >= status["started"]
    log = run.log_path.read_text()
    assert "SIGKILL" in log and re.search(r"rank\s*:\s*1\b", log), log[-3000:]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in [proc.pid, *tree]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in [proc.pid, *tree] if _alive(p)]


@pytest.mark.slow
def test_stop_ends_every_rank_and_the_checkpoint_resumes_in_one_process(small_text, runs_dir):
    # total_batch_tokens fixes the global batch: 2 ranks derive 2 micro steps each, 1 process 4.
    # Wherever STOP lands, resuming on 1 process must give the uninterrupted run's numbers.
    common = dict(
        max_steps=12,
        eval_interval=4,
        eval_batches=2,
        micro_batch_size=2,
        checkpoint_interval=0,
        total_batch_tokens=4 * 2 * 32,
        dtype="float32",
    )
    run = RunDir.create(runs_dir, "two", make_tiny_config(small_text, nproc=2, **common))
    proc = _start(run)
    _wait_for_step(run, proc, 2)
    tree = _descendants(proc.pid)
    run.request_stop()
    assert _finish(proc, run) == 0, run.log_path.read_text()[-3000:]

    status = run.read_status()
    assert status["state"] == "stopped" and status["reason"] == "stop requested", status
    stopped_at = status["step"]
    assert stopped_at == max(_records(run, "train")) and 2 <= stopped_at < 12
    assert [s for s, _ in run.checkpoints()] == [stopped_at]
    ckpt = checkpoint.load(run.latest_checkpoint())
    assert ckpt.world_size == 2 and ckpt.config.grad_accum_steps == 2
    assert not run.stop_requested()
    assert not [p for p in [proc.pid, *tree] if _alive(p)]

    assert train(str(run.path), resume=True) == "completed"  # 1 process, 4 micro steps
    assert run.read_status()["world_size"] == 1
    assert checkpoint.load(run.latest_checkpoint()).config.grad_accum_steps == 4
    whole = RunDir.create(runs_dir, "whole", make_tiny_config(small_text, **common))
    assert train(str(whole.path)) == "completed"
    resumed, reference = _records(run, "train"), _records(whole, "train")
    assert sorted(resumed) == list(range(1, 13))
    _assert_close(resumed, reference, "loss", range(1, 13))
    evals, reference_evals = _records(run, "eval"), _records(whole, "eval")
    _assert_close(evals, reference_evals, "val_loss", [4, 8, 12])


def test_torchrun_prepare_checks_the_total_batch_against_the_world_size(small_text, runs_dir):
    # 4 x 32 x 2 ranks = 256 tokens per micro step of all ranks: 384 fits one process, not two.
    from core.config import ConfigError
    from core.train.cli import prepare

    def argv(total: int, name: str) -> list[str]:
        return [
            "--preset",
            "nano",
            "--data",
            str(small_text),
            "--device",
            "cpu",
            "--micro-batch-size",
            "4",
            "--seq-len",
            "32",
            "--total-batch-tokens",
            str(total),
            "--runs-dir",
            str(runs_dir),
            "--name",
            name,
        ]

    with pytest.raises(ConfigError, match="use a multiple of 256"):
        prepare(argv(384, "bad"), world_size=2)
    assert not (runs_dir / "bad").exists()
    run, _ = prepare(argv(512, "good"), world_size=2)
    assert run.read_config().nproc == 2


# --- failure reports, without starting processes ----------------------------------------------


class _Exited(Exception):
    pass


def _fail_as(monkeypatch, run: RunDir, error: BaseException, rank: int, meanwhile=None) -> str:
    """Run the engine's failure path as `rank` of 2 with _fit raising error (after calling
    meanwhile, what other ranks do while this one trains); the status error."""
    from core.train import engine, failure

    def fit(*args):
        if meanwhile:
            meanwhile()
        raise error

    def exit_(code):
        raise _Exited(code)

    monkeypatch.setattr(engine, "_fit", fit)
    monkeypatch.setattr(failure.os, "_exit", exit_)
    with pytest.raises(_Exited):
        engine._fit_reporting_failure(run, run.read_config(), Dist(rank, rank, 2), False, None)
    return run.read_status()["error"]


def test_failure_report_names_the_rank_and_keeps_the_first_cause(
    monkeypatch, tiny_config, runs_dir
):
    run = RunDir.create(runs_dir, "r", tiny_config)
    run.mark_started(12, 2)
    lost = RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:1234")

    def rank_1_fails():
        assert (
            _fail_as(monkeypatch, run, ValueError("bad shard"), 1)
            == "rank 1 failed: ValueError: bad shard"
        )

    # While rank 0 trains, rank 1 fails and exits; rank 0 then loses its peer. The cause stays.
    assert (
        _fail_as(monkeypatch, run, lost, 0, rank_1_fails) == "rank 1 failed: ValueError: bad shard"
    )
    assert run.read_status()["state"] == "failed"


def test_failure_report_says_a_peer_was_lost(monkeypatch, tiny_config, runs_dir):
    run = RunDir.create(runs_dir, "r", tiny_config)
    run.write_status(state="failed", error="an old attempt", ended=time.time() - 60)
    run.mark_started(12, 2)
    lost = RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:1234")
    error = _fail_as(monkeypatch, run, lost, 0)
    assert error.startswith("rank 0 lost contact with another rank, which crashed or was killed")
    assert "Connection closed by peer" in error
