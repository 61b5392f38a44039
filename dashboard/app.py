"""Entry point: `streamlit run dashboard/app.py`. A router over the pages in views/."""

import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts dashboard/, not the project, on sys.path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard.state import sidebar_runs_dir  # noqa: E402

# Loaded after the first page is drawn, so that the first visit to a page that needs them does
# not wait for them (torch alone takes 2-5 s to import on a small machine).
WARM_UP_MODULES = ("plotly.graph_objects", "torch", "core.model", "core.sampling", "core.device",
                   "core.data", "core.estimate")


@st.cache_resource(show_spinner=False)
def warm_up(modules: tuple[str, ...]) -> threading.Thread:
    """Import the modules in a background thread, once per server process."""
    import importlib

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # a page importing it later shows the error where it matters
                pass

    thread = threading.Thread(target=load, name="warm-up", daemon=True)
    thread.start()
    return thread


# An emoji page icon: a :material/...: one makes the browser fetch it from a font host.
st.set_page_config(page_title="GPT training dashboard", page_icon="📈", layout="wide")

VIEWS = Path(__file__).parent / "views"
pages = [
    st.Page(VIEWS / "runs.py", title="Runs", icon=":material/table_rows:", default=True),
    st.Page(VIEWS / "new_run.py", title="New run", icon=":material/rocket_launch:"),
    st.Page(VIEWS / "live.py", title="Live metrics", icon=":material/monitoring:"),
    st.Page(VIEWS / "playground.py", title="Playground", icon=":material/casino:"),
    st.Page(VIEWS / "model_info.py", title="Model info", icon=":material/info:"),
]
page = st.navigation(pages)
sidebar_runs_dir()
try:
    page.run()
finally:  # also after a page that stops early (st.stop) or switches page
    warm_up(WARM_UP_MODULES)
