"""core.train.optim: the warmup + cosine schedule (with lr_decay_steps) and AdamW's decay groups."""

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from core.model.gpt import GPT, ModelConfig
from core.train import optim
from core.train.optim import decay_groups, get_lr


def test_schedule_warmup_cosine_and_floor(tiny_config):
    cfg = tiny_config.replace(max_lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert get_lr(0, cfg) == pytest.approx(0.1)
    assert get_lr(9, cfg) == pytest.approx(1.0)
    assert get_lr(60, cfg) == pytest.approx(0.55)  # half way down the cosine
    assert get_lr(110, cfg) == get_lr(500, cfg) == 0.1


def test_weight_decay_only_on_2d_weights(tiny_config):
    model = GPT(ModelConfig.of(tiny_config))
    decay, no_decay = decay_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(
        p.dim() == 1 for p in no_decay["params"]
    )
    # tied embedding counted once; 4 matrices per block + wte + wpe
    assert len(decay["params"]) == 4 * 2 + 2
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in no_decay["params"]} >= {
        "transformer.ln_f.weight",
        "transformer.h.0.attn.c_attn.bias",
    }
    total = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert total == model.num_params()


def test_a_continued_run_keeps_its_schedule_length(tiny_config):
    cfg = tiny_config.replace(
        max_lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=200, lr_decay_steps=110
    )
    assert get_lr(60, cfg) == pytest.approx(0.55)  # the cosine still ends at step 110
    assert get_lr(150, cfg) == 0.1  # the extra steps train at min_lr


def test_cpu_uses_the_fused_adamw_and_it_matches_the_loop(tiny_config, monkeypatch):
    """The fused kernel on a CPU takes the same steps as PyTorch's per-tensor loop."""

    def trained(fused: bool):
        monkeypatch.setattr(optim, "FUSED_ADAMW_DEVICES", ("cuda", "cpu") if fused else ("cuda",))
        torch.manual_seed(0)
        model = GPT(ModelConfig.of(tiny_config))
        opt = optim.make_optimizer(model, tiny_config, "cpu")
        start = parameters_to_vector(model.parameters()).detach()
        x = torch.randint(0, tiny_config.vocab_size, (2, 8))
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            model(x, x)[1].backward()
            opt.step()
        return opt, start, parameters_to_vector(model.parameters()).detach()

    fused_opt, start, fused_weights = trained(True)
    assert all(group["fused"] for group in fused_opt.param_groups)
    loop_opt, _, loop_weights = trained(False)
    assert not any(group["fused"] for group in loop_opt.param_groups)
    assert (fused_weights - start).abs().max() > 1e-4  # three steps moved the weights
    # Rounding differs a little where a gradient is tiny next to eps: ~4e-6 at most here,
    # under 1% of a step (lr 1e-3 to 3e-3).
    assert torch.allclose(fused_weights, loop_weights, rtol=0, atol=2e-5)
