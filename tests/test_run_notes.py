"""A run's display title and free-text note (notes.json in the run directory)."""

import threading

import pytest
from conftest import make_tiny_config

from core.config import ConfigError
from core.store.rundir import RunDir


def test_notes_default_to_the_run_id_and_keep_what_is_not_given(runs_dir, small_text):
    run = RunDir.create(runs_dir, "r1", make_tiny_config(small_text))
    assert run.read_notes() == {"title": "r1", "note": ""}
    stored = run.write_notes(title="  Baseline, lr 3e-3 ✓ ")
    assert stored == {"title": "Baseline, lr 3e-3 ✓", "note": ""}
    run.write_notes(note="first try\nloss plateaus at 5")
    assert RunDir(run.path).read_notes() == {
        "title": "Baseline, lr 3e-3 ✓",
        "note": "first try\nloss plateaus at 5",
    }
    run.write_notes(note="")
    assert run.read_notes()["note"] == "" and run.run_id == "r1"
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []  # no temp left


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(title=""), "title: give 1-80 characters"),
        (dict(title="   "), "title: give 1-80 characters"),
        (dict(title="x" * 81), "title: use at most 80 printable characters"),
        (dict(title="two\nlines"), "title: use at most 80 printable characters"),
        (dict(title=5), "title: give 1-80 characters"),
        (dict(note="y" * 2001), "note: use at most 2000 characters"),
        (dict(note=["a list"]), "note: use at most 2000 characters"),
    ],
)
def test_invalid_notes_are_refused_and_change_nothing(runs_dir, small_text, kwargs, message):
    run = RunDir.create(runs_dir, "r1", make_tiny_config(small_text))
    run.write_notes(title="kept", note="kept too")
    with pytest.raises(ConfigError, match=message):
        run.write_notes(**kwargs)
    assert run.read_notes() == {"title": "kept", "note": "kept too"}
    run.write_notes(title="x" * 80, note="y" * 2000)  # the limits themselves are fine


def test_unreadable_notes_and_missing_runs(runs_dir, small_text):
    run = RunDir.create(runs_dir, "r1", make_tiny_config(small_text))
    (run.path / "notes.json").write_text("{torn")
    assert run.read_notes() == {"title": "r1", "note": ""}
    (run.path / "notes.json").write_text('{"title": 3, "note": null}')
    assert run.read_notes() == {"title": "r1", "note": ""}
    with pytest.raises(ConfigError, match="no run at"):
        RunDir(runs_dir / "gone").write_notes(title="x")


def test_concurrent_writers_lose_nothing(runs_dir, small_text):
    run = RunDir.create(runs_dir, "r1", make_tiny_config(small_text))
    barrier = threading.Barrier(2)

    def write(**kwargs):
        barrier.wait()
        for _ in range(50):
            run.write_notes(**kwargs)

    threads = [
        threading.Thread(target=write, kwargs=dict(title="T")),
        threading.Thread(target=write, kwargs=dict(note="N")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert run.read_notes() == {"title": "T", "note": "N"}
