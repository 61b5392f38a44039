"""core.inspect.batch: the micro batches behind a step, their checksum, losses and the CLI."""

import hashlib
import json

import pytest
import torch

from core.data import dataset
from core.data.walker import (
    BatchWalker,
    batch_checksum,
    micro_batch_numbers,
    step_batches,
    step_checksum,
    train_walker,
    walker_checksum,
)
from core.inspect import batch as inspect_batch
from core.model.gpt import GPT, ModelConfig
from core.store import metrics
from core.store.rundir import RunDir
from core.train.engine import train


def engine_order(cfg, steps: int, world_size: int) -> list[list[tuple[int, int]]]:
    """Per step, (rank, micro batch number) in the order core/train/engine.py's loop reads them."""
    out, micro_seen = [], 0
    for _ in range(steps):
        reads = [
            (rank, micro_seen + micro * world_size + rank)
            for micro in range(cfg.grad_accum_steps)
            for rank in range(world_size)
        ]
        micro_seen += cfg.grad_accum_steps * world_size
        out.append(reads)
    return out


@pytest.mark.parametrize("world_size", [1, 2])
def test_step_batches_follow_the_engine_order(tiny_config, world_size):
    cfg = tiny_config.replace(grad_accum_steps=2)
    walker = train_walker(cfg)
    for step, reads in enumerate(engine_order(cfg, 4, world_size), start=1):
        batches = step_batches(cfg, step, world_size, walker)
        assert [b.number for b in batches] == sorted(n for _, n in reads)
        for rank in range(world_size):
            mine = [n for r, n in reads if r == rank]  # what that rank trained, in its order
            theirs = [b for b in batches if (b.number - batches[0].number) % world_size == rank]
            assert [b.number for b in theirs] == mine
            for b in theirs:
                x, y = walker.batch(b.number)
                assert torch.equal(b.x, x) and torch.equal(b.y, y)
        assert list(micro_batch_numbers(cfg, step, world_size)) == [b.number for b in batches]


def test_total_batch_tokens_derives_the_accumulation(tiny_config):
    per_micro = tiny_config.micro_batch_size * tiny_config.seq_len
    cfg = tiny_config.replace(total_batch_tokens=4 * per_micro, grad_accum_steps=99)
    assert micro_batch_numbers(cfg, 1, 1) == range(0, 4)
    assert micro_batch_numbers(cfg, 3, 2) == range(8, 12)  # 2 micro steps x 2 ranks
    view = inspect_batch.describe_step(cfg, 3, 2)
    assert view.grad_accum_steps == 2
    assert [(b.micro, b.rank) for b in view.batches] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_the_real_engine_reads_what_step_batches_says(tiny_config, runs_dir, monkeypatch):
    cfg = tiny_config.replace(max_steps=3, eval_interval=0, checkpoint_interval=0)
    seen = []
    original = BatchWalker.batch
    monkeypatch.setattr(
        BatchWalker, "batch", lambda self, n: seen.append((id(self), n)) or original(self, n)
    )
    assert train(str(RunDir.create(runs_dir, "order", cfg).path)) == "completed"
    train_walker_id = seen[0][0]
    trained = [n for w, n in seen if w == train_walker_id]
    # each step reads its micro batches to train, then again to record their checksum
    expected = [b.number for s in (1, 2, 3) for _ in "tc" for b in step_batches(cfg, s, 1)]
    assert trained == expected


def test_checksum_is_stable_and_differs_between_steps(tiny_config):
    walker = train_walker(tiny_config)
    one = step_checksum(tiny_config, 1, 1, walker)
    assert one == step_checksum(tiny_config, 1, 1) and len(one) == 16
    assert int(one, 16) >= 0
    assert len({step_checksum(tiny_config, s, 1, walker) for s in range(1, 6)}) == 5
    # By definition: blake2b (8 bytes) of the int64 ids of the inputs in micro batch order.
    xs = torch.cat([b.x for b in step_batches(tiny_config, 2, 2, walker)])
    by_hand = hashlib.blake2b(xs.numpy().astype("<i8").tobytes(), digest_size=8).hexdigest()
    assert step_checksum(tiny_config, 2, 2, walker) == by_hand
    # What the engine can compute from its own walker and data position on rank 0.
    assert walker_checksum(walker, range(4, 8)) == by_hand
    assert batch_checksum([xs.to(torch.int32)]) == by_hand  # the dtype given does not matter


