"""core.data.repetition: passes over the training text and where they land on the repeated-data
scale of Muennighoff et al. 2023."""

import math

import pytest
from conftest import make_tiny_config

from core.data.repetition import repetition_note, steps_per_epoch, train_tokens


@pytest.mark.parametrize(
    "epochs, words",
    [
        (0.5, "every token is new"),
        (3.0, "within the ~4 epochs"),
        (8.0, "past the ~4 epochs"),
        (20.0, "past ~16"),
        (math.inf, "No whole pass"),
    ],
)
def test_the_note_places_epochs_on_the_scale(epochs, words):
    note = repetition_note(epochs)
    assert words in note
    if math.isfinite(epochs) and epochs > 1:
        assert "Muennighoff et al. 2023" in note


def test_steps_per_epoch_known_answer(tmp_path):
    cfg = make_tiny_config(tmp_path / "x.txt", micro_batch_size=4, seq_len=32, grad_accum_steps=2)
    # 1,025 train tokens: 1,024 // 128 = 8 micro batches per pass, 2 per step -> 4 steps
    assert steps_per_epoch(1025, cfg) == 4.0
    assert steps_per_epoch(1025, cfg, nproc=2) == 2.0
    assert steps_per_epoch(100, cfg) == 0.0  # not one micro batch


def test_the_xray_and_the_live_page_count_epochs_alike(small_text):
    from core.data.xray import data_xray

    cfg = make_tiny_config(small_text, max_steps=200)
    x = data_xray(cfg, n_params=1000)
    assert x.train_tokens == train_tokens(str(small_text), cfg.val_fraction)
    assert x.epochs == pytest.approx(cfg.max_steps / steps_per_epoch(x.train_tokens, cfg))
