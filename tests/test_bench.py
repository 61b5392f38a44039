"""Smoke tests of the bench/ scripts: each runs with the tiniest settings and prints a JSON line
with its fields. Timings are never asserted: only that the figures exist and are sane."""

import subprocess
import sys

import pytest

from bench import common
from tests.conftest import ROOT


@pytest.fixture
def run_bench(capsys):
    """Run a bench script's main() in this process (torch is imported once for all tests)."""
    from bench import launch, train

    def run(script: str, *args: str) -> dict:
        assert {"train.py": train, "launch.py": launch}[script].main(list(args)) == 0, (
            capsys.readouterr().err[-3000:]
        )
        return common.last_json_line(capsys.readouterr().out)

    return run


TINY = ("--preset", "nano", "--device", "cpu", "--micro-batch-size", "1", "--seq-len", "8")


def test_train_engine_vs_bare(small_text, run_bench):
    record = run_bench(
        "train.py",
        *TINY,
        "--steps",
        "2",
        "--warmup-steps",
        "1",
        "--repeats",
        "1",
        "--checkpoint-interval",
        "2",
        "--data",
        str(small_text),
    )
    assert record["bench"] == "train" and record["mode"] == "engine-vs-bare"
    for loop in ("engine", "bare"):
        figures = record[loop]
        assert figures["steps"] == 2
        assert figures["tokens_per_sec"] > 0 and figures["ms_per_step"] > 0
        assert 0 < figures["mfu"] < 1 and figures["peak_mem_mb"] > 0
    # Same model, optimizer and batches: the two loops reach the same loss.
    assert record["engine"]["final_loss"] == pytest.approx(record["bare"]["final_loss"], rel=1e-4)
    assert record["engine"]["checkpoints_timed"] == 1
    assert 0 <= record["engine"]["between_steps_share"] < 1
    assert record["engine"]["checkpoint_ms"] is not None
    assert 0 <= record["overhead_at_preset_cadence"] < 1
    assert record["ratio"] > 0 and isinstance(record["target_met"], bool)
    assert record["ratio_conclusive"] is False  # one repeat says nothing about noise
    assert record["tokens_per_step"] == 8 and record["flops_per_token"] > 6 * record["n_params"]
    assert record["machine"]["cores"] >= 1


def test_train_compare_defaults(small_text, run_bench):
    record = run_bench(
        "train.py",
        "--compare-defaults",
        "--no-compile",
        *TINY,
        "--steps",
        "1",
        "--warmup-steps",
        "1",
        "--data",
        str(small_text),
    )
    assert record["mode"] == "compare-defaults"
    assert {(r["dtype"], r["compile"]) for r in record["rows"]} == {
        ("float32", False),
        ("bfloat16", False),
    }
    assert record["default"] == {
        "dtype": "float32",
        "compile": False,
        "tokens_per_sec": record["default"]["tokens_per_sec"],
    }
    assert record["fastest"]["dtype"] in ("float32", "bfloat16")
    assert isinstance(record["default_is_fastest"], bool)


def test_launch(small_text, run_bench):
    record = run_bench(
        "launch.py",
        "--no-compile",
        "--steps",
        "1",
        "--data",
        str(small_text),
        "--micro-batch-size",
        "2",
        "--seq-len",
        "16",
        "--load-repeats",
        "2",
    )
    assert [(r["compile"], r["cache"]) for r in record["launches"]] == [
        ("off", "cold"),
        ("off", "warm"),
    ]
    for launch in record["launches"]:
        assert 0 < launch["to_engine_start_s"] < launch["to_first_line_s"]
        assert launch["data_s"] is not None and launch["first_step_ms"] > 0
        assert launch["setup_s"] is not None
    load = record["load_tokens"]
    assert load["tokens"] > 0 and load["warm_s"] > 0 and load["cold_s"] > 0
    assert isinstance(record["data_target_met"], bool)


def test_bad_flag_is_refused_with_the_field_named():
    """The script entry point itself: argparse names the flag, exit code 2."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train.py"), "--seq-len", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "seq-len" in proc.stderr


def test_format_table_and_json_line():
    text = common.format_table([{"a": 1.23456, "b": None, "c": True}, {"a": 12345.6, "b": "x"}])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b", "c"]
    assert lines[2].split() == ["1.235", "-", "yes"] and lines[3].split() == ["12,345.6", "x", "-"]
    assert common.last_json_line('table\n{"bench": "x"}\nnote\n{"bench": "y", "v": 1}\n') == {
        "bench": "y",
        "v": 1,
    }
    with pytest.raises(ValueError, match="no JSON line"):
        common.last_json_line("nothing here")


def test_train_compare_loss(small_text, run_bench):
    """Plain vs fused loss, each in its own process: same losses, both figures reported."""
    record = run_bench(
        "train.py",
        "--compare-loss",
        "nano",
        *TINY,
        "--steps",
        "1",
        "--warmup-steps",
        "1",
        "--repeats",
        "1",
        "--data",
        str(small_text),
    )
    assert record["mode"] == "compare-loss" and record["presets"] == ["nano"]
    assert [(r["loss"], r["repeat"]) for r in record["rows"]] == [("plain", 1), ("fused", 1)]
    for row in record["rows"]:
        assert row["tokens_per_sec"] > 0 and row["tokens_per_cpu_sec"] > 0
        assert row["peak_mem_mb"] > 0 and row["load_before"] >= 0
    summary = record["summaries"][0]
    assert summary["loss_gap"] < 1e-4 and summary["speedup"] > 0 and summary["memory_ratio"] > 0
    assert isinstance(record["target_met"], bool)


def test_compare_loss_refuses_an_unknown_preset(run_bench, capsys):
    from bench import train

    assert train.main(["--compare-loss", "nano,huge"]) == 2
    assert "huge" in capsys.readouterr().err
