"""dashboard.dynamics_data: a run's dynamics records read incrementally (resumes, old runs,
damaged lines), the induction-head event and the Live page's figures."""

import json

import numpy as np

from core.store.rundir import RunDir
from dashboard.colors import run_color
from dashboard.dynamics_data import (
    DynamicsSeries,
    icl_figure,
    induction_figure,
    memorization_figure,
)


def dynamics_line(step, scores, **extra) -> str:
    record = dict(
        kind="dynamics",
        step=step,
        time=0.0,
        head_scores=scores,
        n_layer=2,
        n_head=2,
        repeat_first_loss=5.0,
        repeat_second_loss=5.0 - step / 100,
        train_exact=step / 1000,
        val_exact=step / 2000,
        **extra,
    )
    return json.dumps(record) + "\n"


def make_run(runs_dir, tiny_config, lines) -> RunDir:
    run = RunDir.create(runs_dir, "dyn", tiny_config)
    run.metrics_path.write_text("".join(lines))
    return run


def test_reads_only_dynamics_and_finds_the_formed_head(runs_dir, tiny_config):
    lines = [
        json.dumps(dict(kind="train", step=1, loss=3.0)) + "\n",
        dynamics_line(10, [0.1, 0.2, 0.1, 0.05]),
        "{torn",
    ]
    run = make_run(runs_dir, tiny_config, lines)
    d = DynamicsSeries(run)
    assert d.refresh() == 1 and d.formed() is None
    with open(run.metrics_path, "a") as f:
        f.write("\n" + dynamics_line(20, [0.1, 0.2, 0.1, 0.45]) + dynamics_line(30, [0.5] * 4))
    d.refresh()
    assert d.steps == [10, 20, 30]
    formed = d.formed()
    assert (formed.step, formed.layer, formed.head) == (20, 1, 1)
    assert "layer 2, head 2, step 20" in formed.label()
    np.testing.assert_allclose(d.column("repeat_icl"), [-0.1, -0.2, -0.3])
    assert d.head_matrix().shape == (3, 4)


def test_a_resume_drops_superseded_evals(runs_dir, tiny_config):
    run = make_run(runs_dir, tiny_config, [dynamics_line(s, [0.1] * 4) for s in (10, 20, 30)])
    d = DynamicsSeries(run)
    d.refresh()
    with open(run.metrics_path, "a") as f:
        f.write(dynamics_line(20, [0.2] * 4))  # resumed from step 15's checkpoint
    d.refresh()
    assert d.steps == [10, 20] and d.best_scores()[-1] == 0.2


def test_figures_and_an_old_run(runs_dir, tiny_config):
    run = make_run(runs_dir, tiny_config, [dynamics_line(s, [0.1] * 4) for s in (10, 20)])
    d = DynamicsSeries(run)
    d.refresh()
    names = lambda fig: [t.name for t in fig.data]  # noqa: E731
    assert names(induction_figure([d], run_color)) == ["best head"]
    assert names(icl_figure([d], run_color)) == ["repeated tokens"]  # no context_icl recorded
    memo = memorization_figure([d], {"dyn": ([10, 20], [0.0, 0.5])}, run_color)
    assert names(memo) == ["exact memorization, train", "exact memorization, val", "copy rate"]
    assert list(memo.data[2].y) == [0.0, 50.0]
    old = RunDir.create(runs_dir, "old", tiny_config)
    empty = DynamicsSeries(old)
    empty.refresh()
    assert len(empty) == 0 and empty.head_matrix() is None and empty.formed() is None
    assert "No induction scores yet" in str(induction_figure([empty], run_color).layout)
