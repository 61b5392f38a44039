"""The training engine: setup -> fit -> (validate, sample, checkpoint), writing the run directory.

Runs as one process or under torchrun (DDP). Only rank 0 writes metrics, status and checkpoints;
every rank stops together (the stop and failure flags are all-reduced each step).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from core import device as devices
from core.config import TrainConfig, with_derived_accum
from core.data import dataset
from core.data.walker import BatchWalker, walker_checksum
from core.dynamics.eval_probes import EvalProbes
from core.dynamics.noise_scale import grad_sq
from core.generate.sampling import generate_ids
from core.model.gpt import GPT, ModelConfig, flops_per_token
from core.store import checkpoint, metrics, pretrained
from core.store.rundir import RunDir
from core.train import failure
from core.train.distributed import Dist, close_distributed, init_distributed
from core.train.optim import get_lr, make_optimizer
from core.train.process import Heartbeat, StopSignal, output_in_log, stop_requested
from core.train.system import SystemSampler, peak_memory_mb


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN or infinite."""


def train(run_dir: str, resume: bool = False) -> str:
    """Train the run in run_dir (created by the launcher or the CLI); returns the final state."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    ddp = init_distributed(cfg.device)
    stop_signal = StopSignal()
    log = output_in_log(run) if ddp.master else contextlib.nullcontext()
    try:
        with log:
            state = _fit_reporting_failure(run, cfg, ddp, resume, stop_signal)
    finally:
        stop_signal.restore()
        close_distributed(ddp)
    return state


def _fit_reporting_failure(
    run: RunDir, cfg: TrainConfig, ddp: Dist, resume: bool, stop_signal: StopSignal
) -> str:
    began = time.time()
    try:
        return _fit(run, cfg, ddp, resume, stop_signal)
    except BaseException as e:
        return failure.report(e, run, ddp, began)


@dataclass
class _Trainer:
    """Everything one training process holds between steps."""

    run: RunDir
    cfg: TrainConfig
    ddp: Dist
    choice: devices.DeviceChoice
    model: GPT
    train_model: torch.nn.Module  # compiled and/or DDP-wrapped view of model
    optimizer: torch.optim.Optimizer
    train_batches: BatchWalker
    val_batches: BatchWalker
    log: metrics.MetricsLog | None  # rank 0 only
    step: int = 0
    micro_seen: int = 0
    train_time_s: float = 0.0
    last_loss: float = float("nan")
    best_val_loss: float | None = None
    last_val_loss: float | None = None
    evals_since_best: int = 0
    last_saved: int = -1
    flops_per_token: float = 0.0
    peak_flops: float = 0.0
    system: SystemSampler = field(default_factory=SystemSampler)
    corpus: object = None  # core.data.corpus.CorpusIndex on rank 0, for the copy rate
    probes: EvalProbes | None = None  # rank 0: the training-dynamics probes (core.dynamics)


@dataclass(frozen=True)
class _StepResult:
    loss: float
    grad_norm: float
    lr: float
    dt: float
    micro_grad_norm: float | None = None  # of the first micro batch's gradient (noise scale)


def _fit(run: RunDir, cfg: TrainConfig, ddp: Dist, resume: bool, stop_signal: StopSignal) -> str:
    beat = _begin(run, cfg, ddp) if ddp.master else None
    try:
        return _fit_from_setup(run, cfg, ddp, resume, stop_signal, beat)
    finally:
        if beat:
            beat.stop()


def _begin(run: RunDir, cfg: TrainConfig, ddp: Dist) -> Heartbeat:
    """Mark the run started and beat from this moment on: a long setup (tokenizing, the corpus
    index, a GPT-2 download) is a live run, never a hung one. A STOP older than this launch is
    stale; one sent while the process was starting stays. Temp files of a killed write go."""
    run.mark_started(cfg.max_steps, ddp.world_size)
    run.clear_stop(older_than=run.launched_at() or 0.0)
    removed = run.remove_temp_files()
    if removed:
        print(
            f"removed {len(removed)} temp file(s) of an interrupted write: {', '.join(removed)}",
            flush=True,
        )
    return Heartbeat(run, None)


def _fit_from_setup(
    run: RunDir,
    cfg: TrainConfig,
    ddp: Dist,
    resume: bool,
    stop_signal: StopSignal,
    beat: Heartbeat | None,
) -> str:
    t = _setup(run, cfg, ddp, resume)
    first_step = t.step
    if beat:
        beat.step = t.step
    reason, state = None, "completed"
    if t.step >= cfg.max_steps:  # resumed at its end: nothing to train
        reason = f"max_steps {cfg.max_steps} reached"
    stop = stop_requested(run, ddp, stop_signal, t.choice.device)
    if stop and not reason:  # sent during setup: end before the first step, nothing to save
        reason, state = f"{stop} while starting", "stopped"
    try:
        while reason is None:
            result = _train_step(t)
            if beat:
                beat.step = t.step
            if ddp.master:
                _log_step(t, result)
            reason = _finish_reason(t, result.loss)
            stop = stop_requested(run, ddp, stop_signal, t.choice.device)
            if stop and not reason:
                reason, state = stop, "stopped"
                if ddp.master:
                    run.write_status(stopping=time.time())  # the launcher waits while we finish
            if _after_step(t, final=reason is not None) and not reason:
                reason = f"no val improvement in {cfg.early_stop_patience} evals (early stop)"
    finally:
        if t.log:
            t.log.close()
    if ddp.master:
        if t.last_saved != t.step and t.step > first_step:
            _save(t)
        print(f"run {state}: {reason}", flush=True)  # in log.txt before the state says it ended
        run.write_status(state=state, reason=reason, step=t.step, ended=time.time(), stopping=None)
        run.clear_stop()
    return state


# --- setup ---------------------------------------------------------------------------------


def _setup(run: RunDir, cfg: TrainConfig, ddp: Dist, resume: bool) -> _Trainer:
    """Device, data, model, optimizer and (on resume) the checkpoint's state: ready to step."""
    cfg = with_derived_accum(cfg, ddp.world_size)
    choice = devices.choose(cfg.device, cfg.dtype, cfg.compile, ddp.local_rank, cfg.loss_path)
    devices.setup_backend(choice)
    if ddp.master:
        print(
            f"device {choice.device} | dtype {choice.dtype} | compile {choice.compile} | "
            f"loss {choice.loss} | world size {ddp.world_size} ({choice.why})",
            flush=True,
        )
    train_batches, val_batches = _load_data(cfg, ddp)
    model = _build_model(cfg, choice, ddp, resume)
    t = _Trainer(
        run,
        cfg,
        ddp,
        choice,
        model,
        _wrap(model, choice, ddp),
        make_optimizer(model, cfg, choice.type),
        train_batches,
        val_batches,
        log=None,
    )
    if resume:
        _resume(t)
    t.flops_per_token = flops_per_token(model.config, cfg.seq_len, model.num_params())
    peak = devices.peak_flops(choice, cfg.peak_flops, measure=True)
    t.peak_flops = peak.value
    if ddp.master:
        _start_log(t, resume, peak)
    return t


