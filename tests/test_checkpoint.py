"""core.store.checkpoint: what a checkpoint holds, atomic saves, safe loads, resume fallback."""

import pytest
import torch

from core.config import preset
from core.store import checkpoint
from core.store.rundir import RunDir


def _state(step: int, cfg) -> dict:
    return {"model": {"w": torch.ones(2)}, "config": cfg.to_dict(), "step": step}


def test_save_step_is_atomic_and_prunes(runs_dir):
    cfg = preset("nano")
    run = RunDir.create(runs_dir, "ck", cfg)
    for step in (5, 10, 15):
        checkpoint.save_step(run, _state(step, cfg), keep=2)
    (run.checkpoint_dir / ".step_0000020.pt.1.tmp").write_bytes(b"half a file")
    checkpoint.save(_state(3, cfg), run.best_checkpoint_path)
    assert [s for s, _ in run.checkpoints()] == [10, 15]  # best.pt is not a step checkpoint
    assert checkpoint.load(run.latest_checkpoint()).step == 15
    assert checkpoint.load(run.best_checkpoint_path).step == 3


def test_a_trained_checkpoint_holds_everything(trained_run):
    ckpt = checkpoint.load(trained_run.latest_checkpoint())
    assert ckpt.step == 12 and ckpt.micro_batches_seen == 24 and ckpt.world_size == 1
    assert ckpt.train_time_s > 0 and ckpt.best_val_loss is not None
    assert ckpt.optimizer["state"] and ckpt.rng["torch"] is not None
    assert not any(k.startswith("_orig_mod.") for k in ckpt.model)
    assert ckpt.config == trained_run.read_config()
    inference = checkpoint.load(trained_run.latest_checkpoint(), training=False)
    assert inference.optimizer is None and inference.rng is None
    model = inference.build_model()
    assert not model.training
    torch.load(trained_run.latest_checkpoint(), weights_only=True)  # plain tensors and types


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    torch.save({"model": {"w": torch.ones(1000)}, "config": {}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(ValueError, match="cannot be read"):
        checkpoint.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state": torch.ones(1)}, foreign)
    with pytest.raises(ValueError, match="not a checkpoint of this project"):
        checkpoint.load(foreign)
    odd = tmp_path / "odd.pt"
    torch.save({"model": {}, "config": {"n_layer": "two"}}, odd)
    with pytest.raises(ValueError, match="config this version cannot read"):
        checkpoint.load(odd)


class Pickled:  # arbitrary objects must not be unpickled from a checkpoint
    pass


def test_checkpoints_with_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": Pickled()}, path)
    with pytest.raises(ValueError, match="cannot be read"):
        checkpoint.load(path)


def test_load_latest_falls_back_past_a_truncated_newest(runs_dir):
    cfg = preset("nano")
    run = RunDir.create(runs_dir, "fallback", cfg)
    for step in (5, 10):
        checkpoint.save_step(run, _state(step, cfg))
    newest = run.latest_checkpoint()
    newest.write_bytes(newest.read_bytes()[:200])
    ckpt, skipped = checkpoint.load_latest(run)
    assert ckpt.step == 5
    assert len(skipped) == 1 and "step_0000010.pt" in skipped[0] and "cannot be read" in skipped[0]
    for _, path in run.checkpoints():
        path.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no checkpoint that loads"):
        checkpoint.load_latest(run)


def test_unknown_keys_are_kept_as_meta(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({**_state(1, preset("nano")), "future_field": 7}, path)
    assert checkpoint.load(path).meta == {"future_field": 7}


def test_snapshots_are_written_loaded_and_capped(tiny_config, runs_dir):
    from core.train.engine import train

    cfg = tiny_config.replace(snapshot_interval=4, max_steps=12, snapshot_cap_mb=4)
    run = RunDir.create(runs_dir, "snaps", cfg)
    assert train(str(run.path)) == "completed"
    steps = [s for s, _ in run.snapshots()]
    size = run.snapshot_path(12).stat().st_size
    assert 2 * 1024 * 1024 < size < 4 * 1024 * 1024  # one fits the 4 MB cap, two do not
    assert steps == [12]  # the cap pruned the older ones, never the newest
    snap = checkpoint.load(run.snapshot_path(12))
    full = checkpoint.load(run.latest_checkpoint())
    assert snap.step == 12 and snap.config == cfg and snap.best_val_loss is not None
    model = snap.build_model()
    assert model.lm_head.weight is model.transformer.wte.weight
    for name, w in full.build_model().state_dict().items():
        assert torch.allclose(model.state_dict()[name], w, atol=1e-3, rtol=1e-2), name

    uncapped = RunDir.create(runs_dir, "uncapped", cfg.replace(snapshot_cap_mb=100))
    assert train(str(uncapped.path)) == "completed"
    assert [s for s, _ in uncapped.snapshots()] == [0, 4, 8, 12]  # step 0: the untrained model
