"""Faults and bad input (issue 10): what a stop, a kill, a reused pid, a full disk, a damaged file,
a second writer or a hostile name each cost. Each test names the item it covers."""

import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, WAIT_S, make_tiny_config, wait_for

from core.config import ConfigError, check_run_id
from core.inspect.model_info import training_results
from core.runs import launcher
from core.runs.preflight import check_runnable
from core.store import checkpoint, metrics
from core.store.rundir import RunDir, process_start_time
from core.train import cli, engine, estimate
from core.train.distributed import Dist


def write_raw_status(run: RunDir, status) -> None:
    """status.json exactly as given (a test forging a heartbeat or a damaged file)."""
    (run.path / "status.json").write_text(status if isinstance(status, str) else json.dumps(status))


def trained(runs_dir: Path, name: str, small_text, **overrides) -> RunDir:
    """A completed tiny run with a checkpoint, trained in this process."""
    cfg = make_tiny_config(
        small_text, **{"max_steps": 4, "eval_interval": 0, "checkpoint_interval": 0, **overrides}
    )
    run = RunDir.create(runs_dir, name, cfg)
    assert engine.train(str(run.path)) == "completed"
    return run


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --- 1. a stop never loses the steps since the last checkpoint ------------------------------


def test_stop_waits_for_a_final_eval_longer_than_the_stop_timeout(
    runs_dir, small_text, monkeypatch
):
    # The old stop signalled after STOP_TIMEOUT_S, then SIGKILLed in the final eval: 'failed',
    # no checkpoint. Now it waits while the engine's heartbeat lives.
    monkeypatch.setattr(launcher, "STOP_TIMEOUT_S", 0.5)
    cfg = make_tiny_config(
        small_text,
        max_steps=100_000,
        eval_interval=100_000,
        eval_batches=400,
        checkpoint_interval=100_000,
    )
    run = RunDir(runs_dir / launcher.launch(cfg, runs_dir, "slow-eval"))
    wait_for(
        lambda: (
            run.read_status().get("state") == "running" and run.read_status().get("step", 0) >= 3
        ),
        "a few steps",
    )
    t0 = time.monotonic()
    assert launcher.stop(run, wait=True) == "stopped"
    assert time.monotonic() - t0 > 1.0  # the final eval outlasted both old timeouts
    status = run.read_status()
    assert status["reason"] == "stop requested" and not status.get("error")
    assert run.checkpoints()[-1][0] == status["step"] >= 3  # every step kept
    assert "val loss" in run.log_path.read_text()


# --- 2. a reused pid is not the run --------------------------------------------------------


@pytest.fixture
def stranger():
    """A live process that is not ours, in its own session (as a reused pid would be)."""
    proc = subprocess.Popen(["setsid", "sleep", "1000"])
    wait_for(lambda: process_start_time(proc.pid), "the stranger to start", timeout=10)
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize(
    "forged", ["no start time, a day-old heartbeat", "another start time, a 20 s old heartbeat"]
)
def test_a_strangers_pid_shows_crashed_and_is_never_signalled(
    runs_dir, small_text, stranger, forged
):
    run = trained(runs_dir, "reused", small_text)
    status = {
        **run.read_status(),
        "state": "running",
        "pid": stranger.pid,
        "launcher_pid": stranger.pid,
        "updated": time.time() - 86400,
    }
    if forged.startswith("another"):
        start = process_start_time(stranger.pid)
        status.update(pid_start=start + 1, launcher_pid_start=start + 1, updated=time.time() - 20)
    write_raw_status(run, status)
    assert {i.run_id: i.state for i in launcher.list_runs(runs_dir)} == {"reused": "crashed"}
    assert launcher.stop(run, timeout=0.1) == "crashed"
    time.sleep(0.3)
    assert stranger.poll() is None  # the stranger lives
    launcher.resume(run, max_steps=6)  # allowed: the run is not running
    wait_for(lambda: launcher.state_of(run) not in ("queued", "running"), "the resumed run")
    assert run.read_status()["state"] == "completed" and run.read_status()["step"] == 6
    wait_for(lambda: not run.is_locked(), "the engine process to exit")
    launcher.delete(run)
    assert not run.path.exists() and stranger.poll() is None


