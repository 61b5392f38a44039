"""dashboard/new_run_form.py: widget values <-> config, upload and size checks, and the
sentences that explain an estimate."""

import dataclasses

import numpy as np
import pytest

from conftest import make_tiny_config
from core import data
from core.config import PRESET_NOTES, TrainConfig, preset
from core.estimate import Estimate, estimate
from dashboard import new_run_form
from dashboard.run_table import format_duration


def test_parse_round_trips_and_names_bad_fields():
    base = preset("nano")
    values = new_run_form.preset_values("nano")
    cfg, problems = new_run_form.parse(values, "tinyshakespeare", base)
    assert cfg == base and problems == {}
    cfg, problems = new_run_form.parse({**values, "nr_max_lr": " 1e-3 ", "nr_eps": "x"}, "t", base)
    assert cfg.max_lr == 1e-3 and set(problems) == {"eps"}
    cfg, problems = new_run_form.parse({**values, "nr_n_layer": 2.5}, "t", base)
    assert "whole number" in problems["n_layer"] and cfg.n_layer == base.n_layer


def test_fields_come_in_rows_of_three():
    fields = new_run_form.fields_by_group()["model"]
    rows = new_run_form.rows_of(fields)
    assert all(len(r) == 3 for r in rows[:-1]) and 1 <= len(rows[-1]) <= 3
    assert sum(rows, []) == fields


def test_choices_come_from_core_config():
    choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(TrainConfig)}
    assert choices["device"][:2] == ("auto", "cpu") and "bfloat16" in choices["dtype"]
    assert choices["compile"] == ("auto", "on", "off")


def test_upload_checks(small_text):
    raw = small_text.read_bytes()
    assert new_run_form.upload_problem(raw, "s.txt") is None
    assert "not UTF-8" in new_run_form.upload_problem(b"\xff\xfe" * 600, "s.txt")
    assert "at least 1,024 bytes" in new_run_form.upload_problem(b"tiny", "s.txt")


def test_uploads_are_stored_by_content_in_the_cache(small_text):
    raw = small_text.read_bytes()
    path = data.store_upload("My Notes (1).txt", raw)
    assert path.parent == data.cache_dir() / "uploads" and path.read_bytes() == raw
    assert path.name.endswith("-My-Notes--1.txt") and len(path.name.split("-")[0]) == 64
    assert data.store_upload("My Notes (1).txt", raw) == path  # the same text: the same file
    assert data.store_upload("../../etc/passwd", raw).parent == path.parent


def test_size_problem(small_text):
    cfg = make_tiny_config(small_text)
    assert new_run_form.size_problem(np.zeros(10_000, np.uint16), cfg) is None
    assert "validation split" in new_run_form.size_problem(np.zeros(1_000, np.uint16), cfg)


def fake_estimate(source: str, guess: bool, **kw) -> Estimate:
    return Estimate(params=3_323_648, params_by_component={}, tokens_per_step=512,
                    grad_accum_steps=1, steps_per_epoch=None, memory_mb={}, flops_per_token=1,
                    total_tokens=1, time_source=source, time_is_guess=guess, **kw)


@pytest.mark.parametrize("source, guess, start", [
    ("measured: mean throughput of run r (10 tokens/s)", False,
     "Measured: mean throughput of run r (10 tokens/s)."),
    ("guess: 20.0 MFLOPs per token at 30% of 50 GFLOP/s peak", True, "⚠️ Rough guess: 20.0 MF"),
    ("unknown: no throughput measured or guessed for this device", True, "Unknown: no through"),
])
def test_time_note_names_its_source_once(source, guess, start):
    note = new_run_form.time_note(fake_estimate(source, guess, notes=["may end earlier"]))
    assert note.startswith(start) and note.endswith(" May end earlier.")
    assert "measured: measured" not in note.lower() and "measured measured" not in note.lower()


def test_preset_note_uses_the_estimate():
    cfg = preset("nano")
    est = estimate(cfg, peak_flops=1e11)
    note = new_run_form.preset_note("nano", est, cfg.max_steps)
    assert note.startswith(PRESET_NOTES["nano"])
    assert f"about {format_duration(est.time_s)} for 200 steps (a rough guess)" in note
    assert "3.32 M parameters" in note
    assert new_run_form.preset_note("nano", None, 200) == PRESET_NOTES["nano"]
