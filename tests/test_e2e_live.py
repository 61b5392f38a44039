"""End to end on the Live page, in headless Chromium against `streamlit run` on 127.0.0.1.

A tiny run started by the core launcher is watched on the Live page: curves, system chart and
sample timeline fill in; the log scale and x axis chosen stay through a reload (they are in the
URL); Stop on the Live page stops the run; Resume there continues it, and the resume point shows
on the loss chart; Open in Playground opens the run there. Full-page screenshots go to
$GPT_LIVE_SHOTS (default /tmp/e2e-live-shots) for a person to look at.
"""

import json
import os
import re
from pathlib import Path

import conftest
import pytest
from conftest import make_tiny_config, screenshot
from e2e_helpers import (
    assert_no_exception,
    button,
    chart_points,
    click_button,
    heading,
    kill_leftovers,
    open_page,
    read_status,
    set_input,
    settle,
    shot,
    wait_until,
    widget,
)

from core.store.rundir import pid_alive

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("GPT_LIVE_SHOTS", "/tmp/e2e-live-shots"))
RUN = "e2e-live"


@pytest.fixture
def app(streamlit_app, runs_dir, page, monkeypatch):
    """The app's URL; screenshots go to SHOTS; runs left running are killed afterwards."""
    monkeypatch.setattr(conftest, "SCREENSHOTS", SHOTS)
    page.set_default_timeout(90_000)
    yield streamlit_app
    kill_leftovers(runs_dir)


def metric(page, label: str) -> str:
    card = (
        page.locator('[data-testid="stMetric"]')
        .filter(has=page.locator('[data-testid="stMetricLabel"]').filter(has_text=label))
        .first
    )
    return card.locator('[data-testid="stMetricValue"]').inner_text().strip()


def loss_chart_annotations(page) -> list[str]:
    return page.evaluate("""() => {
      const box = document.querySelector('.st-key-live_chart_loss .js-plotly-plot');
      return box && box._fullLayout ? box._fullLayout.annotations.map(a => a.text) : [];
    }""")


def wait_stopped(page, run_path: Path) -> None:
    wait_until(
        page,
        lambda: metric(page, "State") == "stopped",
        "state stopped on the Live page",
        timeout_s=120,
        every_ms=1000,
    )
    status = read_status(run_path)
    assert status["state"] == "stopped"
    wait_until(
        page,
        lambda: not any(pid_alive(status.get(k)) for k in ("pid", "launcher_pid")),
        "the run's processes to exit",
        timeout_s=30,
    )


