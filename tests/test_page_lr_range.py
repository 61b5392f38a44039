"""The New run page's learning-rate range test through AppTest: cost shown first, the chart
and the suggestion after a run, one click puts it in the form, no run is created. The test
itself (core.train.lr_range) is replaced by a known result here; tests/test_lr_range.py runs
the real one."""

import numpy as np
from streamlit.testing.v1 import AppTest

from core.train import lr_range
from core.train.lr_range import RangeTest, suggest
from dashboard import lr_range_panel


def _fake(cfg, progress=None, **kw):
    lrs = np.geomspace(1e-6, 1, 100)
    x = np.arange(100)
    smoothed = 6 - 3 / (1 + np.exp(-(x - 60) / 4))
    for i in range(3):
        progress(i + 1, float(lrs[i]), float(smoothed[i]))
    return RangeTest(lrs, smoothed, smoothed, suggest(lrs, smoothed), False)


def test_range_test_suggests_and_applies_a_rate(runs_dir, monkeypatch):
    monkeypatch.setattr("core.train.lr_range.lr_range_test", _fake)
    at = AppTest.from_file("../dashboard/app.py", default_timeout=60)
    at.run()
    at.query_params.update(preset="nano")
    at.switch_page("views/new_run.py").run()
    assert any("Smith 2015" in c.value and "It takes about" in c.value for c in at.caption)
    at.button(key="nr_lr_range_go").click().run()
    assert not at.exception, at.exception
    suggested = float(f"{_fake(None, lambda *a: None).suggested:.2g}")
    apply = at.button(key="nr_lr_range_apply")
    assert apply.label == f"Use max_lr = {suggested:g}"
    apply.click().run()
    assert at.text_input(key="nr_max_lr").value == f"{suggested:g}"
    assert list(runs_dir.iterdir()) == []  # nothing left in the runs list


def test_the_panel_states_the_test_s_own_length():
    assert lr_range_panel.STEPS == lr_range.STEPS  # the panel cannot import it (torch)
    assert f"from {lr_range.LR_FROM:g} to {lr_range.LR_TO:g} over" in lr_range_panel.EXPLAIN
