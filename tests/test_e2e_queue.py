"""End to end in Chromium: the run queue. Launch a run from the New run page, queue a second with
"Launch after the current run ends", see it wait in the Runs page's Queue panel, stop the first,
and see the second start and finish on its own. Screenshots: artifacts/screenshots/e2e-queue-*.
"""

import pytest
from conftest import screenshot
from e2e_helpers import (
    assert_no_exception,
    button,
    chart_points,
    choose,
    click_button,
    dataframe_rows,
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

from core.store.rundir import RunDir

pytestmark = pytest.mark.browser

# A tiny model (a step well under a second on a busy 2-core CPU); the first run has steps to
# spare, so it still trains while the second is queued (the test stops it).
SMALL_RUN = {
    "nr_n_embd": 32,
    "nr_seq_len": 32,
    "nr_micro_batch_size": 4,
    "nr_max_steps": 5000,
    "nr_eval_interval": 10,
    "nr_checkpoint_interval": 5,
}


@pytest.fixture
def app(streamlit_app, runs_dir, page):
    page.set_default_timeout(90_000)
    yield streamlit_app
    kill_leftovers(runs_dir)


def fill_form(page, name: str, **values) -> None:
    """The New run form: nano, tiny shakespeare, the small shapes, a name."""
    open_page(page, "New run")
    choose(page, "nr_preset", "nano")
    widget(page, "nr_data_source").get_by_text("tiny shakespeare", exact=True).click()
    settle(page)
    for label in ("Schedule", "Logging"):
        open_expander(page, label)
    for key, value in {**SMALL_RUN, **values}.items():
        set_input(page, key, value)
    set_input(page, "nr_run_name", name)
    page.get_by_text("GPT-2 tokens").wait_for()
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, page.locator(
        '[data-testid="stAlertContentError"]'
    ).first.inner_text()


def table_state(page, name: str) -> str | None:
    row = next((r for r in dataframe_rows(page) if r.get("name") == name), None)
    return row and row.get("state")


def queue_lines(page) -> list[str]:
    """The run ids listed in the Queue panel, in order."""
    return [
        c.inner_text()
        for c in page.locator('[data-testid="stMarkdownContainer"] p code')
        .filter(has_text="q-")
        .all()
    ]


def test_a_queued_run_starts_after_the_current_one_ends(app, runs_dir, page):
    page.goto(app)
    settle(page)
    fill_form(page, "q-first")
    assert button(page, "nr_launch").inner_text().strip() == "Launch"  # nothing trains yet
    assert widget(page, "nr_enqueue").count() == 0
    click_button(page, "nr_launch")
    heading(page, "Live metrics").wait_for()
    wait_until(
        page,
        lambda: read_status(runs_dir / "q-first").get("state") == "running",
        "the first run to train",
        timeout_s=120,
    )
    wait_until(
        page, lambda: chart_points(page, "live_chart_loss") > 0, "loss points", timeout_s=120
    )

    # Back on New run the form is as it was left (a fresh name): queue a short second run.
    open_page(page, "New run")
    assert button(page, "nr_launch").inner_text().strip() == "Launch now"
    open_expander(page, "Schedule")
    set_input(page, "nr_max_steps", 20)
    set_input(page, "nr_run_name", "q-second")
    page.get_by_text("Tokens in the data").wait_for()  # the data X-ray is drawn
    screenshot(page, "e2e-queue-1-new-run-launch-after")
    click_button(page, "nr_enqueue")
    success = page.locator('[data-testid="stAlertContentSuccess"]')
    success.wait_for()
    assert "Queued q-second: number 1 of 1 in the queue" in success.inner_text()
    assert read_status(runs_dir / "q-second")["state"] == "waiting"
    assert_no_exception(page)
    screenshot(page, "e2e-queue-2-new-run-queued")

    # The Runs page: the second waits in the Queue panel while the first trains.
    open_page(page, "Runs")
    page.get_by_role("heading", name="Queue").wait_for()
    wait_until(
        page, lambda: queue_lines(page) == ["q-second"], "q-second in the Queue panel", timeout_s=30
    )
    wait_until(
        page, lambda: table_state(page, "q-second") == "waiting", "the waiting row", timeout_s=30
    )
    assert page.get_by_text("Stopping the current run lets the next one start").count() == 1
    assert runs_page_state(page, "q-first") == "running"
    screenshot(page, "e2e-queue-3-runs-waiting")

    # Stop the first: its engine starts the next run as it ends; the page follows without a
    # reload (the queue panel refreshes while a run trains).
    click_button(page, "runs_stop")
    wait_until(
        page,
        lambda: read_status(runs_dir / "q-first").get("state") == "stopped",
        "the first run to stop",
        timeout_s=180,
        every_ms=2000,
    )
    second = wait_until(
        page,
        lambda: (s := read_status(runs_dir / "q-second")).get("started") and s,
        "the second run to start",
        timeout_s=120,
    )
    assert second["started"] >= read_status(runs_dir / "q-first")["ended"] - 1.0
    wait_until(page, lambda: not queue_lines(page), "the Queue panel to empty", timeout_s=60)
    wait_until(
        page,
        lambda: table_state(page, "q-second") in ("running", "completed"),
        "the second run's row to leave 'waiting'",
        timeout_s=60,
    )
    page.get_by_text("No runs are waiting").wait_for()
    assert_no_exception(page)
    screenshot(page, "e2e-queue-4-runs-second-started")
    wait_until(
        page,
        lambda: read_status(runs_dir / "q-second").get("state") == "completed",
        "the second run to complete",
        timeout_s=180,
        every_ms=2000,
    )
    wait_until(
        page,
        lambda: runs_page_state(page, "q-second") == "completed",
        "completed on the Runs page",
        timeout_s=60,
        every_ms=2000,
    )
    assert table_state(page, "q-first") == "stopped"
    screenshot(page, "e2e-queue-5-runs-second-completed")


def test_title_note_continue_copy_and_start_from(app, runs_dir, page, trained_run, tmp_path):
    """The Runs page's other run controls and the New run page's pre-launch panels, on a
    trained run (nothing trains here): screenshots e2e-queue-6..10."""
    import shutil

    shutil.copytree(trained_run.path, runs_dir / "trained")
    page.goto(app)
    settle(page)
    assert runs_page_state(page, "trained") == "completed"
    assert not button(page, "runs_resume").is_enabled()

    # Title and note, in a popover; the table gains a title column.
    page.get_by_role("button", name="Title and note").click()
    set_popover_text(page, "runs_title_trained", "first <b>tiny</b> run", "input")
    set_popover_text(
        page, "runs_note_trained", "lr 3e-3\nloss still falling at the end", "textarea"
    )
    click_button(page, "runs_notes_save_trained")
    wait_until(
        page,
        lambda: any(r.get("title") == "first <b>tiny</b> run" for r in dataframe_rows(page)),
        "the title in the table",
        timeout_s=30,
    )
    assert RunDir(runs_dir / "trained").read_notes()["note"] == (
        "lr 3e-3\nloss still falling at the end"
    )
    page.get_by_text("loss still falling at the end").first.wait_for()
    screenshot(page, "e2e-queue-6-runs-title-and-note")

    page.get_by_role("button", name="Continue training").click()
    page.get_by_text("the cosine ends at step 12 as planned").wait_for()
    screenshot(page, "e2e-queue-7-runs-continue-popover")
    page.keyboard.press("Escape")

    # New run from this one: the form holds the run's settings.
    click_button(page, "runs_copy")
    heading(page, "New run").wait_for()
    page.get_by_text("Filled in from run").wait_for()
    assert widget(page, "nr_n_embd").locator("input").input_value() == "32"
    screenshot(page, "e2e-queue-8-new-run-from-trained")

    # Start from another run: its shape, read-only.
    widget(page, "nr_start").get_by_text("another run", exact=True).click()
    settle(page)
    assert widget(page, "nr_n_embd").locator("input").is_disabled()
    page.get_by_text("The source decides the model's shape").wait_for()
    screenshot(page, "e2e-queue-9-new-run-start-from-run")

    # GPT-2 from a folder that is not one: the error, Launch disabled.
    bad = tmp_path / "not-gpt2"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    widget(page, "nr_start").get_by_text("GPT-2", exact=True).click()
    settle(page)
    set_input(page, "nr_start_hf", str(bad))
    page.get_by_text("is not a GPT-2 config").first.wait_for()
    assert not button(page, "nr_launch").is_enabled()
    screenshot(page, "e2e-queue-10-new-run-bad-gpt2")

    # The GPT-2 124M recipe: the memorize warning and the button that times real steps.
    widget(page, "nr_start").get_by_text("scratch", exact=True).click()
    settle(page)
    widget(page, "nr_data_source").get_by_text("tiny shakespeare", exact=True).click()
    settle(page)
    combo = widget(page, "nr_preset").get_by_role("combobox")
    combo.click()
    combo.fill("gpt2")  # typing opens the list, filtered
    page.get_by_role("option", name="gpt2-124m", exact=True).click()
    settle(page)
    page.get_by_text("expect it to memorize").wait_for()
    assert button(page, "nr_probe").is_enabled()
    open_expander(page, "Longest passages repeated inside the text")
    assert_no_exception(page)
    screenshot(page, "e2e-queue-11-new-run-gpt2-memorize")


def set_popover_text(page, key: str, text: str, tag: str) -> None:
    """Type into a text input or area inside an open popover (no rerun: it is in a form)."""
    box = widget(page, key).locator(tag)
    box.fill(text)
    box.press("Tab")
