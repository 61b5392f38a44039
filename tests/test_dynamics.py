"""core.dynamics: the per-eval probes with known answers (prefix matching, exact memorization,
extraction, the ICL score), their stored series (core.store.token_curves, the dynamics and
extraction records) and the engine's hook (it measures without changing training)."""

import json

import numpy as np
import pytest
import torch

from core.dynamics import induction, probes
from core.dynamics import memorization_metrics as mm
from core.dynamics.eval_probes import EvalProbes
from core.model.gpt import GPT, ModelConfig
from core.store import metrics, token_curves


class CopyModel(torch.nn.Module):
    """A model that has memorized one text of distinct tokens: after token t it always predicts
    the token that followed t there (logits, cache and config like GPT's)."""

    def __init__(self, text: np.ndarray, vocab: int = 50304, block_size: int = 64):
        super().__init__()
        self.config = ModelConfig(n_layer=1, n_head=1, n_embd=4, block_size=block_size)
        self.next_of = torch.zeros(vocab, dtype=torch.long)
        self.next_of[torch.as_tensor(text[:-1])] = torch.as_tensor(text[1:])
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.vocab = vocab

    def forward(self, idx, targets=None, cache=None):
        return 30.0 * torch.nn.functional.one_hot(self.next_of[idx], self.vocab).float(), None


def distinct_text(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(50000)[:n].astype(np.int64)


# --- induction ----------------------------------------------------------------------------------
def causal_uniform(T: int) -> np.ndarray:
    return np.tril(np.ones((T, T), np.float32)) / np.arange(1, T + 1, dtype=np.float32)[:, None]


def test_prefix_matching_known_patterns():
    n = 20
    T = 2 * n + 1
    perfect = np.zeros((T, T), np.float32)
    for q in range(T):
        perfect[q, q - n + 1 if q >= n + 1 else q] = 1  # second copy: the token after the first
    assert induction.induction_scores_from(perfect, n) == pytest.approx(1.0)
    uniform = induction.induction_scores_from(causal_uniform(T), n)
    # query 1 + n + j spreads 1 / (2 + n + j) on each key: about 1/T
    assert uniform == pytest.approx(np.mean([1 / (2 + n + j) for j in range(n)]))
    assert 1 / T < uniform < 1.6 / T


def test_measure_on_a_random_model():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=3, n_embd=24, block_size=32)).eval()
    result = induction.measure(model)
    assert result.scores.shape == (2, 3)
    # untrained: attention is near uniform, so every head scores about 1/T and nothing copies
    T = 2 * induction.repeat_length(32) + 1
    assert np.all(result.scores < 3 / T)
    assert abs(result.repeat_icl) < 0.1
    assert result.best()[2] == pytest.approx(result.scores.max())


def test_first_crossing():
    assert induction.first_crossing([10, 20, 30], [0.1, 0.45, 0.2]) == 20
    assert induction.first_crossing([10, 20], [0.1, 0.2]) is None


def test_context_too_short():
    with pytest.raises(ValueError, match="at least 5 positions"):
        induction.repeat_length(4)


# --- probes and memorization ----------------------------------------------------------------
def test_exact_memorization_of_a_copying_model_is_one():
    text = distinct_text(300)
    model = CopyModel(text)
    seen = probes.token_pass(model, text, window=64)
    assert mm.exact_memorization(seen.correct) == 1.0
    assert seen.losses.shape == (299,) and seen.losses.max() < 1e-3
    assert list(seen.positions[:3]) == [0, 1, 2] and seen.positions[64] == 0
    other = probes.token_pass(model, distinct_text(300, seed=1), window=64)
    assert mm.exact_memorization(other.correct) < 0.05


def test_extraction_of_a_copying_model():
    text = distinct_text(2000)
    found = mm.extract(CopyModel(text, block_size=64), text, k=50)
    assert (found.prefix_len, found.suffix_len, found.k) == (32, 32, 50)
    assert found.share == 1.0 and len(found.record()["offsets"]) == 50
    blank = mm.extract(CopyModel(distinct_text(2000, seed=3), block_size=64), text, k=50)
    assert blank.share == 0.0 and blank.record()["offsets"] == []


