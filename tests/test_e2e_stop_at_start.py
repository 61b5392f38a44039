"""End to end (issue 20, item 2): a newcomer presses Launch on the New run page, and on the Live
page that opens presses Stop at once, while the engine is still starting. The run must end
`stopped` (before this fix the stop was thrown away and the run trained to its last step). In
headless Chromium against `streamlit run` on 127.0.0.1; screenshots under artifacts/screenshots/.
"""

import time

import pytest
from conftest import screenshot
from e2e_helpers import (
    assert_no_exception,
    button,
    heading,
    kill_leftovers,
    read_status,
    wait_until,
    widget,
)
from test_e2e import fill_new_run, metric

from core.store.rundir import pid_alive

pytestmark = pytest.mark.browser
RUN = "e2e-stop-at-once"


@pytest.fixture
def app(streamlit_app, runs_dir, page):
    page.set_default_timeout(90_000)
    yield streamlit_app
    kill_leftovers(runs_dir)


def test_launch_then_stop_at_once_ends_stopped(app, runs_dir, page):
    page.goto(app)
    fill_new_run(page, RUN)
    button(page, "nr_launch").click()
    heading(page, "Live metrics").wait_for()
    widget(page, "live_runs").filter(has_text=RUN).wait_for()
    stop = button(page, f"live_stop_{RUN}")
    stop.wait_for()
    launched = read_status(runs_dir / RUN)
    pressed = time.time()
    stop.click()
    assert pressed - launched["created"] < 30  # still starting (the engine imports torch)
    wait_until(
        page,
        lambda: metric(page, "State") == "stopped",
        "state stopped on the Live page",
        timeout_s=180,
    )
    status = read_status(runs_dir / RUN)
    assert status["state"] == "stopped" and status["step"] < 5000, status
    wait_until(
        page,
        lambda: not any(pid_alive(status.get(k)) for k in ("pid", "launcher_pid")),
        "the run's processes to exit",
        timeout_s=30,
    )
    assert_no_exception(page)
    assert not button(page, f"live_stop_{RUN}").is_enabled()
    screenshot(page, "e2e-stop-at-once")
