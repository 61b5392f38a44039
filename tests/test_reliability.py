"""Issue 20: the faults a sweep found, one test (or more) per item, each failing before its fix."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch
from conftest import ROOT, make_tiny_config, wait_for

from core.config import ConfigError, load_json
from core.runs import launcher
from core.runs import queue as run_queue
from core.store import metrics
from core.store.rundir import WAITING, RunDir, process_start_time, queue_path
from core.train import engine

DEEP = "[" * 100_000  # json.loads raises RecursionError on it, not ValueError


def _ended(run: RunDir):
    status = run.read_status()
    if status.get("state") in ("stopped", "completed", "failed") and not run.live_pids(status):
        return status
    return None


# --- 1. the repeat search has a memory bound ----------------------------------------------------
MEMORY_CAP_MB = 1500  # main's code needed ~9 GB for this text and died at this cap


def test_the_repeat_search_of_a_pasted_text_fits_a_memory_cap(tmp_path, shakespeare_path):
    text = tmp_path / "rep.txt"
    text.write_text(shakespeare_path.read_text()[:40_000] * 30)  # a passage pasted 30 times
    script = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP_MB} << 20, {MEMORY_CAP_MB} << 20))
        from core.data.corpus import load_index
        print(load_index({str(text)!r}).train.repeats(3))
    """)
    env = {**os.environ, "GPT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ((offset, length),) = eval(done.stdout)  # one passage: the text from its second token on
    assert length > 300_000  # measured whole, beyond the search limit


def test_repeats_longer_than_the_search_limit_are_measured_whole():
    from core.data.corpus import MAX_REPEAT, SuffixIndex

    rng = np.random.default_rng(0)
    passage = rng.integers(0, 50_000, 3 * MAX_REPEAT)
    tokens = np.concatenate(
        [
            rng.integers(0, 50_000, 500),
            passage,
            rng.integers(0, 50_000, 700),
            passage,
            rng.integers(0, 50_000, 300),
        ]
    ).astype(np.uint16)
    assert SuffixIndex.build(tokens).repeats(3)[0] == (500, 3 * MAX_REPEAT)


def test_the_page_says_why_a_large_text_is_not_x_rayed(runs_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core.data import xray

    monkeypatch.setattr(xray, "WAIT_MAX_BYTES", 1000)
    at = AppTest.from_file("../dashboard/app.py", default_timeout=60)
    at.run()
    at.query_params.update(preset="nano")
    at.switch_page("views/new_run.py").run()
    assert not at.exception, at.exception
    shown = "\n".join(c.value for c in at.caption)
    assert "No X-ray of this data: this text is 1 MB, more than the 0 MB" in shown


# --- 2. a Stop sent while a run starts -------------------------------------------------------
def test_launch_then_stop_at_once_ends_stopped(runs_dir, small_text):
    cfg = make_tiny_config(small_text, max_steps=300)
    run = RunDir(runs_dir / launcher.launch(cfg, runs_dir, "quick"))
    launcher.stop(run, wait=False)  # while the engine still imports torch
    status = wait_for(lambda: _ended(run), "the run to end")
    assert status["state"] == "stopped", status
    assert status["step"] < 300 and "while starting" in status["reason"]
    assert not run.stop_requested()


def test_a_stale_stop_from_an_earlier_launch_is_dropped(runs_dir, small_text):
    cfg = make_tiny_config(small_text, max_steps=2, eval_interval=0)
    run = RunDir.create(runs_dir, "stale", cfg)
    run.request_stop()
    os.utime(run.path / "STOP", (1e6, 1e6))  # older than any process start (here: 1970)
    assert engine.train(str(run.path)) == "completed"


# --- 3. the heartbeat beats from the first moment; a stop during setup ends it stopped ---------
def test_a_stop_during_a_long_setup_ends_the_run_stopped(runs_dir, small_text, monkeypatch):
    run = RunDir.create(runs_dir, "slow", make_tiny_config(small_text))
    real, beats = engine.dataset.load_tokens, []

    def slow_load(path):  # tokenizing a large text: a few seconds with nothing else happening
        before = run.read_status()["updated"]
        time.sleep(2.5)
        beats.append(run.read_status()["updated"] - before)
        run.request_stop()
        monkeypatch.setattr(engine.dataset, "load_tokens", real)
        return real(path)

    monkeypatch.setattr(engine.dataset, "load_tokens", slow_load)
    assert engine.train(str(run.path)) == "stopped"
    assert beats[0] >= 1.0  # status.json was stamped while setup ran: the launcher waits
    status = run.read_status()
    assert status["step"] == 0 and status["reason"] == "stop requested while starting"
    assert run.checkpoints() == [] and not run.stop_requested()


# --- 9. smaller ones ---------------------------------------------------------------------------
def test_a_lock_probe_does_not_see_another_probe_as_a_writer(runs_dir, small_text):
    run = RunDir.create(runs_dir, "probe", make_tiny_config(small_text))
    (run.path / "lock").touch()
    fd = os.open(run.path / "lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # another page refresh, probing now
    assert not run.is_locked()
    threading.Timer(0.1, os.close, (fd,)).start()  # the other probe ends
    with run.lock():  # the engine starting meanwhile waits the probe out
        assert run.is_locked()


def test_temp_files_of_a_killed_write_are_removed_at_the_next_start(runs_dir, small_text, capsys):
    run = RunDir.create(runs_dir, "temps", make_tiny_config(small_text, max_steps=2))
    run.checkpoint_dir.mkdir()
    run.snapshot_dir.mkdir()
    left = [
        run.checkpoint_dir / ".step_0000005.pt.99999.tmp",
        run.checkpoint_dir / ".best.pt.99999.tmp",
        run.snapshot_dir / ".step_0000005.safetensors.99999.tmp",
    ]
    for path in left:
        path.write_bytes(b"x" * 1000)
    assert engine.train(str(run.path)) == "completed"
    assert not any(p.exists() for p in left)
    assert "removed 3 temp file(s)" in capsys.readouterr().out


def test_notes_limits_hold_on_read_and_joined_emoji_are_titles(runs_dir, small_text):
    run = RunDir.create(runs_dir, "notes", make_tiny_config(small_text))
    for title in ("\U0001f9d1\u200d\U0001f4bb tuning", "\u2764\ufe0f\u200d\U0001f525 best"):
        assert run.write_notes(title=title)["title"] == title  # technologist, heart on fire
    (run.path / "notes.json").write_text(json.dumps({"title": "x" * 10**6, "note": "y" * 10**5}))
    assert run.read_notes() == {"title": "notes", "note": "y" * 2000}
    (run.path / "notes.json").write_text(json.dumps({"title": "two\nlines"}))
    assert run.read_notes()["title"] == "notes"


def test_a_full_disk_names_the_file_it_refused(runs_dir, small_text, monkeypatch):
    run = RunDir.create(runs_dir, "full", make_tiny_config(small_text, max_steps=4))

    class FullDisk:
        def __init__(self, file):
            self.file, self.writes = file, 0

        def write(self, text):
            self.writes += 1
            if self.writes > 2:
                raise OSError(28, "No space left on device")
            return self.file.write(text)

        def close(self):
            self.file.close()

    class Log(metrics.MetricsLog):
        def __init__(self, path):
            super().__init__(path)
            self._file = FullDisk(self._file)

    monkeypatch.setattr(engine.metrics, "MetricsLog", Log)
    assert engine.train(str(run.path)) == "failed"
    assert "no space left on device" in run.read_status()["error"]
    assert "metrics.jsonl" in run.read_status()["error"]


# --- 10. an immediate Resume after a crash ------------------------------------------------------
def test_a_killed_run_reads_crashed_at_once(runs_dir, small_text):
    run = RunDir.create(runs_dir, "killed", make_tiny_config(small_text))
    dead = subprocess.Popen(["sleep", "30"])
    start = process_start_time(dead.pid)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    run.write_status(
        state="running",
        pid=dead.pid,
        pid_start=start,
        launcher_pid=dead.pid,
        launcher_pid_start=start,
    )  # heartbeat fresh: stamped just now
    assert run.effective_state() == "crashed"
    ok, why = launcher.can_resume(run)
    assert "stop it before" not in why
    run.write_status(pid=os.getpid(), pid_start=process_start_time(os.getpid()))
    assert run.effective_state() == "running"  # the engine still lives (the launcher is gone)


def test_resume_right_after_kill_9_is_accepted(runs_dir, small_text):
    cfg = make_tiny_config(small_text, max_steps=100_000, eval_interval=0, checkpoint_interval=2)
    run = RunDir(runs_dir / launcher.launch(cfg, runs_dir, "kill"))
    wait_for(lambda: run.latest_checkpoint() and run.read_status().get("step", 0) >= 3, "steps")
    os.kill(run.read_status()["pid"], signal.SIGKILL)
    wait_for(lambda: not run.live_pids(), "the process to go")
    ok, why = launcher.can_resume(run)  # at once, within the heartbeat grace
    assert ok, why
    launcher.resume(run)
    wait_for(lambda: "resumed from step" in run.log_path.read_text(), "the resume")
    assert launcher.stop(run) == "stopped"


# --- 4. one damaged JSON file damages its run or panel only -----------------------------------
@pytest.mark.parametrize(
    "raw, why",
    [
        (DEEP, "nested too deeply"),
        (b"\x80\x81{}", "not JSON"),
        ("{oops", "not JSON"),
        ("[1, 2]", "holds list, not an object"),
        ("null", "holds NoneType"),
    ],
)
def test_read_json_calls_anything_we_did_not_write_damaged(tmp_path, raw, why):
    from core.jsonfile import DamagedFile, read_json

    path = tmp_path / "x.json"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    with pytest.raises(DamagedFile, match=why) as caught:
        read_json(path)
    assert str(path) in str(caught.value) and isinstance(caught.value, ValueError)
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(DamagedFile, match="cannot be read"):
        read_json(tmp_path / "folder.json")
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")


def test_deeply_nested_files_damage_their_run_only(runs_dir, small_text):
    good = RunDir.create(runs_dir, "good", make_tiny_config(small_text))
    for name, file in (("badstatus", "status.json"), ("badconfig", "config.json")):
        bad = RunDir.create(runs_dir, name, make_tiny_config(small_text), state="stopped")
        (bad.path / file).write_text(DEEP)
    (good.path / "notes.json").write_text(DEEP)
    states = {i.run_id: (i.state, i.status.get("error", "")) for i in launcher.list_runs()}
    assert states["good"][0] == "queued" and len(states) == 3
    assert states["badstatus"][0] == "damaged" and "nested too deeply" in states["badstatus"][1]
    assert states["badconfig"][0] == "damaged" and "config.json" in states["badconfig"][1]
    assert good.read_notes() == {"title": "good", "note": ""}
    line = json.dumps({"kind": "train", "step": 1, "time": 1.0, "loss": 2.0}).encode()
    assert [r["step"] for r in metrics.parse_records(DEEP.encode() + b"\n" + line)] == [1]


def test_notes_and_queue_as_folders_or_with_odd_values_read_safely(runs_dir, small_text):
    run = RunDir.create(runs_dir, "a", make_tiny_config(small_text), state=WAITING)
    (run.path / "notes.json").mkdir()
    assert run.read_notes()["title"] == "a"
    queue_path(runs_dir).write_text(json.dumps({"version": 1, "runs": ["a", "a", "/etc", ".."]}))
    assert run_queue.queued(runs_dir) == ["a"]  # once, and never a path
    queue_path(runs_dir).unlink()
    queue_path(runs_dir).mkdir()
    assert run_queue.queued(runs_dir) == ["a"]


def test_a_config_file_of_bad_bytes_is_one_clear_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ConfigError, match=r"c.json is damaged \(not JSON"):
        load_json(path)
    path.write_text(DEEP)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_json(path)


def test_pages_keep_working_beside_damaged_files(runs_dir, small_text, open_app):
    good = RunDir.create(runs_dir, "good", make_tiny_config(small_text, max_steps=2))
    assert engine.train(str(good.path)) == "completed"
    with open(good.metrics_path, "a") as f:
        f.write(DEEP + "\n")
    (good.path / "notes.json").write_text(DEEP)
    crashed = RunDir.create(runs_dir, "crashed", make_tiny_config(small_text))
    crashed.write_status(state="running", pid=2**22 + 7, pid_start=1)
    status = json.loads((crashed.path / "status.json").read_text())
    (crashed.path / "status.json").write_text(json.dumps({**status, "updated": None}))
    (RunDir.create(runs_dir, "deep", make_tiny_config(small_text)).path / "status.json").write_text(
        DEEP
    )
    RunDir.create(runs_dir, "w", make_tiny_config(small_text), state=WAITING)
    queue_path(runs_dir).write_text(json.dumps({"version": 1, "runs": ["w", "w"]}))
    for view in (
        "views/runs.py",
        "views/live.py",
        "views/playground.py",
        "views/model_info.py",
        "views/inspect.py",
        "views/new_run.py",
    ):
        at = open_app(view, runs_dir)
        assert not at.exception, (view, at.exception)
    at = open_app("views/live.py", runs_dir)
    at.multiselect(key="live_runs").set_value(["crashed"]).run()
    assert not at.exception, at.exception
    assert any("crashed" in e.value for e in at.error)


# --- 5. the run queue survives a damaged file and a failed write ---------------------------------
def test_waiting_runs_come_back_when_queue_json_is_damaged(runs_dir, small_text):
    for name in ("first", "second"):
        run_queue.enqueue(make_tiny_config(small_text), runs_dir, name)
    queue_path(runs_dir).write_text('{"version": 1, "runs": ["fir')  # half written
    assert run_queue.queued(runs_dir) == ["first", "second"]
    run_queue.enqueue(make_tiny_config(small_text), runs_dir, "third")
    assert run_queue.queued(runs_dir) == ["first", "second", "third"]
    queue_path(runs_dir).unlink()
    assert run_queue.move("third", index=0, runs_dir=runs_dir) == ["third", "first", "second"]
    assert json.loads(queue_path(runs_dir).read_text())["runs"] == ["third", "first", "second"]


def test_enqueue_is_all_or_nothing(runs_dir, small_text, monkeypatch):
    real = os.replace

    def full_disk(src, dst):
        if str(dst).endswith("queue.json"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ConfigError, match="cannot write the run queue"):
        run_queue.enqueue(make_tiny_config(small_text), runs_dir, "orphan")
    assert sorted(p.name for p in runs_dir.iterdir()) == [".queue.lock"]


def test_a_path_in_queue_json_never_starts_a_run_outside(runs_dir, tmp_path, small_text):
    outside = RunDir.create(
        tmp_path / "elsewhere", "x", make_tiny_config(small_text), state=WAITING
    )
    queue_path(runs_dir).write_text(json.dumps({"version": 1, "runs": [str(outside.path)]}))
    assert run_queue.start_next(runs_dir) is None
    assert outside.read_status()["state"] == WAITING


# --- 6. wrong figures: a stale corpus cache, a resume on another world size -------------------
def test_a_shuffled_or_garbage_corpus_cache_is_rebuilt(small_text, tmp_path, monkeypatch):
    from core.config import TrainConfig, cache_dir
    from core.data import corpus
    from core.data.xray import data_xray

    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path / "cache"))
    index = corpus.load_index(str(small_text))
    passage = index.train.tokens[100:140]
    assert index.copy_stats(passage).share == 1.0
    sa_file = next((cache_dir() / "index").glob("*-train-sa.npy"))
    np.save(sa_file, np.random.default_rng(1).permutation(np.load(sa_file)))
    assert corpus.load_index(str(small_text)).copy_stats(passage).share == 1.0
    cfg = TrainConfig(data=str(small_text), micro_batch_size=2, seq_len=32)
    assert data_xray(cfg, 1000, index=index).repeats
    for what, garbage in (("train-repeats3", [[10**9, 5]]), ("offsets64", [5, 3, 10**12])):
        np.save(next((cache_dir() / "index").glob(f"*-{what}.npy")), np.array(garbage, np.int64))
    again = corpus.load_index(str(small_text))
    assert data_xray(cfg, 1000, index=again).repeats[0].location.file == small_text.name


