"""Start, stop, resume, continue, delete and list runs: the engine always runs in its own process.

The launcher prepares a run directory and starts `python -m core.train --run-dir DIR` (or
torchrun for several processes) detached from the caller: its own session, output to the run's
log. The caller (the dashboard, a script) can exit or restart without touching the run; the run
directory stays the only truth. No command is ever a shell string.
"""

from __future__ import annotations

import operator
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigError, TrainConfig, check_run_id
from core.runs.preflight import check_runnable
from core.store import metrics
from core.store.rundir import (
    ACTIVE_STATES,
    DAMAGED,
    WAITING,
    RunDir,
    default_run_name,
    default_runs_dir,
    list_run_dirs,
    process_start_time,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 30.0  # the least time a run gets to end by itself before each signal
# The engine stamps status.json every second while it lives (a final eval, sample and checkpoint
# included): a stop waits as long as it does, and signals only once stamps stop this long.
HEARTBEAT_FRESH_S = 10.0
_POLL_S = 0.2
# What torchrun tells its ranks: a run started from a rank (the run queue) must not inherit it.
_DISTRIBUTED_ENV = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_NAME",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS",
    "TORCHELASTIC_USE_AGENT_STORE",
)

# Children started from this process, by pid: poll() reaps the finished ones so they never
# linger as zombies (a zombie's pid still "exists" and would look alive).
_children: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class RunInfo:
    """A run directory with the status read once and the state to show (crashed detected)."""

    run: RunDir
    status: dict
    state: str

    @property
    def run_id(self) -> str:
        return self.run.run_id


def reap() -> None:
    """Collect the exit status of finished children started by this process."""
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


def engine_command(
    run_path: str | Path, nproc: int, resume: bool = False, max_steps: int | None = None
) -> list[str]:
    """The argument list that trains the prepared run at run_path (torchrun when nproc > 1)."""
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd += ["-m", "core.train", "--run-dir", str(Path(run_path).resolve())]
    if resume:
        cmd.append("--resume")
    if max_steps is not None:
        cmd += ["--max-steps", str(int(max_steps))]
    return cmd