def test_watch_stop_resume_and_open_in_playground_from_the_live_page(
    app, runs_dir, page, small_text
):
    from core.runs import launcher

    cfg = make_tiny_config(
        small_text, max_steps=5000, eval_interval=5, checkpoint_interval=10, target_loss=0.0
    )
    launcher.launch(cfg, runs_dir, RUN)
    run_path = runs_dir / RUN
    page.goto(app)
    settle(page)
    open_page(page, "Live metrics")
    widget(page, "live_runs").filter(has_text=RUN).wait_for()
    wait_until(
        page,
        lambda: chart_points(page, "live_chart_loss") > 20,
        "steps on the loss chart",
        timeout_s=180,
    )
    wait_until(
        page, lambda: chart_points(page, "live_chart_system") > 1, "the system chart", timeout_s=60
    )
    assert metric(page, "State") == "running"
    # The sample timeline: each sample under its step and that step's val loss.
    page.locator('[data-testid="stMarkdownContainer"]').filter(
        has_text=re.compile(r"^step [\d,]+ · val loss \d")
    ).first.wait_for()
    shot(page, "live-1-running")

    # A view chosen here stays through a reload: it is in the URL.
    widget(page, "live_log").locator("label").click()
    settle(page)
    widget(page, "live_x").get_by_text("tokens seen", exact=True).click()
    settle(page)
    wait_until(
        page,
        lambda: "log=1" in page.url and "x=tokens" in page.url,
        "the view in the URL",
        timeout_s=10,
    )
    page.reload()
    settle(page)
    heading(page, "Live metrics").wait_for()
    assert widget(page, "live_log").locator("input").is_checked()
    wait_until(page, lambda: chart_points(page, "live_chart_loss") > 0, "the chart after reload")
    assert (
        page.evaluate("""() => document.querySelector('.st-key-live_chart_loss .js-plotly-plot')
                              ._fullLayout.yaxis.type""")
        == "log"
    )
    shot(page, "live-2-log-tokens-after-reload")

    # Stop where the user watches.
    click_button(page, f"live_stop_{RUN}")
    wait_stopped(page, run_path)
    assert_no_exception(page)
    assert button(page, f"live_resume_{RUN}").is_enabled()
    assert not button(page, f"live_stop_{RUN}").is_enabled()
    shot(page, "live-3-stopped")
    page.get_by_role("tab", name="Batch behind a step").click()
    page.wait_for_timeout(500)
    if widget(page, f"live_batch_{RUN}").count():  # with core.inspect.batch: step 5's windows
        set_input(page, f"live_batch_{RUN}", 5)
        page.get_by_text("Losses under the checkpoint of step").wait_for()
    else:
        page.get_by_text("needs core.inspect.batch").wait_for()
    screenshot(page, "live-3b-batch-tab")
    page.get_by_role("tab", name="Sample timeline").click()

    # Resume there too: it trains on, and the resume point is marked on the loss chart.
    stopped_at = read_status(run_path)["step"]
    click_button(page, f"live_resume_{RUN}")
    wait_until(
        page,
        lambda: (
            read_status(run_path).get("step", 0) > stopped_at + 5
            and metric(page, "State") == "running"
        ),
        "steps after the resume",
        timeout_s=180,
    )
    wait_until(
        page,
        lambda: any(t.startswith("resumed at") for t in loss_chart_annotations(page)),
        "the resume mark on the loss chart",
        timeout_s=30,
    )
    shot(page, "live-4-resumed")
    click_button(page, f"live_stop_{RUN}")
    wait_stopped(page, run_path)

    click_button(page, f"live_play_{RUN}")
    heading(page, "Playground").wait_for()
    assert widget(page, "pg_run").get_by_role("combobox").input_value() == RUN
    assert_no_exception(page)
    screenshot(page, "live-5-playground")


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _finished_run(runs_dir: Path, name: str, cfg, shift: float, resumed_at: int) -> None:
    """A run that was stopped and resumed, whose val loss is best at step 70 and rises after
    it while its samples copy more and more of the training text."""
    from core.store.rundir import RunDir

    run = RunDir.create(runs_dir, name, cfg)
    run.write_status(state="stopped", step=120, max_steps=200, reason="stop requested")
    t0 = 1_700_000_000.0
    records = [dict(kind="start", step=0, time=t0, resumed=False, world_size=1, max_steps=200)]
    for s in range(1, 121):
        if s == resumed_at + 1:
            records.append(
                dict(
                    kind="start",
                    step=resumed_at,
                    time=t0 + 9000,
                    resumed=True,
                    world_size=1,
                    max_steps=200,
                )
            )
        wobble = ((s * 7) % 5) / 5
        records.append(
            dict(
                kind="train",
                step=s,
                time=t0 + s + (9000 if s > resumed_at else 0),
                loss=shift + 9.0 * 0.97**s + 0.05 * wobble,
                lr=1e-3 * min(1.0, s / 10) * (1 - s / 400),
                grad_norm=0.6 + wobble,
                dt_ms=380.0 + 40 * wobble,
                tokens_per_sec=600.0 + 80 * wobble,
                tokens_seen=s * 256,
                train_time_s=0.4 * s,
            )
        )
        records.append(
            dict(
                kind="system",
                step=s,
                time=t0 + s,
                cpu_percent=90.0 + s % 7,
                rss_mb=700.0 + s,
                gpu_mem_mb=1500.0 + 3 * s,
                gpu_util=60.0 + s % 20,
            )
        )
        if s % 10 == 0:
            val = shift + 2.2 + 0.0004 * (s - 70) ** 2 + (0.002 * (s - 70) if s > 70 else 0)
            records.append(
                dict(
                    kind="eval",
                    step=s,
                    time=t0 + s,
                    val_loss=val,
                    copy_rate=min(0.9, (s / 120) ** 3),
                    longest_copy=s // 4,
                    copy_min_len=8,
                )
            )
            records.append(
                dict(
                    kind="sample",
                    step=s,
                    time=t0 + s,
                    prompt="ROMEO:",
                    text=f"\nWhat *light* through <b>yonder</b> window\n  breaks? {s}",
                )
            )
    _write(run.metrics_path, records)


def test_an_overfitting_run_reads_at_a_glance(app, runs_dir, page, small_text):
    cfg = make_tiny_config(small_text, max_steps=200, target_loss=2.0, early_stop_patience=3)
    _finished_run(runs_dir, "shakespeare-2L", cfg, 0.0, resumed_at=60)
    _finished_run(runs_dir, "shakespeare-4L", cfg, 0.3, resumed_at=80)
    page.goto(f"{app}/live?runs=shakespeare-2L")
    settle(page)
    heading(page, "Live metrics").wait_for()
    page.get_by_text("Overfitting since step 70").wait_for()
    assert metric(page, "Training time") == "48s"  # 120 steps of 0.4 s, not the 2.5 h pause
    assert "resumed at 60" in loss_chart_annotations(page)
    shot(page, "live-6-overfitting")
    page.goto(f"{app}/live?runs=shakespeare-2L,shakespeare-4L&log=1")
    settle(page)
    heading(page, "Live metrics").wait_for()
    wait_until(
        page,
        lambda: page.evaluate("""() => {
      const box = document.querySelector('.st-key-live_chart_loss .js-plotly-plot');
      return box && box._fullData && box._fullData.length > 6;
    }"""),
        "both runs on the loss chart",
    )
    shot(page, "live-7-two-runs-log")
