"""The Inspect page's per-token learning curves: a token-by-step heatmap of the loss of every
token of the run's val probe, one token's curve (click it in the heatmap, or pick its number),
the tokens learned early, learned late and forgotten with the text around them, and the same
token in a second run on the same probe."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.data.tokens import token_texts
from core.dynamics.token_curves import FORGET_MARGIN, LEARN_DROP, thin_evals, token_stages
from core.store import token_curves
from core.store.rundir import RunDir, list_run_dirs
from dashboard.charts import Trace, line_figure
from dashboard.colors import run_color
from dashboard.state import runs_dir

HEATMAP_EVALS = 200  # rows at most (evals spread evenly); a 1,024-token row each
AROUND = 8  # tokens of text shown either side of a listed token
SOURCE = (
    "Per-token learning curves (Chang, Tu and Bergen 2024, arXiv 2308.15419; forgetting as in "
    "Xia et al. 2022, arXiv 2212.09803): the loss of each token of the same 1,024-token val "
    "passage at every eval; darker is harder. A token is learned once its loss has fallen half "
    f"of a total fall of at least {LEARN_DROP:g} nat, forgotten when it ends at least "
    f"{FORGET_MARGIN:g} nat above its lowest."
)


@st.cache_data(max_entries=8, show_spinner=False)
def _read(path: str, mtime: float):
    return token_curves.read(path)


def read_curves(run: RunDir):
    path = run.token_curves_path
    return _read(str(path), path.stat().st_mtime) if path.exists() else None


def _heatmap(curves, texts: list[str]) -> go.Figure:
    """The loss of every token (x) at each eval (y), and under it a strip of one square per
    token coloured by its latest loss: a click on a square picks that token (plotly selects
    scatter points on click, not heatmap cells)."""
    from plotly.subplots import make_subplots

    rows = thin_evals(len(curves), HEATMAP_EVALS)
    z = curves.losses[rows].astype(np.float32)
    labels = np.array([repr(t)[1:-1] for t in texts[1:]], dtype=object)
    x = np.arange(z.shape[1])
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.86, 0.14], vertical_spacing=0.03
    )
    fig.add_trace(
        go.Heatmap(
            z=z,
            x=x,
            y=curves.steps[rows],
            customdata=np.broadcast_to(labels, z.shape),
            colorscale="Reds",
            zmin=0,
            zmax=float(z.max()),
            colorbar=dict(title="loss (nats)"),
            hovertemplate="token %{x} '%{customdata}'<br>step %{y}<br>loss %{z:.2f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=np.zeros(len(x)),
            mode="markers",
            customdata=labels,
            showlegend=False,
            marker=dict(
                symbol="square", size=7, color=z[-1], colorscale="Reds", cmin=0, cmax=float(z.max())
            ),
            hovertemplate="click: token %{x} '%{customdata}'<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.update_layout(height=400, margin=dict(l=10, r=10, t=10, b=40), template={}, dragmode=False)
    fig.update_yaxes(title_text="step", row=1, col=1)
    fig.update_yaxes(visible=False, row=2, col=1)
    fig.update_xaxes(title_text="token of the val probe (click a square)", row=2, col=1)
    return fig


def _snippet(texts: list[str], i: int) -> str:
    """HTML of scored token i (ids[i + 1]) with AROUND tokens either side, it in bold."""
    at = i + 1
    before = "".join(texts[max(0, at - AROUND) : at])
    after = "".join(texts[at + 1 : at + 1 + AROUND])
    show = lambda s: html.escape(s).replace("\n", "↵")  # noqa: E731
    return f"…{show(before)}<b style='background:#fde0dd'>{show(texts[at])}</b>{show(after)}…"


def _token_list(title: str, tokens: list[int], texts, stages, what: str) -> None:
    st.markdown(f"**{title}**")
    if not tokens:
        st.caption("None yet.")
        return
    rows = []
    for i in tokens:
        figure = (
            f"step {stages.learned_at[i]:,.0f}" if what == "learned" else f"+{stages.rise[i]:.2f}"
        )
        rows.append(
            f"<div style='font-family:monospace;font-size:0.85em'>#{i} · {figure} · "
            f"{_snippet(texts, i)}</div>"
        )
    st.html("".join(rows))


def _follow_click(n: int) -> None:
    """A token clicked in the heatmap becomes the chosen one (before the input is drawn)."""
    event = st.session_state.get("ins_tc_heat")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points and points[0].get("x") is not None:
        clicked = int(points[0]["x"])
        if st.session_state.get("_ins_tc_clicked") != clicked:
            st.session_state["_ins_tc_clicked"] = clicked
            st.session_state["ins_tc_token"] = min(max(clicked, 0), n - 1)


def _others(run: RunDir, ids: np.ndarray) -> dict:
    """Other runs with curves on the same probe tokens: {run_id: curves}."""
    found = {}
    for other in list_run_dirs(runs_dir()):
        if other.run_id == run.run_id or not other.token_curves_path.exists():
            continue
        curves = read_curves(other)
        if curves is not None and len(curves) and np.array_equal(curves.ids, ids):
            found[other.run_id] = curves
    return found


def _curve_chart(i: int, runs: dict, texts) -> None:
    traces = [
        Trace(c.steps.astype(float), c.losses[:, i].astype(float), rid, run_color(rid), "line")
        for rid, c in runs.items()
    ]
    fig = line_figure(
        traces,
        title=f"Token #{i} {texts[i + 1]!r}",
        x_title="step",
        y_title="loss (nats)",
        y_format=".3f",
        height=280,
    )
    st.plotly_chart(fig, key="ins_tc_curve", config={"displaylogo": False})


def token_curves_tab(run: RunDir) -> None:
    """The whole tab for one run."""
    curves = read_curves(run)
    if curves is None or not len(curves):
        st.info(
            f"Run {run.run_id} has no per-token curves: it was made before they were "
            "recorded, with dynamics_every = 0, or has not reached its first eval."
        )
        return
    texts = token_texts(curves.ids)
    n = curves.losses.shape[1]
    _follow_click(n)
    st.plotly_chart(
        _heatmap(curves, texts),
        key="ins_tc_heat",
        on_select="rerun",
        selection_mode="points",
        config={"displaylogo": False},
    )
    st.caption(SOURCE)
    stages = token_stages(curves.steps, curves.losses)
    left, right = st.columns([1, 3])
    i = int(
        left.number_input(
            "Token", 0, n - 1, key="ins_tc_token", help="Or click its square under the heatmap"
        )
    )
    others = _others(run, curves.ids)
    compare = left.selectbox(
        "Compare with",
        ["(none)", *others],
        key="ins_tc_compare",
        help="Another run whose val probe is the same text",
    )
    right.html(f"<div style='font-family:monospace'>{_snippet(texts, i)}</div>")
    with right:
        chosen = {run.run_id: curves, **({compare: others[compare]} if compare in others else {})}
        _curve_chart(i, chosen, texts)
    cols = st.columns(3)
    with cols[0]:
        _token_list("Learned early", stages.early(), texts, stages, "learned")
    with cols[1]:
        _token_list("Learned late", stages.late(), texts, stages, "learned")
    with cols[2]:
        _token_list(
            f"Forgotten (rose ≥ {FORGET_MARGIN:g} nat)", stages.forgotten(), texts, stages, "rise"
        )
