"""core.inspect.attention (with core.model.attention_maps and core.dynamics.induction): weights recomputed from c_attn match the model's forward; head-type scores."""

import numpy as np
import pytest
import torch

from core.data.dataset import EOT_TOKEN
from core.dynamics import induction as induction_probe
from core.inspect import attention
from core.model import attention_maps
from core.model.gpt import GPT, ModelConfig

IDS = [464, 3290, 286, 262, 995, 318, 257, 1332, 286, 262, 995, 13]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16)).eval()


def test_rows_sum_to_one_and_attention_is_causal(model):
    result = attention.attention_weights(model, IDS)
    w = result.weights
    T = len(IDS)
    assert w.shape == (2, 2, T, T) and w.dtype == np.float32
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-6)
    assert (w[..., np.triu_indices(T, k=1)[0], np.triu_indices(T, k=1)[1]] == 0).all()
    assert (w[..., 0, 0] == 1).all()  # the first query can only look at itself
    assert result.tokens[1] == " dog" and result.cropped == 0
    assert 0 <= result.residual_gap < 1e-4


@torch.no_grad()
def test_residual_output_gives_the_models_logits(model):
    idx = torch.tensor([IDS, IDS[::-1]])  # a batch of two
    x, weights, gap = attention_maps.run_with_attention(model, idx)
    assert weights.shape == (2, 2, 2, len(IDS), len(IDS))
    logits, _ = model(idx)
    torch.testing.assert_close(
        model.lm_head(model.transformer.ln_f(x)), logits, atol=1e-5, rtol=1e-5
    )
    single = attention.attention_weights(model, IDS[::-1]).weights
    np.testing.assert_allclose(weights[1].numpy(), single, atol=1e-6)


def test_a_drifted_model_is_caught(model, monkeypatch):
    attn = model.transformer.h[1].attn
    original = attn.forward
    monkeypatch.setattr(attn, "forward", lambda *a, **k: 2 * original(*a, **k))
    with pytest.raises(attention_maps.AttentionMismatch, match="core.model.gpt"):
        attention.attention_weights(model, IDS)
    assert attention.attention_weights(model, IDS, check=False).residual_gap == 0.0


def test_bfloat16_model_passes_the_check():
    torch.manual_seed(0)
    m = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16)).eval().to(torch.bfloat16)
    w = attention.attention_weights(m, IDS).weights
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-5)


def test_text_is_cropped(model):
    result = attention.attention_text(
        model, "one two three four five six seven eight nine ten " * 2
    )
    assert result.weights.shape[-1] == 16 and result.cropped > 0


def patterned(T: int, key_of) -> np.ndarray:
    """(T, T) weights: query i puts all its weight on key_of(i) (or on itself when None)."""
    w = np.zeros((T, T), dtype=np.float32)
    for i in range(T):
        k = key_of(i)
        w[i, i if k is None else k] = 1
    return w


def test_score_definitions_on_known_patterns():
    n = 6
    T = 2 * n + 1
    prev = patterned(T, lambda i: max(i - 1, 0))
    first = patterned(T, lambda i: 0)
    # Induction: a token of the second copy (position 1 + n + j) looks at 2 + j.
    induction = patterned(T, lambda i: i - n + 1 if i >= n + 1 else None)
    assert attention.previous_token_scores(prev) == pytest.approx(1)
    assert attention.first_token_scores(first) == pytest.approx(1)
    assert induction_probe.induction_scores_from(induction, n) == pytest.approx(1)
    assert induction_probe.induction_scores_from(prev, n) == pytest.approx(0)
    assert attention.previous_token_scores(first) == pytest.approx(1 / (T - 1))  # only query 1
    stacked = np.stack([prev, first, induction])[None]  # (1, 3, T, T): layers x heads
    assert attention.previous_token_scores(stacked).shape == (1, 3)


def test_repeated_random_tokens():
    seq = induction_probe.repeated_random_tokens(5, batch=3, seed=2)
    assert seq.shape == (3, 11) and (seq[:, 0] == EOT_TOKEN).all()
    assert torch.equal(seq[:, 1:6], seq[:, 6:])
    assert all(len(set(row[1:6].tolist())) == 5 for row in seq)
    assert torch.equal(seq, induction_probe.repeated_random_tokens(5, batch=3, seed=2))


def test_head_scores(model):
    scores = attention.head_scores(model, n=7, batch=2)
    assert [(s.layer, s.head) for s in scores] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for s in scores:
        for value in (s.previous_token, s.first_token, s.induction):
            assert 0 <= value <= 1
    # A text's weights replace the random sequences for the previous- and first-token scores.
    T = len(IDS)
    prev = np.broadcast_to(patterned(T, lambda i: max(i - 1, 0)), (2, 2, T, T))
    labelled = attention.head_scores(model, prev, n=7, batch=2)
    assert all(
        s.previous_token == pytest.approx(1) and s.kind == "previous-token" for s in labelled
    )
    assert [s.induction for s in labelled] == [s.induction for s in scores]
    with pytest.raises(ValueError, match="n_layer, n_head"):
        attention.head_scores(model, prev[:1], n=7, batch=2)
    with pytest.raises(ValueError, match="context"):
        attention.head_scores(GPT(ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=4)))
