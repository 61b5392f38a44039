"""Entry point: `streamlit run dashboard/app.py`. A router over the pages in views/."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts dashboard/, not the project, on sys.path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard.state import sidebar_runs_dir  # noqa: E402

st.set_page_config(page_title="GPT training dashboard", page_icon=":material/monitoring:", layout="wide")

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
sidebar_runs_dir()
page.run()