def test_the_engine_and_launcher_record_start_times(runs_dir, small_text):
    run = trained(runs_dir, "started", small_text)
    assert run.read_status()["pid_start"] == process_start_time(os.getpid())
    launcher.resume(run, max_steps=5)
    status = run.read_status()
    assert status["launcher_pid_start"] == process_start_time(status["launcher_pid"])
    wait_for(lambda: launcher.state_of(run) == "completed", "the resumed run")


# --- 3. only folders that are recognisably runs ---------------------------------------------


def test_a_project_folder_is_neither_listed_nor_deleted(runs_dir, small_text, capsys):
    project = runs_dir / "myproject"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text(json.dumps({"name": "myproject", "version": 2}))
    (project / "src" / "main.py").write_text("print('mine')\n")
    RunDir.create(runs_dir, "real", make_tiny_config(small_text))
    assert [i.run_id for i in launcher.list_runs(runs_dir)] == ["real"]
    with pytest.raises(ConfigError, match="not a run directory"):
        launcher.delete(project)
    with pytest.raises(ConfigError, match="not a run directory"):
        launcher.resume(project)
    assert cli.main(["--run-dir", str(project), "--resume"]) == 2
    assert "not a run directory" in one_line_error(capsys)
    assert (project / "src" / "main.py").read_text() == "print('mine')\n"


def test_delete_removes_run_files_only_and_refuses_a_folder_with_more(runs_dir, small_text):
    run = trained(runs_dir, "mixed", small_text)
    (run.path / "thesis.tex").write_text("years of work")
    (run.path / "src").mkdir()
    with pytest.raises(ConfigError, match=r"not part of a run \(src, thesis.tex\)"):
        launcher.delete(run)
    assert run.latest_checkpoint().is_file()  # nothing removed
    (run.path / "thesis.tex").unlink()
    (run.path / "src").rmdir()
    (run.path / f".status.json.{os.getpid()}.tmp").write_text("")  # a crash's leftover
    launcher.delete(run)
    assert not run.path.exists()


# --- 4. a damaged file damages one row -----------------------------------------------------

DAMAGED_STATUS = {
    "list": "[]",
    "null": "null",
    "garbage": "{not json",
    "number": "123",
    "empty": "",
    "bad heartbeat": '{"state": "running", "updated": "x"}',
    "bad pid": '{"state": "running", "pid": "12"}',
}


@pytest.mark.parametrize("name", list(DAMAGED_STATUS))
def test_a_damaged_status_damages_its_row_only(runs_dir, small_text, name):
    good = trained(runs_dir, "good", small_text)
    bad = RunDir.create(runs_dir, "bad", make_tiny_config(small_text))
    write_raw_status(bad, DAMAGED_STATUS[name])
    infos = {i.run_id: i for i in launcher.list_runs(runs_dir)}
    assert infos["good"].state == "completed" and infos["bad"].state == "damaged"
    assert "status.json" in infos["bad"].status["error"]
    assert launcher.state_of(bad) == "damaged" and good.read_status()["state"] == "completed"
    with pytest.raises(ConfigError, match="no checkpoint"):
        launcher.resume(bad)
    bad.write_status(state="queued")  # a damaged file is replaced whole, not merged
    assert bad.read_status()["state"] == "queued"


def _config_values(small_text) -> dict:
    return {"schema_version": 1, **make_tiny_config(small_text).to_dict()}


DAMAGED_CONFIG = {
    "null": lambda v: "null",
    "list": lambda v: "[1, 2]",
    "garbage": lambda v: "{oops",
    "not UTF-8": lambda v: b"\x80\x81{}",
    "wrong type": lambda v: json.dumps({**v, "n_layer": "12"}),
    "missing fields": lambda v: json.dumps(
        {k: x for k, x in v.items() if k not in ("n_layer", "n_embd")}
    ),
}


