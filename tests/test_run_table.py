"""dashboard/run_table.py: the Runs page's rows, compare rows, differing settings and CSV."""

import csv
import io
import json
import math

import pytest
from conftest import make_tiny_config

from core.data.baselines import val_size
from core.model.param_count import param_count
from core.runs.launcher import RunInfo
from core.store import metrics
from core.store.rundir import RunDir
from dashboard import run_table
from dashboard.colors import PALETTE, run_color


def write_metrics(run: RunDir, losses, vals=()):
    lines = [
        dict(
            kind="train",
            step=i + 1,
            loss=x,
            lr=1e-3,
            tokens_per_sec=100.0,
            tokens_seen=(i + 1) * 256,
            dt_ms=10.0,
            time=1.0 + i,
            train_time_s=16.25 * (i + 1),
        )
        for i, x in enumerate(losses)
    ]
    lines += [dict(kind="eval", step=s, val_loss=v) for s, v in vals]
    lines.append(dict(kind="sample", step=len(losses), text='ROMEO: hi, "there"\n'))
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in lines))


def info_of(run: RunDir, state: str = "completed", **status) -> RunInfo:
    return RunInfo(run, {"state": state, **status}, state)


def test_rows_follow_the_column_order(tmp_path, small_text):
    cfg = make_tiny_config(small_text)
    run = RunDir.create(tmp_path, "r", cfg)
    write_metrics(run, [5.0, 4.0, 4.5], vals=[(2, 4.2)])
    row = run_table.summary_row(
        info_of(run, step=3, max_steps=12, created=50.0), metrics.summarize(run.metrics_path), cfg
    )
    assert list(row) == [c for c in run_table.COLUMNS if c in row]
    assert set(run_table.HYPERPARAMETER_COLUMNS) <= set(row)
    assert row["params (M)"] == round(param_count(cfg) / 1e6, 2)
    assert (row["best loss"], row["last loss"], row["best val step"]) == (4.0, 4.5, 2)
    assert row["training time"] == "49s"  # train_time_s of the last record, not wall time
    assert row["progress"] == pytest.approx(3 / 12)


def test_compare_rows_summarise_each_run(tmp_path, small_text):
    a = RunDir.create(tmp_path, "a", make_tiny_config(small_text))
    b = RunDir.create(tmp_path, "b", make_tiny_config(small_text))
    write_metrics(a, [5.0, 3.0, 3.5, 3.2], vals=[(2, 4.0), (4, 3.6)])
    rows = run_table.compare_rows([info_of(a), info_of(b, "running")])
    tokens, chars = val_size(str(small_text), 0.1)
    assert rows[0].pop("best val bpc") == pytest.approx(3.6 * tokens / chars / math.log(2))
    assert rows[0] == {
        "run": "a",
        "title": "",
        "state": "completed",
        "steps": 4,
        "final loss": 3.2,
        "best loss": 3.0,
        "best val loss": 3.6,
        "best val step": 4,
        "training time": "1m 05s",
        "tokens seen": 1024,
    }
    assert rows[1]["steps"] == 0 and rows[1]["final loss"] is None
    assert rows[1]["training time"] == ""
    assert rows[1]["best val bpc"] is None
    assert all(list(r) == list(run_table.COMPARE_COLUMNS) for r in rows[1:])


def test_best_val_in_bits_per_char_needs_the_data(tmp_path, small_text):
    cfg = make_tiny_config(small_text)
    assert run_table.val_bits_per_char(cfg, None) is None
    assert run_table.val_bits_per_char(None, 3.0) is None
    gone = make_tiny_config(tmp_path / "deleted.txt")  # a run whose text was deleted
    assert run_table.val_bits_per_char(gone, 3.0) is None


def test_title_and_note_cells(tmp_path, small_text):
    run = RunDir.create(tmp_path, "r", make_tiny_config(small_text))
    row = run_table.summary_row(info_of(run), metrics.RunSummary(), None, run.read_notes())
    assert (row["title"], row["note"]) == ("", "")  # the default title is the run id: no echo
    assert list(row)[:3] == ["name", "title", "state"]
    run.write_notes(title="wider *heads*", note="first line\nsecond line")
    rows = run_table.table_rows([info_of(run)], with_metrics=False)
    assert (rows[0]["title"], rows[0]["note"]) == ("wider *heads*", "first line …")
    assert run_table.compare_rows([info_of(run)])[0]["title"] == "wider *heads*"
    long = run_table.note_cells("r", {"title": "r", "note": "x" * 200})
    assert long == {"title": "", "note": "x" * run_table.NOTE_CELL + " …"}


def test_differing_hyperparameters(small_text):
    base = make_tiny_config(small_text)
    diff = run_table.differing_hyperparameters({"a": base, "b": base.replace(max_lr=1e-2)})
    assert diff == {"max_lr": {"a": base.max_lr, "b": 1e-2}}
    assert run_table.differing_hyperparameters({}) == {}


def test_summary_is_incremental_and_csv_has_every_record(tmp_path, small_text):
    run = RunDir.create(tmp_path, "r", make_tiny_config(small_text))
    write_metrics(run, [float(x) for x in range(5000, 0, -1)], vals=[(10, 2.0)])
    summary = metrics.cached_summary(run.metrics_path)
    assert (summary.last_step, summary.best_loss, summary.last_loss) == (5000, 1.0, 1.0)
    # Appends are read incrementally; a rewrite (a resume truncates) starts over.
    with open(run.metrics_path, "a") as f:
        f.write(json.dumps(dict(kind="train", step=5001, loss=0.5, tokens_seen=9)) + "\n")
    assert metrics.cached_summary(run.metrics_path).best_loss == 0.5
    write_metrics(run, [7.0])
    assert metrics.cached_summary(run.metrics_path).best_loss == 7.0

    write_metrics(run, [float(x) for x in range(5000, 0, -1)], vals=[(10, 2.0)])
    rows = list(csv.DictReader(io.StringIO(run_table.metrics_csv(run))))
    assert len(rows) == 5000 + 1 + 1  # every record, none thinned
    assert rows[-1]["text"] == 'ROMEO: hi, "there"\n' and rows[-2]["val_loss"] == "2.0"


def test_crashed_row_explains_itself(tmp_path, small_text):
    run = RunDir.create(tmp_path, "r", make_tiny_config(small_text))
    info = RunInfo(
        run,
        {"state": "running", "started": 100.0, "step": 7, "max_steps": 12, "created": 50.0},
        "crashed",
    )
    row = run_table.summary_row(info, metrics.RunSummary(), None)
    assert row["state"] == "crashed" and row["progress"] == pytest.approx(7 / 12)
    assert "process gone" in row["error"] and row["training time"] == ""  # no step recorded
    assert "model" not in row  # no config: no hyperparameter columns


def test_colours_are_stable_and_from_the_palette():
    assert run_color("abc") == run_color("abc") and run_color("abc") in PALETTE
    assert len({run_color(f"run-{i}") for i in range(50)}) == len(PALETTE)