def test_extraction_lengths_and_offsets():
    assert mm.extraction_lengths(1024) == (32, 32)
    assert mm.extraction_lengths(32) == (16, 16)
    offsets = mm.extraction_offsets(1000, 50, 64)
    assert len(offsets) == 50 and offsets[0] == 0 and offsets[-1] == 1000 - 64
    assert len(mm.extraction_offsets(10, 50, 64)) == 0


def test_context_icl():
    window = 100
    positions = np.tile(np.arange(window), 3)
    losses = np.where(positions >= 90, 1.0, 3.0).astype(np.float32)
    assert probes.context_icl(losses, positions, window) == pytest.approx(-2.0)
    assert probes.context_icl(losses[:5], positions[:5], 5) is None


def test_text_probe():
    tokens = np.arange(5000)
    assert list(probes.text_probe(tokens)[[0, -1]]) == [0, 1024]
    assert len(probes.text_probe(tokens[:100])) == 100
    with pytest.raises(ValueError, match="at least 2 tokens"):
        probes.text_probe(tokens[:1])


# --- stored series ----------------------------------------------------------------------------
def test_token_curves_round_trip_torn_tail_and_resume(tmp_path):
    path = tmp_path / "token_curves.bin"
    ids = np.arange(11)
    assert token_curves.read(path) is None
    for step in (10, 20, 30):
        token_curves.append(path, ids, step, np.full(10, step / 10))
    curves = token_curves.read(path)
    assert list(curves.steps) == [10, 20, 30] and list(curves.ids) == list(range(11))
    assert curves.losses.dtype == np.float16 and curves.losses[2, 0] == 3.0
    with open(path, "ab") as f:
        f.write(b"\x01\x02\x03")  # a record torn by a crash
    assert len(token_curves.read(path)) == 3
    token_curves.truncate_after(path, 20)
    assert list(token_curves.read(path).steps) == [10, 20]
    token_curves.append(path, np.arange(1, 12), 40, np.zeros(10))  # another probe: starts over
    assert list(token_curves.read(path).steps) == [40]
    path.write_bytes(b"not ours")
    assert token_curves.read(path) is None
    with pytest.raises(ValueError, match="scored tokens"):
        token_curves.append(path, ids, 1, np.zeros(3))


def test_dynamics_records_are_checked():
    good = {"kind": "dynamics", "step": 5, "head_scores": [0.1, 2], "val_exact": 0.5}
    assert metrics.clean(good)["head_scores"] == [0.1, 2]
    bad = metrics.clean({**good, "head_scores": [0.1, "x", True]})
    assert "head_scores" not in bad and bad["val_exact"] == 0.5
    assert "offsets" not in metrics.clean({"kind": "extraction", "step": 1, "offsets": 3})


# --- the engine's hook --------------------------------------------------------------------------
def test_eval_probes_switch_and_schedule(tiny_config, tmp_path):
    train, val = distinct_text(500), distinct_text(300, seed=1)
    off = tiny_config.replace(dynamics_every=0)
    assert EvalProbes.open(off, tmp_path / "c.bin", train, val) is None
    p = EvalProbes.open(tiny_config.replace(dynamics_every=2), tmp_path / "c.bin", train, val)
    assert [s for s in (5, 10, 15, 20) if p.due(s, final=False)] == [10, 20]
    assert p.due(12, final=True)


@pytest.fixture(scope="module")
def probed_runs(tmp_path_factory, shakespeare_path):
    """The same tiny run trained with the probes on and off."""
    from conftest import make_tiny_config

    from core.store.rundir import RunDir
    from core.train.engine import train

    text = tmp_path_factory.mktemp("data") / "small.txt"
    text.write_text(shakespeare_path.read_text()[:10_000])
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, every in (("on", 1), ("off", 0)):
        cfg = make_tiny_config(text, max_steps=6, eval_interval=3, dynamics_every=every)
        runs[name] = RunDir.create(root, name, cfg)
        assert train(str(runs[name].path)) == "completed"
    return runs


