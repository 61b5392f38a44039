"""core.store.pretrained: start from a Hugging Face GPT-2 folder or another run's weights."""

import json

import pytest
import torch
from conftest import make_tiny_config

from core.config import ConfigError
from core.model.gpt import GPT, ModelConfig
from core.runs.preflight import check_runnable
from core.store import checkpoint, export, pretrained
from core.store.metrics import read_all
from core.store.rundir import RunDir
from core.train.cli import main as train_main
from core.train.engine import train

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A randomly initialised GPT2LMHeadModel saved by transformers' own save_pretrained."""
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        n_positions=64,
        vocab_size=50257,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = transformers.GPT2LMHeadModel(cfg).eval()
    folder = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    model.save_pretrained(folder)
    return folder, model


def _ours(source: str) -> GPT:
    model = GPT(ModelConfig(**pretrained.source_shape(source)))
    pretrained.load_into(model, source)
    return model.eval()


def test_transformers_folder_gives_the_same_logits(hf_folder):
    folder, hf = hf_folder
    assert pretrained.source_shape(str(folder)) == dict(
        n_layer=2, n_head=2, n_embd=32, vocab_size=50257, block_size=64
    )
    ids = torch.randint(0, 50257, (2, 40))
    with torch.no_grad():
        ours = _ours(str(folder))(ids)[0]
        theirs = hf(ids).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_our_own_hf_export_round_trips(trained_run, tmp_path):
    ckpt = checkpoint.load(trained_run.latest_checkpoint(), training=False)
    model = ckpt.build_model()
    folder = export.write_hf(model, ckpt.config, tmp_path / "exported")
    ids = torch.randint(0, 50257, (1, 20))
    with torch.no_grad():
        assert torch.equal(_ours(str(folder))(ids)[0], model(ids)[0])
    # a run directory, a checkpoint and a snapshot work as sources too
    assert pretrained.source_shape(str(trained_run.path))["n_embd"] == 32
    with torch.no_grad():
        assert torch.equal(_ours(str(trained_run.latest_checkpoint()))(ids)[0], model(ids)[0])


def test_a_run_starts_from_the_source_weights(hf_folder, small_text, runs_dir):
    folder, hf = hf_folder
    shape = pretrained.source_shape(str(folder))
    cfg = make_tiny_config(
        small_text,
        **shape,
        seq_len=32,
        max_steps=1,
        max_lr=1e-12,
        min_lr=0.0,
        warmup_steps=0,
        grad_accum_steps=1,
        eval_interval=0,
        init_from=str(folder),
    )
    run = RunDir.create(runs_dir, "finetune", cfg)
    assert train(str(run.path)) == "completed"
    first = [r for r in read_all(run.metrics_path) if r["kind"] == "train"][0]
    from core.data import dataset
    from core.data.walker import BatchWalker

    x, y = BatchWalker(
        dataset.split(dataset.load_tokens(cfg.data), cfg.val_fraction)[0], 4, 32
    ).batch(0)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(hf(x).logits.flatten(0, 1), y.flatten()).item()
    assert first["loss"] == pytest.approx(expected, rel=1e-5)


def test_the_command_line_takes_the_shape_from_the_source(hf_folder, small_text, runs_dir, capsys):
    folder, _ = hf_folder
    args = [
        "--preset",
        "nano",
        "--init-from",
        str(folder),
        "--data",
        str(small_text),
        "--max-steps",
        "1",
        "--seq-len",
        "32",
        "--micro-batch-size",
        "2",
        "--eval-interval",
        "0",
        "--device",
        "cpu",
        "--runs-dir",
        str(runs_dir),
        "--name",
        "ft",
    ]
    assert train_main(args) == 0
    cfg = RunDir(runs_dir / "ft").read_config()
    assert (cfg.n_layer, cfg.n_embd, cfg.vocab_size, cfg.block_size) == (2, 32, 50257, 64)
    # an explicit shape that differs from the source is refused, naming the field
    assert train_main(args[:-1] + ["ft2", "--n-layer", "3"]) == 2
    assert "n_layer: 3 differs from init_from" in capsys.readouterr().err
    assert not (runs_dir / "ft2").exists()


def test_unknown_sources_are_refused_clearly(monkeypatch, tmp_path, small_text):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="Hugging Face hub did not give it"):
        pretrained.source_shape("no-such-model-here")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ConfigError, match="not a GPT-2 config"):
        check_runnable(make_tiny_config(small_text, init_from=str(broken)))
