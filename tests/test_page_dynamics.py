"""The training-dynamics views through AppTest: the Live page's row (induction, ICL,
memorization, the marker on the loss chart) and Inspect's "How it learned" (head heatmap,
per-token curves, memorization and extraction), on the memorized run, a copy where an induction
head formed, and a run made before these records existed."""

import json
import shutil

import pytest
from inspect_runs import make_old_run, memorized_run

from core.store import metrics
from core.store.rundir import RunDir


@pytest.fixture
def runs(runs_dir):
    """The memorized run, a copy of it with a head that crossed the threshold, an old run."""
    source = memorized_run()
    shutil.copytree(source.path, runs_dir / "memorized")
    formed = RunDir(shutil.copytree(source.path, runs_dir / "formed"))
    last = [r for r in metrics.read_all(formed.metrics_path) if r["kind"] == "dynamics"][-1]
    scores = [0.05] * len(last["head_scores"])
    scores[-1] = 0.93
    with open(formed.metrics_path, "a") as f:
        f.write(json.dumps({**last, "head_scores": scores}) + "\n")
    make_old_run(source, runs_dir)
    return runs_dir


def figures(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def titles(at) -> list[str]:
    return [f["layout"].get("title", {}).get("text", "") for f in figures(at)]


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


def live(open_app, runs_dir, run_id):
    at = open_app("views/live.py", runs_dir)
    at.multiselect(key="live_runs").set_value([run_id]).run()
    assert not at.exception, at.exception
    return at


def test_live_row_beside_the_loss(open_app, runs):
    at = live(open_app, runs, "memorized")
    assert {"Induction heads", "In-context learning", "Memorization", "Beyond n-grams"} <= set(
        titles(at)
    )
    text = captions(at)
    assert "Olsson et al. 2022" in text and "Tirumala et al. 2022" in text
    assert "Belrose et al. 2024" in text
    ngram = next(
        f for f in figures(at) if f["layout"].get("title", {}).get("text") == "Beyond n-grams"
    )
    assert [t["name"] for t in ngram["data"]] == ["network (val probe)", "KL to bigram"]
    lines = [a.get("text", "") for a in ngram["layout"].get("annotations", [])]
    assert any(t.startswith("bigram ") for t in lines), lines
    memo = next(
        f for f in figures(at) if f["layout"].get("title", {}).get("text") == "Memorization"
    )
    assert [t["name"] for t in memo["data"]][:2] == [
        "exact memorization, train",
        "exact memorization, val",
    ]


def test_live_marks_the_induction_head_on_the_loss_chart(open_app, runs):
    at = live(open_app, runs, "formed")
    loss = next(f for f in figures(at) if f["layout"].get("title", {}).get("text", "") == "Loss")
    notes = [a.get("text", "") for a in loss["layout"].get("annotations", [])]
    assert any("induction head: layer 2, head 2, step 120" in n for n in notes), notes
    assert "an induction head formed: layer 2, head 2, step 120" in captions(at)


def test_live_old_run_says_it_has_no_records(open_app, runs):
    at = live(open_app, runs, "old")
    assert "No training-dynamics records in old" in captions(at)
    assert "Induction heads" not in titles(at)


def inspect(open_app, runs_dir, run_id):
    at = open_app("views/inspect.py", runs_dir)
    at.selectbox(key="ins_run").set_value(run_id).run()
    at.radio(key="ins_view").set_value("How it learned").run()
    assert not at.exception, at.exception
    return at


def test_inspect_how_it_learned(open_app, runs):
    at = inspect(open_app, runs, "memorized")
    text = captions(at)
    assert "prefix-matching score at every eval (Olsson et al. 2022" in text
    assert "Chang, Tu and Bergen 2024" in text and "Tirumala et al. 2022" in text
    heads = next(f for f in figures(at) if f["data"][0]["type"] == "heatmap")
    assert len(heads["data"][0]["y"]) == 4  # 2 layers x 2 heads
    at.number_input(key="ins_tc_token").set_value(5).run()
    assert any(t.startswith("Token #5") for t in titles(at))
    assert "At the end of the run (step 120)" in text
    expander = [e for e in at.expander if "came out verbatim" in e.label]
    assert expander, "the memorized run's extraction found no verbatim passage"
    assert "tiny.txt line" in str(expander[0].get("html")[0].proto.body)


def test_inspect_extraction_on_demand(open_app, runs):
    at = inspect(open_app, runs, "memorized")
    at.button(key="ins_extract").click().run()
    assert "This checkpoint (" in captions(at)


def test_inspect_formed_and_old(open_app, runs):
    at = inspect(open_app, runs, "formed")
    assert "An induction head: layer 2, head 2, step 120 (score 0.93)." in [
        s.value for s in at.success
    ]
    at = inspect(open_app, runs, "old")
    infos = [i.value for i in at.info]
    assert any("has no training-dynamics records" in i for i in infos)
    assert any("has no per-token curves" in i for i in infos)