def _spawn(run: RunDir, cmd: list[str]) -> int:
    env = {k: v for k, v in os.environ.items() if k not in _DISTRIBUTED_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    # `-m core.train` must find the project whatever the caller's working directory was.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    with open(run.log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    # The engine needs a second or more to import torch before it writes its own status, so
    # this merge lands first; launcher_pid keeps a starting run from looking crashed, and its
    # start time tells it from a later process that gets the same pid.
    run.write_status(
        launcher_pid=proc.pid, launcher_pid_start=process_start_time(proc.pid), command=cmd
    )
    return proc.pid


def launch(config: TrainConfig, runs_dir: str | Path | None = None, name: str | None = None) -> str:
    """Validate config, create runs_dir/name and start training it in the background.

    Raises ConfigError (or core.data.dataset.DataError) naming the field and fix before anything is
    created; returns the run id as soon as the process is started.
    """
    reap()
    runs_dir = Path(runs_dir or default_runs_dir())
    check_runnable(config)
    name = check_run_id(name) if name else default_run_name("run", runs_dir)
    run = RunDir.create(runs_dir, name, config)
    _spawn(run, engine_command(run.path, config.nproc))
    return run.run_id


def launch_prepared(run: RunDir) -> str:
    """Start training a run directory that was created but never started (a waiting run of the
    queue): its status turns 'queued' before the process starts, so it reads as active at once.
    Returns the run id."""
    reap()
    cfg = run.read_config()
    cleared = dict(pid=None, launcher_pid=None, error=None, reason=None, ended=None)
    # from_queue: the Live page of the run that ended says which run the queue started after it
    run.write_status(state="queued", from_queue=time.time(), **cleared)
    _spawn(run, engine_command(run.path, cfg.nproc))
    return run.run_id


def _as_run(run: RunDir | str | Path, runs_dir: str | Path | None = None) -> RunDir:
    if isinstance(run, RunDir):
        return run
    if runs_dir is not None:
        run = RunDir(Path(runs_dir) / check_run_id(str(run)))
    else:
        run = RunDir(run)
    if not run.exists():
        raise ConfigError(f"no run at {run.path}: pick one from the runs list")
    if not run.is_ours():
        raise ConfigError(
            f"{run.path} is not a run directory of this tool (its config.json has "
            "no schema_version): leaving it alone"
        )
    return run


def state_of(run: RunDir) -> str:
    """The state to show for run: status.json's state, or 'crashed' when its process is gone."""
    reap()
    return run.effective_state()


def _pids(status: dict) -> list[int]:
    return [p for p in (status.get("launcher_pid"), status.get("pid")) if p]


def _signal_group(run: RunDir, sig: int) -> None:
    """Send sig to the process group of each of the run's processes (torchrun and its ranks);
    only to processes that are provably the run's (a reused pid is someone else's)."""
    for pid in run.live_pids():
        try:
            if os.getpgid(pid) == pid:  # a group leader: one we started in its own session
                os.killpg(pid, sig)
            else:  # started some other way (a shell): never signal the caller's whole group
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def _heartbeat_fresh(status: dict) -> bool:
    return time.time() - (status.get("updated") or 0) <= HEARTBEAT_FRESH_S


def _wait_ended(run: RunDir, timeout: float, while_alive: bool = True) -> bool:
    """Wait until the run's processes are gone (or, with no pid known, it reads as ended): at
    least timeout seconds, and, with while_alive, as long as its heartbeat stays fresh."""
    deadline = time.monotonic() + timeout
    while True:
        reap()
        status = run.read_status()
        if _pids(status) and not run.live_pids(status):
            return True
        if not _pids(status) and run.effective_state(status) not in ACTIVE_STATES:
            return True
        if time.monotonic() >= deadline and not (while_alive and _heartbeat_fresh(status)):
            return False
        time.sleep(_POLL_S)


def stop_timeout(run: RunDir) -> float:
    """How long to wait at each stage of a stop: STOP_TIMEOUT_S, or three steps of a slow run
    (a GPT-2 124M step takes minutes on a CPU, and the engine only looks between steps)."""
    last_dt_ms = metrics.last_step_time_ms(run.metrics_path)
    return max(STOP_TIMEOUT_S, 3 * last_dt_ms / 1000)


def stop(run: RunDir | str | Path, timeout: float | None = None, wait: bool = True) -> str:
    """Ask a run to stop: write STOP (the engine finishes the step, evaluates, checkpoints and
    ends as 'stopped'). It waits for that as long as the engine's heartbeat stays fresh, however
    long the final eval and checkpoint take; only a run silent for HEARTBEAT_FRESH_S after
    timeout is SIGTERMed (also a clean stop), then SIGKILLed. Only the run's own processes are
    ever signalled. With wait=False the escalation runs in a background thread and this returns
    at once. Returns the state seen at return."""
    run = _as_run(run)
    state = state_of(run)
    if state not in ACTIVE_STATES:
        return state
    run.request_stop()
    timeout = stop_timeout(run) if timeout is None else timeout
    if not wait:
        threading.Thread(
            target=_escalate, args=(run, timeout), daemon=True, name=f"stop-{run.run_id}"
        ).start()
        return state_of(run)
    _escalate(run, timeout)
    return state_of(run)


def _escalate(run: RunDir, timeout: float) -> None:
    """Wait for the STOP request to work; then SIGTERM; then SIGKILL. A run whose processes
    were ended by a signal before they could write their final state is marked failed."""
    sent = None
    try:
        for sig, wait_s in ((None, timeout), (signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if sig is not None:
                _signal_group(run, sig)
                sent = sig
            if _wait_ended(run, wait_s, while_alive=sig != signal.SIGKILL):
                break
        if sent is not None and run.read_status().get("state") in ACTIVE_STATES:
            run.write_status(
                state="failed",
                reason="killed",
                ended=time.time(),
                error=f"stopped responding (no heartbeat for {HEARTBEAT_FRESH_S:.0f}s) after the "
                f"stop request; ended with {signal.Signals(sent).name}. Resume continues "
                "from the last checkpoint",
            )
    finally:
        run.clear_stop()


def checkpoint_step(run: RunDir) -> int | None:
    """The step a resume restarts from: the newest checkpoint's, or None without one."""
    found = run.checkpoints()
    return found[-1][0] if found else None


def _still_locked(run: RunDir, state: str) -> bool:
    """Whether a process holds the run's writer lock. A killed engine's lock goes with its last
    thread, a moment after its pid reads dead: for a crashed run, wait up to 2 s for that."""
    deadline = time.monotonic() + (2.0 if state == "crashed" else 0.0)
    while run.is_locked():
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)
    return False


def can_resume(run: RunDir | str | Path) -> tuple[bool, str]:
    """Whether plain Resume (no new max_steps) would train anything, and why not (or from
    where): refused while active or waiting in the queue, without a checkpoint, and for a
    completed run, which only Continue training (continue_run) takes further."""
    run = _as_run(run)
    state = state_of(run)
    if state in ACTIVE_STATES:
        return False, f"{state}: stop it before resuming"
    if _still_locked(run, state):
        return False, "being trained by another process: stop it first"
    if state == WAITING:
        return False, "waiting in the run queue: it starts when the runs before it end"
    step = checkpoint_step(run)
    if step is None:
        return False, (
            "no checkpoint to resume from (it ended before its first save): start a new run instead"
        )
    max_steps = run.read_config().max_steps
    if step >= max_steps:
        return False, "completed: use Continue training with a higher max_steps"
    if state == "completed":
        why = run.read_status().get("reason") or "ended by its own rule"
        return False, f"completed ({why}): use Continue training to train further"
    return True, f"resumes from step {step} of {max_steps}"


def resume(run: RunDir | str | Path, max_steps: int | None = None) -> str:
    """Continue a stopped, failed or crashed run from its latest checkpoint, in the background;
    refused (ConfigError with can_resume's reason) where that would train nothing. max_steps,
    when given, means continue_run(run, max_steps). Returns the run id."""
    if max_steps is not None:
        return continue_run(run, max_steps)
    run = _as_run(run)
    ok, why = can_resume(run)
    if not ok:
        raise ConfigError(f"run {run.run_id}: {why}")
    _respawn(run, run.read_config())
    return run.run_id


def continued_config(
    cfg: TrainConfig, from_step: int, max_steps: int, target_loss: float | None = None
) -> TrainConfig:
    """The config that trains a run on from checkpoint step from_step to max_steps (which must
    be above it), with target_loss when given. The learning-rate schedule keeps its length: with
    lr_decay_steps at 0 (decay over max_steps) it becomes the old max_steps, so the cosine
    still ends there and the extra steps train at min_lr. Raises ConfigError."""
    try:
        steps = operator.index(max_steps)  # ints of any kind (a widget's numpy int too)
    except TypeError:
        steps = None
    if steps is None or isinstance(max_steps, bool) or steps <= from_step:
        raise ConfigError(
            f"max_steps: must be a whole number above the checkpoint's step "
            f"{from_step} to train further (got {max_steps!r})"
        )
    changes = {"max_steps": steps}
    if not cfg.lr_decay_steps:
        changes["lr_decay_steps"] = cfg.max_steps
    if target_loss is not None:
        changes["target_loss"] = target_loss
    return cfg.replace(**changes)


def continue_run(run: RunDir | str | Path, max_steps: int, target_loss: float | None = None) -> str:
    """Continue training a run that is not active (completed ones included) from its latest
    checkpoint up to a new max_steps, in the background: config.json is rewritten through
    continued_config (the cosine keeps its old length; the extra steps train at min_lr).
    Raises ConfigError (active, no checkpoint, max_steps not above the checkpoint's step, an
    invalid target_loss) before anything changes; returns the run id."""
    run = _as_run(run)
    state = state_of(run)
    if state in ACTIVE_STATES:
        raise ConfigError(f"run {run.run_id} is {state}: stop it before continuing")
    step = checkpoint_step(run)
    if step is None:
        raise ConfigError(
            f"run {run.run_id} has no checkpoint to continue from (it ended before "
            "its first save): start a new run instead"
        )
    if run.is_locked():
        raise ConfigError(f"run {run.run_id} is being trained by another process: stop it first")
    cfg = continued_config(run.read_config(), step, max_steps, target_loss)
    check_runnable(cfg)
    try:
        run.write_config(cfg)
    except OSError as e:
        raise ConfigError(
            f"cannot resume run {run.run_id}: {e.strerror or e} "
            f"({e.filename or run.path}); check that the runs directory is "
            "writable"
        ) from e
    _respawn(run, cfg)
    return run.run_id


def _respawn(run: RunDir, cfg: TrainConfig) -> None:
    """Start the engine on run with --resume: 'queued' until the engine takes over."""
    try:
        run.clear_stop()
        # A fresh heartbeat, no old pids, and the step it restarts from.
        run.write_status(
            state="queued",
            step=checkpoint_step(run),
            pid=None,
            pid_start=None,
            launcher_pid=None,
            launcher_pid_start=None,
            error=None,
            reason=None,
            ended=None,
        )
        _spawn(run, engine_command(run.path, cfg.nproc, resume=True))
    except OSError as e:
        raise ConfigError(
            f"cannot resume run {run.run_id}: {e.strerror or e} "
            f"({e.filename or run.path}); check that the runs directory is "
            "writable"
        ) from e


def delete(run: RunDir | str | Path) -> None:
    """Remove a run directory's files and then the folder; refused while the run is queued or
    running, and for a folder holding anything that is not part of a run (ConfigError)."""
    run = _as_run(run)
    state = state_of(run)
    if state in ACTIVE_STATES:
        raise ConfigError(f"run {run.run_id} is {state}: stop it before deleting")
    if run.is_locked():
        raise ConfigError(f"run {run.run_id} is being trained by another process: stop it first")
    try:
        run.delete()
    except OSError as e:
        raise ConfigError(
            f"cannot delete run {run.run_id}: {e.strerror or e} "
            f"({e.filename or run.path}); check that the runs directory is "
            "writable"
        ) from e


def list_runs(runs_dir: str | Path | None = None) -> list[RunInfo]:
    """Every run under runs_dir, newest first, with the state to show (crashed detected; a run
    whose config or status cannot be used is DAMAGED, with status['error'] saying why)."""
    reap()
    infos = []
    for run in list_run_dirs(runs_dir):
        status = run.read_status()
        state = run.effective_state(status)
        problem = run.config_problem() if state not in ACTIVE_STATES else None
        if problem:
            status, state = {**status, "state": DAMAGED, "error": problem}, DAMAGED
        infos.append(RunInfo(run, status, state))
    return infos
