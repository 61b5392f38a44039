"""End to end in a real browser: `streamlit run` on 127.0.0.1 driven by headless Chromium.

A user's paths through the app: launch a small run on tiny shakespeare and watch it learn, stop
it; kill its engine and resume it from the Runs page; generate from a trained model and look at
the next-token chart and the model's facts; launch a 2-process (torchrun, gloo) run. Each page is
saved as a screenshot under artifacts/screenshots/ (e2e-*.png) for a person to look at.
"""

import os
import shutil
import signal

import pytest
from conftest import make_tiny_config, screenshot
from e2e_helpers import (
    assert_no_exception,
    button,
    chart_data,
    chart_points,
    choose,
    click_button,
    dataframe_rows,
    exactly,
    heading,
    kill_leftovers,
    open_expander,
    open_page,
    read_status,
    runs_page_state,
    set_input,
    settle,
    wait_until,
    widget,
)

from core.store.rundir import pid_alive

pytestmark = pytest.mark.browser

# Small enough that a step takes well under a second on a 2-core CPU, with many steps so the
# run is still training when the test looks at it (the test stops it).
SMALL_RUN = {
    "nr_n_embd": 32,
    "nr_seq_len": 32,
    "nr_micro_batch_size": 4,
    "nr_max_steps": 5000,
    "nr_eval_interval": 10,
    "nr_checkpoint_interval": 5,
}
EXPANDERS = ("Schedule", "Logging", "Device")  # collapsed by default; the rest are open


@pytest.fixture
def app(streamlit_app, runs_dir, page):
    """The app's URL, with the page's default timeout raised for a busy machine; runs this test
    left running are killed afterwards (they are detached from the app by design)."""
    page.set_default_timeout(90_000)
    yield streamlit_app
    kill_leftovers(runs_dir)


def metric(page, label: str) -> str:
    card = (
        page.locator('[data-testid="stMetric"]')
        .filter(has=page.locator('[data-testid="stMetricLabel"]').filter(has_text=exactly(label)))
        .first
    )
    return card.locator('[data-testid="stMetricValue"]').inner_text().strip()


def table_row(page, name: str) -> dict:
    """The Runs table's row of a run (waiting for the grid to draw it)."""
    return wait_until(
        page,
        lambda: next((r for r in dataframe_rows(page) if r.get("name") == name), None),
        f"the table row of {name}",
        timeout_s=30,
    )


def fill_new_run(page, name: str, **extra) -> None:
    """On the New run page: the smallest preset, tiny shakespeare, small shapes, a name."""
    open_page(page, "New run")
    choose(page, "nr_preset", "nano")
    widget(page, "nr_data_source").get_by_text("tiny shakespeare", exact=True).click()
    settle(page)
    for label in EXPANDERS:
        open_expander(page, label)
    for key, value in {**SMALL_RUN, **extra}.items():
        set_input(page, key, value)
    set_input(page, "nr_run_name", name)
    page.get_by_text("GPT-2 tokens").wait_for()  # the data was read: 338,025 tokens
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, page.locator(
        '[data-testid="stAlertContentError"]'
    ).first.inner_text()
    assert button(page, "nr_launch").is_enabled()


def launch_and_watch(page, name: str) -> None:
    """Press Launch; the live page of the new run opens and its loss chart gains points."""
    click_button(page, "nr_launch")
    heading(page, "Live metrics").wait_for()
    widget(page, "live_runs").filter(has_text=name).wait_for()  # the new run is the one shown
    first = wait_until(
        page,
        lambda: max(chart_points(page, "live_chart_loss"), 0),
        "the first points on the loss chart",
        timeout_s=120,
    )
    page.wait_for_timeout(3000)
    wait_until(
        page,
        lambda: chart_points(page, "live_chart_loss") > first,
        "the loss chart to gain points while the run trains",
        timeout_s=120,
    )
    assert metric(page, "State") == "running"
    assert_no_exception(page)


def stop_from_runs_page(page, runs_dir, name: str, shot: str) -> None:
    """Select the run on the Runs page, press Stop, and see it reach `stopped`."""
    assert runs_page_state(page, name) == "running"
    screenshot(page, f"{shot}-runs-running")
    click_button(page, "runs_stop")
    wait_until(
        page,
        lambda: runs_page_state(page, name) == "stopped",
        "state stopped on the Runs page",
        timeout_s=120,
        every_ms=2000,
    )
    status = read_status(runs_dir / name)
    assert status["state"] == "stopped"
    wait_until(
        page,
        lambda: not any(pid_alive(status.get(k)) for k in ("pid", "launcher_pid")),
        "the run's processes to exit",
        timeout_s=30,
    )  # no rank left behind
    assert table_row(page, name)["state"] == "stopped"
    screenshot(page, f"{shot}-runs-stopped")


