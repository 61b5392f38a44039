"""The run directory: the one interface between the engine and everything that reads runs.

This module alone knows the file names inside `runs/<run_id>/` (the README's "Runs directory"
section describes each): config.json, status.json, metrics.jsonl, log.txt, checkpoints/
(step_NNNNNNN.pt and best.pt), snapshots/ (step_NNNNNNN.safetensors), STOP, lock, notes.json (a
display title and a free-text note), token_curves.bin (per-token losses on the val probe at
each eval, core/store/token_curves.py); and in the runs directory itself, queue.json (runs waiting
to start, core/runs/queue.py) and its lock file. What a metrics record holds is
core/store/metrics.py's business, what a checkpoint or snapshot holds core/store/checkpoint.py's.

A folder is a run only when it is recognisably ours (config.json carries schema_version); a run
whose config.json or status.json cannot be trusted reads as DAMAGED with an error saying why,
never as a crash of the page that lists it. A run's processes are known by pid and start time,
since pids are reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

from core import atomic
from core.config import SCHEMA_VERSION, ConfigError, TrainConfig, check_run_id, missing_fields
from core.jsonfile import DamagedFile, read_json

ACTIVE_STATES = ("queued", "running")
STOPPING = "stopping"  # shown only: an active run that was asked to stop and is finishing
STARTING = "starting"  # shown for "queued": its process is starting (not the run queue's WAITING)
WAITING = "waiting"  # in the run queue, never started: not active (may be deleted), never crashed
CRASHED = "crashed"  # never written: how readers show a running run whose process is gone
DAMAGED = "damaged"  # never written: how readers show a run whose config or status is unusable
HEARTBEAT_GRACE_S = 5.0
# A heartbeat this old means the process is gone even if some process has its pid, unless the
# pid's start time proves it is the same process (the engine stamps status every second).
STALE_HEARTBEAT_S = 60.0
# Everything a run directory may hold; delete removes these and nothing else.
RUN_FILES = frozenset(
    {
        "config.json",
        "status.json",
        "metrics.jsonl",
        "log.txt",
        "checkpoints",
        "snapshots",
        "STOP",
        "lock",
        "notes.json",
        "token_curves.bin",
    }
)
_TEMP_FILE = re.compile(
    r"\.(config\.json|status\.json|metrics\.jsonl|token_curves\.bin|notes\.json)\.\d+\.tmp"
)
# A temp file of an atomic write (checkpoints, snapshots, best.pt, the run's JSON files): the
# pid of the writer is in its name.
_ANY_TEMP = re.compile(r"\..+\.(\d+)\.tmp(\.npy)?")
_NUMBER = (int, float)
# status.json fields and their types (None is allowed for each); anything else is damage.
_STATUS_TYPES = {
    "state": (str,),
    "step": (int,),
    "max_steps": (int,),
    "world_size": (int,),
    "pid": (int,),
    "launcher_pid": (int,),
    "pid_start": (int,),
    "launcher_pid_start": (int,),
    "host": (str,),
    "error": (str,),
    "reason": (str,),
    "created": _NUMBER,
    "updated": _NUMBER,
    "started": _NUMBER,
    "ended": _NUMBER,
    "stopping": _NUMBER,
}
_STATUS_LOCK = threading.Lock()
_NOTES_LOCK = threading.Lock()
_CKPT = re.compile(r"^step_(\d{7})\.pt$")
_SNAPSHOT = re.compile(r"^step_(\d{7})\.safetensors$")
TITLE_MAX, NOTE_MAX = 80, 2000
_FIX = "delete the run, or restore the file from a backup"


def default_runs_dir() -> Path:
    """`$GPT_RUNS_DIR`, else `runs/` in the project."""
    env = os.environ.get("GPT_RUNS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "runs"


def process_start_time(pid: int | None) -> int | None:
    """When pid started, in clock ticks after boot (field 22 of /proc/<pid>/stat); None where
    that cannot be read (no such process, no /proc)."""
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # fields after the name start at 3
    except (OSError, ValueError, IndexError):
        return None


def process_started_at(pid: int | None) -> float | None:
    """When pid started, as a wall-clock time (from /proc); None where that cannot be read."""
    ticks = process_start_time(pid)
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if ticks is None:
        return None
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def same_process(pid: int | None, start: int | None) -> bool | None:
    """Whether pid runs and is the process that was recorded with start time `start`: True,
    False (gone, or another process got the pid), or None (alive, but no start time to compare)."""
    if not pid_alive(pid):
        return False
    now = process_start_time(pid) if start is not None else None
    return None if now is None else now == start


def _status_problem(status) -> str | None:
    """What makes a parsed status.json unusable, or None."""
    if not isinstance(status, dict):
        return f"status.json holds {type(status).__name__}, not an object"
    bad = [
        f"{key}={status[key]!r}"
        for key, types in _STATUS_TYPES.items()
        if status.get(key) is not None
        and (isinstance(status[key], bool) or not isinstance(status[key], types))
    ]
    return f"status.json has fields of the wrong type: {', '.join(bad)}" if bad else None


def pid_alive(pid: int | None) -> bool:
    """True while the process runs; a zombie (ended, not yet reaped) counts as gone."""
    if not pid:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own finished child
    except OSError:  # not our child
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): the kill probe is all we have


class RunDir:
    """Paths and file formats of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(
        cls, runs_dir: str | Path, run_id: str, config: TrainConfig, state: str = "queued"
    ) -> RunDir:
        run = cls(Path(runs_dir) / check_run_id(run_id))
        try:
            run.path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise ConfigError(
                f"a run named {run_id!r} already exists in {runs_dir}: pick another name"
            ) from None
        except OSError as e:
            raise ConfigError(
                f"cannot create run directory {run.path} ({e.strerror}): pick a "
                "writable runs directory"
            ) from e
        try:
            run.write_config(config)
            run.write_status(state=state, step=0, max_steps=config.max_steps)
        except OSError as e:  # a full disk: leave nothing half made
            shutil.rmtree(run.path, ignore_errors=True)
            raise ConfigError(f"cannot write run directory {run.path} ({e.strerror})") from e
        return run

    @property
    def run_id(self) -> str:
        return self.path.name

    # --- files ---------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def token_curves_path(self) -> Path:
        """Per-token losses on the run's val probe at each eval (core/store/token_curves.py)."""
        return self.path / "token_curves.bin"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def exists(self) -> bool:
        return (self.path / "config.json").is_file()

    def is_ours(self) -> bool:
        """Whether this folder is a run directory of this tool: its config.json is an object with
        schema_version; or, when config.json is unreadable, the folder holds a status.json and
        nothing but run files (a damaged run, still listed and deletable)."""
        where = self.path / "config.json"
        if not where.is_file():
            return False
        try:
            values = read_json(where, expect=None)
        except (FileNotFoundError, DamagedFile):
            values = None
        if isinstance(values, dict):
            return "schema_version" in values
        try:
            return (self.path / "status.json").is_file() and not self.unexpected_files()
        except OSError:
            return False

    def unexpected_files(self) -> list[str]:
        """Names in the folder that are not part of a run (see RUN_FILES)."""
        return sorted(
            p.name
            for p in self.path.iterdir()
            if p.name not in RUN_FILES and not _TEMP_FILE.fullmatch(p.name)
        )

    # --- config --------------------------------------------------------------------------
    def write_config(self, config: TrainConfig) -> None:
        atomic.write_text(
            self.path / "config.json",
            json.dumps({"schema_version": SCHEMA_VERSION, **config.to_dict()}, indent=2),
            durable=True,
        )

    def read_config(self) -> TrainConfig:
        """The run's config; ConfigError saying what is wrong when config.json is missing,
        unreadable, not an object, lacks fields (never filled with defaults: they would
        describe another model) or has values of the wrong type."""
        where = self.path / "config.json"
        try:
            values = read_json(where, dict, _FIX)
        except FileNotFoundError:
            raise ConfigError(f"{self.path} is not a run directory (no config.json)") from None
        except DamagedFile as e:
            raise ConfigError(str(e)) from None
        missing = missing_fields(values)
        if missing:
            raise ConfigError(
                f"{where} lacks field(s) {', '.join(missing)}: it was not written "
                "whole by this tool"
            )
        try:
            return TrainConfig.from_dict(values)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from e

    def config_problem(self) -> str | None:
        """Why the run's config cannot be used, or None when it reads."""
        try:
            self.read_config()
        except ConfigError as e:
            return str(e)
        return None

    # --- status --------------------------------------------------------------------------
    def _load_status(self) -> tuple[dict, str | None]:
        """(status, None), or ({}, what is wrong) when status.json cannot be used."""
        try:
            status = read_json(self.path / "status.json", expect=None)
        except FileNotFoundError:
            return {"state": "queued", "step": 0}, None
        except DamagedFile as e:
            return {}, f"status.json is damaged ({e.reason}): {_FIX}"
        problem = _status_problem(status)
        return ({}, problem) if problem else (status, None)

    def read_status(self) -> dict:
        """status.json; when it is unusable, {"state": DAMAGED, "error": what is wrong}."""
        status, problem = self._load_status()
        return {"state": DAMAGED, "step": 0, "error": problem} if problem else status

    def write_status(self, **fields) -> dict:
        """Merge fields into status.json (atomically) and stamp the heartbeat; a damaged
        status.json is replaced, not merged."""
        with _STATUS_LOCK:  # the engine's heartbeat thread writes too
            status = self._load_status()[0]
            status.update(fields, updated=time.time())
            status.setdefault("created", status["updated"])
            # Not fsynced: it is rewritten every second, and a stale heartbeat reads as crashed.
            atomic.write_text(self.path / "status.json", json.dumps(status))
        return status

    def write_status_in_place(self, **fields) -> None:
        """Last resort when write_status fails on a full disk (its temp file needs room):
        overwrite status.json in place, in the blocks it already has. Not atomic; for the final
        state of a failing run only, with fields kept short."""
        with _STATUS_LOCK:
            status = self._load_status()[0]
            status.pop("command", None)  # the longest field; the log has it
            status.update(fields, updated=time.time())
            data = json.dumps(status).encode()
            fd = os.open(self.path / "status.json", os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)

    def launched_at(self) -> float | None:
        """When the process that trains this run started (wall clock): the launcher's child
        (torchrun or the engine) when status.json names one that still runs, else this
        process. A STOP older than that was meant for an earlier launch."""
        status = self.read_status()
        launcher = status.get("launcher_pid")
        if launcher and same_process(launcher, status.get("launcher_pid_start")):
            return process_started_at(launcher)
        return process_started_at(os.getpid())

    def remove_temp_files(self) -> list[str]:
        """Remove the temp files of writes that a kill interrupted (a checkpoint, snapshot or
        best.pt temp can be as large as a checkpoint): every one in checkpoints/ and snapshots/,
        and this folder's own except this process's. Call while holding the writer lock.
        Returns the names removed."""
        removed = []
        for folder in (self.path, self.checkpoint_dir, self.snapshot_dir):
            with contextlib.suppress(OSError):
                for p in folder.iterdir():
                    m = _ANY_TEMP.fullmatch(p.name)
                    if m and not (folder == self.path and int(m.group(1)) == os.getpid()):
                        with contextlib.suppress(OSError):
                            p.unlink()
                            removed.append(str(p.relative_to(self.path)))
        return removed

    def mark_started(self, max_steps: int, world_size: int) -> dict:
        return self.write_status(
            state="running",
            pid=os.getpid(),
            pid_start=process_start_time(os.getpid()),
            host=socket.gethostname(),
            started=time.time(),
            max_steps=max_steps,
            world_size=world_size,
            error=None,
            reason=None,
            ended=None,
        )

    def live_pids(self, status: dict | None = None) -> list[int]:
        """The run's processes (launcher and engine) that still run on this host: a pid counts
        when its start time matches the recorded one, or, where that cannot be compared, while
        the heartbeat is younger than STALE_HEARTBEAT_S (pids are reused)."""
        status = self.read_status() if status is None else status
        if status.get("host", socket.gethostname()) != socket.gethostname():
            return []
        fresh = time.time() - (status.get("updated") or 0) <= STALE_HEARTBEAT_S
        pids = []
        for key in ("launcher_pid", "pid"):
            pid = status.get(key)
            if pid and pid not in pids:
                same = same_process(pid, status.get(f"{key}_start"))
                if same or (same is None and fresh):
                    pids.append(pid)
        return pids

    def effective_state(self, status: dict | None = None) -> str:
        """The state to show: an active run is crashed when every process it recorded is
        provably gone (dead, or its pid now another process's: kill -9, the OOM killer), at
        once; or when its heartbeat is stale and no process of it can be shown to live."""
        status = self.read_status() if status is None else status
        state = status.get("state", "queued")
        if (
            state in ACTIVE_STATES
            and status.get("host", socket.gethostname()) == socket.gethostname()
        ):
            recorded = [
                (status.get(key), status.get(f"{key}_start"))
                for key in ("launcher_pid", "pid")
                if status.get(key)
            ]
            if recorded and all(same_process(*p) is False for p in recorded):
                return CRASHED
            stale = time.time() - (status.get("updated") or 0) > HEARTBEAT_GRACE_S
            if stale and not self.live_pids(status):
                return CRASHED
        return state

    # --- writer lock ---------------------------------------------------------------------
    def lock(self) -> RunLock:
        """Take the run's writer lock (an exclusive flock on its lock file), held until
        release() or the process ends; ConfigError when another process holds it."""
        path = self.path / "lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(
                f"cannot lock run {self.run_id} ({e.strerror}): check that {self.path} is writable"
            ) from e
        try:
            _flock_soon(fd)
        except BlockingIOError:
            holder = _read_small(fd)
            os.close(fd)
            raise ConfigError(
                f"run {self.run_id} is being trained by another process"
                + (f" (pid {holder})" if holder.isdigit() else "")
                + ": wait for it to end, or stop it first"
            ) from None
        except OSError as e:
            os.close(fd)
            raise ConfigError(f"cannot lock run {self.run_id} ({e.strerror})") from e
        with contextlib.suppress(OSError):  # the pid is only for the message above
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        return RunLock(fd)

    def is_locked(self) -> bool:
        """Whether some process holds the run's writer lock now."""
        import fcntl

        try:
            fd = os.open(self.path / "lock", os.O_RDONLY)
        except OSError:
            return False
        try:
            # a shared lock: two probes at once never see each other as the writer
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)  # closing also drops a lock taken just above

    # --- stop request --------------------------------------------------------------------
    def request_stop(self) -> None:
        (self.path / "STOP").write_text(str(time.time()))

    def stop_requested(self) -> bool:
        return (self.path / "STOP").exists()

    def shown_state(self, state: str) -> str:
        """The state a page shows for state (effective_state's): "stopping" for an active run
        with a stop request, which still runs its final eval, sample and checkpoint; "starting"
        for "queued" (its process is starting), so it never reads like the run queue's
        "waiting"."""
        if state in ACTIVE_STATES and self.stop_requested():
            return STOPPING
        return STARTING if state == "queued" else state

    def clear_stop(self, older_than: float | None = None) -> None:
        """Remove the stop request; with older_than, only one written before that time (a stop
        sent while a run was starting must survive its start)."""
        path = self.path / "STOP"
        try:
            if older_than is None or path.stat().st_mtime < older_than:
                path.unlink(missing_ok=True)
        except FileNotFoundError:
            pass

    # --- checkpoints ---------------------------------------------------------------------
    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of every complete checkpoint, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = [
            (int(m.group(1)), p)
            for p in self.checkpoint_dir.iterdir()
            if (m := _CKPT.match(p.name))
        ]
        return sorted(found)

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1][1] if found else None

    @property
    def best_checkpoint_path(self) -> Path:
        """The checkpoint of the best val loss so far; never pruned by keep_checkpoints."""
        return self.checkpoint_dir / "best.pt"

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoint_dir / f"step_{step:07d}.pt"

    @property
    def snapshot_dir(self) -> Path:
        return self.path / "snapshots"

    def snapshot_path(self, step: int) -> Path:
        return self.snapshot_dir / f"step_{step:07d}.safetensors"

    def snapshots(self) -> list[tuple[int, Path]]:
        """(step, path) of every weights-only snapshot, oldest first."""
        if not self.snapshot_dir.is_dir():
            return []
        found = [
            (int(m.group(1)), p)
            for p in self.snapshot_dir.iterdir()
            if (m := _SNAPSHOT.match(p.name))
        ]
        return sorted(found)

    # --- notes: a display title and a free-text note --------------------------------------
    def read_notes(self) -> dict:
        """{"title", "note"}: the title defaults to the run id, the note to "" (also when
        notes.json is missing or unreadable). The run id itself never changes."""
        try:
            values = read_json(self.path / "notes.json")
        except (FileNotFoundError, DamagedFile):
            values = {}
        title, note = values.get("title"), values.get("note")
        return {  # the limits of write_notes hold on read too: a hand-edited file may break them
            "title": title if title_problem(title) is None else self.run_id,
            "note": note[:NOTE_MAX] if isinstance(note, str) else "",
        }

    def write_notes(self, title: str | None = None, note: str | None = None) -> dict:
        """Set the title (1-80 printable characters, surrounding spaces dropped) and/or the note
        (up to 2000 characters; line breaks allowed); None keeps the current value. Written
        atomically; raises ConfigError naming the problem. Returns the notes as now stored."""
        if not self.exists():
            raise ConfigError(f"no run at {self.path}: pick one from the runs list")
        if title is not None:
            title = title.strip() if isinstance(title, str) else title
            problem = title_problem(title)
            if problem:
                raise ConfigError(problem)
        if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
            got = len(note) if isinstance(note, str) else type(note).__name__
            raise ConfigError(f"note: use at most {NOTE_MAX} characters (got {got})")
        with _NOTES_LOCK:  # two browser sessions of one app may save at once
            notes = self.read_notes()
            notes.update({k: v for k, v in (("title", title), ("note", note)) if v is not None})
            atomic.write_text(self.path / "notes.json", json.dumps(notes), durable=True)
        return notes

    def delete(self) -> None:
        """Remove the files a run consists of, then the folder (now empty). Refused with a
        ConfigError, before anything is removed, for a folder that is not recognisably a run
        or that holds anything else."""
        if not self.is_ours():
            raise ConfigError(
                f"{self.path} is not a run directory of this tool (no config.json "
                "with a schema_version): not deleting it"
            )
        unexpected = self.unexpected_files()
        if unexpected:
            shown = ", ".join(unexpected[:8]) + (" ..." if len(unexpected) > 8 else "")
            raise ConfigError(
                f"{self.path} holds files that are not part of a run ({shown}): "
                "not deleting it; move them out first"
            )
        for entry in self.path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        self.path.rmdir()


