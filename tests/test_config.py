import pytest

from core.config import (
    PRESETS,
    ConfigError,
    TrainConfig,
    check_run_id,
    field_problems,
    preset,
    validate,
    with_derived_accum,
)


def test_defaults_are_the_seed_recipe():
    cfg = TrainConfig()
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.vocab_size) == (
        12,
        12,
        768,
        1024,
        50304,
    )
    assert (cfg.max_lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps) == (6e-4, 6e-5, 200, 2000)
    assert (cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.eps, cfg.grad_clip) == (
        0.1,
        0.9,
        0.95,
        1e-8,
        1.0,
    )
    assert cfg.tokens_per_step() == 32_768
    assert cfg.target_loss == 0.1
    validate(cfg)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid(name):
    validate(preset(name))


def test_every_problem_is_reported_at_once_with_the_field_name():
    cfg = TrainConfig(n_embd=100, n_head=12, seq_len=2048, max_lr=-1, device="tpu", beta2=1.5)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    for name in ("n_embd", "seq_len", "max_lr", "device", "beta2"):
        assert f"{name}:" in message
    assert "does not divide by n_head=12" in message


def test_field_problems_is_empty_for_a_valid_config():
    assert field_problems(preset("nano")) == {}
    assert "micro_batch_size" in field_problems(preset("nano", micro_batch_size=0))
    assert "vocab_size" in field_problems(preset("nano", vocab_size=1000))


def test_total_batch_tokens_derives_accumulation_from_world_size():
    cfg = TrainConfig(micro_batch_size=2, seq_len=1024, total_batch_tokens=32_768)
    assert with_derived_accum(cfg, 1).grad_accum_steps == 16
    assert with_derived_accum(cfg, 2).grad_accum_steps == 8
    with pytest.raises(ConfigError, match="does not divide"):
        with_derived_accum(cfg, 3)
    assert "total_batch_tokens" in field_problems(cfg.replace(total_batch_tokens=1000))


@pytest.mark.parametrize("name", ["../evil", "a/b", "", "-x", "a b", "x;rm -rf", "é"])
def test_unsafe_run_names_are_refused(name):
    with pytest.raises(ConfigError, match="invalid run name"):
        check_run_id(name)


def test_round_trip_and_unknown_fields():
    cfg = preset("micro")
    assert TrainConfig.from_dict({"schema_version": 1, **cfg.to_dict()}) == cfg
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({"n_layers": 3})


def test_wrongly_typed_values_are_refused_by_name():
    with pytest.raises(
        ConfigError,
        match=r"beta1: must be float \(got '0.9'\); val_fraction: must be float \(got None\)",
    ):
        TrainConfig.from_dict({"beta1": "0.9", "val_fraction": None})
    assert TrainConfig.from_dict({"max_lr": 1}).max_lr == 1  # an int where a float goes is fine
