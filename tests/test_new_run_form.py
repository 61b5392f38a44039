"""dashboard/new_run_form.py: widget values <-> config, upload and size checks, and the
sentences that explain an estimate."""

import dataclasses

import numpy as np
import pytest
from conftest import make_tiny_config

from core.config import PRESET_NOTES, TrainConfig, cache_dir, preset
from core.data import dataset
from core.model.param_count import param_count
from core.train.estimate import Estimate, estimate, snapshot_count
from core.units import format_duration
from dashboard import new_run_form


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
    path = dataset.store_upload("My Notes (1).txt", raw)
    assert path.parent == cache_dir() / "uploads" and path.read_bytes() == raw
    assert path.name.endswith("-My-Notes--1.txt") and len(path.name.split("-")[0]) == 64
    assert dataset.store_upload("My Notes (1).txt", raw) == path  # the same text: the same file
    assert dataset.store_upload("../../etc/passwd", raw).parent == path.parent


def test_size_problem(small_text):
    cfg = make_tiny_config(small_text)
    assert new_run_form.size_problem(np.zeros(10_000, np.uint16), cfg) is None
    assert "validation split" in new_run_form.size_problem(np.zeros(1_000, np.uint16), cfg)


def fake_estimate(source: str, guess: bool, **kw) -> Estimate:
    return Estimate(
        params=3_323_648,
        params_by_component={},
        tokens_per_step=512,
        grad_accum_steps=1,
        steps_per_epoch=None,
        memory_mb={},
        flops_per_token=1,
        total_tokens=1,
        time_source=source,
        time_is_guess=guess,
        **kw,
    )


@pytest.mark.parametrize(
    "source, guess, start",
    [
        (
            "measured: mean throughput of run r (10 tokens/s)",
            False,
            "Measured: mean throughput of run r (10 tokens/s).",
        ),
        ("guess: 20.0 MFLOPs per token at 30% of 50 GFLOP/s peak", True, "⚠️ Rough guess: 20.0 MF"),
        ("unknown: no throughput measured or guessed for this device", True, "Unknown: no through"),
    ],
)
def test_time_note_names_its_source_once(source, guess, start):
    note = new_run_form.time_note(fake_estimate(source, guess, notes=["may end earlier"]))
    assert note.startswith(start) and note.endswith(" May end earlier.")
    assert "measured: measured" not in note.lower() and "measured measured" not in note.lower()


def test_preset_note_says_what_it_is_and_one_measured_time(runs_dir):
    cfg = preset("nano")
    est = estimate(cfg, runs_dir=runs_dir, peak_flops=1e11)  # no finished run: a guess
    note = new_run_form.preset_note("nano", est)
    assert note.startswith(PRESET_NOTES["nano"])
    assert f"{param_count(cfg) / 1e6:,.2f} M parameters" in note
    # one time only: where it was measured, never the form's estimate beside it
    assert format_duration(est.time_s) not in note and " steps" not in note
    assert new_run_form.preset_note("nano", None) == PRESET_NOTES["nano"]


def test_init_from_is_the_pages_own_input():
    base = preset("nano")
    values = new_run_form.preset_values("nano")
    assert "nr_init_from" not in values
    cfg, problems = new_run_form.parse(values, "tinyshakespeare", base, init_from="gpt2")
    assert cfg.init_from == "gpt2" and problems == {}


def test_prefill_values_show_a_runs_config(tmp_path, small_text):
    cfg = make_tiny_config(small_text, max_lr=1e-3)
    values = new_run_form.prefill_values(cfg, tmp_path)
    assert values["nr_n_embd"] == 32 and values["nr_max_lr"] == "0.001"
    assert values["nr_data_source"] == "a local path" and values["nr_data_path"] == str(small_text)
    assert values["nr_start"] == "scratch"
    shakespeare = new_run_form.prefill_values(preset("nano"), tmp_path)
    assert (shakespeare["nr_data_source"], shakespeare["nr_data_path"]) == ("tiny shakespeare", "")
    (tmp_path / "parent").mkdir()
    parent = cfg.replace(init_from=str(tmp_path / "parent"))
    from_run = new_run_form.prefill_values(parent, tmp_path)
    assert (from_run["nr_start"], from_run["nr_start_run"]) == ("another run", "parent")
    from_hf = new_run_form.prefill_values(cfg.replace(init_from="gpt2"), tmp_path)
    assert (from_hf["nr_start"], from_hf["nr_start_hf"]) == ("GPT-2", "gpt2")


def test_copy_name_drops_the_launch_date():
    assert new_run_form.copy_name("nano-20260101-120000") == "nano"
    assert new_run_form.copy_name("nano-20260101-120000-3") == "nano"
    assert new_run_form.copy_name("my_run") == "my_run"


@pytest.mark.parametrize(
    "interval, max_steps, count", [(0, 200, 0), (50, 200, 5), (60, 200, 5), (500, 200, 2)]
)
def test_snapshot_count_as_the_engine_writes_them(interval, max_steps, count):
    """Step 0, every interval, and the last step when it is not on the interval."""
    cfg = preset("nano", snapshot_interval=interval, max_steps=max_steps)
    assert snapshot_count(cfg) == count


def test_disk_need_splits_checkpoints_and_capped_snapshots():
    from core.model.param_count import param_count
    from core.train.estimate import checkpoint_disk_mb

    cfg = preset("nano", snapshot_interval=60, snapshot_cap_mb=1000)
    need = new_run_form.disk_need(cfg)
    one = 2 * param_count(cfg) / 2**20
    assert need["checkpoints"] == checkpoint_disk_mb(cfg.replace(snapshot_interval=0))
    assert need["snapshot"] == pytest.approx(one) and need["snapshots"] == pytest.approx(6 * one)
    assert need["total"] == pytest.approx(need["checkpoints"] + 6 * one)  # 0, 60, ..., 300
    assert new_run_form.disk_need(cfg.replace(snapshot_cap_mb=20))["snapshots"] == 20
    assert new_run_form.disk_need(cfg.replace(snapshot_cap_mb=1))["snapshots"] == pytest.approx(one)
    assert new_run_form.disk_need(cfg.replace(snapshot_interval=0))["snapshots"] == 0


def test_probe_key_is_the_shape_batch_dtype_and_device():
    nano = preset("nano")
    key = new_run_form.probe_key(nano, "cpu")
    assert key == new_run_form.probe_key(nano.replace(max_steps=9, max_lr=1.0), "cpu")
    assert key != new_run_form.probe_key(nano.replace(n_embd=96), "cpu")
    assert key != new_run_form.probe_key(nano, "cuda:0")
    assert dict(key)["device"] == "cpu" and hash(key)


def test_formats():
    assert new_run_form.format_epochs(0.3367) == "0.34"
    assert new_run_form.format_epochs(216.2) == "216"
    assert new_run_form.format_epochs(float("inf")) == "∞"
