"""End to end in a real browser: the training-dynamics views on the memorized run (trained once,
in this process, with the probes on as every run now has them). The Live page's row beside the
loss, and Inspect's "How it learned": the head-by-step heatmap, the per-token heatmap where a
click picks a token's curve, extraction with the verbatim passages' source lines, and the
network against the n-gram models.
Screenshots go to artifacts/screenshots/ (dynamics-*.png)."""

import os
import re

import pytest
from conftest import screenshot
from e2e_helpers import assert_no_exception, click_button, open_page, settle, wait_until, widget
from inspect_runs import memorized_run

pytestmark = pytest.mark.browser


@pytest.fixture
def app(streamlit_app, runs_dir, page):
    page.set_default_timeout(90_000)
    run = memorized_run()
    os.symlink(run.path, runs_dir / run.run_id)
    return streamlit_app


def painted(page, key: str) -> bool:
    return page.locator(f".st-key-{key} .js-plotly-plot .main-svg").count() > 0


def trace_points(page, key: str) -> list[int]:
    """Points of each trace of a painted chart."""
    return page.evaluate(
        """(key) => {
      const box = document.querySelector(`.st-key-${key} .js-plotly-plot`);
      return box && box._fullData ? box._fullData.map(t => (t.x || []).length) : [];
    }""",
        key,
    )


def test_live_row_beside_the_loss(app, page):
    page.goto(app)
    settle(page)
    open_page(page, "Live metrics")
    for key in ("live_dyn_induction", "live_dyn_icl", "live_dyn_memorization", "live_dyn_ngram"):
        wait_until(page, lambda key=key: painted(page, key), f"the {key} chart")
        assert all(n == 3 for n in trace_points(page, key)[:2]), key  # evals at 40, 80, 120
    page.get_by_text(
        re.compile(r"best head.s prefix-matching score at each eval.*Olsson")
    ).wait_for()
    page.get_by_text(re.compile(r"^Exact memorization \(Tirumala et al\. 2022")).wait_for()
    page.get_by_text(re.compile(r"^Beyond n-grams \(Belrose et al\. 2024")).wait_for()
    assert_no_exception(page)
    screenshot(page, "dynamics-1-live")


def test_inspect_how_it_learned(app, page):
    page.goto(app)
    settle(page)
    open_page(page, "Inspect")
    widget(page, "ins_view").get_by_text("How it learned", exact=True).click()
    settle(page)
    wait_until(page, lambda: painted(page, "ins_dyn_heads"), "the head-by-step heatmap")
    page.get_by_text(re.compile(r"^Every head.s prefix-matching score")).wait_for()
    assert_no_exception(page)
    screenshot(page, "dynamics-2-induction-heads")

    page.get_by_role("tab", name="Per-token curves").click()
    wait_until(page, lambda: painted(page, "ins_tc_heat"), "the per-token heatmap")
    page.get_by_text(re.compile(r"^Per-token learning curves \(Chang, Tu and Bergen")).wait_for()
    # A click on a token's square under the heatmap picks it: its curve is drawn below.
    squares = page.locator(".st-key-ins_tc_heat .scatterlayer .point")
    wait_until(page, lambda: squares.count() > 100, "the strip of token squares")
    squares.nth(100).click(force=True)
    settle(page, 1500)
    token = widget(page, "ins_tc_token").locator("input")
    wait_until(page, lambda: token.input_value() == "100", "the clicked token in the input")
    title = f"Token #{token.input_value()}"
    wait_until(
        page,
        lambda: page.locator(".st-key-ins_tc_curve .gtitle").filter(has_text=title).count(),
        "the clicked token's curve",
    )
    assert_no_exception(page)
    screenshot(page, "dynamics-3-token-curves")

    page.get_by_role("tab", name="Memorization").click()
    wait_until(page, lambda: painted(page, "ins_dyn_memo"), "the memorization chart")
    page.get_by_text(re.compile(r"^At the end of the run \(step 120\)")).wait_for()
    click_button(page, "ins_extract")
    page.get_by_text(re.compile(r"^This checkpoint \(step_0000120\.pt\)")).wait_for()
    assert page.get_by_text(re.compile(r"tiny\.txt line")).count() > 0
    assert_no_exception(page)
    screenshot(page, "dynamics-4-memorization")

    page.get_by_role("tab", name="n-gram stages").click()
    wait_until(page, lambda: painted(page, "ins_dyn_ngram"), "the n-gram chart")
    page.get_by_text(re.compile(r"^Beyond n-grams \(Belrose et al\. 2024")).last.wait_for()
    assert_no_exception(page)
    screenshot(page, "dynamics-5-ngram")