def _build_model(cfg: TrainConfig, choice, ddp: Dist, resume: bool) -> GPT:
    """The model on its device: seeded random weights, or init_from's on a fresh start."""
    torch.manual_seed(cfg.seed)
    model = GPT(ModelConfig.of(cfg), fused_loss=choice.loss == "fused")
    if cfg.init_from and not resume:
        line = pretrained.load_into(model, cfg.init_from)
        if ddp.master:
            print(line, flush=True)
    return model.to(choice.device)


def _start_log(t: _Trainer, resume: bool, peak) -> None:
    """Rank 0: the model line, the metrics writer and its `start` record, the corpus index of
    the copy rate, the training-dynamics probes, and on a fresh start the untrained model's
    snapshot."""
    cfg, n_params = t.cfg, t.model.num_params()
    print(
        f"model: {n_params:,} parameters (vocab {cfg.vocab_size}) | "
        f"{t.flops_per_token / 1e6:.1f} MFLOPs per token (6N + 12LHQT) | MFU against "
        f"{peak.value / 1e9:,.0f} GFLOP/s ({peak.source})",
        flush=True,
    )
    t.log = metrics.MetricsLog(t.run.metrics_path)
    if cfg.eval_interval:
        t.corpus = _load_corpus_index(cfg)
    t.probes = EvalProbes.open(
        cfg,
        t.run.token_curves_path,
        t.train_batches.tokens.numpy(),
        t.val_batches.tokens.numpy(),
        resumed_at=t.step if resume else None,
    )
    t.log.write(
        "start",
        t.step,
        time.time(),
        resumed=resume,
        world_size=t.ddp.world_size,
        max_steps=cfg.max_steps,
        peak_flops=peak.value,
        peak_source=peak.source,
    )
    if cfg.snapshot_interval and not resume:  # the untrained model: where the timeline begins
        checkpoint.save_snapshot(t.run, t.model, cfg, 0)


