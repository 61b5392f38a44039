"""core.data.ngram: exact counts, interpolated Kneser-Ney probabilities worked out by hand,
proper distributions, and the cached baselines of a data set."""

from collections import Counter

import numpy as np
import pytest

from core.data import ngram
from core.data.ngram import NgramModel, V, baseline_losses, gram_keys, load_ngrams

TEXT = np.array([5, 7, 5, 7, 9, 5, 7, 5, 9, 9, 7, 5], dtype=np.uint16)


def test_gram_keys_are_base_vocab_numbers():
    assert gram_keys(np.array([1, 2, 3]), 2).tolist() == [1 * V + 2, 2 * V + 3]
    assert gram_keys(np.array([1, 2, 3]), 3).tolist() == [(1 * V + 2) * V + 3]


def test_the_bigram_of_a_tiny_text_equals_its_counts():
    model = NgramModel.fit(TEXT, 2)
    top = model.levels[1]
    expected = Counter(zip(TEXT[:-1].tolist(), TEXT[1:].tolist()))
    found = {(int(k // V), int(k % V)): int(c) for k, c in zip(top.grams, top.counts)}
    assert found == expected
    # contexts: how often each token is followed by anything, and by how many distinct tokens
    follows = Counter(TEXT[:-1].tolist())
    assert dict(zip(top.contexts.tolist(), top.totals.tolist())) == follows
    assert dict(zip(top.contexts.tolist(), top.types.tolist())) == {5: 2, 7: 2, 9: 3}
    # the unigram level holds continuation counts: in how many contexts each token follows
    low = model.levels[0]
    assert dict(zip(low.grams.tolist(), low.counts.tolist())) == {5: 2, 7: 2, 9: 3}


def test_bigram_probability_by_hand():
    model = NgramModel.fit(TEXT, 2)
    d1, d2 = model.levels[0].discount, model.levels[1].discount
    # counts of counts at the top: (5,7) x3, (7,5) x3, (7,9) x1, (9,5) x1, (5,9) x1, (9,9) x1,
    # (9,7) x1 -> n1 = 5, n2 = 0 -> D = 1 (clamped to 0.95); continuation: n1 = 0 -> 0.5
    assert d2 == pytest.approx(0.95) and d1 == pytest.approx(0.5)
    p_uni_7 = (2 - d1) / 7 + d1 * 3 / 7 / V
    p_7_after_5 = (3 - d2) / 4 + d2 * 2 / 4 * p_uni_7
    assert model.probs(np.array([[5]]), np.array([7]))[0] == pytest.approx(p_7_after_5)
    # a context never seen falls back to the lower order
    p_uni_5 = (2 - d1) / 7 + d1 * 3 / 7 / V
    assert model.probs(np.array([[42]]), np.array([5]))[0] == pytest.approx(p_uni_5)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_distributions_are_proper_and_match_log_probs(order):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, size=2000).astype(np.uint16)
    model = NgramModel.fit(tokens, order)
    for context in ([], [3], [3, 4], [49_000, 12]):
        dist = model.distribution(np.array(context, dtype=np.int64))
        assert dist.shape == (V,) and dist.sum() == pytest.approx(1.0) and dist.min() > 0
    ids = np.array([3, 4, 5, 6, 7], dtype=np.int64)
    logp = model.log_probs(ids)
    assert len(logp) == len(ids) - order + 1
    last = model.distribution(ids[:-1])[ids[-1]]
    assert logp[-1] == pytest.approx(np.log(last))


def test_higher_orders_fit_a_repetitive_text_better():
    tokens = np.tile(np.array([1, 2, 3, 1, 3, 2], dtype=np.uint16), 200)
    losses = [-NgramModel.fit(tokens, k).log_probs(tokens).mean() for k in (1, 2, 3)]
    assert losses[0] > losses[1] > losses[2]
    assert losses[2] < 0.1  # the trigram knows each next token: the text is periodic


def test_bad_order_is_refused():
    with pytest.raises(ValueError, match="order must be 1, 2 or 3"):
        NgramModel.fit(TEXT, 4)


def test_baselines_are_built_once_and_cached(small_text, monkeypatch):
    losses = baseline_losses(str(small_text), 0.1)
    assert set(losses) == {"unigram", "bigram", "trigram"}
    assert losses["unigram"] > losses["bigram"] > 0
    # the second time nothing is counted: models and losses come from the cache
    monkeypatch.setattr(NgramModel, "fit", lambda *a: pytest.fail("counted again"))
    assert baseline_losses(str(small_text), 0.1) == losses
    models = load_ngrams(str(small_text), 0.1)
    assert sorted(models) == [1, 2, 3] and models[3].order == 3


def test_a_corrupt_cache_file_is_rebuilt(small_text):
    models = load_ngrams(str(small_text), 0.2)
    path = ngram._cache_path(str(small_text), 0.2, "2.npz")
    path.write_bytes(b"not an npz")
    again = load_ngrams(str(small_text), 0.2)
    assert np.array_equal(again[2].levels[1].counts, models[2].levels[1].counts)
