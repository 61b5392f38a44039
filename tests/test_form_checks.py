"""What the New run page asks of core before a launch, each in the module that owns it: run names
and the runs a new run can start from (core.store.rundir), the device and process count
(core.runs.preflight), free disk (core.train.estimate), whether anything trains and where a
queued run waits (core.runs.queue)."""

import os
import shutil

import pytest
from conftest import make_tiny_config

from core.runs import preflight
from core.runs import queue as run_queue
from core.store import rundir
from core.store.rundir import RunDir
from core.train import estimate


def test_run_name_problem(runs_dir, tiny_config):
    assert rundir.run_name_problem(runs_dir, "fresh-name_1") is None
    assert "letters, digits" in rundir.run_name_problem(runs_dir, "../escape")
    RunDir.create(runs_dir, "taken", tiny_config)
    assert rundir.run_name_problem(runs_dir, "taken") == (
        "a run named 'taken' already exists: pick another name"
    )


def test_runs_with_checkpoints_and_their_fingerprint(runs_dir, trained_run, tiny_config):
    RunDir.create(runs_dir, "empty", tiny_config)
    shutil.copytree(trained_run.path, runs_dir / "trained")
    assert rundir.runs_with_checkpoints(runs_dir) == ["trained"]
    run = RunDir(runs_dir / "trained")
    before = rundir.source_fingerprint(run.path)
    assert {f for f, _ in before} >= {str(run.path / "config.json"), str(run.best_checkpoint_path)}
    newest = run.checkpoints()[-1][1]
    os.utime(newest, (1, 1))  # a rewritten checkpoint changes the fingerprint
    assert rundir.source_fingerprint(run.path) != before
    assert rundir.source_fingerprint(runs_dir / "missing") == ()


def test_device_problems(tiny_config):
    choice, problems = preflight.device_problems(tiny_config.replace(device="cpu"))
    assert choice.type == "cpu" and problems == {}
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU: cuda is a device it cannot use")
    choice, problems = preflight.device_problems(tiny_config.replace(device="cuda"))
    assert choice is None and set(problems) == {"device"}
    assert not problems["device"].startswith("device: ")


def test_device_problems_counts_gpus(tiny_config, monkeypatch):
    import dataclasses

    import torch

    from core import device

    cpu = device.choose("cpu", "float32", False)
    gpu = dataclasses.replace(cpu, device="cuda:0")
    monkeypatch.setattr(device, "choose", lambda *a, **k: gpu)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    _, problems = preflight.device_problems(tiny_config.replace(nproc=2))
    assert problems == {
        "nproc": "2 processes but 1 GPU(s) visible: use at most one process per GPU"
    }
    assert preflight.device_problems(tiny_config.replace(nproc=1))[1] == {}


def test_free_disk(tmp_path):
    free = estimate.free_disk_mb(tmp_path / "not" / "yet" / "made")
    assert free is not None and free == pytest.approx(shutil.disk_usage(tmp_path).free / 2**20)


def test_anything_training_and_queue_position(runs_dir, small_text):
    assert not run_queue.anything_training(runs_dir)
    done = RunDir.create(runs_dir, "done", make_tiny_config(small_text))
    done.write_status(state="completed")
    assert not run_queue.anything_training(runs_dir)
    for name in ("first", "second"):
        run_queue.enqueue(make_tiny_config(small_text), runs_dir, name)
    assert run_queue.anything_training(runs_dir)  # waiting runs count: a new one queues too
    assert run_queue.position("first", runs_dir) == (1, 2)
    assert run_queue.position("second", runs_dir) == (2, 2)
    run_queue.remove("first", runs_dir=runs_dir)
    assert run_queue.position("first", runs_dir) is None
    assert run_queue.position("second", runs_dir) == (1, 1)
