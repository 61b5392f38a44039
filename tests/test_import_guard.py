"""Pages import only what they draw: the Runs page, the app's first screen, never loads torch
(seconds to import on a small machine), and plotly's figures only once a chart is drawn
(Streamlit itself imports the plotly package, not its figure classes).

Each check runs in a fresh interpreter, so sys.modules holds only what it imported.
"""

import ast
import json
import subprocess
import sys

from conftest import ROOT, make_tiny_config

from core.store.rundir import RunDir

RUNS_PAGE = ROOT / "dashboard" / "views" / "runs.py"
CORE_AND_STATE = [
    "dashboard.state",
    "dashboard.run_table",
    "dashboard.colors",
    "core.runs.launcher",
    "core.store.metrics",
    "core.store.rundir",
    "core.config",
    "core.model.param_count",
]
FIGURES = "plotly.graph_objs._figure"
HEAVY = ("torch", FIGURES)


def top_level_imports(path) -> list[str]:
    """The modules a page imports at its top level (what loads before it draws anything)."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module)
    return names


LOADED = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), flush=True)"


def loaded_after(code: str) -> list[list[str]]:
    """Run code in a fresh interpreter; each `LOADED` line in it reports the HEAVY modules then
    in sys.modules, and one more is reported at the end."""
    probe = f"import sys, json\n{code}\n{LOADED}"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("[")]


def test_the_runs_pages_modules_leave_torch_and_plotly_out():
    modules = sorted(set(top_level_imports(RUNS_PAGE) + CORE_AND_STATE))
    assert "core.runs.launcher" in modules and "dashboard.run_table" in modules
    assert loaded_after("\n".join(f"import {m}" for m in modules)) == [[]]


def test_drawing_the_runs_page_loads_no_torch(tmp_path, small_text):
    """The page's script itself (table, selected run, a comparison) through AppTest."""
    for name in ("a", "b"):
        run = RunDir.create(tmp_path, name, make_tiny_config(small_text))
        run.metrics_path.write_text(json.dumps(dict(kind="train", step=1, loss=5.0)) + "\n")
    code = f"""
import os
os.environ["GPT_RUNS_DIR"] = {str(tmp_path)!r}
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(RUNS_PAGE)!r}, default_timeout=60)
at.run()
assert not at.exception and len(at.dataframe) == 1, at.exception
{LOADED}
at.multiselect(key="runs_compare").set_value(["a", "b"]).run()
assert not at.exception and at.get("plotly_chart"), at.exception
"""
    # The table and the selected run: neither; a chart needs plotly's figures, still no torch.
    assert loaded_after(code) == [[], [FIGURES]]
