"""The Live page's view as data: the runs shown, x axis, smoothing, log scale and overlays.

The page keeps the view in the session under a key no widget owns (widget values are dropped
when another page runs) and mirrors it in the URL's query parameters through dashboard.state,
so navigating away and back, a reload, or a shared link all show the same view. No Streamlit
here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dashboard.live_figures import OVERLAYS
from dashboard.live_series import X_AXES

PARAMS = ("runs", "x", "smooth", "log", "show")  # the URL's query parameters of the view
DEFAULTS = {"runs": [], "x": "step", "smoothing": 0.6, "log": False, "show": list(OVERLAYS)}
SMOOTHING_MAX = 0.99


def default_view() -> dict:
    return {k: list(v) if isinstance(v, list) else v for k, v in DEFAULTS.items()}


def from_params(params: Mapping[str, str], run_ids: Iterable[str]) -> dict:
    """The view a URL's query parameters describe (`runs=a,b&x=tokens&smooth=0.8&log=1&
    show=val,best`). A missing or unusable value keeps its default; runs that do not exist
    (deleted, or a typo in a shared link) drop out."""
    view = default_view()
    known = set(run_ids)
    if params.get("runs"):
        view["runs"] = [r for r in dict.fromkeys(params["runs"].split(",")) if r in known]
    if params.get("x") in X_AXES:
        view["x"] = params["x"]
    try:
        smoothing = float(params.get("smooth", ""))
    except ValueError:
        smoothing = -1.0
    if 0.0 <= smoothing <= SMOOTHING_MAX:
        view["smoothing"] = round(smoothing, 2)
    if params.get("log") in ("0", "1"):
        view["log"] = params["log"] == "1"
    if "show" in params:
        wanted = params["show"].split(",")
        view["show"] = [o for o in OVERLAYS if o in wanted]
    return view


def to_params(view: Mapping) -> dict[str, str]:
    """The query parameters of a view (from_params reads them back)."""
    return {
        "runs": ",".join(view["runs"]),
        "x": view["x"],
        "smooth": f"{view['smoothing']:g}",
        "log": "1" if view["log"] else "0",
        "show": ",".join(view["show"]) or "none",  # not empty: an empty value leaves the URL
    }