def test_launch_watch_the_loss_fall_and_stop(app, runs_dir, page):
    page.goto(app)
    settle(page)
    fill_new_run(page, "e2e-launch")
    screenshot(page, "e2e-1-new-run")
    launch_and_watch(page, "e2e-launch")
    page.locator('[data-testid="stPlotlyChart"] .main-svg').nth(4).wait_for()  # all five painted
    screenshot(page, "e2e-1-live-running")
    stop_from_runs_page(page, runs_dir, "e2e-launch", "e2e-1")

    open_page(page, "Live metrics")  # the ended run: final cards, no refresh
    assert metric(page, "State") == "stopped"
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    screenshot(page, "e2e-1-live-stopped")


def test_killed_engine_shows_crashed_and_resumes_from_the_runs_page(
    app, runs_dir, page, small_text
):
    from core.runs import launcher

    # Started from the test, as if by an app that was restarted since: the page has only the
    # run directory to go by.
    cfg = make_tiny_config(small_text, max_steps=5000, checkpoint_interval=3, eval_interval=0)
    run_id = launcher.launch(cfg, runs_dir, "e2e-crash")
    run_path = runs_dir / run_id
    wait_until(
        page,
        lambda: (
            read_status(run_path).get("state") == "running"
            and list((run_path / "checkpoints").glob("*.pt"))
        ),
        "a checkpoint",
        timeout_s=120,
    )
    pid = read_status(run_path)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(page, lambda: not pid_alive(pid), "the killed engine")  # reaped: our child

    page.goto(app)
    settle(page)
    wait_until(
        page,
        lambda: runs_page_state(page, run_id) == "crashed",
        "state crashed",
        timeout_s=60,
        every_ms=2000,
    )
    assert page.locator('[data-testid="stAlertContentError"]').count() == 1
    assert button(page, "runs_resume").is_enabled()
    screenshot(page, "e2e-2-runs-crashed")

    saved_at = max(int(p.stem.split("_")[-1]) for p in (run_path / "checkpoints").glob("*.pt"))
    click_button(page, "runs_resume")
    wait_until(
        page,
        lambda: runs_page_state(page, run_id) == "running",
        "the resumed run",
        timeout_s=120,
        every_ms=2000,
    )
    # It continues from the checkpoint: the step counter moves past it in a new process.
    status = wait_until(
        page,
        lambda: (s := read_status(run_path))["step"] > saved_at and s,
        "steps after the checkpoint",
        timeout_s=120,
    )
    assert status["pid"] != pid and status["state"] == "running"
    assert f"resumed from step {saved_at}" in (run_path / "log.txt").read_text()
    screenshot(page, "e2e-2-runs-resumed")
    stop_from_runs_page(page, runs_dir, run_id, "e2e-2")


def test_playground_generates_and_shows_the_next_token_chart(app, runs_dir, page, trained_run):
    from core.model.gpt import GPT, ModelConfig

    shutil.copytree(trained_run.path, runs_dir / "trained")
    page.goto(app)
    settle(page)
    open_page(page, "Playground")
    choose(page, "pg_run", "trained")
    prompt = widget(page, "pg_prompt").locator("textarea")
    prompt.fill("First Citizen:")
    prompt.press("Control+Enter")
    settle(page)
    click_button(page, "pg_generate")
    text = page.locator('[data-testid="stText"]').filter(has_text="First Citizen:").first
    wait_until(
        page,
        lambda: len(text.inner_text()) > len("First Citizen:") + 10,
        "generated text",
        timeout_s=60,
    )
    assert (
        "90 / 90 tokens" in page.locator('[data-testid="stProgress"]').inner_text()
        or "end-of-text" in page.locator('[data-testid="stProgress"]').inner_text()
    )
    assert_no_exception(page)
    screenshot(page, "e2e-3-playground-generate")

    page.get_by_role("tab", name="Next token").click()
    bars = wait_until(page, lambda: chart_data(page, "pg_nt_chart"), "the next-token chart")
    assert bars[0]["type"] == "bar" and bars[0]["n"] == 10  # "Tokens shown" defaults to 10
    rows = wait_until(page, lambda: dataframe_rows(page), "the next-token table")
    assert len(rows) == 10 and bars[0]["first"] == f"1. {rows[0]['token']}"  # same top token
    screenshot(page, "e2e-3-playground-next-token")

    open_page(page, "Model info")
    choose(page, "mi_run", "trained")
    model = GPT(ModelConfig.of(trained_run.read_config()))
    assert metric(page, "Total parameters") == f"{sum(p.numel() for p in model.parameters()):,}"
    assert_no_exception(page)
    screenshot(page, "e2e-3-model-info")


def test_two_process_run_launches_trains_and_stops(app, runs_dir, page):
    page.goto(app)
    settle(page)
    fill_new_run(page, "e2e-ddp", nr_nproc=2)
    screenshot(page, "e2e-4-new-run-2-processes")
    launch_and_watch(page, "e2e-ddp")
    screenshot(page, "e2e-4-live-2-processes")
    open_page(page, "Runs")
    # (the hyperparameter columns, world size among them, sit off screen to the right)
    assert table_row(page, "e2e-ddp")["state"] in ("running", "starting")
    assert read_status(runs_dir / "e2e-ddp")["world_size"] == 2
    stop_from_runs_page(page, runs_dir, "e2e-ddp", "e2e-4")
