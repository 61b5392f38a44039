"""dashboard.live_view: the Live page's view to and from URL query parameters."""

from dashboard.live_view import DEFAULTS, default_view, from_params, to_params


def test_round_trip():
    view = {
        "runs": ["b", "a"],
        "x": "tokens",
        "smoothing": 0.85,
        "log": True,
        "show": ["val", "best"],
    }
    params = to_params(view)
    assert params == {
        "runs": "b,a",
        "x": "tokens",
        "smooth": "0.85",
        "log": "1",
        "show": "val,best",
    }
    assert from_params(params, ["a", "b", "c"]) == view


def test_defaults_for_missing_or_unusable_values():
    assert from_params({}, ["a"]) == DEFAULTS
    view = from_params(
        {
            "runs": "gone,a,a",
            "x": "epoch",
            "smooth": "1.5",
            "log": "maybe",
            "show": "copy,nonsense",
        },
        ["a"],
    )
    assert view == {**DEFAULTS, "runs": ["a"], "show": ["copy"]}
    assert from_params({"smooth": "abc"}, [])["smoothing"] == DEFAULTS["smoothing"]
    assert from_params({"show": ""}, [])["show"] == []  # every overlay switched off


def test_default_view_is_a_copy():
    view = default_view()
    view["show"].append("x")
    assert "x" not in DEFAULTS["show"]