def test_the_batch_behind_a_step_follows_each_segments_world_size(small_text):
    from core.data.walker import micro_batch_numbers
    from core.inspect.batch import describe_step

    cfg = make_tiny_config(small_text, grad_accum_steps=2)
    records = [  # 4 steps on one process, then resumed on two
        {"kind": "start", "step": 0, "world_size": 1},
        {"kind": "train", "step": 4},
        {"kind": "start", "step": 4, "world_size": 2},
    ]
    segments = metrics.world_segments(records)
    assert segments == [(0, 1), (4, 2)]
    assert list(micro_batch_numbers(cfg, 3, segments=segments)) == [4, 5]
    assert list(micro_batch_numbers(cfg, 6, segments=segments)) == [12, 13, 14, 15]
    view = describe_step(cfg, 6, 2, segments=segments)
    assert [b.number for b in view.batches] == [12, 13, 14, 15]
    assert [b.rank for b in view.batches] == [0, 1, 0, 1]
    assert describe_step(cfg, 3, 2, segments=segments).world_size == 1


# --- 7. a config that describes a huge model --------------------------------------------------
def test_a_snapshot_whose_config_is_huge_is_refused_before_allocating(tmp_path, small_text):
    from core.model.gpt import GPT, ModelConfig
    from core.store import checkpoint

    cfg = make_tiny_config(small_text)
    huge = cfg.replace(vocab_size=10**9)
    weights = checkpoint.weights_bytes(GPT(ModelConfig.of(cfg)), huge)  # tiny tensors, huge config
    path = tmp_path / "step_0000001.safetensors"
    path.write_bytes(weights)
    script = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP_MB} << 20, {MEMORY_CAP_MB} << 20))
        from core.store.checkpoint import load_model
        try:
            load_model({str(path)!r})
        except ValueError as e:
            print("refused:", e)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused:" in done.stdout and "transformer.wte.weight is (50304, 32)" in done.stdout
    assert "the config needs (1000000000, 32)" in done.stdout


