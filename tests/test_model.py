import math

import pytest
import torch

from core.config import preset
from core.model.gpt import GPT, ModelConfig, flops_per_token

TINY = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=50304)


def test_shapes_and_loss():
    model = GPT(TINY)
    idx = torch.randint(0, 50257, (3, 16))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 16, 50304)
    assert loss.shape == () and loss.item() > 0
    assert model(idx)[1] is None


def test_output_projection_is_tied_to_token_embedding():
    model = GPT(TINY)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()


def test_gpt2_124m_parameter_count():
    cfg = ModelConfig.of(preset("gpt2-124m"))
    assert GPT(cfg).num_params() == 124_475_904  # vocabulary padded to 50304
    assert GPT(ModelConfig(vocab_size=50257)).num_params() == 124_439_808


def test_gpt2_initialisation():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=8, n_head=4, n_embd=256, block_size=32))
    block = model.transformer.h[0]
    assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual_std = 0.02 / math.sqrt(2 * 8)
    assert block.attn.c_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert block.mlp.c_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert torch.count_nonzero(block.mlp.c_fc.bias) == 0
    assert model.transformer.wpe.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_initial_loss_of_124m_on_shakespeare_is_near_uniform(shakespeare_path):
    from core.data.dataset import encode

    torch.manual_seed(1337)
    model = GPT(ModelConfig.of(preset("gpt2-124m"))).eval()
    tokens = torch.from_numpy(encode(shakespeare_path.read_text()[:3000]).astype("int64"))
    x, y = tokens[:256].view(1, 256), tokens[1:257].view(1, 256)
    with torch.no_grad():
        _, loss = model(x, y)
    assert loss.item() == pytest.approx(math.log(50257), abs=0.25)  # 10.82: no token preferred


def test_causality_future_tokens_do_not_change_past_logits():
    model = GPT(TINY).eval()
    a = torch.randint(0, 50257, (1, 16))
    b = a.clone()
    b[0, 10:] = torch.randint(0, 50257, (6,))
    with torch.no_grad():
        la, lb = model(a)[0], model(b)[0]
    torch.testing.assert_close(la[0, :10], lb[0, :10])


def test_sequence_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="longer than the context"):
        GPT(TINY)(torch.zeros(1, 17, dtype=torch.long))


def test_flops_per_token_formula():
    cfg = ModelConfig()
    n = 124_475_904
    assert flops_per_token(cfg, 1024, n) == 6 * n + 12 * 12 * 12 * 64 * 1024


def test_dropout_acts_only_while_training():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, dropout=0.3))
    ids = torch.randint(0, 50257, (2, 16))
    model.train()
    a, b = model(ids)[0], model(ids)[0]
    assert not torch.equal(a, b)  # a fresh mask each pass
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids)[0], model(ids)[0])
    assert (
        ModelConfig.of(
            {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16, "vocab_size": 50304}
        ).dropout
        == 0.0
    )  # an older config: off
