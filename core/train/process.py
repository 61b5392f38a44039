"""The training process's plumbing: its output copied into log.txt, the stop signal (SIGTERM,
SIGINT or the run's STOP file, agreed by every rank) and the heartbeat thread."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

from core.store.rundir import RunDir
from core.train.distributed import Dist, agree_max


class _Tee:
    """Copy a stream into log.txt when the process was not started with its output there."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.stream.write(text)
        self.log.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.log.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def output_in_log(run: RunDir):
    """Make sure stdout and stderr reach log.txt (the launcher already points them there)."""
    try:
        out, log_file = os.fstat(sys.stdout.fileno()), os.stat(run.log_path)
        same = (out.st_dev, out.st_ino) == (log_file.st_dev, log_file.st_ino)
    except (OSError, ValueError, AttributeError):  # no log yet, or stdout is not a real file
        same = False
    if same:
        yield
        return
    saved = sys.stdout, sys.stderr
    with open(run.log_path, "a", buffering=1) as log:
        sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(sys.stderr, log)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved


class StopSignal:
    """SIGTERM / SIGINT ask for a clean stop at the end of the current step (while training in
    the main thread; the previous handlers come back afterwards)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.name = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def _handle(self, signum, frame):
        self.name = signal.Signals(signum).name

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def stop_requested(run: RunDir, ddp: Dist, stop_signal: StopSignal, device) -> str | None:
    """Why to stop now (STOP file on rank 0, or a signal on any rank), agreed by every rank."""
    local = 0
    if stop_signal.name:
        local = 2
    elif ddp.master and run.stop_requested():
        local = 1
    local = agree_max(local, ddp, device)
    return {0: None, 1: "stop requested", 2: f"signal {stop_signal.name or 'on another rank'}"}[
        local
    ]


class Heartbeat:
    """Stamps status.json with the step every second from a thread, so a long eval, sample or
    checkpoint never makes a live run look crashed."""

    def __init__(self, run: RunDir, step: int | None, interval: float = 1.0):
        self.run, self.step, self.interval = run, step, interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")
        self._thread.start()

    def _beat(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                # before setup knows the step (None), stamp the time only
                fields = {} if self.step is None else {"step": self.step}
                self.run.write_status(**fields)
            except OSError:  # a full disk: the final status write reports it
                pass

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
