"""core/model/param_count.py: parameter counts from a config alone, equal to the model's own count."""

import pytest
import torch

from core.config import PRESETS, preset
from core.model.gpt import GPT, ModelConfig
from core.model.param_count import model_shape, param_count, param_counts


@pytest.mark.parametrize("name", list(PRESETS))
def test_counts_equal_the_models(name):
    cfg = preset(name)
    with torch.device("meta"):  # no memory for the 124M weights
        model = GPT(ModelConfig.of(cfg))
    assert param_count(cfg) == model.num_params() == sum(param_counts(cfg).values())


def test_any_object_with_the_model_fields():
    cfg = preset("nano")
    assert model_shape(cfg) == model_shape(cfg.to_dict()) == model_shape(ModelConfig.of(cfg))
    assert param_count(cfg.to_dict()) == param_count(cfg)
    assert param_count(preset("gpt2-124m")) == 124_475_904
