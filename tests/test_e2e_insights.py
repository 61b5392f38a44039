"""End to end, in headless Chromium against `streamlit run` on 127.0.0.1: what the Live page
adds to a fresh run (reference baselines, the loss forecast, epoch markers, the noise scale). Screenshots go to $GPT_INSIGHT_SHOTS
(default /tmp/e2e-insight-shots) for a person to look at."""

import os
from pathlib import Path

import conftest
import pytest
from conftest import make_tiny_config
from e2e_helpers import (
    chart_points,
    kill_leftovers,
    open_page,
    settle,
    shot,
    wait_until,
    widget,
)

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("GPT_INSIGHT_SHOTS", "/tmp/e2e-insight-shots"))


@pytest.fixture
def app(streamlit_app, runs_dir, page, monkeypatch):
    monkeypatch.setattr(conftest, "SCREENSHOTS", SHOTS)
    page.set_default_timeout(90_000)
    yield streamlit_app
    kill_leftovers(runs_dir)


def watch(page, app: str, runs_dir, cfg, name: str) -> None:
    """Launch a fresh run as the app does and open it on the Live page."""
    from core.runs import launcher

    launcher.launch(cfg, runs_dir, name)
    page.goto(app)
    settle(page)
    open_page(page, "Live metrics")
    widget(page, "live_runs").filter(has_text=name).wait_for()


def loss_annotations(page) -> list[str]:
    return page.evaluate("""() => {
      const box = document.querySelector('.st-key-live_chart_loss .js-plotly-plot');
      return box && box._fullLayout ? box._fullLayout.annotations.map(a => a.text) : [];
    }""")


def test_baselines_are_labelled_on_a_fresh_run(app, runs_dir, page, shakespeare_path):
    cfg = make_tiny_config(shakespeare_path, max_steps=5000, eval_interval=5, target_loss=0.0)
    watch(page, app, runs_dir, cfg, "e2e-baselines")
    wait_until(
        page,
        lambda: (
            {"GPT-2 124M, no fine-tuning 4.03", "nanoGPT char-level 4.55"}
            <= set(loss_annotations(page))
            and any(a.startswith("bigram model") for a in loss_annotations(page))
        ),
        "the labelled baselines on the loss chart",
        timeout_s=180,
    )
    page.get_by_text("Kneser-Ney").first.wait_for()
    page.get_by_text("bits/char").first.wait_for(timeout=120_000)  # once a val point is in
    shot(page, "insights-1-baselines")


def loss_trace_names(page) -> list[str]:
    return page.evaluate("""() => {
      const box = document.querySelector('.st-key-live_chart_loss .js-plotly-plot');
      return box && box._fullData ? box._fullData.map(t => t.name || '') : [];
    }""")


def test_forecast_epochs_and_noise_scale_on_a_fresh_run(app, runs_dir, page, small_text):
    from core.runs import launcher

    cfg = make_tiny_config(small_text, max_steps=400, eval_interval=5, target_loss=0.0)
    watch(page, app, runs_dir, cfg, "e2e-forecast")
    wait_until(
        page,
        lambda: "train forecast" in loss_trace_names(page),
        "the forecast line on the loss chart",
        timeout_s=240,
    )
    page.get_by_text("Forecast at step 400: final train loss about").first.wait_for()
    page.get_by_text("Tissue et al. 2024").first.wait_for()
    page.get_by_text("epochs seen so far").first.wait_for()  # and the epochs, beside them
    assert any(a.endswith("16 epochs") for a in loss_annotations(page))
    # the batch size advisor: the run accumulates 2 micro batches, so it has a noise scale
    wait_until(page, lambda: chart_points(page, "live_chart_noise") > 0, "the noise scale chart")
    page.get_by_text("Critical batch about").first.wait_for()
    launcher.stop(runs_dir / "e2e-forecast")  # a still page for the screenshot
    page.get_by_text("Forecast at step 400").first.wait_for()
    wait_until(page, lambda: "train forecast" in loss_trace_names(page), "the forecast, stopped")
    shot(page, "insights-2-forecast-epochs")


def test_a_spike_from_a_batch_of_one_repeated_token_is_marked(app, runs_dir, page, tmp_path):
    """Tiny shakespeare with a stretch of one rare character repeated near the end of the
    training text: the batch that reaches it (first at about step 32) spikes."""
    text = (conftest.SHARED_DATA / "tinyshakespeare.txt").read_text()[:40_000]
    spiky = tmp_path / "spiky.txt"
    spiky.write_text(text[:32_000] + "Ж" * 600 + text[32_000:])
    cfg = make_tiny_config(spiky, max_steps=200, eval_interval=50, target_loss=0.0)
    watch(page, app, runs_dir, cfg, "e2e-spike")
    wait_until(
        page,
        lambda: any(n == "spikes" for n in loss_trace_names(page)),
        "a spike marked on the loss chart",
        timeout_s=300,
    )
    page.get_by_text("Spikes at steps").first.wait_for()
    widget(page, "live_spike_pick").wait_for()
    from core.runs import launcher

    launcher.stop(runs_dir / "e2e-spike")  # a still page for the screenshot
    wait_until(page, lambda: "spikes" in loss_trace_names(page), "the spikes, stopped")
    shot(page, "insights-3-spike")


def test_the_range_test_suggests_a_rate_and_leaves_no_run(app, runs_dir, page):
    """On the New run page, a small shape (1 layer, 32 wide, 2 x 32 tokens a step): run the
    range test, apply its suggestion to max_lr, and nothing is left in the runs directory."""
    from e2e_helpers import click_button, open_expander, set_input

    page.goto(app + "/new_run?preset=nano")
    settle(page)
    for key, value in (("n_layer", 1), ("n_head", 2), ("n_embd", 32), ("micro_batch_size", 2)):
        set_input(page, f"nr_{key}", value)
    set_input(page, "nr_seq_len", 32)
    page.get_by_text("Smith 2015").first.wait_for()
    click_button(page, "nr_lr_range_go")
    widget(page, "nr_lr_range_apply").wait_for(timeout=240_000)
    label = widget(page, "nr_lr_range_apply").inner_text().strip()
    suggested = label.split("=")[1].strip()
    click_button(page, "nr_lr_range_apply")
    open_expander(page, "Optimisation")
    assert widget(page, "nr_max_lr").locator("input").input_value() == suggested
    assert list(runs_dir.iterdir()) == []  # the throwaway run left nothing
    shot(page, "insights-4-lr-range")
