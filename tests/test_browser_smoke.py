import pytest
from conftest import screenshot, wait_for_app

pytestmark = pytest.mark.browser


def test_every_page_opens_without_errors_on_an_empty_runs_dir(streamlit_app, page):
    page.goto(streamlit_app)
    wait_for_app(page)
    links = page.locator('[data-testid="stSidebarNav"] a')
    titles = [links.nth(i).inner_text().split("\n")[-1] for i in range(links.count())]
    assert titles == ["Runs", "New run", "Live metrics", "Playground", "Model info", "Inspect"]
    for i, title in enumerate(titles):
        page.locator('[data-testid="stSidebarNav"] a').nth(i).click()
        page.wait_for_timeout(300)
        wait_for_app(page)
        assert page.locator('[data-testid="stException"]').count() == 0, title
        screenshot(page, f"empty-{i}-{title.lower().replace(' ', '-')}")
