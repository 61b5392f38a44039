"""The training engine: setup -> fit -> (validate, sample, checkpoint), writing the run directory.

Runs as one process or under torchrun (DDP). Only rank 0 writes metrics, status and checkpoints;
every rank stops together (the stop and failure flags are all-reduced each step).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass

import torch
import torch.distributed as dist

from core import data, device as devices
from core.config import TrainConfig, with_derived_accum
from core.model import GPT, ModelConfig, flops_per_token
from core.optim import get_lr, make_optimizer
from core.rundir import RunDir, load_checkpoint
from core.sampling import generate_ids


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN or infinite."""


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def master(self) -> bool:
        return self.rank == 0


def init_distributed(device_type_hint: str) -> Dist:
    """Join the process group torchrun describes in the environment (NCCL on CUDA, gloo else)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if device_type_hint != "cpu" and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            # Pin the rank to its GPU before the first collective: NCCL (broadcast_object_list
            # too) uses the current device, and two ranks on one GPU is an NCCL error.
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_world_size())


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
def _output_in_log(run: RunDir):
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


class _StopSignal:
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


def train(run_dir: str, resume: bool = False) -> str:
    """Train the run in run_dir (created by the launcher or the CLI); returns the final state."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    ddp = init_distributed(cfg.device)
    stop_signal = _StopSignal()
    log = _output_in_log(run) if ddp.master else contextlib.nullcontext()
    try:
        with log:
            state = _fit_reporting_failure(run, cfg, ddp, resume, stop_signal)
    finally:
        stop_signal.restore()
        if ddp.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return state


def _fit_reporting_failure(run: RunDir, cfg: TrainConfig, ddp: Dist, resume: bool,
                           stop_signal: "_StopSignal") -> str:
    began = time.time()
    try:
        return _fit(run, cfg, ddp, resume, stop_signal)
    except BaseException as e:
        message = f"{type(e).__name__}: {e}"
        if ddp.world_size > 1 and _lost_peer(e):
            message = (f"rank {ddp.rank} lost contact with another rank, which crashed or was "
                       f"killed (torchrun's summary in log.txt names it): {message}")
        elif ddp.world_size > 1:
            message = f"rank {ddp.rank} failed: {message}"
        traceback.print_exc()
        print(f"run failed: {message}", file=sys.stderr, flush=True)
        # Any rank may report a failure: the others may be blocked in a collective. The first
        # report is the cause; the ranks that then lose their peer must not overwrite it.
        status = run.read_status()
        if not (status.get("state") == "failed" and (status.get("ended") or 0) >= began):
            run.write_status(state="failed", error=message, reason="error", ended=time.time())
        if ddp.world_size > 1:
            sys.stdout.flush()
            os._exit(1)  # do not wait for ranks stuck in a collective; torchrun ends them
        return "failed"


def _lost_peer(e: BaseException) -> bool:
    """Whether a collective failed because another rank went away (gloo and NCCL say so only
    in their messages, as plain RuntimeErrors)."""
    text = str(e)
    return isinstance(e, getattr(dist, "DistNetworkError", ())) or any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
                            "remote worker", "remote process exited", "communicator was aborted"))


