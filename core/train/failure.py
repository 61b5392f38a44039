"""The failure report: what a crashed training process writes to log.txt and status.json, so
the run ends `failed` with one line that names the cause (a full disk, a lost peer, a rank)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import time
import traceback

from core.store import checkpoint
from core.store.rundir import RunDir
from core.train.distributed import Dist, lost_peer


def describe(e: BaseException, run: RunDir, ddp: Dist) -> str:
    """One line for the status: the error, what to do about a full disk, which rank failed."""
    message = f"{type(e).__name__}: {e}"
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        if not isinstance(e, checkpoint.DiskFull):  # a log or metrics write hit the wall
            with contextlib.suppress(OSError):
                free = shutil.disk_usage(run.path).free / 2**20
                message = (
                    f"no space left on device (free {free:.0f} MB) writing "
                    f"{e.filename or run.log_path}"
                )
        message += "; free some space, then resume: it continues from the last checkpoint"
    if ddp.world_size > 1 and lost_peer(e):
        return (
            f"rank {ddp.rank} lost contact with another rank, which crashed or was "
            f"killed (torchrun's summary in log.txt names it): {message}"
        )
    if ddp.world_size > 1:
        return f"rank {ddp.rank} failed: {message}"
    return message


def report(e: BaseException, run: RunDir, ddp: Dist, began: float) -> str:
    """Log the traceback, mark the run failed (unless another rank already reported the cause
    since `began`) and return "failed"; on several ranks, end this process at once."""
    message = describe(e, run, ddp)
    with contextlib.suppress(OSError, ValueError):  # a full disk may refuse the log too
        traceback.print_exc()
        print(f"run failed: {message}", file=sys.stderr, flush=True)
    # Any rank may report a failure: the others may be blocked in a collective. The first
    # report is the cause; the ranks that then lose their peer must not overwrite it.
    status = run.read_status()
    if not (status.get("state") == "failed" and (status.get("ended") or 0) >= began):
        _mark_failed(run, message)
    if ddp.world_size > 1:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os._exit(1)  # do not wait for ranks stuck in a collective; torchrun ends them
    return "failed"


def _mark_failed(run: RunDir, message: str) -> None:
    try:
        run.write_status(state="failed", error=message, reason="error", ended=time.time())
    except OSError:  # no room for status.json's temp file: overwrite it in place
        with contextlib.suppress(OSError):
            run.write_status_in_place(
                state="failed", error=message[:300], reason="error", ended=time.time()
            )
