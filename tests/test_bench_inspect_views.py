"""bench/inspect_views.py runs and reports every view; timings are never asserted."""

from bench import common, inspect_views


def test_inspect_views_reports_every_view(shakespeare_path, capsys):
    assert inspect_views.main(["--models", "nano", "--repeats", "1"]) == 0
    record = common.last_json_line(capsys.readouterr().out)
    assert record["bench"] == "inspect_views" and record["text_tokens"] == 256
    assert {r["view"] for r in record["rows"]} == {
        "surprise",
        "diff",
        "logit_lens",
        "attention",
        "head_scores",
        "batch_data",
        "batch_checksum",
        "batch",
    }
    assert all(r["seconds"] > 0 and r["target_s"] == 1.0 for r in record["rows"])
    assert isinstance(record["all_met"], bool) and record["machine"]["load_avg_1_5_15"]