def _fit(run: RunDir, cfg: TrainConfig, ddp: Dist, resume: bool, stop_signal: _StopSignal) -> str:
    cfg = with_derived_accum(cfg, ddp.world_size)
    choice = devices.choose(cfg.device, cfg.dtype, cfg.compile, ddp.local_rank)
    devices.setup_backend(choice)
    if ddp.master:
        run.mark_started(cfg.max_steps, ddp.world_size)
        run.clear_stop()
        print(f"device {choice.device} | dtype {choice.dtype} | compile {choice.compile} | "
              f"world size {ddp.world_size} ({choice.why})", flush=True)

    # --- data ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    tokens = data.load_tokens(cfg.data)
    train_tokens, val_tokens = data.split(tokens, cfg.val_fraction)
    data.check_size(train_tokens, cfg.micro_batch_size, cfg.seq_len, "training")
    data.check_size(val_tokens, cfg.micro_batch_size, cfg.seq_len, "validation")
    train_batches = data.BatchWalker(train_tokens, cfg.micro_batch_size, cfg.seq_len)
    val_batches = data.BatchWalker(val_tokens, cfg.micro_batch_size, cfg.seq_len)
    if ddp.master:
        print(f"loaded {len(tokens):,} tokens ({len(train_tokens):,} train, {len(val_tokens):,} "
              f"val) in {time.perf_counter() - t0:.2f}s; 1 epoch = {train_batches.chunks:,} "
              f"micro batches", flush=True)

    # --- model and optimizer -------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = GPT(ModelConfig.of(cfg)).to(choice.device)
    optimizer = make_optimizer(model, cfg, choice.type)
    step, micro_seen = 0, 0
    if resume:
        step, micro_seen = _restore(run, model, optimizer, choice.device)
        if ddp.master:
            run.truncate_metrics_after(step)
            print(f"resumed from step {step}", flush=True)
    n_params = model.num_params()
    flops_tok = flops_per_token(model.config, cfg.seq_len, n_params)
    peak = devices.peak_flops(choice, cfg.peak_flops)
    if ddp.master:
        print(f"model: {n_params:,} parameters (vocab {cfg.vocab_size}) | "
              f"{flops_tok / 1e6:.1f} MFLOPs per token (6N + 12LHQT)", flush=True)
    train_model = torch.compile(model) if choice.compile else model
    if ddp.world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[ddp.local_rank] if choice.type == "cuda" else None)

    tokens_per_step = cfg.tokens_per_step(ddp.world_size)
    metrics = run.open_metrics() if ddp.master else None
    reason, state = "max_steps", "completed"
    last_saved = step if resume else -1
    last_beat = 0.0
    try:
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            lr = get_lr(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss_sum = torch.zeros((), device=choice.device)
            for micro in range(cfg.grad_accum_steps):
                x, y = train_batches.batch(micro_seen + micro * ddp.world_size + ddp.rank)
                x, y = x.to(choice.device, non_blocking=True), y.to(choice.device, non_blocking=True)
                last = micro == cfg.grad_accum_steps - 1
                # DDP all-reduces gradients only on the last micro step of the accumulation.
                sync = contextlib.nullcontext() if ddp.world_size == 1 or last else train_model.no_sync()
                with sync, choice.autocast():
                    _, loss = train_model(x, y)
                loss = loss / cfg.grad_accum_steps  # the sum of the scaled losses is their mean
                loss_sum += loss.detach()
                loss.backward()
            micro_seen += cfg.grad_accum_steps * ddp.world_size
            if ddp.world_size > 1:
                dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
            norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            loss_value, norm_value = loss_sum.item(), norm.item()
            if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                raise TrainingDiverged(
                    f"loss is {loss_value} and gradient norm {norm_value} at step {step + 1}: "
                    "training diverged. Lower max_lr, raise warmup_steps or check the data")
            optimizer.step()
            if choice.type == "cuda":
                torch.cuda.synchronize()
            step += 1
            dt = time.perf_counter() - t0
            tokens_per_sec = tokens_per_step / dt
            if ddp.master:
                record = dict(kind="train", step=step, time=time.time(), loss=loss_value, lr=lr,
                              grad_norm=norm_value, dt_ms=dt * 1000, tokens_per_sec=tokens_per_sec,
                              tokens_seen=step * tokens_per_step)
                if peak:
                    record["mfu"] = flops_tok * tokens_per_sec / (peak * ddp.world_size)
                record["peak_mem_mb"] = _peak_memory_mb(choice)
                _log(metrics, record)
                print(f"step {step:5d} | loss {loss_value:.6f} | lr {lr:.4e} | norm {norm_value:.4f} "
                      f"| dt {dt * 1000:.2f}ms | tok/sec {tokens_per_sec:.2f}"
                      + (f" | mfu {record['mfu'] * 100:.1f}%" if peak else ""), flush=True)

            if cfg.target_loss and loss_value < cfg.target_loss:
                reason = f"target loss {cfg.target_loss} reached (loss {loss_value:.4f})"
            elif step >= cfg.max_steps:
                reason = f"max_steps {cfg.max_steps} reached"
            else:
                reason = None
            stop = _stop_requested(run, ddp, stop_signal, choice.device)
            if stop and not reason:
                reason, state = stop, "stopped"
            final = reason is not None
            if cfg.eval_interval and (step % cfg.eval_interval == 0 or final):
                val_loss = _evaluate(model, val_batches, cfg, choice, ddp)
                if ddp.master:
                    _log(metrics, dict(kind="eval", step=step, time=time.time(), val_loss=val_loss))
                    print(f"step {step:5d} | val loss {val_loss:.4f}", flush=True)
                    text = _sample_text(model, cfg, choice, step)
                    _log(metrics, dict(kind="sample", step=step, time=time.time(),
                                       prompt=cfg.sample_prompt, text=text))
            if ddp.master and (final or (cfg.checkpoint_interval and step % cfg.checkpoint_interval == 0)):
                _save(run, model, optimizer, cfg, step, micro_seen, loss_value, ddp.world_size)
                last_saved = step
            if ddp.master and time.time() - last_beat > 1.0:
                run.write_status(step=step)  # the heartbeat, at most once a second
                last_beat = time.time()
            if final:
                break
    finally:
        if metrics:
            metrics.close()
    if ddp.master:
        if last_saved != step:
            _save(run, model, optimizer, cfg, step, micro_seen, loss_value, ddp.world_size)
        run.write_status(state=state, reason=reason, step=step, ended=time.time())
        run.clear_stop()
        print(f"run {state}: {reason}", flush=True)
    return state


def _log(metrics, record: dict) -> None:
    metrics.write(json.dumps(record) + "\n")


def _peak_memory_mb(choice) -> float:
    """Peak device memory on CUDA; elsewhere the process's peak resident memory."""
    gpu = devices.peak_memory_mb(choice)
    if gpu is not None:
        return gpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB else


def _stop_requested(run: RunDir, ddp: Dist, stop_signal: _StopSignal, device) -> str | None:
    """Why to stop now (STOP file on rank 0, or a signal on any rank), agreed by every rank."""
    local = 0
    if stop_signal.name:
        local = 2
    elif ddp.master and run.stop_requested():
        local = 1
    if ddp.world_size > 1:
        flag = torch.tensor([local], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        local = int(flag.item())
    return {0: None, 1: "stop requested", 2: f"signal {stop_signal.name or 'on another rank'}"}[local]


@torch.no_grad()
def _evaluate(model: GPT, batches: data.BatchWalker, cfg: TrainConfig, choice, ddp: Dist) -> float:
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
def _sample_text(model: GPT, cfg: TrainConfig, choice, step: int) -> str:
    """A sample from the fixed prompt, seeded by the step so it never disturbs training's RNG."""
    enc = data.get_tokenizer()
    prompt = enc.encode_ordinary(cfg.sample_prompt) or [data.EOT_TOKEN]
    ids = torch.tensor([prompt], device=choice.device)
    generator = torch.Generator(device=choice.device).manual_seed(cfg.seed + step)
    model.eval()
    with choice.autocast():
        out = [next_id.item() for next_id, _ in generate_ids(
            model, ids, cfg.sample_tokens, temperature=0.8, top_k=50, generator=generator)]
    model.train()
    return enc.decode(out, errors="replace")


def _save(run: RunDir, model: GPT, optimizer, cfg: TrainConfig, step: int, micro_seen: int,
          loss: float, world_size: int) -> None:
    state = {
        "model": model.state_dict(),  # the uncompiled module: no _orig_mod. prefixes
        "optimizer": optimizer.state_dict(),
        "step": step,
        "micro_batches_seen": micro_seen,
        "loss": loss,
        "world_size": world_size,
        "config": cfg.to_dict(),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }
    path = run.save_checkpoint(state, step, keep=cfg.keep_checkpoints)
    print(f"step {step:5d} | saved checkpoint {path.name}", flush=True)


def _restore(run: RunDir, model: GPT, optimizer, device) -> tuple[int, int]:
    path = run.latest_checkpoint()
    if path is None:
        raise FileNotFoundError(f"cannot resume {run.run_id}: it has no checkpoint yet; "
                                "start it again instead")
    state = load_checkpoint(path, map_location=device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["rng"]["cuda"]])
    return int(state["step"]), int(state["micro_batches_seen"])
