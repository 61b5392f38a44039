"""core.inspect.surprise: per-token surprise, totals, a val passage, and the difference of two models."""

import math

import pytest
import torch

from core.config import GPT2_VOCAB
from core.data import dataset
from core.inspect.surprise import random_val_passage, surprise, surprise_diff, token_surprise
from core.model.gpt import GPT, ModelConfig
from tests.conftest import make_tiny_config

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak."


def tiny(seed: int, block_size: int = 64) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=block_size)).eval()


@pytest.fixture(scope="module")
def model():
    return tiny(0)


def padding_loving_model() -> GPT:
    """Every prediction puts most mass on padding id 50300, then on token 13 ('.')."""
    m = tiny(1)
    with torch.no_grad():
        m.transformer.ln_f.weight.zero_()
        m.transformer.ln_f.bias.fill_(1.0)  # final state = ones: logit i = sum(wte[i])
        m.transformer.wte.weight[50300] = 0.3
        m.transformer.wte.weight[13] = 0.2
    return m


@pytest.mark.parametrize("make", [lambda: tiny(0), padding_loving_model])
def test_per_token_losses_average_to_the_models_loss(make):
    model = make()
    result = surprise(model, TEXT)
    ids = [t.token_id for t in result.tokens]
    _, loss = model(torch.tensor([ids[:-1]]), torch.tensor([ids[1:]]))
    bits = [t.bits for t in result.tokens[1:]]
    assert sum(bits) / len(bits) * math.log(2) == pytest.approx(loss.item(), abs=1e-5)
    assert result.mean_loss == pytest.approx(loss.item(), abs=1e-5)
    assert result.perplexity == pytest.approx(math.exp(result.mean_loss))


def test_first_token_is_shown_but_not_scored(model):
    result = surprise(model, TEXT)
    first = result.tokens[0]
    assert first.bits is None and first.prob is None and first.top == ()
    assert "first token" in result.note
    assert result.n_scored == len(result.tokens) - 1
    assert all(t.bits is not None for t in result.tokens[1:])
    assert [t.index for t in result.tokens] == list(range(len(result.tokens)))


def test_totals_and_token_fields(model):
    result = surprise(model, TEXT, top_k=4)
    enc = dataset.get_tokenizer()
    ids = [t.token_id for t in result.tokens]
    assert enc.decode(ids) == TEXT and result.cropped == 0
    assert result.chars_scored == len(enc.decode(ids[1:]))
    total_bits = sum(t.bits for t in result.tokens[1:])
    assert result.bits_per_char == pytest.approx(total_bits / result.chars_scored)
    for t in result.tokens[1:]:
        assert t.prob == pytest.approx(2**-t.bits, rel=1e-5)
        assert len(t.top) == 4 and [p for _, _, p in t.top] == sorted(
            (p for _, _, p in t.top), reverse=True
        )
        assert (t.rank == 1) == (t.top[0][0] == t.token_id)
    worst = result.most_surprising
    assert len(worst) == 10 and [t.bits for t in worst] == sorted(
        (t.bits for t in worst), reverse=True
    )
    assert worst[0].bits == max(t.bits for t in result.tokens[1:])


def test_padding_never_shows_as_an_alternative():
    result = surprise(padding_loving_model(), TEXT, top_k=3)
    for t in result.tokens[1:]:
        assert all(i < GPT2_VOCAB for i, _, _ in t.top)
        assert t.top[0][0] == 13


def test_long_text_is_cropped_from_the_left():
    model = tiny(0, block_size=8)
    result = surprise(model, TEXT)
    n = len(dataset.get_tokenizer().encode(TEXT))
    assert len(result.tokens) == 8 and result.cropped == n - 8
    ids = dataset.get_tokenizer().encode(TEXT)
    assert [t.token_id for t in result.tokens] == ids[-8:]


@pytest.mark.parametrize("text", ["", "   ", "Hi"])
def test_too_short_text_is_refused(model, text):
    with pytest.raises(ValueError, match="text"):
        surprise(model, text)
    with pytest.raises(ValueError, match="at least 2"):
        token_surprise(model, [464])


def test_random_val_passage_is_from_the_val_split(small_text):
    cfg = make_tiny_config(small_text)
    a, b = random_val_passage(cfg, 40, seed=1), random_val_passage(cfg, 40, seed=1)
    assert a == b and a.n_tokens == 40
    _, val = dataset.split(dataset.load_tokens(cfg.data), cfg.val_fraction)
    assert a.text == dataset.get_tokenizer().decode([int(t) for t in val[a.start : a.start + 40]])
    others = {random_val_passage(cfg, 40, seed=s).start for s in range(2, 8)}
    assert len(others) > 1
    whole = random_val_passage(cfg, 10**6, seed=0)
    assert whole.n_tokens == len(val) and whole.start == 0
    with pytest.raises(ValueError, match="n_tokens"):
        random_val_passage(cfg, 1, seed=0)


def test_diff_of_a_model_with_itself_is_zero(model):
    diff = surprise_diff(model, model, TEXT)
    assert all(t.delta_bits == 0 for t in diff.tokens[1:])
    assert diff.tokens[0].delta_bits is None and diff.mean_bits_a == diff.mean_bits_b


def test_diff_of_two_models():
    short, other = tiny(0, block_size=16), tiny(5)
    diff = surprise_diff(other, short, TEXT, n=5)  # cropped to the shorter context, 16
    b = surprise(short, TEXT)
    a = token_surprise(other, [t.token_id for t in b.tokens])
    assert diff.cropped == b.cropped > 0 and len(diff.tokens) == 16
    for d, ta, tb in zip(diff.tokens[1:], a.tokens[1:], b.tokens[1:]):
        assert d.bits_a == pytest.approx(ta.bits, abs=1e-5)
        assert d.delta_bits == pytest.approx(tb.bits - ta.bits, abs=1e-5)
    deltas = sorted(t.delta_bits for t in diff.tokens[1:])
    assert [t.delta_bits for t in diff.easiest] == deltas[:5]
    assert [t.delta_bits for t in diff.hardest] == deltas[::-1][:5]
