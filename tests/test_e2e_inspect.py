"""End to end in a real browser: the model-inspection pages on a tiny model that memorized its
tiny training text. The Playground with copy marking on (a newline token's popover opened by a
click, a copied span's source), the next-token view, time travel across checkpoints, and each
Inspect view. Screenshots go to artifacts/screenshots/ (inspect-*.png) for a person to look at.
"""

import os
import re

import pytest
from conftest import SCREENSHOTS, screenshot
from e2e_helpers import (
    assert_no_exception,
    button,
    click_button,
    heading,
    open_page,
    settle,
    wait_until,
    widget,
)
from inspect_runs import PROMPT, memorized_run
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = pytest.mark.browser


@pytest.fixture
def app(streamlit_app, runs_dir, page):
    """The app, with the memorized run (trained once, in this process) in its runs directory."""
    page.set_default_timeout(90_000)
    run = memorized_run()
    os.symlink(run.path, runs_dir / run.run_id)
    return streamlit_app


def choose_below(page, key: str, option: str) -> None:
    """Choose in a select box low on the page: scrolled into view first (Streamlit scrolls its
    main block, and the list closes when that block scrolls while it opens)."""
    box = widget(page, key)
    box.scroll_into_view_if_needed()
    box.get_by_role("button", name="Open").click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def open_popover(token):
    """Click a token and return its popover once shown."""
    token.scroll_into_view_if_needed()
    token.click()
    popover = token.locator(".pop")
    popover.wait_for(state="visible")
    return popover


def screenshot_open(page, name: str) -> None:
    """A full-page screenshot that keeps the focused token's popover open (conftest's
    screenshot blurs the focused element first, which closes it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size(
        {"width": size["width"], "height": max(size["height"], min(height, 8000))}
    )
    page.wait_for_timeout(800)
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        page.set_viewport_size(size)
        page.wait_for_timeout(300)


def painted(page, key: str) -> bool:
    """The plotly chart with this key has been drawn."""
    return page.locator(f".st-key-{key} .js-plotly-plot .main-svg").count() > 0


def test_playground_copy_marking_popovers_and_time_travel(app, page):
    page.goto(app)
    settle(page)
    open_page(page, "Playground")
    prompt = widget(page, "pg_prompt").locator("textarea")
    prompt.fill(PROMPT)
    prompt.press("Control+Enter")
    settle(page)
    widget(page, "pg_colour").locator("label").click()
    settle(page)
    widget(page, "pg_copy").locator("label").click()
    settle(page)
    click_button(page, "pg_generate")
    wait_until(
        page,
        lambda: re.search(
            r"90 / 90 tokens|end-of-text",
            page.locator('[data-testid="stProgress"]').first.inner_text(),
        ),
        "the generated text",
        timeout_s=60,
    )
    assert_no_exception(page)

    # A newline token is a visible box with a size, and a click opens its popover.
    newline = page.locator(".tv .t").filter(has=page.locator(".g", has_text="↵")).first
    box = newline.bounding_box()
    assert box["width"] > 4 and box["height"] > 10
    popover = open_popover(newline)
    text = popover.inner_text()
    assert "p = " in text and "log p" in text and "top alternatives" in text
    screenshot_open(page, "inspect-1-playground-newline-popover")

    # Copied spans are marked; a click shows where the span comes from.
    copied = page.locator(".tv .t.copy")
    assert copied.count() >= 8
    popover = open_popover(copied.nth(6))
    text = popover.inner_text()
    assert "Copied from the training text" in text and "tiny.txt line" in text
    assert "First Citizen" in text  # the speaker and the context lines
    summary = page.get_by_text(re.compile(r"of the generated tokens lie in copied spans"))
    assert re.search(r"the longest is \d+ tokens \(lines \d+-\d+", summary.inner_text())
    screenshot_open(page, "inspect-2-playground-copied-span")

    page.get_by_role("tab", name="Next token").click()
    wait_until(page, lambda: painted(page, "pg_nt_chart"), "the next-token chart")
    page.get_by_text(re.compile("^The training text continues")).wait_for()
    assert_no_exception(page)
    screenshot(page, "inspect-3-playground-next-token")

    page.get_by_role("tab", name="Compare checkpoints").click()
    click_button(page, "pg_tt_go")
    columns = page.locator('[class*="st-key-pg_tt_col_"]')
    wait_until(page, lambda: columns.count() == 4, "four checkpoints side by side")
    headers = [columns.nth(i).locator("strong").first.inner_text() for i in range(4)]
    assert headers == ["step 0", "step 30", "step 90", "step 120"]
    assert_no_exception(page)
    screenshot(page, "inspect-4-playground-time-travel")

    # Cancel while generating: the run stops at its next redraw and the text so far stays.
    page.get_by_role("tab", name="Generate").click()
    thumb = widget(page, "pg_max_new").get_by_role("slider")
    thumb.focus()
    thumb.press("End")  # 200 tokens: a couple of seconds on this model
    settle(page)
    note = page.get_by_text(re.compile(r"^Cancelled after \d+ of 200 tokens"))
    for _ in range(5):  # a fast machine may finish 200 tokens before the click lands
        button(page, "pg_generate").click()
        try:
            button(page, "pg_cancel").click(timeout=5_000)
        except PlaywrightTimeout:
            settle(page)
            continue
        settle(page)
        if note.count():  # else the click came as the last token did: nothing to cancel
            break
    note.wait_for()
    done = int(re.search(r"after (\d+) of", note.inner_text()).group(1))
    assert 0 < done < 200
    assert page.locator(".tv .t").count() >= done  # the text so far, still clickable
    assert_no_exception(page)
    screenshot(page, "inspect-4b-playground-cancelled")


def test_inspect_views(app, page):
    page.goto(app)
    settle(page)
    open_page(page, "Inspect")
    heading(page, "Inspect").wait_for()
    click_button(page, "ins_random")
    page.get_by_text(re.compile("^A random passage of .* from the val split")).wait_for()
    popover = open_popover(page.locator(".tv .t").nth(5))
    assert "top alternatives" in popover.inner_text()
    screenshot_open(page, "inspect-5-surprise")

    choose_below(page, "ins_cmp", "step 0 (snapshot)")
    assert page.locator(".tv").count() == 2  # the text coloured by surprise, then by change
    page.get_by_text("Became easiest").wait_for()
    assert_no_exception(page)
    screenshot(page, "inspect-6-surprise-difference")

    widget(page, "ins_view").get_by_text("Logit lens", exact=True).click()
    settle(page)
    wait_until(page, lambda: painted(page, "ins_lens_chart"), "the logit lens heatmap")
    assert_no_exception(page)
    screenshot(page, "inspect-7-logit-lens")

    widget(page, "ins_view").get_by_text("Attention", exact=True).click()
    settle(page)
    wait_until(
        page,
        lambda: painted(page, "ins_attn_grid") and painted(page, "ins_attn_head"),
        "the attention heatmaps",
    )
    assert_no_exception(page)
    screenshot(page, "inspect-8-attention")
