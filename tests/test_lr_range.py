"""core.train.lr_range: the suggestion on a curve with a known steepest fall, and a real range
test on a tiny model that writes nothing."""

import numpy as np
import pytest

from core.train.lr_range import lr_range_test, suggest


def test_the_steepest_fall_is_suggested():
    lrs = np.geomspace(1e-6, 1, 100)
    # flat, a fall steepest at index 60 (a logistic in log rate), then a blow-up
    x = np.arange(100)
    smoothed = 6 - 3 / (1 + np.exp(-(x - 60) / 4)) + np.where(x > 90, (x - 90) * 2.0, 0)
    assert suggest(lrs, smoothed) == pytest.approx(lrs[60], rel=0.15)
    assert suggest(lrs, np.linspace(5, 6, 100)) is None  # never falls
    assert suggest(lrs[:5], smoothed[:5]) is None  # too short


def test_a_tiny_range_test_suggests_a_rate_and_leaves_nothing(
    tiny_config, runs_dir, tmp_path, monkeypatch
):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    seen = []
    result = lr_range_test(
        tiny_config, steps=40, lr_from=1e-5, lr_to=10.0, progress=lambda *a: seen.append(a)
    )
    assert len(seen) == len(result.losses) and seen[0][0] == 1
    assert np.all(np.diff(result.lrs) > 0)
    assert result.suggested is not None and 1e-5 < result.suggested < 10.0
    assert list(runs_dir.iterdir()) == list(work.iterdir()) == []  # no run, nothing written


def test_cancel_by_raising_from_progress(tiny_config):
    class Cancelled(Exception):
        pass

    def stop_at_3(step, lr, loss):
        if step == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        lr_range_test(tiny_config, steps=40, progress=stop_at_3)