def title_problem(title) -> str | None:
    """What makes a title unusable (1-80 printable characters; emoji joined by U+200D, as in
    a technologist or a heart on fire, count as printable), or None."""
    if not isinstance(title, str) or not title.strip():
        return "title: give 1-80 characters (the run id is kept either way)"
    if len(title) > TITLE_MAX or not title.replace("\u200d", "").isprintable():
        return (
            f"title: use at most {TITLE_MAX} printable characters, no line breaks or tabs "
            f"(got {len(title)} characters)"
        )
    return None


class RunLock:
    """A held writer lock on a run (see RunDir.lock)."""

    def __init__(self, fd: int):
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _flock_soon(fd: int, tries: int = 25) -> None:
    """The exclusive lock, waiting out (for up to ~0.5 s) the shared locks of readers that
    probe it (is_locked); BlockingIOError while a writer holds it."""
    import fcntl

    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == tries - 1:
                raise
            time.sleep(0.02)


def _read_small(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return os.pread(fd, 32, 0).decode().strip()
    return ""


def name_taken(runs_dir: str | Path, run_id: str) -> bool:
    """True when runs_dir already holds something named run_id (RunDir.create would refuse it)."""
    return (Path(runs_dir) / check_run_id(run_id)).exists()


def default_run_name(prefix: str, runs_dir: str | Path | None = None) -> str:
    """`<prefix>-<YYYYmmdd-HHMMSS>`, with `-2`, `-3`... added when that name is taken."""
    runs_dir = Path(runs_dir or default_runs_dir())
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in prefix).strip("-_") or "run"
    base = f"{safe[:40]}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 1
    while (runs_dir / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def queue_path(runs_dir: str | Path) -> Path:
    """The run queue of a runs directory (its format is core/runs/queue.py's business)."""
    return Path(runs_dir) / "queue.json"


def queue_lock_path(runs_dir: str | Path) -> Path:
    """The file locked (fcntl) while the queue is read and changed: the app and the engines
    that start the next run share it."""
    return Path(runs_dir) / ".queue.lock"


def list_run_dirs(runs_dir: str | Path | None = None) -> list[RunDir]:
    """Every run directory under runs_dir (folders recognisably ours, waiting ones included),
    newest first."""
    root = Path(runs_dir or default_runs_dir())
    try:
        runs = [RunDir(p) for p in root.iterdir() if p.is_dir() and RunDir(p).is_ours()]
    except OSError:  # missing or unreadable
        return []
    return sorted(runs, key=lambda r: r.read_status().get("created") or 0, reverse=True)


def run_name_problem(runs_dir: str | Path, run_id: str) -> str | None:
    """Why run_id cannot name a new run in runs_dir (not a safe slug, or taken), or None."""
    try:
        check_run_id(run_id)
    except ConfigError as e:
        return str(e)
    if name_taken(runs_dir, run_id):
        return f"a run named {run_id!r} already exists: pick another name"
    return None


def runs_with_checkpoints(runs_dir: str | Path | None = None) -> list[str]:
    """The ids of the runs in runs_dir that hold a checkpoint (a new run can start from them),
    newest first."""
    return [
        r.run_id
        for r in list_run_dirs(runs_dir)
        if r.checkpoints() or r.best_checkpoint_path.is_file()
    ]


def source_fingerprint(source: str | Path) -> tuple:
    """(file, mtime) pairs that change when the weights a source path offers change: a run
    directory's config, best and step checkpoints, else the path itself; missing files are left
    out. A cache keyed by it reads the source again after a new checkpoint."""
    path = Path(source).expanduser()
    files = [path]
    if path.is_dir():
        run = RunDir(path)
        files = [path / "config.json", run.best_checkpoint_path, *[p for _, p in run.checkpoints()]]
    return tuple((str(f), f.stat().st_mtime) for f in files if f.exists())