@pytest.mark.parametrize("step, world_size", [(0, 1), (-3, 1), (1, 0)])
def test_bad_step_or_world_size(tiny_config, step, world_size):
    with pytest.raises(ValueError, match="step|world_size"):
        micro_batch_numbers(tiny_config, step, world_size)


def test_window_losses_average_to_the_models_loss(tiny_config):
    torch.manual_seed(0)
    model = GPT(ModelConfig.of(tiny_config)).eval()
    b = step_batches(tiny_config, 1, 1)[0]
    losses = inspect_batch.window_losses(model, b.x, b.y)
    assert losses.shape == tuple(b.x.shape)
    _, loss = model(b.x, b.y)
    assert float(losses.mean()) == pytest.approx(loss.item(), abs=1e-5)
    view = inspect_batch.describe_step(tiny_config, 1, 1, model)
    assert view.batches[0].mean_loss == pytest.approx(loss.item(), abs=1e-5)
    assert dataset.get_tokenizer().encode(view.batches[0].texts[0]) == b.x[0].tolist()


# --- command line --------------------------------------------------------------------------------


def write_train_records(run: RunDir, checksums: dict[int, str]) -> None:
    with open(run.metrics_path, "a") as f:
        for step, checksum in checksums.items():
            f.write(
                json.dumps({"kind": "train", "step": step, "loss": 1.0, "batch_checksum": checksum})
                + "\n"
            )
        f.write(json.dumps({"kind": "eval", "step": 1, "val_loss": 1.0}) + "\n")


def test_cli_prints_the_batches_and_matches_the_record(tiny_config, runs_dir, capsys):
    run = RunDir.create(runs_dir, "cli", tiny_config)
    write_train_records(run, {1: step_checksum(tiny_config, 1), 2: "0" * 16})
    assert inspect_batch.main(["--run-dir", str(run.path), "--step", "1", "--chars", "40"]) == 0
    out = capsys.readouterr().out
    assert "micro batch 0 (micro step 0, rank 0)" in out and "micro batch 1" in out
    assert "matches the checksum" in out
    assert all(len(line) < 40 + 20 for line in out.splitlines() if "row " in line)
    assert inspect_batch.main(["--run-dir", str(run.path), "--step", "2"]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert inspect_batch.main(["--run-dir", str(run.path), "--step", "3"]) == 0
    assert "recorded no checksum" in capsys.readouterr().out


def test_cli_with_a_checkpoint_shows_losses(trained_run, capsys):
    name = trained_run.checkpoints()[0][1].name
    assert (
        inspect_batch.main(
            ["--run-dir", str(trained_run.path), "--step", "2", "--checkpoint", name]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "mean loss" in out and "row 0 [" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--step", "0"], "step must be"),
        (["--step", "1", "--checkpoint", "missing.pt"], "does not exist"),
        (["--step", "1", "--world-size", "0"], "world_size"),
        (["--step", "1", "--chars", "3"], "--chars"),
    ],
)
def test_cli_bad_input_exits_2(trained_run, capsys, args, message):
    assert inspect_batch.main(["--run-dir", str(trained_run.path)] + args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_missing_run_dir(tmp_path, capsys):
    assert inspect_batch.main(["--run-dir", str(tmp_path / "nope"), "--step", "1"]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_the_engine_records_the_checksum_the_batch_view_rebuilds(trained_run):
    cfg = trained_run.read_config()
    records = metrics.read_all(trained_run.metrics_path)
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == list(range(1, 13))
    for step in steps:
        assert inspect_batch.recorded_checksum(records, step) == step_checksum(cfg, step, 1)
