import os
import subprocess
import sys

import pytest
from conftest import ROOT

from core.store.rundir import RunDir, list_run_dirs
from core.train import cli


def run_cli(*args, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "core.train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--n-embd", "100", "--n-head", "12"], "n_embd: 100 does not divide by n_head=12"),
        (["--micro-batch-size", "-2"], "micro_batch_size: must be a positive whole number"),
        (["--seq-len", "2048"], "seq_len: 2048 is above block_size=128"),
        (["--device", "tpu"], "device: unknown device 'tpu'"),
        (["--data", "/no/such/file.txt"], "neither 'tinyshakespeare' nor an existing file"),
        (["--name", "../../etc"], "invalid run name"),
    ],
)
def test_bad_values_exit_2_with_a_clear_line_and_create_nothing(runs_dir, flags, message, capsys):
    assert cli.main(["--preset", "nano", "--runs-dir", str(runs_dir), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert list(runs_dir.iterdir()) == []


def test_unparseable_value_exits_2(runs_dir):
    result = run_cli("--max-steps", "many", "--runs-dir", str(runs_dir))
    assert result.returncode == 2 and "invalid int value: 'many'" in result.stderr
    assert list(runs_dir.iterdir()) == []


def test_help_lists_every_field_with_defaults():
    text = cli.build_parser().format_help()
    for flag in (
        "--n-layer",
        "--micro-batch-size",
        "--grad-accum-steps",
        "--max-steps",
        "--target-loss",
        "--max-lr",
        "--device",
        "--dtype",
        "--compile",
        "--no-compile",
        "--data",
        "--preset",
        "--config",
        "--run-dir",
        "--runs-dir",
        "--name",
        "--resume",
    ):
        assert flag in text
    assert "(gpt2-124m: 0.0006)" in text


def test_resume_needs_an_existing_run(runs_dir, capsys):
    assert cli.main(["--resume", "--run-dir", str(runs_dir / "nothing")]) == 2
    assert "--resume needs --run-dir of an existing run" in capsys.readouterr().err


def test_cli_trains_prints_step_lines_and_resumes_further(runs_dir, small_text):
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
        "6",
        "--eval-interval",
        "3",
        "--sample-tokens",
        "4",
        "--data",
        str(small_text),
        "--device",
        "cpu",
    ]
    result = run_cli(*flags, "--runs-dir", str(runs_dir), "--name", "cli")
    assert result.returncode == 0, result.stderr
    assert "step     6 | loss " in result.stdout and "run completed" in result.stdout
    run = RunDir(runs_dir / "cli")
    assert "step     6 | loss " in run.log_path.read_text()  # the CLI's output is in log.txt too
    again = run_cli("--run-dir", str(run.path), "--resume", "--max-steps", "8")
    assert again.returncode == 0, again.stderr
    assert "resumed from step 6" in again.stdout and run.read_status()["step"] == 8
    assert [r.run_id for r in list_run_dirs(runs_dir)] == ["cli"]


def test_existing_run_without_resume_is_refused(trained_run, capsys):
    assert cli.main(["--run-dir", str(trained_run.path), "--max-steps", "3"]) == 2
    assert "already holds a run: use --resume" in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_refused(runs_dir, tiny_config, capsys):
    run = RunDir.create(runs_dir, "fresh", tiny_config)
    run.write_status(state="failed", error="boom")
    assert cli.main(["--run-dir", str(run.path), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "has no checkpoint to resume from" in err and err.count("\n") == 1
    assert not run.is_locked()  # a refused process lets go of the lock
