"""core.units: the one home of readable sizes, durations and markdown escaping."""

import pytest

from core.units import escape_md, format_duration, format_mib, human_bytes


@pytest.mark.parametrize(
    "seconds, text",
    [(None, ""), (float("nan"), ""), (-1, ""), (12.4, "12s"), (185, "3m 05s"), (3720, "1h 02m")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_format_duration_can_name_the_unknown():
    assert format_duration(None, "–") == "–" and format_duration(59.6, "–") == "1m 00s"


def test_sizes():
    assert format_mib(5.25) == "5.2 MiB"
    assert format_mib(512) == "512 MiB"
    assert format_mib(1536) == "1.5 GiB"
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(10) == "10 B"
    assert human_bytes(3 * 2**40) == "3072.0 GiB"


def test_escape_md_shows_text_as_itself():
    assert escape_md("a_b *c* `d` [e](f) #1") == ("a\\_b \\*c\\* \\`d\\` \\[e\\]\\(f\\) \\#1")
    assert escape_md("plain text 12") == "plain text 12"
