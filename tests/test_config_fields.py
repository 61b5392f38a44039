"""Config fields of every type: a bool field added to TrainConfig (here a test-only one, as a
per-eval measurement switch would be) works in config.json, the command line (--flag /
--no-flag), the New run form (a checkbox) and the tables, with no other change."""

import dataclasses
import json

import pytest
from streamlit.testing.v1 import AppTest

from core import config
from core.model.gpt import ModelConfig
from core.model.param_count import model_shape
from core.store import rundir
from core.train import cli
from dashboard import new_run_form, run_table


@dataclasses.dataclass
class FlagConfig(config.TrainConfig):
    measure_flag: bool = config._f(False, "logging", "a test-only switch: measure something")


@pytest.fixture
def with_flag(monkeypatch):
    """TrainConfig with one more field, a bool, wherever the code looks TrainConfig up."""
    for module in (config, rundir, new_run_form):
        monkeypatch.setattr(module, "TrainConfig", FlagConfig)
    return FlagConfig


def test_config_json_takes_a_bool_only_for_a_bool_field(with_flag):
    assert with_flag.from_dict({"measure_flag": True}).measure_flag is True
    with pytest.raises(config.ConfigError, match=r"measure_flag: must be bool \(got 1\)"):
        with_flag.from_dict({"measure_flag": 1})
    with pytest.raises(config.ConfigError, match=r"max_steps: must be int \(got True\)"):
        with_flag.from_dict({"max_steps": True})


@pytest.mark.parametrize(
    "flags, expected", [([], False), (["--measure-flag"], True), (["--no-measure-flag"], False)]
)
def test_the_command_line_sets_a_bool_field(with_flag, runs_dir, flags, expected):
    assert "--measure-flag, --no-measure-flag" in cli.build_parser().format_help()
    run, _ = cli.prepare(["--preset", "nano", "--runs-dir", str(runs_dir), *flags])
    cli.release_lock()
    assert json.loads((run.path / "config.json").read_text())["measure_flag"] is expected
    assert run.read_config().measure_flag is expected


def test_the_form_round_trips_a_bool_field(with_flag):
    base = config.preset("nano")
    values = new_run_form.widget_values(base.replace(measure_flag=True))
    assert values["nr_measure_flag"] is True  # a checkbox's value, not the text "True"
    cfg, problems = new_run_form.parse(values, "tinyshakespeare", base)
    assert cfg.measure_flag is True and problems == {}
    cfg, problems = new_run_form.parse({"nr_measure_flag": "yes"}, "tinyshakespeare", base)
    assert cfg.measure_flag is False and problems == {
        "measure_flag": "must be on or off (got 'yes')"
    }


def test_the_new_run_page_draws_a_bool_field_as_a_checkbox(with_flag, runs_dir):
    at = AppTest.from_file("../dashboard/app.py", default_timeout=30)
    at.run()
    at.query_params.update(preset="nano")
    at.switch_page("views/new_run.py").run()
    assert not at.exception, at.exception
    box = at.checkbox(key="nr_measure_flag")
    assert box.value is False and "measure something" in box.help
    box.check().run()
    assert not at.exception and at.session_state["nr_measure_flag"] is True


def test_tables_show_a_bool_field_that_differs(with_flag):
    a, b = config.preset("nano"), config.preset("nano").replace(measure_flag=True)
    diff = run_table.differing_hyperparameters({"a": a, "b": b})
    assert diff == {"measure_flag": {"a": False, "b": True}}


def test_the_model_shape_is_one_list():
    assert set(config.SHAPE_FIELDS) <= {f.name for f in dataclasses.fields(config.TrainConfig)}
    assert {f.name for f in dataclasses.fields(ModelConfig)} == {*config.SHAPE_FIELDS, "dropout"}
    assert model_shape(config.preset("nano")).keys() == set(config.SHAPE_FIELDS)
    assert new_run_form.SHAPE_FIELDS is config.SHAPE_FIELDS
