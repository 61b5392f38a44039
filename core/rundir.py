"""The run directory: the one interface between the engine and everything that reads runs.

This module alone knows the file names inside `runs/<run_id>/` (see shared DESIGN.md):
config.json, status.json, metrics.jsonl, log.txt, checkpoints/, STOP.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from core.config import SCHEMA_VERSION, ConfigError, TrainConfig, check_run_id

STATES = ("queued", "running", "completed", "stopped", "failed")
ACTIVE_STATES = ("queued", "running")
CRASHED = "crashed"  # never written: how readers show a running run whose process is gone
HEARTBEAT_GRACE_S = 5.0
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

    def clear_stop(self) -> None:
        (self.path / "STOP").unlink(missing_ok=True)

    # --- metrics -------------------------------------------------------------------------
    def open_metrics(self):
        """A line-buffered append handle: each record reaches the file as it is written."""
        return open(self.metrics_path, "a", buffering=1)

    def truncate_metrics_after(self, step: int) -> None:
        """On resume, drop records past the checkpoint's step so the log never has two of one step."""
        if not self.metrics_path.exists():
            return
        kept = [r for r in MetricsReader(self.metrics_path).read_new() if r.get("step", 0) <= step]
        _write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

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

    def save_checkpoint(self, state: dict, step: int, keep: int = 0) -> Path:
        """Write to a temp name and rename, so a crash never leaves a half file as the latest."""
        self.checkpoint_dir.mkdir(exist_ok=True)
        path = self.checkpoint_dir / f"step_{step:07d}.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        if keep:
            for _, old in self.checkpoints()[:-keep]:
                old.unlink(missing_ok=True)
        return path

    def delete(self) -> None:
        shutil.rmtree(self.path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint safely (tensors and plain types only); clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "it may be truncated or not one of ours: pick another checkpoint"
        ) from e
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path} is not a checkpoint of this project (no model weights and config)")
    return state


@dataclass
class MetricsReader:
    """Reads metrics.jsonl incrementally: remembers the byte offset and skips a torn last line.

    A resume rewrites the file (a new inode, perhaps soon longer than before); the reader then
    starts over from the top and says so, so that callers drop what they built from the old file.
    """

    path: Path
    offset: int = 0
    file_id: tuple | None = None  # (device, inode) of the file read so far

    def read_new_bytes(self) -> tuple[bytes, bool]:
        """Complete lines appended since the last call, and whether the file was replaced since
        (then the bytes are the whole new file, from its start)."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                restarted = self.file_id not in (None, (st.st_dev, st.st_ino)) or st.st_size < self.offset
                if restarted:
                    self.offset = 0
                self.file_id = (st.st_dev, st.st_ino)
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return b"", False
        end = chunk.rfind(b"\n") + 1  # a line without its newline is still being written
        self.offset += end
        return chunk[:end], restarted

    def read_new(self) -> list[dict]:
        """Records appended since the last call (complete lines only)."""
        return parse_records(self.read_new_bytes()[0])


def parse_records(chunk: bytes) -> list[dict]:
    """JSON records of complete lines, skipping any that a crash tore mid-write."""
    records = []
    for line in chunk.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # JSON or UTF-8 errors
            continue
    return records


def list_runs(runs_dir: str | Path | None = None) -> list[RunDir]:
    """Every run directory under runs_dir, newest first."""
    root = Path(runs_dir or default_runs_dir())
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: r.read_status().get("created", 0), reverse=True)
