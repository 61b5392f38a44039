"""The run directory: the one interface between the engine and everything that reads runs.

This module alone knows the file names inside `runs/<run_id>/` (see shared DESIGN.md):
config.json, status.json, metrics.jsonl, log.txt, checkpoints/ (step_NNNNNNN.pt and best.pt),
STOP. What a metrics record holds is core/metrics.py's business, what a checkpoint holds
core/checkpoint.py's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

from core.config import SCHEMA_VERSION, ConfigError, TrainConfig, check_run_id

ACTIVE_STATES = ("queued", "running")
CRASHED = "crashed"  # never written: how readers show a running run whose process is gone
HEARTBEAT_GRACE_S = 5.0
_STATUS_LOCK = threading.Lock()
_CKPT = re.compile(r"^step_(\d{7})\.pt$")


def default_runs_dir() -> Path:
    """`$GPT_RUNS_DIR`, else `runs/` in the project."""
    env = os.environ.get("GPT_RUNS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "runs"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    def create(cls, runs_dir: str | Path, run_id: str, config: TrainConfig) -> "RunDir":
        run = cls(Path(runs_dir) / check_run_id(run_id))
        try:
            run.path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise ConfigError(f"a run named {run_id!r} already exists in {runs_dir}: pick another name")
        run.write_config(config)
        run.write_status(state="queued", step=0, max_steps=config.max_steps)
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
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def exists(self) -> bool:
        return (self.path / "config.json").is_file()

    # --- config --------------------------------------------------------------------------
    def write_config(self, config: TrainConfig) -> None:
        _write_atomic(self.path / "config.json",
                      json.dumps({"schema_version": SCHEMA_VERSION, **config.to_dict()}, indent=2))

    def read_config(self) -> TrainConfig:
        try:
            values = json.loads((self.path / "config.json").read_text())
        except FileNotFoundError:
            raise ConfigError(f"{self.path} is not a run directory (no config.json)")
        except json.JSONDecodeError as e:
            raise ConfigError(f"{self.path}/config.json is corrupt: {e}")
        return TrainConfig.from_dict(values)

    # --- status --------------------------------------------------------------------------
    def read_status(self) -> dict:
        try:
            return json.loads((self.path / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"state": "queued", "step": 0}

    def write_status(self, **fields) -> dict:
        """Merge fields into status.json (atomically) and stamp the heartbeat."""
        with _STATUS_LOCK:  # the engine's heartbeat thread writes too
            status = self.read_status()
            status.update(fields, updated=time.time())
            status.setdefault("created", status["updated"])
            _write_atomic(self.path / "status.json", json.dumps(status))
        return status

    def mark_started(self, max_steps: int, world_size: int) -> dict:
        return self.write_status(state="running", pid=os.getpid(), host=socket.gethostname(),
                                 started=time.time(), max_steps=max_steps, world_size=world_size,
                                 error=None, reason=None, ended=None)

    def effective_state(self, status: dict | None = None) -> str:
        """The state to show: a running run whose process is gone and heartbeat stale is crashed."""
        status = status or self.read_status()
        state = status.get("state", "queued")
        if state in ACTIVE_STATES and status.get("host", socket.gethostname()) == socket.gethostname():
            stale = time.time() - status.get("updated", 0) > HEARTBEAT_GRACE_S
            if stale and not pid_alive(status.get("pid")) and not pid_alive(status.get("launcher_pid")):
                return CRASHED
        return state

    # --- stop request --------------------------------------------------------------------
    def request_stop(self) -> None:
        (self.path / "STOP").write_text(str(time.time()))

    def stop_requested(self) -> bool:
        return (self.path / "STOP").exists()

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
        found = [(int(m.group(1)), p) for p in self.checkpoint_dir.iterdir()
                 if (m := _CKPT.match(p.name))]
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

    def delete(self) -> None:
        shutil.rmtree(self.path)


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


def list_run_dirs(runs_dir: str | Path | None = None) -> list[RunDir]:
    """Every run directory under runs_dir, newest first."""
    root = Path(runs_dir or default_runs_dir())
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: r.read_status().get("created", 0), reverse=True)
