"""Entry point: `streamlit run dashboard/app.py`. A router over the pages in views/."""

import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts dashboard/, not the project, on sys.path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard.state import sidebar_runs_dir  # noqa: E402

# Loaded in the background once the first page has been sent, so that the first visit to a
# page that needs them does not wait for them (torch alone takes 1-5 s to import on a small
# machine); the delay keeps the import off the CPU while the browser draws the first page.
WARM_UP_MODULES = (
    "pandas",
    "torch",
    "core.model.gpt",
    "core.generate.sampling",
    "core.device",
    "core.data.dataset",
    "core.train.estimate",
    "dashboard.live_figures",
    "plotly.graph_objects",
)
WARM_UP_DELAY_S = 1.0


@st.cache_resource(show_spinner=False)
def warm_up(modules: tuple[str, ...], delay_s: float) -> threading.Timer:
    """Import the modules in a background thread after delay_s, once per server process."""
    import importlib

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # a page importing it later shows the error where it matters
                pass

    timer = threading.Timer(delay_s, load)
    timer.name, timer.daemon = "warm-up", True
    timer.start()
    return timer


def start_queued_run(runs_root: Path) -> None:
    """Start the next queued run when nothing in runs_root trains (this covers an engine that
    crashed before it could start it); never breaks the page it runs before."""
    try:
        from core.runs import queue as run_queue

        started = run_queue.start_next(runs_root)
    except Exception:  # a damaged queue or runs folder: the Runs page shows what is wrong
        return
    if started:
        st.toast(f"Started {started} from the run queue.")


# An emoji page icon: a :material/...: one makes the browser fetch it from a font host.
st.set_page_config(page_title="GPT training dashboard", page_icon="📈", layout="wide")

VIEWS = Path(__file__).parent / "views"
pages = [
    st.Page(VIEWS / "runs.py", title="Runs", icon=":material/table_rows:", default=True),
    st.Page(VIEWS / "new_run.py", title="New run", icon=":material/rocket_launch:"),
    st.Page(VIEWS / "live.py", title="Live metrics", icon=":material/monitoring:"),
    st.Page(VIEWS / "playground.py", title="Playground", icon=":material/casino:"),
    st.Page(VIEWS / "model_info.py", title="Model info", icon=":material/info:"),
    st.Page(VIEWS / "inspect.py", title="Inspect", icon=":material/biotech:"),
]
page = st.navigation(pages)
start_queued_run(sidebar_runs_dir())
try:
    page.run()
finally:  # also after a page that stops early (st.stop) or switches page
    warm_up(WARM_UP_MODULES, WARM_UP_DELAY_S)
