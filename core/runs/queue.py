"""The run queue: runs that start one after another, each when nothing else in the runs
directory is training (on a small machine two runs at once halve each other's speed).

The queue is a file in the runs directory (named by core/store/rundir.py), not memory, so it survives
an app restart; every change happens under an fcntl lock, so the app and the engines never lose
an update. A queued run is a real run directory in the state 'waiting' (it shows in the runs
table); `start_next` turns the first one 'queued' and launches it. Two callers start the next
run: the training process when it ends, whatever its end state (core/train/cli.py), and the app on
each page load (which covers an engine that crashed). Both may call at any time: the check
"nothing active" and the pop happen under the lock, so two calls at once start one run.

File format (queue.json): {"version": 1, "runs": ["run_id", ...]}, first to start first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from pathlib import Path

from core import atomic
from core.config import RUN_ID_PATTERN, ConfigError, TrainConfig, check_run_id
from core.jsonfile import DamagedFile, read_json
from core.runs import launcher
from core.runs.preflight import check_runnable
from core.store.rundir import (
    ACTIVE_STATES,
    WAITING,
    RunDir,
    default_run_name,
    default_runs_dir,
    list_run_dirs,
    queue_lock_path,
    queue_path,
)

VERSION = 1


def _root(runs_dir: str | Path | None) -> Path:
    return Path(runs_dir or default_runs_dir())


@contextlib.contextmanager
def _locked(root: Path):
    """Hold the queue's lock (flock: it also excludes other threads of this process, since each
    call opens the lock file anew)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(queue_lock_path(root), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(root: Path) -> list[str]:
    """The queued run ids as stored: valid run names (never a path), each once. A missing or
    damaged file reads as empty; queued() then recovers the order from the run directories."""
    try:
        values = read_json(queue_path(root))
    except (FileNotFoundError, DamagedFile):
        return []
    runs = values.get("runs")
    found: list[str] = []
    for run_id in runs if isinstance(runs, list) else []:
        if isinstance(run_id, str) and RUN_ID_PATTERN.fullmatch(run_id) and run_id not in found:
            found.append(run_id)
    return found


def _write(root: Path, run_ids: list[str]) -> None:
    path = queue_path(root)
    try:
        atomic.write_text(path, json.dumps({"version": VERSION, "runs": run_ids}), durable=True)
    except OSError as e:
        raise ConfigError(
            f"cannot write the run queue {path} ({e.strerror or e}): free some space or make "
            f"{root} writable; the queue's runs are kept and come back from their folders"
        ) from e


def _is_waiting(root: Path, run_id: str) -> bool:
    run = RunDir(root / run_id)
    return run.exists() and run.read_status().get("state") == WAITING


def _strays(root: Path, known: list[str]) -> list[str]:
    """Waiting runs the stored queue lacks (a damaged or half-written queue.json, a failed
    write), oldest first: they go back at the end of the queue, never stranded."""
    runs = [r for r in list_run_dirs(root) if r.run_id not in known]
    return [r.run_id for r in reversed(runs) if r.read_status().get("state") == WAITING]


def enqueue(
    config: TrainConfig, runs_dir: str | Path | None = None, name: str | None = None
) -> str:
    """Validate config exactly as launcher.launch does, create runs_dir/name in the state
    'waiting' and append it to the queue; nothing starts (start_next does). Raises ConfigError
    (or core.data.dataset.DataError) before anything is created; returns the run id."""
    root = _root(runs_dir)
    check_runnable(config)
    name = check_run_id(name) if name else None
    with _locked(root):
        run = RunDir.create(root, name or default_run_name("run", root), config, state=WAITING)
        try:  # all or nothing: a run the queue cannot hold is removed again
            _write(root, [r for r in queued(root) if r != run.run_id] + [run.run_id])
        except ConfigError:
            run.delete()
            raise
    return run.run_id


def queued(runs_dir: str | Path | None = None) -> list[str]:
    """The run ids waiting to start, first to start first (entries whose run directory was
    deleted or already started are left out; waiting runs the stored queue lacks follow, oldest
    first)."""
    root = _root(runs_dir)
    stored = [r for r in _read(root) if _is_waiting(root, r)]
    return stored + _strays(root, stored)


def move(
    run_id: str,
    offset: int | None = None,
    index: int | None = None,
    runs_dir: str | Path | None = None,
) -> list[str]:
    """Move a queued run by offset (-1: one earlier, +1: one later) or to index (0: first);
    give exactly one. Positions past either end stop there. Returns the new order; raises
    ConfigError when the run is not in the queue."""
    if (offset is None) == (index is None):
        raise ConfigError("move: give either offset or index")
    root = _root(runs_dir)
    with _locked(root):
        run_ids = queued(root)
        if run_id not in run_ids:
            raise ConfigError(f"run {run_id!r} is not in the queue (it started or was removed)")
        old = run_ids.index(run_id)
        new = old + offset if index is None else index
        run_ids.insert(max(0, min(len(run_ids) - 1, new)), run_ids.pop(old))
        _write(root, run_ids)
    return run_ids


def remove(run_id: str, runs_dir: str | Path | None = None) -> None:
    """Take a run out of the queue and delete its run directory (it never started, so nothing
    is lost but its config). Raises ConfigError when it is not in the queue."""
    root = _root(runs_dir)
    with _locked(root):
        run_ids = queued(root)
        if run_id not in run_ids:
            raise ConfigError(f"run {run_id!r} is not in the queue (it started or was removed)")
        run_ids.remove(run_id)
        _write(root, run_ids)
        RunDir(root / run_id).delete()


def clear(runs_dir: str | Path | None = None) -> list[str]:
    """Empty the queue, deleting each waiting run's directory; returns the ids removed."""
    root = _root(runs_dir)
    if not queue_path(root).exists() and not _strays(root, []):
        return []
    with _locked(root):
        run_ids = queued(root)
        _write(root, [])
        for run_id in run_ids:
            RunDir(root / run_id).delete()
    return run_ids


HANDOVER_S = 30.0  # a queued run that started this soon after a run ended is its successor


def started_after(run: RunDir, runs_dir: str | Path | None = None) -> str | None:
    """The run the queue started when run ended (the first one it launched within HANDOVER_S
    of run's end), or None: the Live page of a finished run points to it."""
    ended = run.read_status().get("ended")
    if not isinstance(ended, (int, float)):
        return None
    followers = []
    for other in launcher.list_runs(_root(runs_dir)):
        started = other.status.get("from_queue")
        if isinstance(started, (int, float)) and 0 <= started - ended <= HANDOVER_S:
            followers.append((started, other.run_id))
    return min(followers)[1] if followers else None


def start_next(runs_dir: str | Path | None = None) -> str | None:
    """When no run in runs_dir is active (queued or running; crashed ones do not count) and the
    queue holds a waiting run, take the first one off the queue and launch it; returns its id,
    else None. Safe to call at any time, from any process: the check and the pop happen under
    the queue's lock. A run that cannot be started is marked failed and the next one tried."""
    root = _root(runs_dir)
    if not queue_path(root).exists() and not _strays(root, []):
        return None  # no queue here: touch nothing (a CLI run's parent may be any folder)
    with _locked(root):
        if any(info.state in ACTIVE_STATES for info in launcher.list_runs(root)):
            return None
        run_ids = queued(root)
        while run_ids:
            run_id = run_ids.pop(0)
            if not _is_waiting(root, run_id):
                continue  # deleted, or started some other way
            _write(root, run_ids)
            run = RunDir(root / run_id)
            try:
                return launcher.launch_prepared(run)
            except (OSError, ConfigError) as e:  # e.g. a config.json edited into nonsense
                run.write_status(
                    state="failed",
                    reason="error",
                    ended=time.time(),
                    error=f"the run queue could not start it: {e}",
                )
        _write(root, run_ids)
        return None


def anything_training(runs_dir: str | Path | None = None) -> bool:
    """Whether a run in runs_dir is training, starting or waiting in the queue (a new run then
    goes to the queue first)."""
    states = (*ACTIVE_STATES, WAITING)
    return any(info.state in states for info in launcher.list_runs(_root(runs_dir)))


def position(run_id: str, runs_dir: str | Path | None = None) -> tuple[int, int] | None:
    """(place from 1, queue length) of a waiting run, or None once it left the queue."""
    waiting = queued(runs_dir)
    return (waiting.index(run_id) + 1, len(waiting)) if run_id in waiting else None
