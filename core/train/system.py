"""What the training process costs the machine: CPU %, resident memory and GPU memory, sampled
for the `system` metrics records, and the peak memory each train record carries."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time

import torch

from core import device as devices


class SystemSampler:
    """Process CPU %, resident memory and GPU memory, for a `system` record at most once a second."""

    def __init__(self):
        self.last_wall, self.last_cpu = time.monotonic(), time.process_time()

    def sample(self, choice) -> dict | None:
        wall, cpu = time.monotonic(), time.process_time()
        if wall - self.last_wall < 1.0:
            return None
        values = {
            "cpu_percent": 100 * (cpu - self.last_cpu) / (wall - self.last_wall),
            "rss_mb": rss_mb(),
        }
        self.last_wall, self.last_cpu = wall, cpu
        if choice.type == "cuda":
            values["gpu_mem_mb"] = torch.cuda.memory_allocated(choice.device) / 2**20
            with contextlib.suppress(Exception):  # needs pynvml; not every machine has it
                values["gpu_util"] = float(torch.cuda.utilization(choice.device))
        return values


def rss_mb() -> float:
    """Resident memory now (Linux /proc), else the peak the OS reports."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB else


def peak_memory_mb(choice) -> float:
    """Peak device memory on CUDA; elsewhere the process's peak resident memory."""
    gpu = devices.peak_memory_mb(choice)
    return gpu if gpu is not None else peak_rss_mb()