@pytest.mark.parametrize("name", list(DAMAGED_CONFIG))
def test_a_damaged_config_damages_its_row_only(runs_dir, small_text, name, capsys):
    trained(runs_dir, "good", small_text)  # a healthy neighbour
    bad = trained(runs_dir, "bad", small_text)
    text = DAMAGED_CONFIG[name](_config_values(small_text))
    path = bad.path / "config.json"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    infos = {i.run_id: i for i in launcher.list_runs(runs_dir)}
    assert infos["good"].state == "completed" and infos["bad"].state == "damaged"
    error = infos["bad"].status["error"]
    assert "config.json" in error
    if name == "missing fields":  # never filled with defaults: named instead
        assert "lacks field(s) n_layer, n_embd" in error
    if name == "wrong type":
        assert "n_layer: must be int" in error
    assert cli.main(["--run-dir", str(bad.path), "--resume"]) == 2
    assert "config.json" in one_line_error(capsys)
    with pytest.raises(ConfigError, match="config.json"):
        launcher.resume(bad)
    launcher.delete(bad)  # a damaged run can still be removed
    assert [i.run_id for i in launcher.list_runs(runs_dir)] == ["good"]


def test_pages_keep_working_beside_a_damaged_run(runs_dir, small_text, open_app):
    good = trained(runs_dir, "good", small_text)
    (trained(runs_dir, "badconfig", small_text).path / "config.json").write_text("null")
    write_raw_status(RunDir.create(runs_dir, "badstatus", make_tiny_config(small_text)), "[]")
    at = open_app("views/runs.py", runs_dir)
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["good", "state"] == "completed"
    for name, file in (("badconfig", "config.json"), ("badstatus", "status.json")):
        assert table.loc[name, "state"] == "damaged" and file in table.loc[name, "error"]
    for view in ("views/live.py", "views/model_info.py", "views/playground.py"):
        at = open_app(view, runs_dir)
        assert not at.exception, (view, at.exception)
    at = open_app("views/live.py", runs_dir)
    assert good.run_id in at.multiselect(key="live_runs").options


# --- 5. a full disk --------------------------------------------------------------------------


@contextmanager
def small_disk(where: Path, size: str):
    """A tmpfs of the given size mounted at where (root only); the test skips elsewhere."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(
            f"cannot mount a {size} tmpfs here ({done.stderr.strip()}): run as root "
            "to test a full disk"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path) -> None:
    """Write a filler file until the disk refuses more."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    assert os.statvfs(disk).f_bavail == 0


def test_a_full_disk_ends_the_run_failed_and_keeps_what_was_saved(tmp_path, small_text, capsys):
    # A checkpoint here is ~10 MB: the first fits on 16 MB, the second does not.
    cfg = make_tiny_config(
        small_text,
        n_embd=16,
        max_steps=12,
        eval_interval=0,
        checkpoint_interval=5,
        keep_checkpoints=2,
    )
    with small_disk(tmp_path / "disk", "16m") as disk:
        run = RunDir.create(disk, "full", cfg)
        assert engine.train(str(run.path)) == "failed"
        status = run.read_status()
        assert status["state"] == "failed" and status["reason"] == "error"
        assert re.search(
            r"no space left on device .*\(needed ~\d+ MB, free \d+ MB\)", status["error"]
        )
        assert not [p.name for p in run.path.rglob("*") if ".tmp" in p.name]
        ((step, path),) = run.checkpoints()
        assert step == 5 and checkpoint.load(path).step == 5  # the earlier checkpoint loads
        steps = [r["step"] for r in metrics.read_all(run.metrics_path) if r["kind"] == "train"]
        assert steps == list(range(1, 11))  # every step up to the failed save
        # The pre-launch estimate of one checkpoint matches the file written.
        one = estimate.checkpoint_disk_mb(cfg.replace(max_steps=5, keep_checkpoints=0))
        assert one == pytest.approx(path.stat().st_size / 2**20, rel=0.05)


