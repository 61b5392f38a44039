"""`python -m core.generate`: streams a continuation; bad input is one stderr line and exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.generate.cli import main
from core.store.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent


def test_prints_prompt_and_continuation(trained_run, capsys):
    args = [
        "--run-dir",
        str(trained_run.path),
        "--prompt",
        "ROMEO:",
        "--max-new-tokens",
        "6",
        "--seed",
        "3",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) > len("ROMEO:\n")
    assert main(args) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    assert main(args + ["--no-cache"]) == 0
    assert capsys.readouterr().out == first  # the cache changes nothing but the speed


def test_named_checkpoint_and_long_prompt_notice(trained_run, capsys):
    name = trained_run.checkpoints()[0][1].name
    assert (
        main(
            [
                "--run-dir",
                str(trained_run.path),
                "--checkpoint",
                name,
                "--prompt",
                "to be or not to be " * 20,
                "--max-new-tokens",
                "3",
            ]
        )
        == 0
    )
    assert "were dropped" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--temperature", "0"], "temperature"),
        (["--temperature", "-1"], "temperature"),
        (["--top-k", "60000"], "top_k"),
        (["--max-new-tokens", "0"], "max_new_tokens"),
        (["--checkpoint", "missing.pt"], "does not exist"),
    ],
)
def test_bad_input_exits_2(trained_run, capsys, extra, message):
    assert main(["--run-dir", str(trained_run.path), "--prompt", "hi"] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_empty_prompt_and_no_checkpoint(runs_dir, tiny_config, trained_run, capsys):
    assert main(["--run-dir", str(trained_run.path), "--prompt", ""]) == 2
    assert "prompt is empty" in capsys.readouterr().err
    fresh = RunDir.create(runs_dir, "fresh", tiny_config)
    assert main(["--run-dir", str(fresh.path), "--prompt", "hi"]) == 2
    assert "no checkpoint yet" in capsys.readouterr().err


def test_module_runs_from_the_command_line(trained_run):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.generate",
            "--run-dir",
            str(trained_run.path),
            "--prompt",
            "ROMEO:",
            "--max-new-tokens",
            "4",
            "--temperature",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: temperature")


def test_show_copies_lists_spans_from_the_training_text(tmp_path, runs_dir, capsys):
    from conftest import make_tiny_config

    from core.train.engine import train

    text = tmp_path / "verse.txt"
    text.write_text(
        (
            "ROMEO:\nBut soft, what light through yonder window breaks?\n"
            "It is the east, and Juliet is the sun.\n\n"
        )
        * 40
    )
    run = RunDir.create(
        runs_dir,
        "copies",
        make_tiny_config(
            text, max_steps=60, max_lr=1e-2, min_lr=1e-3, eval_interval=0, val_fraction=0.2
        ),
    )
    assert train(str(run.path)) == "completed"
    args = [
        "--run-dir",
        str(run.path),
        "--prompt",
        "ROMEO:\nBut soft",
        "--max-new-tokens",
        "30",
        "--greedy",
        "--show-copies",
        "--min-len",
        "6",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "--- copied from the training data ---" in out
    assert "copied from the training text in" in out and "verse.txt line" in out
    text.unlink()  # the data is gone: said in one line, exit 2
    assert main(args) == 2
    assert "cannot check for copies" in capsys.readouterr().err