def _load_data(cfg: TrainConfig, ddp: Dist) -> tuple[BatchWalker, BatchWalker]:
    t0 = time.perf_counter()
    tokens = dataset.load_tokens(cfg.data)
    train_tokens, val_tokens = dataset.split(tokens, cfg.val_fraction)
    dataset.check_size(train_tokens, cfg.micro_batch_size, cfg.seq_len, "training")
    dataset.check_size(val_tokens, cfg.micro_batch_size, cfg.seq_len, "validation")
    train_batches = BatchWalker(train_tokens, cfg.micro_batch_size, cfg.seq_len)
    if ddp.master:
        print(
            f"loaded {len(tokens):,} tokens ({len(train_tokens):,} train, {len(val_tokens):,} "
            f"val) in {time.perf_counter() - t0:.2f}s; 1 epoch = {train_batches.chunks:,} "
            f"micro batches",
            flush=True,
        )
    return train_batches, BatchWalker(val_tokens, cfg.micro_batch_size, cfg.seq_len)


def _wrap(model: GPT, choice, ddp: Dist) -> torch.nn.Module:
    """The module the training step calls: compiled where chosen, DDP-wrapped on several ranks."""
    wrapped = torch.compile(model) if choice.compile else model
    if ddp.world_size > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            wrapped, device_ids=[ddp.local_rank] if choice.type == "cuda" else None
        )
    return wrapped


def _resume(t: _Trainer) -> None:
    ckpt, skipped = checkpoint.load_latest(t.run, map_location=t.choice.device)
    checkpoint.restore(ckpt, t.model, t.optimizer)
    t.step = t.last_saved = ckpt.step
    t.micro_seen, t.train_time_s = ckpt.micro_batches_seen, ckpt.train_time_s
    t.best_val_loss = ckpt.best_val_loss
    if t.ddp.master:
        for line in skipped:
            print(line, flush=True)
        metrics.truncate_after(t.run.metrics_path, t.step)
        print(f"resumed from step {t.step} ({ckpt.path.name})", flush=True)


# --- one step ------------------------------------------------------------------------------


def _train_step(t: _Trainer) -> _StepResult:
    """One optimizer step over grad_accum_steps micro batches on each rank."""
    cfg, ddp, device = t.cfg, t.ddp, t.choice.device
    t0 = time.perf_counter()
    lr = get_lr(t.step, cfg)
    for group in t.optimizer.param_groups:
        group["lr"] = lr
    t.optimizer.zero_grad(set_to_none=True)
    loss_sum, micro_norm = torch.zeros((), device=device), None
    for micro in range(cfg.grad_accum_steps):
        x, y = t.train_batches.batch(t.micro_seen + micro * ddp.world_size + ddp.rank)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        last = micro == cfg.grad_accum_steps - 1
        # DDP all-reduces gradients only on the last micro step of the accumulation.
        sync = contextlib.nullcontext() if ddp.world_size == 1 or last else t.train_model.no_sync()
        with sync, t.choice.autocast():
            _, loss = t.train_model(x, y)
        loss = loss / cfg.grad_accum_steps  # the sum of the scaled losses is their mean
        loss_sum += loss.detach()
        loss.backward()
        if micro == 0 and cfg.noise_scale and not last:  # one micro batch's gradient, unscaled
            micro_norm = math.sqrt(grad_sq(t.model)) * cfg.grad_accum_steps
    t.micro_seen += cfg.grad_accum_steps * ddp.world_size
    if ddp.world_size > 1:
        dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
    norm = torch.nn.utils.clip_grad_norm_(
        t.model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    )
    loss_value, norm_value = loss_sum.item(), norm.item()
    if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
        raise TrainingDiverged(
            f"loss is {loss_value} and gradient norm {norm_value} at step {t.step + 1}: "
            "training diverged. Lower max_lr, raise warmup_steps or check the data"
        )
    t.optimizer.step()
    if t.choice.type == "cuda":
        torch.cuda.synchronize()
    t.step += 1
    dt = time.perf_counter() - t0
    t.train_time_s += dt
    t.last_loss = loss_value
    return _StepResult(loss_value, norm_value, lr, dt, micro_norm)


