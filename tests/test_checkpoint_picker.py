"""The checkpoint picker's choices: latest, best (val), step checkpoints and snapshots with their
val losses, the spread for time travel, notes for older runs, and loading once per file."""

import os

import pytest
import streamlit as st
import torch

from core.model.gpt import GPT, ModelConfig
from core.store import checkpoint
from core.store.metrics import MetricsLog
from core.store.rundir import RunDir
from dashboard import checkpoint_picker as cp


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def _save(run: RunDir, model: GPT, cfg, step: int, best_val=None, best=False) -> None:
    state = checkpoint.capture(
        model, torch.optim.AdamW(model.parameters()), cfg, step, 0, 1.0, 1, float(step), best_val
    )
    checkpoint.save(state, run.best_checkpoint_path if best else run.checkpoint_path(step))


@pytest.fixture
def run(runs_dir, tiny_config):
    """Checkpoints at 10 and 20, snapshots at 0, 10, 15 and 20 (each with the val loss it was
    saved with), best.pt at step 10, evals at 10 and 20 (none at 15)."""
    run = RunDir.create(runs_dir, "full", tiny_config)
    model = GPT(ModelConfig.of(tiny_config))
    for step in (10, 20):
        _save(run, model, tiny_config, step)
    _save(run, model, tiny_config, 10, best_val=2.5, best=True)
    for step, val in ((0, None), (10, 2.5), (15, 2.75), (20, 3.0)):
        checkpoint.save_snapshot(run, model, tiny_config, step, val)
    log = MetricsLog(run.metrics_path)
    log.write("eval", 10, 0.0, val_loss=2.5)
    log.write("eval", 20, 0.0, val_loss=3.0)
    log.close()
    return run


def test_choices_offer_best_checkpoints_and_snapshots_with_val_losses(run):
    found = cp.choices(run)
    assert [c.label for c in found] == [
        "best (val): step 10, val loss 2.5000",
        "step 20",
        "step 20 (snapshot)",
        "step 15 (snapshot)",
        "step 10",
        "step 10 (snapshot)",
        "step 0 (snapshot)",
    ]
    by_label = {c.label: c for c in found}
    assert by_label["step 20"].val_loss == 3.0  # from the eval record
    step15 = by_label["step 15 (snapshot)"]  # no eval at 15: the one before it, said so
    assert (step15.val_loss, step15.val_step) == (2.5, 10)
    assert step15.title == "step 15 (snapshot) · val loss 2.5000 (at step 10)"
    assert by_label["step 0 (snapshot)"].val_loss is None
    assert by_label["step 0 (snapshot)"].val_text == "val loss not measured"
    assert by_label["step 20 (snapshot)"].kind == "snapshot"
    assert by_label["step 20 (snapshot)"].title == "step 20 (snapshot) · val loss 3.0000"
    assert found[0].path == run.best_checkpoint_path and found[0].step == 10
    assert cp.latest(found).label == "step 20"  # the full checkpoint, not the snapshot
    assert cp.missing_notes(run) == []


def test_without_metrics_a_snapshot_shows_the_loss_it_recorded(run):
    run.metrics_path.unlink()
    found = {c.label: c for c in cp.choices(run)}
    assert found["step 15 (snapshot)"].val_loss == 2.75
    assert found["step 20"].val_loss is None
    assert found["best (val): step 10, val loss 2.5000"].val_loss == 2.5


def test_latest_falls_back_to_snapshots_then_best(run):
    for _, path in run.checkpoints():
        path.unlink()
    found = cp.choices(run)
    assert cp.latest(found).label == "step 20 (snapshot)"
    assert cp.latest([c for c in found if c.kind == "best"]).kind == "best"
    assert cp.latest([]) is None


def test_spread_picks_first_and_last_one_per_step(run):
    found = cp.choices(run)
    picked = cp.spread(found, 3)
    assert [c.label for c in picked] == ["step 0 (snapshot)", "step 15 (snapshot)", "step 20"]
    assert [c.step for c in cp.spread(found, 10)] == [0, 10, 15, 20]  # best.pt left out
    assert [c.step for c in cp.spread(found, 1)] == [20]


def test_older_runs_say_what_they_lack(runs_dir, tiny_config):
    run = RunDir.create(runs_dir, "old", tiny_config)
    _save(run, GPT(ModelConfig.of(tiny_config)), tiny_config, 5)
    assert cp.missing_notes(run) == [cp.NO_BEST, cp.NO_SNAPSHOTS]
    assert "snapshot_interval" in cp.NO_SNAPSHOTS
    assert [c.label for c in cp.choices(run)] == ["step 5"]


def test_an_unreadable_snapshot_is_still_listed_without_a_loss(run):
    broken = run.snapshot_path(25)
    broken.write_bytes(b"not a safetensors file")
    run.metrics_path.unlink()
    found = {c.label: c for c in cp.choices(run)}
    assert found["step 25 (snapshot)"].val_loss is None
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        cp.load_cached(broken)


def test_models_load_once_per_file_and_again_when_it_changes(run):
    path = run.checkpoint_path(20)
    first = cp.load_cached(path)
    assert cp.load_cached(path) is first
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    again = cp.load_cached(path)
    assert again is not first and again.step == 20
    snap = cp.load_cached(run.snapshot_path(10))
    assert snap.step == 10 and snap.model.config.n_layer == 2