# --- 8. start from GPT-2 on a plain install: the hub path against a local fake hub --------------
def test_huggingface_hub_is_a_plain_requirement():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("huggingface_hub") for line in lines)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch, small_text):
    """The hub's offline cache layout (models--gpt2/refs/main -> snapshots/<commit>/) in a temp
    HF_HOME, holding a tiny GPT-2 written by our exporter; no network."""
    from huggingface_hub import constants

    from core.model.gpt import GPT, ModelConfig
    from core.store import export

    cfg = make_tiny_config(small_text, vocab_size=50257)
    torch.manual_seed(3)
    model = GPT(ModelConfig.of(cfg)).eval()
    repo = tmp_path / "hf" / "hub" / "models--gpt2"
    commit = "0123456789abcdef0123456789abcdef01234567"
    export.write_hf(model, cfg, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return model, repo / "snapshots" / commit


def test_init_from_a_hub_name_loads_from_the_hub_cache(fake_hub, small_text, runs_dir):
    from core.model.gpt import GPT, ModelConfig
    from core.runs.preflight import check_runnable
    from core.store import pretrained

    model, folder = fake_hub
    shape = pretrained.source_shape("gpt2")
    assert shape == {"n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 50257, "block_size": 32}
    ours = GPT(ModelConfig(**shape))
    assert pretrained.load_into(ours, "gpt2").endswith(f"({folder})")
    for name, tensor in model.state_dict().items():
        assert torch.equal(ours.state_dict()[name], tensor), name
    check_runnable(make_tiny_config(small_text, vocab_size=50257, init_from="gpt2"))


def test_init_from_weights_that_do_not_fit_their_config_is_refused_before_launch(
    fake_hub, small_text, runs_dir
):
    from safetensors.torch import load_file, save_file

    from core.config import ConfigError

    _, folder = fake_hub
    tensors = load_file(str(folder / "model.safetensors"))
    name = "transformer.h.1.mlp.c_fc.weight"
    tensors[name] = tensors[name][:, :64].contiguous()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    cfg = make_tiny_config(small_text, vocab_size=50257, init_from="gpt2")
    with pytest.raises(ConfigError, match=r"h\.1\.mlp\.c_fc\.weight is \(64, 32\)"):
        launcher.launch(cfg, runs_dir, "misfit")
    assert list(runs_dir.iterdir()) == []