def _log_step(t: _Trainer, r: _StepResult) -> None:
    tokens_per_step = t.cfg.tokens_per_step(t.ddp.world_size)
    tokens_per_sec = tokens_per_step / r.dt
    extra = {} if r.micro_grad_norm is None else {"micro_grad_norm": r.micro_grad_norm}
    if t.peak_flops:
        extra["mfu"] = t.flops_per_token * tokens_per_sec / (t.peak_flops * t.ddp.world_size)
    # Which tokens this step trained on (every rank's micro batches, hashed from rank 0's own
    # walker), so the batch view can prove it shows the same ones.
    per_step = t.cfg.grad_accum_steps * t.ddp.world_size
    checksum = walker_checksum(t.train_batches, range(t.micro_seen - per_step, t.micro_seen))
    t.log.write(
        "train",
        t.step,
        time.time(),
        loss=r.loss,
        lr=r.lr,
        grad_norm=r.grad_norm,
        dt_ms=r.dt * 1000,
        tokens_per_sec=tokens_per_sec,
        tokens_seen=t.step * tokens_per_step,
        train_time_s=t.train_time_s,
        peak_mem_mb=peak_memory_mb(t.choice),
        batch_checksum=checksum,
        **extra,
    )
    print(
        f"step {t.step:5d} | loss {r.loss:.6f} | lr {r.lr:.4e} | norm {r.grad_norm:.4f} "
        f"| dt {r.dt * 1000:.2f}ms | tok/sec {tokens_per_sec:.2f}"
        + (f" | mfu {extra['mfu'] * 100:.1f}%" if extra else ""),
        flush=True,
    )


def _finish_reason(t: _Trainer, loss: float) -> str | None:
    """Why training ends after this step on its own (target loss, max_steps), else None."""
    if t.cfg.target_loss and loss < t.cfg.target_loss:
        return f"target loss {t.cfg.target_loss} reached (loss {loss:.4f})"
    if t.step >= t.cfg.max_steps:
        return f"max_steps {t.cfg.max_steps} reached"
    return None


# --- after each step: eval and samples, checkpoints -----------------------------------------


def _after_step(t: _Trainer, final: bool) -> bool:
    """Run the per-step hooks that are due; True when early stopping by patience says stop."""
    out_of_patience = False
    if t.cfg.eval_interval and (t.step % t.cfg.eval_interval == 0 or final):
        out_of_patience = _eval_and_sample(t, final)
    if not t.ddp.master:
        return out_of_patience
    interval = t.cfg.checkpoint_interval
    if final or out_of_patience or (interval and t.step % interval == 0):
        _save(t)
    if t.cfg.snapshot_interval and (final or t.step % t.cfg.snapshot_interval == 0):
        checkpoint.save_snapshot(t.run, t.model, t.cfg, t.step, t.last_val_loss)
    _log_system(t)
    return out_of_patience


def _eval_and_sample(t: _Trainer, final: bool = False) -> bool:
    """Val loss (on every rank), then on rank 0 the sample and the best-val checkpoint.
    Returns whether early_stop_patience evals passed without a better val loss (every rank
    sees the same val loss, so all agree)."""
    val_loss = t.last_val_loss = _evaluate(t.model, t.val_batches, t.cfg, t.choice, t.ddp)
    improved = t.best_val_loss is None or val_loss < t.best_val_loss
    t.evals_since_best = 0 if improved else t.evals_since_best + 1
    if improved:
        t.best_val_loss = val_loss
    if t.ddp.master:
        now = time.time()
        sample = _sample_ids(t.model, t.cfg, t.choice, t.cfg.seed + t.step)
        copying = _copy_rate(t, sample)
        t.log.write("eval", t.step, now, val_loss=val_loss, **copying)
        print(
            f"step {t.step:5d} | val loss {val_loss:.4f}"
            + (
                f" | copied {copying['copy_rate']:.1%}, longest {copying['longest_copy']} tokens"
                if copying
                else ""
            ),
            flush=True,
        )
        text = dataset.get_tokenizer().decode(sample, errors="replace")
        t.log.write("sample", t.step, now, prompt=t.cfg.sample_prompt, text=text)
        if improved:  # kept whatever keep_checkpoints prunes
            checkpoint.save(_capture(t), t.run.best_checkpoint_path)
    patience = t.cfg.early_stop_patience
    out_of_patience = bool(patience) and t.evals_since_best >= patience
    if t.ddp.master and t.probes and t.probes.due(t.step, final or out_of_patience):
        _measure_dynamics(t, final or out_of_patience)
    return out_of_patience


