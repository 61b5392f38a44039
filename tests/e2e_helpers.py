"""Browser helpers for the end-to-end tests: drive Streamlit widgets as a user does (by their
`key`, which Streamlit puts on each element as the CSS class `st-key-<key>`), read what the page
shows, and wait for things that happen in the background (training steps, state changes).

Waits are generous and never asserted as timings: the tests share two cores with other work.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from conftest import screenshot, wait_for_app

SIDEBAR_LINKS = '[data-testid="stSidebarNav"] a'


def settle(page, pause_ms: int = 500) -> None:
    """Give a widget change time to start a rerun, then wait until the script has finished."""
    page.wait_for_timeout(pause_ms)
    wait_for_app(page)


def open_page(page, title: str) -> None:
    """Click the sidebar link of a page (its text ends with title) and wait for its heading."""
    # A link's text is its icon's ligature name followed by the title ("table_rowsRuns").
    page.locator(SIDEBAR_LINKS).filter(has_text=re.compile(re.escape(title) + "$")).click()
    settle(page)
    heading(page, title).wait_for()
    assert_no_exception(page)


def exactly(text: str) -> re.Pattern:
    return re.compile(f"^{re.escape(text)}$")


def heading(page, title: str):
    return page.locator("h1").filter(has_text=exactly(title))


def assert_no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def widget(page, key: str):
    """The element container of the widget with this key."""
    return page.locator(f".st-key-{key}")


def choose(page, key: str, option: str) -> None:
    """Open a select box (a combo box: its "Open" button shows the list) and click an option."""
    widget(page, key).get_by_role("button", name="Open").click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def set_input(page, key: str, value) -> None:
    """Type into a number or text input and press Enter (which sends the value), then wait."""
    box = widget(page, key).locator("input")
    box.fill(str(value))
    box.press("Enter")
    settle(page)
    assert box.input_value() == str(value), f"{key} shows {box.input_value()!r}, not {value!r}"


def button(page, key: str):
    """The button with this key (by role: a tooltip's hidden copy does not count)."""
    return widget(page, key).get_by_role("button")


def click_button(page, key: str) -> None:
    button(page, key).click()
    settle(page)


def open_expander(page, label: str) -> None:
    """Expand a collapsed st.expander by its label (a no-op when it is open already)."""
    details = page.locator('[data-testid="stExpander"] details').filter(
        has=page.locator(f'summary:has-text("{label}")')
    )
    if details.get_attribute("open") is None:
        details.locator("summary").click()
        page.wait_for_timeout(300)


def wait_until(page, check, what: str, timeout_s: float = 90, every_ms: int = 1000):
    """Call check() until it returns something truthy (and return that); fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout_s:.0f}s")
        page.wait_for_timeout(every_ms)


CHART_POINTS_JS = """(key) => {
  const box = document.querySelector(`.st-key-${key} .js-plotly-plot`)
      || document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  if (!box || !box._fullData || !box._fullData.length || !box.querySelector('.main-svg')) return -1;
  return box._fullData[0].x ? box._fullData[0].x.length : 0;
}"""


def chart_points(page, key: str) -> int:
    """Points of the first trace of a painted plotly chart (-1 while it is not painted yet)."""
    return page.evaluate(CHART_POINTS_JS, key)


def chart_data(page, key: str) -> list[dict]:
    """Type, name, number of points and first category (for bars) of each trace of a painted
    plotly chart; empty while it is not painted."""
    return page.evaluate(
        """(key) => {
      const box = document.querySelector(`.st-key-${key} .js-plotly-plot`);
      if (!box || !box._fullData || !box.querySelector('.main-svg')) return [];
      return box._fullData.map(t => {
        const cats = (t.orientation === 'h' ? t.y : t.x) || [];
        return {type: t.type, name: t.name, n: cats.length, first: String(cats[0] ?? '')};
      });
    }""",
        key,
    )


def dataframe_rows(page, index: int = 0) -> list[dict]:
    """The rows of an st.dataframe as {column: text}, read from the grid's accessible table
    (the grid draws on a canvas; the table mirrors the columns in view)."""
    return page.evaluate(
        """(index) => {
      const table = document.querySelectorAll('[data-testid="stDataFrame"]')[index]
                    ?.querySelector('table[role="grid"]');
      if (!table) return [];
      const heads = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
      return [...table.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
        [...tr.querySelectorAll('td')].map((td, i) => [heads[i], td.textContent.trim()])));
    }""",
        index,
    )


def runs_page_state(page, run_id: str) -> str:
    """Reopen the Runs page (a full rerun), select run_id, and return the state it shows."""
    open_page(page, "Runs")
    if widget(page, "runs_selected").get_by_role("combobox").input_value() != run_id:
        choose(page, "runs_selected", run_id)
    line = page.locator('[data-testid="stMarkdownContainer"] p').filter(has_text="State:").first
    return line.inner_text().split("State:", 1)[1].split("·", 1)[0].strip()


def read_status(run_path: Path) -> dict:
    try:
        return json.loads((run_path / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def kill_leftovers(runs_dir: Path) -> None:
    """SIGKILL the process groups of runs in runs_dir that a failed test left running."""
    for status_file in Path(runs_dir).glob("*/status.json"):
        status = read_status(status_file.parent)
        if status.get("state") not in ("queued", "running"):
            continue
        for pid in {status.get("launcher_pid"), status.get("pid")} - {None}:
            try:
                if os.getpgid(pid) == pid:  # a group leader the launcher started
                    os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def shot(page, name: str) -> None:
    """A full-page screenshot once every chart on the page is painted."""
    wait_until(
        page,
        lambda: page.evaluate("""() => {
      const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
      return charts.length > 0 && charts.every(c => c.querySelector('.main-svg'));
    }"""),
        "every chart painted",
        timeout_s=60,
    )
    assert_no_exception(page)
    screenshot(page, name)
