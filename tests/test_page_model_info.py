"""Model info page (AppTest): no runs, no checkpoint, and a trained run's figures."""

from core.store.checkpoint import load_model
from core.store.metrics import summarize
from core.store.rundir import RunDir
from core.units import format_duration

PAGE = "views/model_info.py"


def texts(at) -> str:
    return " ".join(str(e.value) for kind in ("info", "error", "caption") for e in at.get(kind))


def test_no_runs(open_app, runs_dir):
    at = open_app(PAGE, runs_dir)
    assert not at.exception
    assert "No runs" in texts(at)


def test_run_without_checkpoint_still_shows_the_architecture(open_app, runs_dir, tiny_config):
    RunDir.create(runs_dir, "fresh", tiny_config)
    at = open_app(PAGE, runs_dir)
    assert not at.exception
    assert "no checkpoint yet" in texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Total parameters"].replace(",", "").isdigit()
    assert metrics["Initial loss"] == "-"
    assert metrics["Training time"] == "-"
    assert not at.get("download_button")


def test_trained_run(open_app, trained_run):
    at = open_app(PAGE, trained_run.path.parent)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    n = load_model(trained_run.latest_checkpoint()).model.num_params()
    assert metrics["Total parameters"] == f"{n:,}"
    assert metrics["Steps"] == "12 / 12"
    assert metrics["Weights, fp32"].endswith("MiB") and metrics["Checkpoint file"].endswith("MiB")
    assert float(metrics["Final loss"]) < float(metrics["Initial loss"])
    assert metrics["Best val perplexity"] != "-"
    # One training time, summed over segments, formatted as on the Runs and Live pages.
    assert "Total time" not in metrics
    train_time = summarize(trained_run.metrics_path).train_time_s
    assert train_time > 0 and metrics["Training time"] == format_duration(train_time)
    assert len(at.get("download_button")) == 3
    arch = at.table[0].value
    assert arch.loc["layers", "value"] == "2"
    assert (
        at.table[1].value.loc["token embedding (wte, tied with lm_head)", "parameters"]
        == f"{50304 * 32:,}"
    )
    hp = next(t.value for t in at.table if "meaning" in t.value.columns)
    assert dict(zip(hp["setting"], hp["value"]))["max_lr"] == "0.003"
    # a static table: every meaning whole, none cut at the page's edge
    assert "transformer blocks" in set(hp["meaning"]) and not at.dataframe


def test_older_checkpoint_can_be_chosen(open_app, trained_run):
    at = open_app(PAGE, trained_run.path.parent)
    first = f"step {trained_run.checkpoints()[0][0]}"
    at.selectbox(key="mi_ckpt").set_value(first).run()
    assert not at.exception
    assert at.selectbox(key="mi_ckpt").value == first


def test_the_file_is_named_and_the_use_this_model_code_is_shown(open_app, trained_run):
    from core.store import export

    at = open_app(PAGE, trained_run.path.parent)
    step = trained_run.checkpoints()[-1][0]
    assert f"Weights from `checkpoints/{trained_run.latest_checkpoint().name}`" in texts(at)
    code = [c.value.strip() for c in at.code]
    assert export.hf_python_snippet(f"trained-step{step}").strip() in code
    assert export.hf_shell_snippet(f"trained-step{step}-hf.zip").strip() in code
    assert not [w for w in at.warning if "step-0" in w.value]


def test_a_step_0_snapshot_is_flagged_as_random_weights(open_app, runs_dir, tiny_config):
    from core.model.gpt import GPT, ModelConfig
    from core.store.checkpoint import save_snapshot

    cfg = tiny_config.replace(snapshot_interval=5)
    fresh = RunDir.create(runs_dir, "fresh", cfg)
    save_snapshot(fresh, GPT(ModelConfig.of(cfg)), cfg, 0)  # what a run writes before step 1
    at = open_app(PAGE, runs_dir)
    assert not at.exception
    assert f"`snapshots/{fresh.snapshot_path(0).name}`" in texts(at)
    assert any("step-0 snapshot" in w.value for w in at.warning)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Weights + AdamW state"] == "not in this file"
