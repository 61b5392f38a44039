"""Runs for the Playground, Inspect and picker tests: a tiny model trained until it memorized a
tiny text (with snapshots and a best-val checkpoint), and a copy of a run made to look as runs
did before snapshots, best.pt and batch checksums existed.

The memorized run is trained once per test process (about 15-50 s on a busy 2-core CPU) and
shared by every test file that asks for it; tests only read it.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

from conftest import SHARED_DATA, make_tiny_config

PROMPT = "First Citizen:"  # the first line of the tiny text: the model continues it verbatim
TEXT_CHARS = 1800  # ~500 GPT-2 tokens: 350 to train on, 150 held out


@functools.cache
def memorized_run():
    """A completed run whose model reproduces its training text (train loss < 0.05): 120 steps
    on ~350 tokens. Evals at 40, 80, 120; snapshots every 30 steps; checkpoints at 60 and 120."""
    from core.store.rundir import RunDir
    from core.train.engine import train

    root = Path(tempfile.mkdtemp(prefix="memorized-"))
    atexit.register(shutil.rmtree, root, True)
    text = root / "tiny.txt"
    text.write_text((SHARED_DATA / "tinyshakespeare.txt").read_text()[:TEXT_CHARS])
    cfg = make_tiny_config(
        text,
        n_embd=64,
        max_steps=120,
        warmup_steps=10,
        max_lr=1e-2,
        min_lr=1e-3,
        micro_batch_size=4,
        grad_accum_steps=1,
        eval_interval=40,
        eval_batches=1,
        checkpoint_interval=60,
        snapshot_interval=30,
        val_fraction=0.3,
        sample_tokens=8,
        dynamics_every=1,
    )
    (root / "runs").mkdir()
    run = RunDir.create(root / "runs", "memorized", cfg)
    assert train(str(run.path)) == "completed"
    return run


def make_old_run(source, runs_dir: Path, name: str = "old"):
    """A copy of a run as written before this version: no snapshots, no best.pt, no batch
    checksums, copy rates or training-dynamics records (nor token_curves.bin), and a
    config.json without the newer fields."""
    from core.store.rundir import RunDir

    dest = runs_dir / name
    shutil.copytree(
        source.path, dest, ignore=shutil.ignore_patterns("snapshots", "best.pt", "token_curves.bin")
    )
    newer = {"batch_checksum", "copy_rate", "longest_copy", "copy_min_len"}
    lines = []
    for line in (dest / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") in ("start", "system", "dynamics", "extraction"):
            continue
        lines.append(json.dumps({k: v for k, v in record.items() if k not in newer}))
    (dest / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    config = json.loads((dest / "config.json").read_text())
    for key in (
        "snapshot_interval",
        "snapshot_cap_mb",
        "copy_min_len",
        "lr_decay_steps",
        "early_stop_patience",
        "init_from",
        "dynamics_every",
    ):
        config.pop(key, None)
    (dest / "config.json").write_text(json.dumps(config))
    return RunDir(dest)


def untrained_run(runs_dir: Path, cfg, name: str = "untrained"):
    """A run with one checkpoint of a randomly initialised model (no training: instant)."""
    import torch

    from core.model.gpt import GPT, ModelConfig
    from core.store import checkpoint
    from core.store.rundir import RunDir

    run = RunDir.create(runs_dir, name, cfg)
    model = GPT(ModelConfig.of(cfg))
    state = checkpoint.capture(
        model, torch.optim.AdamW(model.parameters()), cfg, 1, 0, 10.0, 1, 1.0
    )
    checkpoint.save(state, run.checkpoint_path(1))
    return run
