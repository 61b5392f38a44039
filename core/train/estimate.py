"""What a config means before it runs: parameters, tokens per step, memory and time.

Everything here is arithmetic on the config (no model is built), so the New run page can show it
on every keystroke. The time estimate uses a measured throughput where this machine has trained
the same model shape before, and otherwise a clearly labelled FLOPs-based guess.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from core.config import TrainConfig, with_derived_accum
from core.model.gpt import ModelConfig, flops_per_token
from core.model.param_count import model_shape, param_count, param_counts
from core.store import metrics
from core.store.rundir import list_run_dirs
from core.train.throughput import Probe

MB = 2**20
FP32 = 4
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
STARTUP_S = 4.0  # launch to first step, eager, caches warm (bench/launch.py: 3.8 s)
GUESS_UTILISATION = 0.30  # fraction of peak FLOP/s a small GPT step reaches (a rough guess)
CPU_RUNTIME_MB = 300.0  # resident memory of a CPU training process before any tensor: Python,
# PyTorch, tiktoken and the engine imported (291 MiB measured here with ru_maxrss)
CHUNK_ROWS = 128  # core.model.fused_loss.DEFAULT_CHUNK_ROWS (not imported: no torch here)
ACTIVATION_FORMULA = (
    "activations ~ B*T*(16*L*C*a + 4*C) bytes per process: each block keeps ~16 values of width "
    "C per token for the backward pass (Korthikanti et al. 2022; SDPA attention stores no T x T "
    "matrix), and with dropout two masks and outputs more per block (2*C*(1 + a)). The output "
    "layer and loss: the plain path forms the logits (a bytes each) and meets three fp32 "
    "tensors of their shape (log-softmax, its gradient and the logits' gradient), B*T*V*(a + "
    "12) bytes; the fused path (the CPU default) never forms them: one 128-row chunk of fp32 "
    "logits, the output weight's gradient and the input's, 128*V*4 + V*C*4 + B*T*C*4 bytes. "
    "On a CPU the process itself adds ~300 MiB (PyTorch, measured). B = micro_batch_size, "
    "T = seq_len, L = n_layer, C = n_embd, V = vocab_size, a = bytes of the autocast dtype; one "
    "micro batch is alive at a time, so grad_accum_steps adds nothing."
)


def memory_mb(
    cfg: TrainConfig, dtype: str = "float32", loss: str = "plain", device_type: str = "cpu"
) -> dict[str, float]:
    """Estimated peak training memory per process in MiB (2**20 bytes; the name says MB for
    history): fp32 weights, fp32 gradients, AdamW's two fp32 moments, the blocks' activations
    of one micro batch, what the loss path allocates (see ACTIVATION_FORMULA), on a CPU the
    process itself, and their total. tests/test_estimate.py checks it against measured peaks."""
    n = param_count(cfg)
    a = DTYPE_BYTES.get(dtype, FP32)
    B, T, L, C, V = cfg.micro_batch_size, cfg.seq_len, cfg.n_layer, cfg.n_embd, cfg.vocab_size
    per_block = 16 * C * a + (2 * C * (1 + a) if cfg.dropout else 0)
    if loss == "fused":
        output = min(CHUNK_ROWS, B * T) * V * FP32 + V * C * FP32 + B * T * C * FP32
    else:
        output = B * T * V * (a + 12)
    parts = {
        "weights": n * FP32 / MB,  # autocast keeps fp32 master weights
        "gradients": n * FP32 / MB,
        "optimizer (AdamW, 2 x fp32)": 2 * n * FP32 / MB,
        "activations": B * T * (L * per_block + 4 * C) / MB,
        f"output layer and loss ({loss})": output / MB,
    }
    if device_type == "cpu":
        parts["PyTorch process (CPU)"] = CPU_RUNTIME_MB
    parts["total"] = sum(parts.values())
    return parts


def checkpoint_disk_mb(cfg: TrainConfig) -> float:
    """Disk the run's checkpoints need at most, in MB. A checkpoint holds the fp32 weights and
    AdamW's two fp32 moments (3 x 4 bytes a parameter; RNG and metadata are small); up to
    keep_checkpoints + 1 of them are on disk at once (the newest is written before the oldest
    goes), all of them when keep_checkpoints is 0; best.pt adds one more when evals run; the
    weights-only bf16 snapshots add up to snapshot_cap_mb."""
    size = 3 * FP32 * param_count(cfg) / MB
    interval = cfg.checkpoint_interval
    saves = -(-cfg.max_steps // interval) if interval else 1  # the last one at the end
    copies = min(cfg.keep_checkpoints + 1, saves) if cfg.keep_checkpoints else saves
    return (copies + (1 if cfg.eval_interval else 0)) * size + snapshot_disk_mb(cfg)


def snapshot_count(cfg: TrainConfig) -> int:
    """Weights-only snapshots a run writes: the untrained model, one every snapshot_interval
    steps, and the last step (0 when snapshots are off)."""
    interval = cfg.snapshot_interval
    if not interval:
        return 0
    return 1 + cfg.max_steps // interval + (1 if cfg.max_steps % interval else 0)


def snapshot_disk_mb(cfg: TrainConfig) -> float:
    """Disk the half-precision snapshots need at most: 2 bytes a parameter each, the oldest
    deleted beyond snapshot_cap_mb (the newest is always kept)."""
    one = 2 * param_count(cfg) / MB
    return (
        min(snapshot_count(cfg) * one, max(cfg.snapshot_cap_mb, one))
        if cfg.snapshot_interval
        else 0.0
    )


@dataclass
class Estimate:
    params: int
    params_by_component: dict[str, int]
    tokens_per_step: int
    grad_accum_steps: int
    steps_per_epoch: float | None  # optimizer steps per pass over the training split
    memory_mb: dict[str, float]
    flops_per_token: int
    total_tokens: int  # max_steps x tokens_per_step
    tokens_per_sec: float | None = None
    time_s: float | None = None
    time_source: str = "unknown: no throughput measured or guessed for this device"
    time_is_guess: bool = True
    notes: list[str] = field(default_factory=list)


def estimate(
    cfg: TrainConfig,
    n_tokens: int | None = None,
    runs_dir: str | Path | None = None,
    dtype: str = "float32",
    device_type: str = "cpu",
    peak_flops: float | None = None,
    probe: Probe | None = None,
    loss: str = "plain",
) -> Estimate:
    """Everything the New run page shows before launch, for a valid cfg.

    n_tokens is the data set's token count (for steps per epoch); dtype, device_type and loss
    (the loss path) are the resolved device choice. The time uses the mean throughput of the newest completed run on
    this machine with the same model shape (from runs_dir), else a probe of this shape (a few
    real training steps timed by core.train.throughput.probe), else a guess from FLOPs against
    peak_flops (the CPU's measured peak when not given) at GUESS_UTILISATION. It adds the
    evals, their samples and the process start-up to the training steps.
    """
    if cfg.total_batch_tokens:
        cfg = with_derived_accum(cfg, cfg.nproc)
    tokens_step = cfg.tokens_per_step()
    n = param_count(cfg)
    fpt = flops_per_token(ModelConfig.of(cfg), cfg.seq_len, n)
    steps_epoch = None
    if n_tokens:
        train_tokens = n_tokens - int(n_tokens * cfg.val_fraction)
        steps_epoch = train_tokens / tokens_step
    est = Estimate(
        params=n,
        params_by_component=param_counts(cfg),
        tokens_per_step=tokens_step,
        grad_accum_steps=cfg.grad_accum_steps,
        steps_per_epoch=steps_epoch,
        memory_mb=memory_mb(cfg, dtype, loss, device_type),
        flops_per_token=fpt,
        total_tokens=cfg.max_steps * tokens_step,
    )
    _set_throughput(est, cfg, measured_throughput(cfg, runs_dir), probe, peak_flops, device_type)
    if est.tokens_per_sec:
        est.time_s = est.total_tokens / est.tokens_per_sec + overhead_s(
            cfg, est.tokens_per_sec, probe
        )
    if cfg.target_loss:
        est.notes.append(f"may end earlier: the run stops once the loss is below {cfg.target_loss}")
    return est


def _set_throughput(
    est: Estimate,
    cfg: TrainConfig,
    measured: tuple[float, str] | None,
    probe: Probe | None,
    peak_flops: float | None,
    device_type: str,
) -> None:
    """The tokens/s the time estimate uses, and where it comes from: a finished run of this
    shape, a probe of it, else a labelled FLOPs guess."""
    if measured:
        tps, run_id = measured
        est.tokens_per_sec, est.time_is_guess = tps, False
        est.time_source = (
            f"measured: mean throughput of run {run_id} ({tps:,.0f} tokens/s), "
            "the newest completed run of this model shape on this machine"
        )
        return
    if probe:
        est.tokens_per_sec, est.time_is_guess = probe.train_tokens_per_sec, False
        busy = f", machine load {probe.load_avg:.1f}" if probe.load_avg is not None else ""
        est.time_source = (
            f"measured: a few real training steps of this shape just now "
            f"({probe.train_tokens_per_sec:,.0f} tokens/s{busy})"
        )
        return
    if peak_flops is None and device_type == "cpu":
        from core.device import measured_cpu_peak

        peak_flops = measured_cpu_peak(measure=False)[0]
    if peak_flops:
        scale = cfg.nproc if device_type == "cuda" else 1  # processes on one CPU share its cores
        fpt = est.flops_per_token
        est.tokens_per_sec = GUESS_UTILISATION * peak_flops * scale / fpt
        est.time_source = (
            f"guess: {fpt / 1e6:,.1f} MFLOPs per token at "
            f"{GUESS_UTILISATION:.0%} of {peak_flops * scale / 1e9:,.0f} "
            f"GFLOP/s peak ({device_type}); no run of this shape finished here yet"
        )


def overhead_s(cfg: TrainConfig, train_tokens_per_sec: float, probe: Probe | None = None) -> float:
    """Seconds a run spends beside its training steps: start-up, and at every eval the val
    batches (forward only) and the samples (the logged one and the copy-rate ones)."""
    evals = cfg.max_steps // cfg.eval_interval + 1 if cfg.eval_interval else 0
    eval_tps = probe.eval_tokens_per_sec if probe else 3 * train_tokens_per_sec  # forward only
    eval_s = cfg.eval_batches * cfg.micro_batch_size * cfg.seq_len / eval_tps
    per_sample_token = probe.sample_s_per_token if probe else 0.0
    from core.data.corpus import COPY_SEEDS

    samples = 1 + (len(COPY_SEEDS) if cfg.copy_min_len else 0)
    return STARTUP_S + evals * (eval_s + samples * cfg.sample_tokens * per_sample_token)


def _same_shape(a, b) -> bool:
    return model_shape(a) == model_shape(b) and a.seq_len == b.seq_len


def measured_throughput(
    cfg: TrainConfig, runs_dir: str | Path | None = None
) -> tuple[float, str] | None:
    """(mean tokens/s, run id) of the newest completed run on this host with cfg's model shape
    and sequence length, or None. The first step is left out: it pays for warm-up."""
    host = socket.gethostname()
    for run in list_run_dirs(runs_dir):
        status = run.read_status()
        if status.get("state") != "completed" or status.get("host", host) != host:
            continue
        try:
            other = run.read_config()
        except ValueError:
            continue
        if not _same_shape(cfg, other):
            continue
        rate = metrics.cached_summary(run.metrics_path).mean_tokens_per_sec
        if rate:
            return rate, run.run_id
    return None


def free_disk_mb(runs_dir: str | Path) -> float | None:
    """Free disk in MiB where a run directory under runs_dir would be written (its nearest
    existing folder), or None when it cannot be read."""
    path = Path(runs_dir).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free / MB
    except OSError:
        return None