def _measure_dynamics(t: _Trainer, final: bool) -> None:
    """The training-dynamics probes of this eval, and extraction at the run's end."""
    values = t.probes.measure(t.model, t.step, t.choice)
    t.log.write("dynamics", t.step, time.time(), **values)
    if final:
        t.log.write("extraction", t.step, time.time(), **t.probes.extraction(t.model, t.choice))


def _capture(t: _Trainer) -> dict:
    return checkpoint.capture(
        t.model,
        t.optimizer,
        t.cfg,
        t.step,
        t.micro_seen,
        t.last_loss,
        t.ddp.world_size,
        t.train_time_s,
        t.best_val_loss,
    )


def _save(t: _Trainer) -> None:
    path = checkpoint.save_step(t.run, _capture(t), keep=t.cfg.keep_checkpoints)
    t.last_saved = t.step
    print(f"step {t.step:5d} | saved checkpoint {path.name}", flush=True)


def _log_system(t: _Trainer) -> None:
    values = t.system.sample(t.choice)
    if values:
        t.log.write("system", t.step, time.time(), **values)


@torch.no_grad()
def _evaluate(model: GPT, batches: BatchWalker, cfg: TrainConfig, choice, ddp: Dist) -> float:
    """Mean loss over the first eval_batches validation micro batches, shared among ranks."""
    model.eval()
    total = torch.zeros(2, device=choice.device)  # loss sum, count
    for i in range(ddp.rank, cfg.eval_batches, ddp.world_size):
        x, y = (t.to(choice.device) for t in batches.batch(i))
        with choice.autocast():
            _, loss = model(x, y)
        total += torch.stack([loss.float(), torch.ones((), device=choice.device)])
    if ddp.world_size > 1:
        dist.all_reduce(total)
    model.train()
    return (total[0] / total[1]).item()


@torch.no_grad()
def _sample_ids(model: GPT, cfg: TrainConfig, choice, seed: int) -> list[int]:
    """Token ids sampled after the fixed prompt, with their own generator so sampling never
    disturbs training's RNG."""
    prompt = dataset.get_tokenizer().encode_ordinary(cfg.sample_prompt) or [dataset.EOT_TOKEN]
    ids = torch.tensor([prompt], device=choice.device)
    generator = torch.Generator(device=choice.device).manual_seed(seed)
    model.eval()
    with choice.autocast():
        out = [
            next_id.item()
            for next_id, _ in generate_ids(
                model, ids, cfg.sample_tokens, temperature=0.8, top_k=50, generator=generator
            )
        ]
    model.train()
    return out


def _copy_rate(t: _Trainer, logged_sample: list[int]) -> dict:
    """Share of sampled tokens inside spans of >= copy_min_len tokens found verbatim in the
    training text, and the longest span: over the logged sample and samples of fixed seeds."""
    if t.corpus is None:
        return {}
    from core.data.corpus import COPY_SEEDS

    samples = [logged_sample] + [_sample_ids(t.model, t.cfg, t.choice, s) for s in COPY_SEEDS]
    stats = [t.corpus.copy_stats(ids, t.cfg.copy_min_len) for ids in samples]
    copied = sum(s.share * s.tokens for s in stats)
    return {
        "copy_rate": copied / max(1, sum(s.tokens for s in stats)),
        "longest_copy": max(s.longest for s in stats),
        "copy_min_len": t.cfg.copy_min_len,
    }


def _load_corpus_index(cfg: TrainConfig):
    """The suffix-array index of the training text for the copy rate; None (meter off, said in
    the log) when copy_min_len is 0 or the index cannot be built."""
    if not cfg.copy_min_len:
        return None
    from core.data import corpus as memorization

    try:
        return memorization.load_index(cfg.data, cfg.val_fraction)
    except (ValueError, OSError, MemoryError) as e:
        print(f"copy-rate meter off: cannot index the training text ({e})", flush=True)
        return None
