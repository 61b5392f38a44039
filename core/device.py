"""Device choices: which device, which autocast dtype, compile or not, which loss path, and the
peak FLOP/s.

Defaults are the fastest measured per device type: on CUDA bf16 autocast + torch.compile + TF32
and the plain loss; on CPU fp32 eager (a CPU without native bf16 runs bf16 ~20x slower, and a
cold compile costs 20-50 s and makes steps only ~3% faster on a 2-core machine, repaid after
~1,800 steps) with the fused loss (core/model/fused_loss.py; see bench/train.py --compare-defaults and
--compare-loss, and the README).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from dataclasses import dataclass

import torch

from core.jsonfile import read_json

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, for MFU.
GPU_PEAK_BF16 = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "A10G": 70e12,
    "A10": 125e12,
    "L40S": 362e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
    "V100": 125e12,
    "T4": 65e12,
}
DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LOSSES = ("auto", "fused", "plain")


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu", "cuda:0", "mps"
    dtype: str  # autocast dtype name
    compile: bool
    why: str  # one line a person can read: what was chosen and why
    loss: str = "plain"  # "fused": GPT(fused_loss=True), see core/model/fused_loss.py; or "plain"

    @property
    def type(self) -> str:
        return self.device.split(":")[0]

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPE_NAMES[self.dtype]

    def autocast(self):
        """bf16/fp16 autocast for the forward pass; a no-op in fp32."""
        if self.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.type, dtype=self.torch_dtype)


def choose(
    device: str = "auto",
    dtype: str = "auto",
    compile: str = "auto",
    local_rank: int = 0,
    loss: str = "auto",
) -> DeviceChoice:
    """Resolve 'auto' settings to concrete ones for this machine. loss is "fused" (output layer
    and cross-entropy in one chunked pass), "plain" (logits, then F.cross_entropy) or "auto"."""
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss path {loss!r}; use one of {', '.join(LOSSES)}")
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            "device: CUDA was asked for but torch sees no GPU; use --device cpu "
            "or install a CUDA build of PyTorch (see README)"
        )
    kind = device.split(":")[0]
    reasons = []
    if dtype == "auto":
        if kind == "cuda" and torch.cuda.is_bf16_supported():
            dtype, why = "bfloat16", "bf16 autocast: tensor cores, no loss scaling needed"
        else:
            dtype, why = "float32", f"fp32: bf16 has no fast path on {kind}"
        reasons.append(why)
    if compile == "auto":
        compile_on = kind == "cuda"
        reasons.append(
            "torch.compile on: fuses kernels on CUDA"
            if compile_on
            else f"eager: on {kind} a cold torch.compile costs 20-50 s for ~3% faster steps "
            "(measured), repaid only after ~1,800 steps"
        )
    else:
        compile_on = compile == "on"
    if loss == "auto":
        loss, why = _loss_path(kind)
        reasons.append(why)
    return DeviceChoice(device, dtype, compile_on, "; ".join(reasons) or "as configured", loss)


def _loss_path(kind: str) -> tuple[str, str]:
    """The faster loss path on this device type, and why (bench/train.py --compare-loss)."""
    if kind == "cpu":
        return "fused", (
            "fused loss: output layer + cross-entropy in row chunks, no (tokens x "
            "vocab) logits; on CPU 1.6-2.3x the tokens/s of the plain loss for nano "
            "and micro and 24-58% less peak memory (measured)"
        )
    return "plain", (
        f"plain loss: the fused one is measured on CPU only; on {kind} compile fuses "
        "the plain loss, which the chunked loop would split off the graph"
    )


def setup_backend(choice: DeviceChoice) -> None:
    if choice.type == "cuda":
        torch.cuda.set_device(choice.device)
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: ~8x faster fp32 on Ampere+


@dataclass(frozen=True)
class PeakFlops:
    """The peak FLOP/s MFU is measured against, and where it comes from (shown beside MFU)."""

    value: float
    source: str


def peak_flops(choice: DeviceChoice, configured: float = 0.0, measure: bool = False) -> PeakFlops:
    """Peak FLOP/s to measure MFU against: the configured value, a GPU table entry, or the CPU's
    peak as measured here (see measured_cpu_peak; measure=True measures again, as the engine
    does at each start). value 0 means unknown (no MFU)."""
    if configured:
        return PeakFlops(configured, "peak_flops setting")
    if choice.type == "cuda":
        name = torch.cuda.get_device_name(choice.device)
        for key, value in GPU_PEAK_BF16.items():
            if key in name:
                tf32 = choice.dtype == "float32"
                return PeakFlops(
                    value / 2 if tf32 else value,
                    f"{key} data sheet, {'TF32 (half the bf16 rate)' if tf32 else 'bf16'}",
                )
        return PeakFlops(0.0, f"{name} is not in the GPU table: set peak_flops")
    if choice.type == "cpu":
        value, measured_at = measured_cpu_peak(measure=measure)
        return PeakFlops(
            value,
            f"fp32 matmul measured here {time.strftime('%Y-%m-%d %H:%M', time.localtime(measured_at))}",
        )
    return PeakFlops(0.0, "unknown for this device: set peak_flops")


PEAK_MAX_AGE_S = 30 * 86400  # hardware and libraries change: measure afresh after a month


def measured_cpu_peak(
    size: int = 2048, repeats: int = 5, measure: bool = True
) -> tuple[float, float]:
    """fp32 matmul FLOP/s of this CPU with torch's threads, and when that was measured.

    With measure (each training run's start) it measures again (the best of `repeats`, about
    half a second) and keeps the highest figure seen in the last month: a measurement taken
    while other work loaded the machine is too low, and is replaced as soon as an idle one beats
    it, never the other way round. Without, a cached figure is returned as it is.
    """
    from core.config import cache_dir

    key = f"{platform.processor() or platform.machine()}-{os.cpu_count()}-{torch.get_num_threads()}"
    path = cache_dir() / "cpu_peak.json"
    try:
        cached = read_json(path)
    except (OSError, ValueError):  # missing or damaged: measured again
        cached = {}
    now = time.time()
    old = cached.get(key)
    if not measure and isinstance(old, dict) and now - old.get("measured_at", 0) < PEAK_MAX_AGE_S:
        return old["flops"], old["measured_at"]
    flops = _matmul_flops(size, repeats)
    if (
        isinstance(old, dict)
        and now - old.get("measured_at", 0) < PEAK_MAX_AGE_S
        and old.get("flops", 0) >= flops
    ):
        return old["flops"], old["measured_at"]
    cached[key] = {"flops": flops, "measured_at": now}
    with contextlib.suppress(OSError):
        path.write_text(json.dumps(cached))
    return flops, now


def _matmul_flops(size: int, repeats: int) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm up the threads and caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def peak_memory_mb(choice: DeviceChoice) -> float | None:
    """Peak allocated device memory since start, where the device reports it."""
    if choice.type == "cuda":
        return torch.cuda.max_memory_allocated(choice.device) / 2**20
    return None
