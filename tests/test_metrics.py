"""core.store.metrics: the record format, the incremental reader, the summary and the CSV export."""

import json
import threading

import numpy as np
import pytest

from core.store import metrics
from core.store.metrics import KINDS, MetricsLog, MetricsReader, RunSummary, SummaryCache


def _lines(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def test_every_kind_round_trips_through_the_writer_and_reader(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    examples = {
        "train": dict(
            loss=2.5,
            lr=1e-3,
            grad_norm=0.7,
            dt_ms=12.0,
            tokens_per_sec=900.0,
            tokens_seen=512,
            mfu=0.1,
            peak_mem_mb=300.0,
            train_time_s=1.5,
            batch_checksum="ab12",
        ),
        "eval": dict(val_loss=2.9, copy_rate=0.25, longest_copy=12, copy_min_len=8),
        "sample": dict(prompt="ROMEO:", text="To be"),
        "start": dict(
            resumed=True,
            world_size=2,
            max_steps=100,
            peak_flops=1.4e11,
            peak_source="fp32 matmul measured here",
        ),
        "system": dict(cpu_percent=180.0, rss_mb=400.0, gpu_mem_mb=1.0, gpu_util=50.0),
        "dynamics": dict(
            head_scores=[0.1, 0.9],
            n_layer=1,
            n_head=2,
            repeat_first_loss=9.0,
            repeat_second_loss=4.0,
            probe_loss=5.0,
            context_icl=-0.2,
            train_exact=0.3,
            val_exact=0.2,
            unigram_loss=6.0,
            bigram_loss=5.5,
            trigram_loss=5.2,
            bigram_kl=1.5,
            probe_s=0.4,
        ),
        "extraction": dict(k=64, prefix_len=32, suffix_len=32, extracted=0.5, offsets=[0, 64]),
    }
    assert set(examples) == set(KINDS)  # a new kind needs an example here
    written = [log.write(kind, 3, 1000.0, **values) for kind, values in examples.items()]
    log.close()
    assert MetricsReader(path).read_new() == written


def test_the_writer_refuses_undeclared_fields(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    with pytest.raises(AssertionError, match="not declared"):
        log.write("eval", 1, 0.0, accuracy=0.5)
    log.close()


def test_unknown_kinds_are_kept_and_ignored_by_the_summary(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        _lines(
            {"kind": "train", "step": 1, "loss": 3.0},
            {"kind": "telemetry-v9", "step": 1, "whatever": [1, 2]},
            {"kind": "eval", "step": 1, "val_loss": 3.5},
        )
    )
    records = metrics.read_all(path)
    assert [r["kind"] for r in records] == ["train", "telemetry-v9", "eval"]
    s = RunSummary().update(records)
    assert (s.last_loss, s.best_val_loss) == (3.0, 3.5)
    assert "whatever" in metrics.to_csv(records).splitlines()[0]


@pytest.mark.parametrize(
    "line",
    [
        "123",
        "[1, 2]",
        "null",
        '"text"',
        '{"step": 1}',
        '{"kind": "train", "step": "abc", "loss": 1}',
        '{"kind": "train", "step": true, "loss": 1}',
        '{"kind": 5, "step": 1}',
        "\x00garbage",
        '{"kind": "train", "st',
    ],
)
def test_malformed_lines_are_skipped(tmp_path, line):
    path = tmp_path / "metrics.jsonl"
    good = {"kind": "train", "step": 2, "loss": 1.0}
    path.write_text(_lines(line, good))
    assert metrics.read_all(path) == [good]


def test_fields_of_the_wrong_type_are_dropped_not_fatal():
    r = metrics.clean(
        {
            "kind": "train",
            "step": 4.0,
            "loss": "abc",
            "lr": None,
            "dt_ms": True,
            "tokens_seen": 64,
            "time": "x",
        }
    )
    assert r == {"kind": "train", "step": 4, "tokens_seen": 64}
    s = RunSummary().update([r])  # no loss: nothing to fold, no error
    assert s.last_loss is None


def test_reader_is_incremental_and_tolerates_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        '{"kind": "eval", "step": 1}\n{"kind": "eval", "step": 2}\n{"kind": "eval", "st'
    )
    reader = MetricsReader(path)
    assert [r["step"] for r in reader.read_new()] == [1, 2]
    assert reader.read_new() == []
    with open(path, "a") as f:
        f.write('ep": 3, "val_loss": 1.5}\n')
    assert reader.read_new() == [{"kind": "eval", "step": 3, "val_loss": 1.5}]
    assert MetricsReader(tmp_path / "none.jsonl").read_new() == []


def test_reader_starts_over_when_a_resume_replaces_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(*({"kind": "train", "step": s, "loss": 9.0} for s in range(1, 21))))
    reader = MetricsReader(path)
    assert len(reader.read_new()) == 20
    metrics.truncate_after(path, 10)  # what a resume from step 10 does
    with open(path, "a") as f:  # and the resumed engine soon writes past the old end
        f.write(_lines(*({"kind": "train", "step": s, "loss": 1.0} for s in range(11, 41))))
    chunk, restarted = reader.read_new_bytes()
    assert restarted
    records = metrics.parse_records(chunk)
    assert [r["step"] for r in records] == list(range(1, 41))
    assert all(r["loss"] == 1.0 for r in records if r["step"] > 10)


def test_summary_sums_training_time_over_segments_and_finds_best_val():
    records = [
        {"kind": "start", "step": 0, "resumed": False},
        *(
            {
                "kind": "train",
                "step": s,
                "loss": 10.0 - s,
                "dt_ms": 1000.0,
                "train_time_s": float(s),
                "tokens_seen": 100 * s,
                "tokens_per_sec": 100.0,
            }
            for s in range(1, 6)
        ),
        {"kind": "eval", "step": 5, "val_loss": 6.0},
        {"kind": "start", "step": 5, "resumed": True},  # stopped at 5, resumed an hour later
        *(
            {
                "kind": "train",
                "step": s,
                "loss": 10.0 - s,
                "dt_ms": 1000.0,
                "train_time_s": float(s),
                "tokens_seen": 100 * s,
                "tokens_per_sec": 100.0,
            }
            for s in range(6, 9)
        ),
        {"kind": "eval", "step": 8, "val_loss": 6.5, "copy_rate": 0.3, "longest_copy": 14},
    ]
    s = RunSummary().update(records)
    assert s.train_time_s == 8.0 and s.last_step == 8 and s.tokens_seen == 800
    assert (s.best_val_loss, s.best_val_step, s.last_val_loss) == (6.0, 5, 6.5)
    assert (s.first_loss, s.last_loss, s.best_loss) == (9.0, 2.0, 2.0)
    assert s.segment_starts == [0, 5]
    assert s.timed_steps == 6 and s.mean_step_ms == 1000.0  # each segment's first step left out
    assert (s.copy_rate, s.longest_copy) == (0.3, 14)
    assert RunSummary.from_dict(s.to_dict()) == s


def test_summary_of_a_run_written_before_train_time_was_recorded():
    old = [{"kind": "train", "step": s, "loss": 5.0, "dt_ms": 500.0} for s in (1, 2, 3)]
    assert RunSummary().update(old).train_time_s == 1.5


def test_summary_cache_is_consistent_under_threads(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("")
    cache = SummaryCache()
    done = threading.Event()

    def writer():
        with open(path, "a") as f:
            for s in range(1, 2001):
                f.write(
                    json.dumps({"kind": "train", "step": s, "loss": 1.0, "tokens_seen": s}) + "\n"
                )
                f.flush()
        done.set()

    def reader():
        while not done.is_set():
            cache.get(path)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = cache.get(path)
    assert s.last_step == 2000 and s.tokens_seen == 2000


def test_csv_export_has_one_row_per_record():
    records = [
        {"kind": "train", "step": 1, "loss": 2.0},
        {"kind": "sample", "step": 1, "text": "a,b\nc"},
    ]
    text = metrics.to_csv(records)
    assert text.splitlines()[0] == "kind,step,loss,text"
    assert '"a,b\nc"' in text


def test_csv_gives_the_time_as_iso_beside_epoch_seconds():
    text = metrics.to_csv([{"kind": "train", "step": 1, "time": 1_796_290_664.25, "loss": 2.0}])
    header, row = text.splitlines()
    assert header == "kind,step,time,time_utc,loss"
    assert row.split(",")[3] == "2026-12-03T09:37:44.250+00:00"


def test_first_start_reads_the_peak_from_the_head(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        _lines(
            {"kind": "start", "step": 0, "peak_flops": 4.5e10, "peak_source": "measured"},
            *({"kind": "train", "step": s, "loss": 1.0} for s in range(1, 2000)),
            {"kind": "start", "step": 2000, "peak_flops": 1.0, "peak_source": "later"},
        )
    )
    assert metrics.first_start(path)["peak_flops"] == 4.5e10
    assert metrics.first_start(tmp_path / "missing.jsonl") is None


def test_last_step_time_reads_the_tail(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        _lines(
            *({"kind": "train", "step": s, "loss": 1.0, "dt_ms": float(s)} for s in range(1, 500)),
            {"kind": "eval", "step": 499, "val_loss": 1.0},
        )
    )
    assert metrics.last_step_time_ms(path) == 499.0
    assert metrics.last_step_time_ms(tmp_path / "none") == 0.0


# --- the columnar reader -------------------------------------------------------------------


def _bytes(records: list) -> bytes:
    return _lines(*records).encode()


def _mixed_records(n: int) -> list[dict]:
    out = [dict(kind="start", step=0, time=0.0, resumed=False, world_size=1)]
    for step in range(1, n + 1):
        out.append(dict(kind="train", step=step, time=step, loss=5.0 - step / n, dt_ms=2.0))
        if step % 50 == 0:
            out.append(dict(kind="eval", step=step, time=step, val_loss=6.0 - step / n))
            out.append(dict(kind="sample", step=step, time=step, prompt="A", text=f"s{step}"))
            out.append(dict(kind="future_kind", step=step, anything=[1, 2]))
    return out


def _assert_same_columns(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for kind in a:
        assert a[kind].keys() == b[kind].keys(), kind
        for name, column in a[kind].items():
            if isinstance(column, list):
                assert column == b[kind][name], (kind, name)
            else:
                np.testing.assert_array_equal(column, b[kind][name], err_msg=f"{kind}.{name}")


def test_bulk_and_careful_columns_agree_and_skip_unknown_kinds():
    chunk = _bytes(_mixed_records(2000))
    bulk = metrics.bulk_columns(chunk, metrics.every_field())
    assert bulk is not None  # the fast path took it: the unknown kind did not stop it
    careful = metrics.record_columns(metrics.parse_records(chunk), metrics.every_field())
    _assert_same_columns(bulk, careful)
    assert "future_kind" not in bulk
    assert bulk["train"]["step"].tolist() == list(range(1, 2001))
    assert bulk["sample"]["text"][:2] == ["s50", "s100"]
    assert bulk["start"]["resumed"].tolist() == [0.0] and np.isnan(bulk["train"]["lr"]).all()
    # `row` puts the kinds back in file order: the start record came first.
    assert bulk["start"]["row"].tolist() == [0] and bulk["train"]["row"][0] == 1


@pytest.mark.parametrize(
    "bad", [b'{"kind": "train", "st', b"[1, 2]", b'{"kind": "train", "step": "x"}', b"123"]
)
def test_torn_and_malformed_lines_are_skipped_by_the_columnar_reader(monkeypatch, bad):
    records = _mixed_records(300)
    good = _bytes(records)
    cut = good.index(b"\n", len(good) // 2) + 1
    chunk = good[:cut] + bad + b"\n" + good[cut:]
    assert metrics.bulk_columns(chunk, metrics.every_field()) is None  # declines: careful path
    monkeypatch.setattr(metrics, "BULK_MIN_BYTES", 0)
    columns = metrics.read_columns(chunk)
    _assert_same_columns(columns, metrics.read_columns(good))
    assert len(columns["train"]["step"]) == 300


def test_read_columns_reads_only_the_fields_asked_for():
    columns = metrics.read_columns(_bytes(_mixed_records(100)), {"eval": ("val_loss",)})
    assert list(columns) == ["eval"]
    assert sorted(columns["eval"]) == ["row", "step", "time", "val_loss"]


def test_series_fields_are_the_numbers_and_flags_of_a_kind():
    assert "batch_checksum" not in metrics.series_fields("train")
    assert "loss" in metrics.series_fields("train") and "mfu" in metrics.series_fields("train")
    assert metrics.series_fields("start")[0] == "resumed"
    assert metrics.series_fields("sample") == ()