def test_a_disk_too_full_for_a_status_temp_file_still_records_failed(
    tmp_path, tiny_config, monkeypatch
):
    with small_disk(tmp_path / "disk", "1m") as disk:
        run = RunDir.create(disk, "brim", tiny_config)
        run.write_status(state="running", pid=os.getpid(), command=["python"] * 30)
        fill(disk)
        with pytest.raises(OSError):
            run.write_status(step=3)
        assert not [p.name for p in run.path.iterdir() if ".tmp" in p.name]  # no empty temp

        def full(*args):
            raise checkpoint.DiskFull(
                28,
                "no space left on device for checkpoint step_0000010.pt (needed ~10 MB, free 0 MB)",
            )

        monkeypatch.setattr(engine, "_fit", full)
        assert engine._fit_reporting_failure(run, tiny_config, Dist(), False, None) == "failed"
        status = run.read_status()
        assert status["state"] == "failed" and "(needed ~10 MB, free 0 MB)" in status["error"]


def test_checkpoint_disk_estimate(small_text):
    cfg = make_tiny_config(small_text, max_steps=100, checkpoint_interval=10, eval_interval=0)
    one = estimate.checkpoint_disk_mb(cfg.replace(max_steps=10))
    assert one == pytest.approx(3 * 4 * estimate.param_count(cfg) / 2**20)
    assert estimate.checkpoint_disk_mb(cfg.replace(keep_checkpoints=2)) == pytest.approx(3 * one)
    assert estimate.checkpoint_disk_mb(cfg.replace(keep_checkpoints=0)) == pytest.approx(10 * one)
    assert estimate.checkpoint_disk_mb(
        cfg.replace(keep_checkpoints=2, eval_interval=5)
    ) == pytest.approx(4 * one)  # + best.pt


# --- 6. one writer per run -----------------------------------------------------------------


def _resume_at_the_barrier(barrier, run_path: str, err_path: str) -> None:
    sys.stdout = open(os.devnull, "w")
    sys.stderr = open(err_path, "w", buffering=1)
    from core.train import (
        cli as train,  # imported before the barrier: both start at the same instant
    )

    barrier.wait(timeout=120)
    code = train.main(["--run-dir", run_path, "--resume", "--max-steps", "40"])
    sys.stderr.flush()
    sys.exit(code)


