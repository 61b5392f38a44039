"""End to end in Chromium: the Runs and New run pages keep their view in the URL (a reload or a
shared link shows the same view), the selected run and the comparison follow a running run
without a reload, and no request leaves 127.0.0.1. Screenshots: artifacts/screenshots/e2e-runs-*.
"""

import json
import re
import socket
import subprocess
import time

import pytest
from conftest import make_tiny_config, screenshot, wait_for_app
from e2e_helpers import (
    assert_no_exception,
    button,
    chart_points,
    choose,
    heading,
    open_expander,
    open_page,
    set_input,
    wait_until,
    widget,
)
from playwright.sync_api import expect

from core.store import metrics
from core.store.rundir import RunDir

pytestmark = pytest.mark.browser
LOCAL = re.compile(r"^(https?://(127\.0\.0\.1|localhost)[:/]|data:|blob:|about:)")


def train_records(run: RunDir, steps: range, loss0: float = 6.0) -> None:
    log = metrics.MetricsLog(run.metrics_path)
    for step in steps:
        log.write(
            "train",
            step,
            time.time(),
            loss=loss0 / step**0.3,
            dt_ms=40.0,
            tokens_per_sec=3200.0,
            tokens_seen=step * 128,
            train_time_s=step * 0.04,
        )
        if step % 10 == 0:
            log.write("eval", step, time.time(), val_loss=loss0 / step**0.3 + 0.2)
    log.close()


@pytest.fixture
def runs(runs_dir, small_text):
    """Two finished runs and one 'running' whose process is a sleep this test owns."""
    cfg = make_tiny_config(small_text, max_steps=200)
    done = RunDir.create(runs_dir, "done", cfg)
    train_records(done, range(1, 101))
    done.write_status(state="completed", step=100, ended=time.time())
    other = RunDir.create(runs_dir, "other", cfg.replace(max_lr=1e-2))
    train_records(other, range(1, 61), loss0=7.0)
    other.write_status(state="stopped", step=60, ended=time.time())
    sleeper = subprocess.Popen(["sleep", "600"])
    live = RunDir.create(runs_dir, "live", cfg)
    train_records(live, range(1, 21))
    live.write_status(
        state="running", pid=sleeper.pid, host=socket.gethostname(), step=20, max_steps=200
    )
    yield {"done": done, "other": other, "live": live}
    sleeper.kill()
    sleeper.wait()


@pytest.fixture
def outside(page) -> list[str]:
    """Every URL the page requests that is not on this machine (the tests expect none)."""
    page.set_default_timeout(90_000)
    urls = []
    page.on("request", lambda r: None if LOCAL.match(r.url) else urls.append(r.url))
    return urls


def selected(page) -> str:
    return widget(page, "runs_selected").get_by_role("combobox").input_value()


def compared(page) -> list[str]:
    chips = widget(page, "runs_compare").locator(".react-aria-ComboBox [data-tag]")
    return [chips.nth(i).get_attribute("aria-label") for i in range(chips.count())]


def state_line(page) -> str:
    return (
        page.locator('[data-testid="stMarkdownContainer"] p')
        .filter(has_text="State:")
        .first.inner_text()
    )


def query(page) -> dict:
    return json.loads(page.evaluate("JSON.stringify([...new URLSearchParams(location.search)])"))


def test_a_reload_or_a_link_shows_the_same_view(streamlit_app, page, runs, outside):
    app = streamlit_app
    page.goto(f"{app}/?run=done&compare=done&compare=other&log=1")
    wait_for_app(page)
    assert selected(page) == "done" and compared(page) == ["done", "other"]
    assert widget(page, "runs_cmp_log").locator("input").is_checked()
    wait_until(page, lambda: chart_points(page, "runs_compare_chart") > 0, "the compare chart")
    assert_no_exception(page)
    screenshot(page, "e2e-runs-1-from-link")

    choose(page, "runs_selected", "other")
    assert ["run", "other"] in query(page)
    page.reload()
    wait_for_app(page)
    assert selected(page) == "other" and compared(page) == ["done", "other"]
    assert widget(page, "runs_cmp_log").locator("input").is_checked()

    open_page(page, "New run")  # and back: the selection and the comparison are kept
    open_page(page, "Runs")
    assert selected(page) == "other" and compared(page) == ["done", "other"]

    page.goto(f"{app}/new_run?preset=mini")  # a shared New run link (not the CPU default)
    wait_for_app(page)
    heading(page, "New run").wait_for()
    assert widget(page, "nr_preset").get_by_role("combobox").input_value() == "mini"
    # The form fills in as the page settles: wait for the value rather than read it once.
    expect(widget(page, "nr_n_layer").locator("input")).to_have_value("4")
    assert ["preset", "mini"] in query(page)
    open_expander(page, "How these are estimated")
    assert page.get_by_text("6,438,912", exact=True).is_visible()  # wte (50,304 x 128), not cut off
    screenshot(page, "e2e-runs-2-new-run-from-link")
    set_input(page, "nr_n_embd", 66)  # does not divide by n_head: a message under the field
    row = [widget(page, k).bounding_box()["y"] for k in ("nr_n_layer", "nr_n_head", "nr_n_embd")]
    below = [widget(page, k).bounding_box()["y"] for k in ("nr_block_size", "nr_vocab_size")]
    assert max(row) - min(row) < 2 and below[0] == pytest.approx(below[1], abs=2)
    screenshot(page, "e2e-runs-2b-new-run-field-error")
    assert outside == [], f"requests left 127.0.0.1: {outside}"


def test_the_selected_run_and_the_comparison_follow_a_running_run(
    streamlit_app, page, runs, outside
):
    page.goto(f"{streamlit_app}/?run=live&compare=live&compare=done")
    wait_for_app(page)
    assert "running" in state_line(page)
    assert button(page, "runs_stop").is_enabled() and not button(page, "runs_delete").is_enabled()
    first = wait_until(
        page, lambda: max(chart_points(page, "runs_compare_chart"), 0), "the compare chart"
    )
    train_records(runs["live"], range(21, 61))  # the run trains on: the chart follows
    wait_until(
        page,
        lambda: chart_points(page, "runs_compare_chart") > first,
        "the compare chart to gain the new steps",
        timeout_s=30,
    )
    screenshot(page, "e2e-runs-3-following")

    # The run ends while nobody touches the page: its line and buttons follow, no reload.
    runs["live"].write_status(state="stopped", ended=time.time(), step=60)
    wait_until(
        page, lambda: "stopped" in state_line(page), "the state line to say stopped", timeout_s=30
    )
    assert "step 60" in state_line(page)
    wait_until(
        page, lambda: button(page, "runs_delete").is_enabled(), "Delete to be enabled", timeout_s=10
    )
    assert not button(page, "runs_stop").is_enabled()
    assert_no_exception(page)
    screenshot(page, "e2e-runs-4-stopped")
    assert outside == [], f"requests left 127.0.0.1: {outside}"