def test_engine_records_dynamics_without_changing_training(probed_runs):
    on, off = (metrics.read_all(probed_runs[k].metrics_path) for k in ("on", "off"))
    losses = [[r["loss"] for r in recs if r["kind"] == "train"] for recs in (on, off)]
    assert losses[0] == losses[1]  # the probes never touch the training RNG or weights
    dyn = [r for r in on if r["kind"] == "dynamics"]
    assert [r["step"] for r in dyn] == [3, 6]
    assert len(dyn[0]["head_scores"]) == dyn[0]["n_layer"] * dyn[0]["n_head"] == 4
    assert 0 <= dyn[-1]["val_exact"] <= 1 and dyn[-1]["probe_s"] > 0
    assert dyn[-1]["trigram_loss"] < dyn[-1]["unigram_loss"] and dyn[-1]["bigram_kl"] > 0
    (extraction,) = [r for r in on if r["kind"] == "extraction"]
    assert extraction["k"] >= 50 and extraction["prefix_len"] == 16
    curves = token_curves.read(probed_runs["on"].token_curves_path)
    assert list(curves.steps) == [3, 6] and curves.losses.shape[1] == len(curves.ids) - 1
    assert curves.losses[-1].mean() == pytest.approx(dyn[-1]["probe_loss"], rel=1e-2)
    assert not any(r["kind"] in ("dynamics", "extraction") for r in off)
    assert token_curves.read(probed_runs["off"].token_curves_path) is None


def test_inspect_scores_match_the_recorded_ones(probed_runs):
    from core.inspect.attention import head_scores
    from core.store.checkpoint import load_model

    run = probed_runs["on"]
    model = load_model(run.checkpoint_path(6)).model
    recorded = [r for r in metrics.read_all(run.metrics_path) if r["kind"] == "dynamics"][-1]
    scores = [s.induction for s in head_scores(model)]
    np.testing.assert_allclose(scores, recorded["head_scores"], atol=1e-4)
    json.dumps(recorded)  # plain JSON


# --- per-token curves, analysed ------------------------------------------------------------------
def test_token_stages_known_curves():
    from core.dynamics.token_curves import thin_evals, token_stages

    steps = np.array([0, 10, 20, 30, 40])
    losses = np.array(
        [
            [8.0, 8.0, 8.0, 5.0],
            [2.0, 8.0, 3.0, 5.0],  # token 0 halves its fall by step 10
            [2.0, 7.0, 2.0, 5.0],
            [2.0, 2.0, 4.0, 5.0],  # token 1 by step 30; token 2 rises 2 nats from its low
            [2.0, 2.0, 4.0, 5.0],  # token 3 never moves: not learned
        ]
    )
    s = token_stages(steps, losses)
    assert list(s.learned_at[:3]) == [10, 30, 10] and np.isnan(s.learned_at[3])
    assert s.early(2) == [0, 2] and s.late(1) == [1]
    assert s.forgotten() == [2] and s.rise[2] == pytest.approx(2.0)
    assert list(thin_evals(5, 10)) == [0, 1, 2, 3, 4]
    thinned = thin_evals(1000, 200)
    assert len(thinned) <= 200 and thinned[0] == 0 and thinned[-1] == 999


# --- beyond n-grams ------------------------------------------------------------------------------
def test_ngram_probe_losses_and_the_bigram_kl():
    from core.data.ngram import NgramModel, V
    from core.dynamics import ngram_stages

    text = np.tile(distinct_text(40), 20)
    models = {k: NgramModel.fit(text, k) for k in (1, 2, 3)}
    ids = text[:101]
    losses = ngram_stages.probe_losses(models, ids)
    assert losses["bigram_loss"] == pytest.approx(-models[2].log_probs(ids).mean())
    assert losses["bigram_loss"] < losses["unigram_loss"]
    meter = ngram_stages.BigramKL(models[2], ids, n=64)
    assert meter.n == 64
    # a network whose next-token distribution is the bigram model's: KL 0
    same = torch.stack([meter.log_q[r] for r in meter.row])
    padded = torch.cat([same, torch.full((64, 47), -1e9)], dim=1)  # the model's vocabulary
    meter.hook(padded[:40], torch.zeros(40), torch.zeros(40))
    meter.hook(padded[40:], torch.zeros(40), torch.zeros(40))
    assert meter.result() == pytest.approx(0.0, abs=1e-4)
    uniform = torch.full((64, V), -np.log(V))
    meter.hook(uniform, torch.zeros(64), torch.zeros(64))
    assert meter.result() > 1.0
    assert ngram_stages.first_below([10, 20, 30], [5.0, 4.0, 3.0], 4.5) == 20
    assert ngram_stages.first_below([10], [5.0], 4.5) is None