def test_two_resumes_at_once_one_is_refused(runs_dir, small_text, tmp_path):
    run = trained(runs_dir, "twice", small_text)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    errs = [tmp_path / f"err{i}.txt" for i in range(2)]
    procs = [
        ctx.Process(target=_resume_at_the_barrier, args=(barrier, str(run.path), str(e)))
        for e in errs
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(WAIT_S)
    codes = [p.exitcode for p in procs]
    assert sorted(codes) == [0, 2], (codes, [e.read_text() for e in errs])
    refused = errs[codes.index(2)].read_text()
    assert "is being trained by another process" in refused and refused.count("\n") == 1
    assert run.read_status()["state"] == "completed" and run.read_status()["step"] == 40
    assert not run.is_locked()


def test_the_lock_is_held_while_training_and_refuses_a_second_writer(runs_dir, small_text):
    run = RunDir.create(runs_dir, "locked", make_tiny_config(small_text))
    run.write_status(state="stopped")
    with run.lock():
        assert run.is_locked()
        with pytest.raises(ConfigError, match="being trained by another process"):
            run.lock()
        with pytest.raises(ConfigError, match="being trained by another process"):
            launcher.delete(run)
    assert not run.is_locked()


# --- 8. long runs: bulk summary --------------------------------------------------------------


def _records(n_segments=3, steps=2500):
    import random

    rng, step, out = random.Random(1), 0, []
    for seg in range(n_segments):
        out.append(dict(kind="start", step=step, time=1.0, resumed=seg > 0, world_size=1))
        for _ in range(steps):
            step += 1
            r = dict(
                kind="train",
                step=step,
                time=1.0 + step,
                loss=rng.random() * 5,
                dt_ms=rng.random() * 9,
                tokens_per_sec=rng.random() * 999,
                tokens_seen=step * 64,
                train_time_s=step * 0.01,
                peak_mem_mb=rng.random(),
            )
            for key in ("train_time_s", "dt_ms", "tokens_per_sec"):
                if rng.random() < 0.05:
                    del r[key]  # older engines wrote fewer fields
            out.append(r)
            if step % 50 == 0:
                out.append(
                    dict(
                        kind="eval",
                        step=step,
                        val_loss=rng.random(),
                        **({"copy_rate": 0.5, "longest_copy": 9} if step % 100 else {}),
                    )
                )
                out.append(dict(kind="sample", step=step, prompt="A", text='b "c"\n'))
                out.append(dict(kind="future_kind", step=step, anything=[1, 2]))
        step -= 300  # a resume from an earlier checkpoint
    return out


def _same(a: metrics.RunSummary, b: metrics.RunSummary) -> None:
    for key, value in a.to_dict().items():
        assert b.to_dict()[key] == pytest.approx(value), key


def test_the_bulk_summary_equals_the_record_by_record_one():
    data = "".join(json.dumps(r) + "\n" for r in _records()).encode()
    slow = metrics.RunSummary().update(metrics.parse_records(data))
    fast, cut = metrics.RunSummary(), data.index(b"\n", len(data) // 2) + 1
    assert metrics._fold_bulk(fast, data[:cut]) and metrics._fold_bulk(fast, data[cut:])
    _same(slow, fast)
    assert fast.segment_starts == slow.segment_starts and fast.timed_steps == slow.timed_steps
    broken = data[:cut] + b'123\n[1, 2]\n{"kind": "train", "step": "abc"}\n{"kind": "tr' + b"\n"
    assert not metrics._fold_bulk(metrics.RunSummary(), broken)  # falls back, same result
    _same(
        metrics.RunSummary().update(metrics.parse_records(broken)),
        metrics.fold_bytes(metrics.RunSummary(), broken),
    )


def test_summaries_read_long_files_in_pieces_and_reruns_read_nothing(
    tmp_path, small_text, monkeypatch
):
    monkeypatch.setattr(metrics, "SUMMARY_CHUNK_BYTES", 100_000)
    run = RunDir.create(tmp_path, "long", make_tiny_config(small_text))
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    expected = metrics.RunSummary().update(metrics.read_all(run.metrics_path))
    _same(expected, metrics.summarize(run.metrics_path))
    first = training_results(run)
    assert first["steps"] == expected.last_step

    def no_parsing(*args):
        raise AssertionError("a rerun parsed the file again")

    monkeypatch.setattr(metrics, "parse_records", no_parsing)
    monkeypatch.setattr(metrics, "_fold_bulk", no_parsing)
    assert training_results(run) == first


# --- 10. one-line errors, exit 2, nothing created -------------------------------------------

NANO_SMALL = [
    "--preset",
    "nano",
    "--n-embd",
    "32",
    "--block-size",
    "32",
    "--seq-len",
    "32",
    "--micro-batch-size",
    "4",
    "--max-steps",
    "2",
    "--device",
    "cpu",
]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"To be.", "fewer than one micro batch"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" * 100, "looks binary"),
        ("caf\xe9 cr\xe8me br\xfbl\xe9e ".encode("latin-1") * 200, "not UTF-8"),
    ],
)
def test_unusable_data_files_are_refused_before_anything_exists(
    runs_dir, tmp_path, content, message, capsys
):
    data = tmp_path / "data.txt"
    data.write_bytes(content)
    assert cli.main([*NANO_SMALL, "--data", str(data), "--runs-dir", str(runs_dir)]) == 2
    assert message in one_line_error(capsys)
    assert list(runs_dir.iterdir()) == []


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seed", str(10**20)], "seed: must be at most 4294967295"),
        (["--max-lr", "inf"], "max_lr: must be a finite number"),
        (["--target-loss", "inf"], "target_loss: must be a finite number"),
        (["--grad-clip", "nan"], "grad_clip: must be a finite number"),
    ],
)
def test_out_of_range_numbers_are_refused(runs_dir, small_text, flags, message, capsys):
    argv = [*NANO_SMALL, "--data", str(small_text), "--runs-dir", str(runs_dir), *flags]
    assert cli.main(argv) == 2
    assert message in one_line_error(capsys)
    assert list(runs_dir.iterdir()) == []


