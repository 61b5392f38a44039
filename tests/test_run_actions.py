"""dashboard.run_actions: one Stop/Resume control for the Runs and Live pages, the same texts and
the same effect on both; and dashboard.state as the only writer of the URL, so one page's view
never deletes another page's parameters."""

import shutil
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.store.rundir import RunDir
from dashboard import run_actions


def _app(runs_dir, monkeypatch, **query) -> AppTest:
    monkeypatch.setenv("GPT_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file("../dashboard/app.py", default_timeout=60)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def _live(at: AppTest) -> AppTest:
    at.switch_page("views/live.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("case", ["completed", "no checkpoint", "damaged config"])
def test_resume_gives_the_same_reason_on_both_pages(case, runs_dir, trained_run, monkeypatch):
    shutil.copytree(trained_run.path, runs_dir / "r")
    run = RunDir(runs_dir / "r")
    if case == "no checkpoint":
        run.write_status(state="stopped", step=3)
        shutil.rmtree(run.checkpoint_dir)
    expected = run_actions.resume_reason(run)
    at = _app(runs_dir, monkeypatch, run="r")
    on_runs = at.button(key="runs_resume")
    if case == "damaged config":  # the Live page leaves such a run out: the Runs page says why
        (run.path / "config.json").write_text("[]")
        at.run()
        on_runs = at.button(key="runs_resume")
        assert on_runs.disabled and on_runs.help == run_actions.resume_reason(run)[1]
        assert on_runs.help.startswith("Cannot read the run")
        return
    on_live = _live(at).button(key="live_resume_r")
    assert on_runs.disabled and on_live.disabled and not expected[0]
    assert on_runs.help == on_live.help == expected[1] and on_runs.help[0].isupper()


def test_stop_is_the_same_control_on_both_pages(runs_dir, tiny_config, monkeypatch, sleeper):
    run = RunDir.create(runs_dir, "busy", tiny_config.replace(max_steps=100))
    run.write_status(state="running", pid=sleeper.pid, started=time.time(), step=3)
    at = _app(runs_dir, monkeypatch, run="busy")
    on_runs = at.button(key="runs_stop")
    assert not on_runs.disabled and on_runs.help == run_actions.STOP_HELP
    assert at.button(key="runs_resume").help == run_actions.resume_reason(run)[1]
    on_live = _live(at).button(key="live_stop_busy")
    assert not on_live.disabled and on_live.help == run_actions.STOP_HELP
    assert at.button(key="live_resume_busy").help == run_actions.resume_reason(run)[1]
    on_live.click().run()
    assert run.stop_requested() and not at.exception
    stopping = _live(at).button(key="live_stop_busy")  # "stopping" at once, Stop disabled
    assert stopping.disabled and stopping.label == "Stopping..."


def test_a_stopped_run_resumes_from_either_page(runs_dir, tiny_config, monkeypatch):
    from core.runs import launcher

    run = RunDir.create(runs_dir, "r", tiny_config)
    run.write_status(state="stopped", step=5)
    run.checkpoint_dir.mkdir()
    run.checkpoint_path(5).write_bytes(b"")  # a checkpoint before max_steps: resumable
    resumed = []
    monkeypatch.setattr(launcher, "resume", lambda run, max_steps=None: resumed.append(run.run_id))
    at = _app(runs_dir, monkeypatch, run="r")
    assert not at.button(key="runs_resume").disabled
    at.button(key="runs_resume").click().run()
    assert not _live(at).button(key="live_resume_r").disabled
    at.button(key="live_resume_r").click().run()
    assert resumed == ["r", "r"] and not at.exception
    assert any("Resumed r" in t.value for t in at.toast)


def test_the_live_view_in_the_url_leaves_other_parameters_alone(runs_dir, tiny_config, monkeypatch):
    RunDir.create(runs_dir, "one", tiny_config).write_status(state="completed")
    at = _app(runs_dir, monkeypatch)
    at.query_params["elsewhere"] = "kept"  # a parameter the Live page does not own
    _live(at)
    assert at.query_params["elsewhere"] == "kept"
    assert at.query_params["runs"] == "one" and at.query_params["x"] == "step"
    at.pills(key="live_show").set_value([]).run()
    assert at.query_params["show"] == "none" and at.query_params["elsewhere"] == "kept"
    fresh = AppTest.from_file("../dashboard/app.py", default_timeout=60)
    fresh.run()
    fresh.query_params.update(runs="one", show="none")
    _live(fresh)
    assert fresh.pills(key="live_show").value == []  # a reload keeps every overlay off
