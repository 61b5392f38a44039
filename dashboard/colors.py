"""A stable colour per run id, so a run looks the same on every chart and page."""

from __future__ import annotations

import hashlib

# Plotly's qualitative "D3" palette minus its grey: ten hues that read apart on white.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#393b79",
)


def run_color(run_id: str) -> str:
    """The hex colour of a run: picked from PALETTE by a hash of its id, so it never changes
    between pages, reruns or processes (Python's hash() is salted per process, sha1 is not)."""
    digest = hashlib.sha1(str(run_id).encode("utf-8")).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]