def test_a_seed_that_is_not_a_whole_number_is_refused(runs_dir):
    done = subprocess.run(
        [sys.executable, "-m", "core.train", "--seed", "1e20", "--runs-dir", str(runs_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "invalid int value: '1e20'" in done.stderr
    assert list(runs_dir.iterdir()) == []


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--temperature", "inf"], "temperature must be a finite number"),
        (["--top-p", "nan"], "top_p must be a finite number"),
        (["--device", "potato"], "unknown device 'potato'"),
        (["--seed", str(2**64)], "seed must be between 0 and"),
    ],
)
def test_sample_refuses_what_it_cannot_use(trained_run, extra, message, capsys):
    from core.generate.cli import main as sample_main

    assert sample_main(["--run-dir", str(trained_run.path), "--prompt", "hi", *extra]) == 2
    assert message in one_line_error(capsys)


@contextmanager
def read_only(path: Path):
    """Make a mounted test disk read-only for the block (root ignores chmod, so remount)."""
    done = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot remount {path} read-only ({done.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], capture_output=True)


def test_a_read_only_runs_dir_gives_clear_errors(tmp_path, small_text, capsys):
    with small_disk(tmp_path / "disk", "64m") as disk:
        run = trained(disk, "frozen", small_text)
        with read_only(disk):
            assert (
                cli.main(
                    [
                        *NANO_SMALL,
                        "--data",
                        str(small_text),
                        "--runs-dir",
                        str(disk),
                        "--name",
                        "new",
                    ]
                )
                == 2
            )
            assert "Read-only file system" in one_line_error(capsys)
            assert cli.main(["--run-dir", str(run.path), "--resume", "--max-steps", "6"]) == 2
            assert "Read-only file system" in one_line_error(capsys)
            with pytest.raises(ConfigError, match="cannot resume run frozen: Read-only"):
                launcher.resume(run, max_steps=6)
            with pytest.raises(ConfigError, match="cannot delete run frozen: Read-only"):
                launcher.delete(run)
            with pytest.raises(ConfigError, match="Read-only"):
                launcher.launch(make_tiny_config(small_text), disk, "another")
        assert sorted(p.name for p in disk.iterdir()) == ["frozen"]
        assert run.read_status()["state"] == "completed"


# --- 11. names and process counts ------------------------------------------------------------


@pytest.mark.parametrize("name", ["run\n", "run\nx", "\nrun", "ok-name\r"])
def test_run_names_with_line_breaks_are_refused(name):
    with pytest.raises(ConfigError, match="invalid run name"):
        check_run_id(name)


def test_nproc_is_bounded_by_the_cores(small_text):
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(ConfigError, match=f"nproc: 1000 processes, but this machine has {cores} "):
        check_runnable(make_tiny_config(small_text, nproc=1000))
    check_runnable(make_tiny_config(small_text, nproc=1))


def test_a_run_name_never_reaches_the_page_as_html(runs_dir, small_text, open_app):
    hostile = "<img src=x onerror=alert(1)>"
    first = RunDir.create(runs_dir, "plain", make_tiny_config(small_text))
    other = RunDir.create(runs_dir, "other", make_tiny_config(small_text))
    other.path.rename(runs_dir / hostile)
    for run in (first, RunDir(runs_dir / hostile)):
        run.write_status(state="completed", step=0)
    at = open_app("views/live.py", runs_dir)
    at.multiselect(key="live_runs").set_value(["plain", hostile]).run()
    assert not at.exception, at.exception
    html = [m.value for m in at.markdown if "●" in m.value]
    assert len(html) == 2 and not any("<img" in h for h in html)
    # markdown escapes (backslashes) aside, the name is shown as text
    assert any("&lt;img src=x onerror=alert(1)&gt;" in h.replace("\\", "") for h in html)
