"""core.store.export: safetensors and Hugging Face GPT-2 exports give back identical logits."""

import json

import pytest
import torch

from core.store import checkpoint, export
from core.store.checkpoint import load_model
from core.store.rundir import RunDir


@pytest.fixture(scope="module")
def loaded(trained_run):
    return load_model(trained_run.latest_checkpoint())


def test_safetensors_round_trip_gives_identical_logits(loaded, tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(export.safetensors_bytes(loaded.model, loaded.config, "float32", loaded.step))
    ckpt = checkpoint.load(path)
    model, cfg = ckpt.build_model(), ckpt.config
    assert cfg == loaded.config and ckpt.step == loaded.step
    ids = torch.randint(0, 50257, (2, 20))
    with torch.no_grad():
        assert torch.equal(model(ids)[0], loaded.model(ids)[0])
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied after loading


def test_tied_weight_is_stored_once_and_half_precision_halves_the_file(loaded):
    tensors = checkpoint.model_tensors(loaded.model)
    assert checkpoint.TIED not in tensors and "transformer.wte.weight" in tensors
    n = sum(t.numel() for t in tensors.values())
    assert n == loaded.model.num_params()
    full = export.safetensors_bytes(loaded.model, loaded.config, "float32")
    half = export.safetensors_bytes(loaded.model, loaded.config, "bfloat16")
    assert n * 4 < len(full) < n * 4 + 64_000
    assert n * 2 < len(half) < n * 2 + 64_000
    assert all(
        t.dtype == torch.float16 for t in checkpoint.model_tensors(loaded.model, "float16").values()
    )


def test_hf_layout_transposes_conv1d_weights(loaded, tmp_path):
    folder = export.write_hf(loaded.model, loaded.config, tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    assert config["vocab_size"] == 50304 and config["n_positions"] == loaded.config.block_size
    assert config["activation_function"] == "gelu_new"
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    ours = loaded.model.state_dict()
    name = "transformer.h.0.attn.c_attn.weight"
    assert torch.equal(tensors[name], ours[name].t())
    assert torch.equal(tensors["transformer.ln_f.weight"], ours["transformer.ln_f.weight"])


def test_transformers_loads_the_hf_export_with_the_same_logits(loaded, tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = export.write_hf(loaded.model, loaded.config, tmp_path / "hf")
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(folder)).eval()
    ids = torch.randint(0, 50257, (2, loaded.config.block_size))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, loaded.model(ids)[0], atol=1e-4, rtol=1e-4)


def test_cli_writes_both_formats(trained_run, tmp_path, capsys):
    assert (
        export.main(
            ["--run-dir", str(trained_run.path), "--format", "hf", "--out", str(tmp_path / "hf")]
        )
        == 0
    )
    assert (tmp_path / "hf" / "config.json").is_file()
    assert (
        export.main(
            [
                "--run-dir",
                str(trained_run.path),
                "--format",
                "safetensors",
                "--dtype",
                "bfloat16",
                "--out",
                str(tmp_path / "st"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "bfloat16" in out and "optimizer" in out
    assert f"from {trained_run.latest_checkpoint()} (step 12)" in out  # the file is named
    assert len(list((tmp_path / "st").glob("*.safetensors"))) == 1
    assert (tmp_path / "hf" / "vocab.json").is_file() and (tmp_path / "hf" / "merges.txt").is_file()


def test_cli_flags_an_export_of_step_0(trained_run, tmp_path, capsys):
    first = trained_run.snapshots()[0][1] if trained_run.snapshots() else None
    if first is None:  # the tiny run keeps no snapshots: write the untrained model's
        from core.model.gpt import GPT, ModelConfig
        from core.store.checkpoint import save_snapshot

        cfg = trained_run.read_config()
        first = save_snapshot(RunDir(tmp_path / "run0"), GPT(ModelConfig.of(cfg)), cfg, 0)
    args = ["--run-dir", str(trained_run.path), "--checkpoint", str(first), "--out", str(tmp_path)]
    assert export.main(args) == 0
    captured = capsys.readouterr()
    assert "(step 0)" in captured.out and "random weights" in captured.err


def test_cli_errors_are_one_line_exit_2(runs_dir, tiny_config, tmp_path, capsys):
    fresh = RunDir.create(runs_dir, "fresh", tiny_config)
    assert export.main(["--run-dir", str(fresh.path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint yet" in err and err.count("\n") == 1
    assert export.main(["--run-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_zip_holds_the_hf_folder(loaded):
    import io
    import zipfile

    z = zipfile.ZipFile(
        io.BytesIO(export.hf_zip_bytes(loaded.model, loaded.config, name="trained"))
    )
    assert sorted(z.namelist()) == [
        "trained/config.json",
        "trained/merges.txt",
        "trained/model.safetensors",
        "trained/special_tokens_map.json",
        "trained/tokenizer_config.json",
        "trained/vocab.json",
    ]


def test_the_exported_tokenizer_is_gpt2s_tiktoken_one(loaded, tmp_path, shakespeare_path):
    transformers = pytest.importorskip("transformers")
    from core.data.dataset import get_tokenizer

    folder = export.write_hf(loaded.model, loaded.config, tmp_path / "hf")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    text = shakespeare_path.read_text()[:5000] + " naïve 😀 <|endoftext|>\n\n  \t end"
    ids = get_tokenizer().encode(text, allowed_special="all")
    assert tokenizer(text).input_ids == ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token_id == 50256 and len(tokenizer) == 50257
    assert tokenizer.model_max_length == loaded.config.block_size


def _readme_block_after(marker: str) -> str:
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    after = readme.split(marker, 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_snippet_runs_against_a_real_zip_export(loaded, tmp_path):
    """The README's and Model info's "use this model" code, run as a user would: the zip the
    page downloads, unpacked, then the snippet in a fresh Python with transformers."""
    pytest.importorskip("transformers")
    import io
    import subprocess
    import sys
    import zipfile

    snippet = _readme_block_after("<!-- hf-snippet -->")
    assert snippet == export.hf_python_snippet("exported/gpt")  # the page shows this same code
    assert export.hf_shell_snippet("gpt-hf.zip").startswith("pip install transformers")
    data = export.hf_zip_bytes(loaded.model, loaded.config, name="gpt")
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path / "exported")
    done = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ROMEO:") and len(done.stdout) > len("ROMEO:") + 5
