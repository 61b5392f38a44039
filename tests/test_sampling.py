"""core.generate.sampling: cached vs uncached generation, sampling controls, streaming, next-token view."""

import math

import pytest
import torch

from core.data.dataset import EOT_TOKEN
from core.data.tokens import encode_prompt
from core.generate import sampling
from core.model.gpt import GPT, ModelConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=8, vocab_size=50304)).eval()


def rigged_model(eot_bias: float = 5.0) -> GPT:
    """A model whose every prediction is padding id 50300 first, then end-of-text."""
    m = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=50304)).eval()
    with torch.no_grad():
        m.transformer.ln_f.weight.zero_()
        m.transformer.ln_f.bias.fill_(1.0)  # final hidden state = ones: logit i = sum(wte[i])
        m.transformer.wte.weight[50300] = 10.0
        m.transformer.wte.weight[EOT_TOKEN] = eot_bias
    return m


def test_cached_and_uncached_logits_match_past_the_context(model):
    prompt = torch.randint(0, 50257, (1, 5))
    runs = {}
    for cache in (True, False):
        g = torch.Generator().manual_seed(3)
        runs[cache] = list(
            sampling.generate_ids(
                model, prompt, 7, temperature=1.0, top_k=50, generator=g, use_cache=cache
            )
        )
    assert len(runs[True]) == 7  # 5 + 7 tokens: the window slides past block_size=8
    for (id_c, lg_c), (id_u, lg_u) in zip(runs[True], runs[False]):
        assert id_c.item() == id_u.item()
        torch.testing.assert_close(lg_c, lg_u, atol=1e-5, rtol=1e-5)


def test_top_k_one_is_greedy(model):
    ids = torch.randint(0, 50257, (1, 5))
    seq = ids
    for next_id, _ in sampling.generate_ids(
        model, ids, 5, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(1)
    ):
        logits, _ = model(seq[:, -8:])
        assert next_id.item() == sampling.mask_padding(logits[0, -1]).argmax().item()
        seq = torch.cat([seq, next_id], dim=1)


def test_greedy_setting_ignores_the_seed(model):
    texts = {
        "".join(
            e.text
            for e in sampling.stream_tokens(
                model,
                [464, 3290],
                sampling.SamplingSettings(
                    temperature=1.5, max_new_tokens=5, seed=seed, greedy=True, stop_at_eot=False
                ),
            )
        )
        for seed in (1, 2, 3)
    }
    assert len(texts) == 1


def test_same_seed_same_text_and_other_seed_other_text(model):
    def run(seed):
        s = sampling.SamplingSettings(
            temperature=1.0, top_k=0, max_new_tokens=6, seed=seed, stop_at_eot=False
        )
        return [e.token_id for e in sampling.stream_tokens(model, [464, 3290], s)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_padding_is_never_emitted_and_end_of_text_stops():
    events = list(
        sampling.stream_tokens(rigged_model(), [464], sampling.SamplingSettings(max_new_tokens=10))
    )
    assert [e.token_id for e in events] == [EOT_TOKEN]  # not 50300, and it stopped at once
    assert events[0].eot and events[0].text == ""
    assert events[0].prob > 0.99 and all(t != "" for t, _ in events[0].top[:1])
    events = list(
        sampling.stream_tokens(
            rigged_model(), [464], sampling.SamplingSettings(max_new_tokens=4, stop_at_eot=False)
        )
    )
    assert len(events) == 4 and events[0].text == "<|endoftext|>"


def test_stream_events_carry_probabilities_and_alternatives(model):
    events = list(
        sampling.stream_tokens(
            model, [464], sampling.SamplingSettings(max_new_tokens=4, seed=2, stop_at_eot=False)
        )
    )
    assert [e.index for e in events] == list(range(4))
    for e in events:
        assert 0 < e.prob <= 1
        probs = [p for _, p in e.top]
        assert probs == sorted(probs, reverse=True) and len(probs) == 5
        assert e.token_id < sampling.GPT2_VOCAB


def test_utf8_stream_holds_back_split_characters():
    from core.data.dataset import get_tokenizer

    u = sampling.Utf8Stream()
    assert u.push(b"\xc3") == ""  # first byte of 'é'
    assert u.push(b"\xa9!") == "é!"
    assert u.push(b"\xf0\x9f") == "" and u.flush() == "\ufffd"
    enc = get_tokenizer()
    ids = enc.encode("日本🙂")
    assert any("\ufffd" in enc.decode([i]) for i in ids)  # tokens split these characters
    u = sampling.Utf8Stream()
    pieces = [u.push(enc.decode_single_token_bytes(i)) for i in ids]
    assert "".join(pieces) == "日本🙂" and all("\ufffd" not in p for p in pieces)


def test_prompt_is_cropped_from_the_left():
    ids, dropped = encode_prompt("to be or not to be " * 10, block_size=16)
    assert len(ids) == 16 and dropped > 0
    ids, dropped = encode_prompt("<|endoftext|>", block_size=16)
    assert ids == [EOT_TOKEN] and dropped == 0


def test_next_token_probabilities_sorted_entropy_and_temperature(model):
    logits = sampling.next_token_logits(model, [464, 3290, 318])
    assert torch.isinf(logits[sampling.GPT2_VOCAB :]).all()
    hot, cold = sampling.next_token(logits, 1.5, k=10), sampling.next_token(logits, 0.2, k=10)
    for nt in (hot, cold):
        probs = [p for _, _, p in nt.top]
        assert probs == sorted(probs, reverse=True)
        assert all(0 < p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6
        assert all(i < sampling.GPT2_VOCAB for i, _, _ in nt.top)
        assert 0 <= nt.entropy_bits <= math.log2(sampling.GPT2_VOCAB) + 1e-6
    assert cold.entropy_bits < hot.entropy_bits  # low temperature sharpens the distribution
    assert cold.top[0][2] > hot.top[0][2]
    assert [i for i, _, _ in cold.top[:3]] == [i for i, _, _ in hot.top[:3]]


@pytest.mark.parametrize(
    "settings, match",
    [
        (sampling.SamplingSettings(temperature=0), "temperature"),
        (sampling.SamplingSettings(temperature=-1), "temperature"),
        (sampling.SamplingSettings(top_k=60000), "top_k"),
        (sampling.SamplingSettings(top_p=0), "top_p"),
        (sampling.SamplingSettings(max_new_tokens=0), "max_new_tokens"),
    ],
)
def test_bad_settings_are_refused_by_name(model, settings, match):
    with pytest.raises(ValueError, match=match):
        list(sampling.stream_tokens(model, [464], settings))


def test_empty_prompt_is_refused():
    with pytest.raises(ValueError, match="prompt is empty"):
        encode_prompt("  \n", 16)


def test_readable_token():
    assert sampling.readable_token(" the\n") == "␣the↵"
    assert sampling.readable_token("\x00") == "\\x00"


def test_temperature_table_compares_with_temperature_one(model):
    logits = sampling.next_token_logits(model, [464, 3290])
    rows = sampling.temperature_table(logits, 0.3, k=5)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["p"] > rows[0]["p_at_1"]  # cooling sharpens the most likely token
    assert sampling.temperature_table(logits, 1.0, k=3)[0]["p"] == pytest.approx(rows[0]["p_at_1"])
