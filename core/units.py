"""Readable units and text for every page and command line: sizes, durations, and user-named
text shown inside markdown."""

from __future__ import annotations

import math

MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()#+-.!|<>~$")


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def format_mib(mib: float) -> str:
    """A size given in MiB: `5.2 MiB`, `512 MiB`, `1.4 GiB`."""
    if mib >= 1024:
        return f"{mib / 1024:,.1f} GiB"
    return f"{mib:,.0f} MiB" if mib >= 10 else f"{mib:,.1f} MiB"


def format_duration(seconds: float | None, unknown: str = "") -> str:
    """`1h 02m`, `3m 05s`, `12s`; `unknown` (empty by default) when not known."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return unknown
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def escape_md(text: str) -> str:
    """Text shown as itself inside markdown (a run id, title or file name may hold *, _, # or
    `): every markdown character backslash-escaped."""
    return "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in text)
