"""Training throughput: the engine as a user runs it against a bare loop over the same work.

    python bench/train.py                       # nano preset, the device's default dtype/compile
    python bench/train.py --preset gpt2-124m --steps 2 --warmup-steps 1 --grad-accum-steps 1
    python bench/train.py --compare-defaults    # eager vs compile, fp32 vs bf16 on this device
    python bench/train.py --compare-loss        # plain vs fused loss: nano, micro, 124M B2 x T1024

The engine runs `python -m core.train --run-dir DIR` on a real run directory (metrics, heartbeat,
stop checks and checkpoint cadence on; evaluation off, since it is extra work the bare loop would
not do) and its speed is read back from metrics.jsonl: the wall time between the train records
after the warmup steps, so everything the engine does between steps counts. The bare loop trains
the same model, optimizer, batches and accumulation in this process with none of that. Runs
alternate (--repeats) and the best of each is compared, since other processes on a small machine
add noise. MFU is FLOPs per token (6N + 12*L*H*Q*T) times tokens/s over the device's peak.

--compare-loss runs the bare loop once per loss path (logits + F.cross_entropy, or the fused
chunked loss of core/model/fused_loss.py) and preset, each in a fresh process so its peak resident
memory (ru_maxrss) is its own, alternating plain and fused (A B A B) so drift in the load from
other processes hits both alike. It reports wall-clock tokens/s and, less sensitive to other
processes taking the CPU, tokens per CPU-second of the process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

TARGET_RATIO = 0.97  # the engine's tokens/s at least this share of the bare loop's
# --compare-loss: per preset, the batch shape, timed steps, warmup steps and repeats (a
# 124M step takes ~15 s on a 2-core CPU), and the targets for fused/plain: tokens/s at least
# `speedup` times, peak resident memory at most `memory` times.
LOSS_GRID = {
    "nano": dict(shape={}, steps=20, warmup=2, repeats=3, speedup=1.3, memory=None),
    "micro": dict(shape={}, steps=6, warmup=1, repeats=3, speedup=1.3, memory=None),
    "gpt2-124m": dict(
        shape=dict(micro_batch_size=2, seq_len=1024, grad_accum_steps=1),
        steps=2,
        warmup=1,
        repeats=1,
        speedup=1.0,
        memory=0.75,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/train.py",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    common.add_run_flags(
        parser,
        preset="nano",
        steps=None,
        steps_help="timed steps (default: 50; 5 with --compare-defaults; "
        "the grid's with --compare-loss)",
    )
    parser.add_argument(
        "--warmup-steps",
        type=common.positive,
        help="steps run first and left out of the timing (allocator, compile; default: 2)",
    )
    parser.add_argument("--micro-batch-size", type=common.positive, help="override the preset's")
    parser.add_argument("--seq-len", type=common.positive, help="override the preset's")
    parser.add_argument("--grad-accum-steps", type=common.positive, help="override the preset's")
    parser.add_argument(
        "--checkpoint-interval", type=int, help="engine checkpoint cadence (default: the preset's)"
    )
    parser.add_argument(
        "--repeats",
        type=common.positive,
        help="alternating engine/bare (or plain/fused) runs; the best of each is "
        "compared (default: 2; --compare-loss: the grid's)",
    )
    parser.add_argument("--data", default="tinyshakespeare", help="data source")
    parser.add_argument(
        "--loss",
        choices=("auto", "fused", "plain"),
        default="auto",
        help="loss path of the bare loop (auto: the device's default)",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--compare-defaults",
        action="store_true",
        help="instead: time eager vs compile and fp32 vs bf16 with a bare loop",
    )
    modes.add_argument(
        "--compare-loss",
        nargs="?",
        const=",".join(LOSS_GRID),
        metavar="PRESETS",
        help="instead: plain vs fused loss, bare loop, one process each, for these "
        f"presets (default {','.join(LOSS_GRID)}); the flags above override "
        "the grid's batch shape and steps",
    )
    modes.add_argument(
        "--bare-only",
        action="store_true",
        help="instead: the bare loop once in this process (what --compare-loss runs per variant)",
    )
    return parser


def bench_config(args):
    """The TrainConfig both loops train: the preset with the flags applied, no early stop, no
    evaluation, max_steps = warmup + timed steps."""
    from core.config import preset, validate

    overrides = dict(
        device=args.device,
        dtype=args.dtype,
        compile=args.compile,
        data=args.data,
        max_steps=args.warmup_steps + args.steps,
        target_loss=0.0,
        eval_interval=0,
    )
    for name in ("micro_batch_size", "seq_len", "grad_accum_steps", "checkpoint_interval"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    if args.seq_len and args.seq_len > preset(args.preset).block_size:
        overrides["block_size"] = args.seq_len  # a longer context: the model grows to fit it
    cfg = preset(args.preset, **overrides)
    validate(cfg)
    return cfg


# --- the engine -----------------------------------------------------------------------------


def run_engine(cfg, warmup: int, runs_dir: Path, name: str) -> dict:
    """Train cfg with the engine in its own process; timings come from its metrics.jsonl."""
    from core.store.metrics import MetricsReader
    from core.store.rundir import RunDir

    run = RunDir.create(runs_dir, name, cfg)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, (str(common.ROOT), os.environ.get("PYTHONPATH")))),
    )
    with open(run.log_path, "ab") as log:
        rc = subprocess.run(
            [sys.executable, "-m", "core.train", "--run-dir", str(run.path)],
            cwd=common.ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode
    if rc != 0:
        tail = run.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the engine run failed (exit {rc}); end of its log:\n{tail}")
    records = [r for r in MetricsReader(run.metrics_path).read_new() if r.get("kind") == "train"]
    by_step = {r["step"]: r for r in records}
    timed = [r for r in records if r["step"] > warmup]
    steps = len(timed)
    # From the end of the last warmup step to the end of the last step: every step's work and
    # everything the engine does between steps (logging, heartbeat, stop check, checkpoints).
    wall = timed[-1]["time"] - by_step[warmup]["time"]
    interval = cfg.checkpoint_interval
    saved = [s for s in range(warmup, cfg.max_steps) if interval and s % interval == 0]
    # Time outside the step between records s and s+1: logging, stop check, heartbeat, and at
    # a checkpoint step the save. Split into the usual gap and the extra a checkpoint costs.
    gaps = {
        s: 1000 * (by_step[s + 1]["time"] - by_step[s]["time"]) - by_step[s + 1]["dt_ms"]
        for s in range(warmup, cfg.max_steps)
    }
    usual = [g for s, g in gaps.items() if s not in saved]
    gap_ms = statistics.median(usual) if usual else 0.0
    checkpoint_ms = statistics.fmean(gaps[s] for s in saved) - gap_ms if saved else None
    compute = sum(r["dt_ms"] for r in timed) / 1000
    return {
        "seconds": wall,
        "steps": steps,
        "dt_ms_reported": statistics.fmean(r["dt_ms"] for r in timed),
        # The share of wall time spent between steps, timed inside the one process: immune to
        # load from other processes, unlike the engine/bare ratio of two separate runs.
        "between_steps_share": max(0.0, 1 - compute / wall),
        "peak_mem_mb": max(r.get("peak_mem_mb", 0.0) for r in records),
        "checkpoints_timed": len(saved),
        "between_steps_ms": gap_ms,
        "checkpoint_ms": checkpoint_ms,
        "final_loss": records[-1]["loss"],
    }


# --- the bare loop --------------------------------------------------------------------------


def run_bare(cfg, warmup: int, choice=None) -> dict:
    """The same training in this process with nothing else: no logging, no syncs per step."""
    import torch

    from core import device as devices
    from core.data import dataset
    from core.data.walker import BatchWalker
    from core.model.gpt import GPT, ModelConfig
    from core.train.optim import get_lr, make_optimizer

    choice = choice or devices.choose(cfg.device, cfg.dtype, cfg.compile)
    devices.setup_backend(choice)
    train_tokens, _ = dataset.split(dataset.load_tokens(cfg.data), cfg.val_fraction)
    batches = BatchWalker(train_tokens, cfg.micro_batch_size, cfg.seq_len)
    torch.manual_seed(cfg.seed)
    model = GPT(ModelConfig.of(cfg), fused_loss=choice.loss == "fused").to(choice.device)
    optimizer = make_optimizer(model, cfg, choice.type)
    train_model = torch.compile(model) if choice.compile else model
    accum = cfg.grad_accum_steps
    if choice.type == "cuda":
        torch.cuda.reset_peak_memory_stats(choice.device)

    def step(i: int) -> torch.Tensor:
        for group in optimizer.param_groups:
            group["lr"] = get_lr(i, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=choice.device)
        for micro in range(accum):
            x, y = batches.batch(i * accum + micro)
            x, y = x.to(choice.device, non_blocking=True), y.to(choice.device, non_blocking=True)
            with choice.autocast():
                _, loss = train_model(x, y)
            loss = loss / accum
            loss_sum += loss.detach()
            loss.backward()
        torch.nn.utils.clip_grad_norm_(
            model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        )
        optimizer.step()
        return loss_sum

    sync = torch.cuda.synchronize if choice.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    sync()
    t1, cpu1 = time.perf_counter(), time.process_time()
    for i in range(warmup, cfg.max_steps):
        loss = step(i)
    sync()
    wall = time.perf_counter() - t1
    return {
        "seconds": wall,
        "steps": cfg.max_steps - warmup,
        "cpu_seconds": time.process_time() - cpu1,  # this process's CPU time, all its threads
        "warmup_seconds": t1 - t0,
        "peak_mem_mb": _peak_memory_mb(choice),
        "final_loss": loss.item(),
    }


def _peak_memory_mb(choice) -> float:
    from core import device as devices

    gpu = devices.peak_memory_mb(choice)
    return gpu if gpu is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- figures --------------------------------------------------------------------------------


def model_figures(cfg) -> tuple[int, int]:
    """Parameters and training FLOPs per token of cfg's model (built on the meta device)."""
    import torch

    from core.model.gpt import GPT, ModelConfig, flops_per_token

    with torch.device("meta"):
        model = GPT(ModelConfig.of(cfg))
    n_params = model.num_params()
    return n_params, flops_per_token(model.config, cfg.seq_len, n_params)


def summarise(result: dict, tokens_per_step: int, flops_tok: int, peak: float) -> dict:
    tokens_per_sec = tokens_per_step * result["steps"] / result["seconds"]
    return {
        **result,
        "ms_per_step": 1000 * result["seconds"] / result["steps"],
        "tokens_per_sec": tokens_per_sec,
        "mfu": flops_tok * tokens_per_sec / peak if peak else None,
    }


def compare_loops(args) -> dict:
    from core import device as devices
    from core.config import preset

    cfg = bench_config(args)
    choice = devices.choose(cfg.device, cfg.dtype, cfg.compile, loss=args.loss)
    tokens_per_step = cfg.tokens_per_step(1)
    n_params, flops_tok = model_figures(cfg)
    peak = devices.peak_flops(choice, cfg.peak_flops).value
    engine, bare = [], []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        for r in range(args.repeats):
            # Alternate, so a burst of load from elsewhere hits both loops alike.
            bare.append(
                summarise(
                    run_bare(cfg, args.warmup_steps, choice), tokens_per_step, flops_tok, peak
                )
            )
            engine.append(
                summarise(
                    run_engine(cfg, args.warmup_steps, Path(tmp), f"engine-{r}"),
                    tokens_per_step,
                    flops_tok,
                    peak,
                )
            )
    best_engine = max(engine, key=lambda r: r["tokens_per_sec"])
    best_bare = max(bare, key=lambda r: r["tokens_per_sec"])
    ratio = best_engine["tokens_per_sec"] / best_bare["tokens_per_sec"]
    # The engine's overhead at the preset's own checkpoint cadence, from its own timings.
    preset_interval = preset(args.preset).checkpoint_interval
    step_ms = best_engine["dt_ms_reported"]
    ckpt_ms = best_engine["checkpoint_ms"]
    projected = best_engine["between_steps_ms"] + (
        ckpt_ms / preset_interval if ckpt_ms is not None and preset_interval else 0.0
    )
    projected_share = projected / (step_ms + projected)
    # How far repeats of the same loop disagree: above a few percent, other processes are
    # skewing the runs and the cross-run ratio says little; the in-process figure still holds.
    spread = max(
        max(r["tokens_per_sec"] for r in runs) / min(r["tokens_per_sec"] for r in runs)
        for runs in (engine, bare)
    )
    conclusive = args.repeats > 1 and spread <= 1.05
    rows = [
        dict(
            loop=name,
            **{k: r[k] for k in ("tokens_per_sec", "ms_per_step", "peak_mem_mb", "final_loss")},
            mfu_pct=None if r["mfu"] is None else 100 * r["mfu"],
            repeat=i + 1,
        )
        for name, runs in (("engine", engine), ("bare", bare))
        for i, r in enumerate(runs)
    ]
    notes = [
        f"{args.preset}: {n_params:,} parameters, {tokens_per_step:,} tokens/step, "
        f"{flops_tok / 1e6:.1f} MFLOPs/token, peak {peak / 1e9:.1f} GFLOP/s ({choice.device}, "
        f"{choice.dtype}, compile {'on' if choice.compile else 'off'}, {choice.loss} loss)",
        f"engine/bare tokens/s (best of {args.repeats} each): {ratio:.3f} "
        f"(target >= {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT met'}"
        + (
            ""
            if conclusive
            else f"; NOT conclusive: repeats of one loop differ up to {spread:.2f}x"
            + ("" if args.repeats > 1 else " or were not repeated")
        )
        + "); "
        f"engine's own timing: {best_engine['dt_ms_reported']:.1f} ms/step in the step, "
        f"{100 * best_engine['between_steps_share']:.2f}% of wall time between steps "
        f"({best_engine['checkpoints_timed']} checkpoint(s) in the timed steps)",
        f"between steps: {best_engine['between_steps_ms']:.2f} ms usually"
        + (f", +{ckpt_ms:.0f} ms per checkpoint" if ckpt_ms is not None else "")
        + f"; at the preset's cadence (every {preset_interval} steps) the engine's overhead is "
        f"{100 * projected_share:.2f}% (engine/bare {1 - projected_share:.3f})",
    ]
    result = dict(
        mode="engine-vs-bare",
        preset=args.preset,
        device=choice.device,
        dtype=choice.dtype,
        compile=choice.compile,
        loss=choice.loss,
        n_params=n_params,
        tokens_per_step=tokens_per_step,
        flops_per_token=flops_tok,
        peak_flops=peak,
        warmup_steps=args.warmup_steps,
        steps=args.steps,
        repeats=args.repeats,
        engine=best_engine,
        bare=best_bare,
        ratio=ratio,
        repeat_spread=spread,
        ratio_conclusive=conclusive,
        overhead_at_preset_cadence=projected_share,
        target_ratio=TARGET_RATIO,
        target_met=ratio >= TARGET_RATIO,
    )
    return common.report("train", result, rows, notes=notes)


def compare_defaults(args) -> dict:
    """Bare-loop speed of eager/compile x fp32/bf16 on this device, against its defaults."""
    from core import device as devices

    base = bench_config(args)
    default = devices.choose(base.device, "auto", "auto", loss=args.loss)
    kind = default.type
    tokens_per_step = base.tokens_per_step(1)
    rows = []
    # A fresh compile cache: the first step shows what a user's first compiled run pays.
    with (
        tempfile.TemporaryDirectory(prefix="bench-inductor-") as tmp,
        _env(TORCHINDUCTOR_CACHE_DIR=tmp),
    ):
        # --compile/--no-compile and --dtype narrow the grid (a cold compile is slow on a CPU).
        compiles = {"auto": (False, True), "on": (True,), "off": (False,)}[args.compile]
        dtypes = ("float32", "bfloat16") if args.dtype == "auto" else (args.dtype,)
        for compile_on in compiles:
            for dtype in dtypes:
                if dtype == "bfloat16" and kind == "mps":
                    continue  # autocast bf16 on MPS is not dependable across torch versions
                choice = devices.DeviceChoice(
                    default.device, dtype, compile_on, "benchmark", default.loss
                )
                result = run_bare(base, args.warmup_steps, choice)
                tps = tokens_per_step * result["steps"] / result["seconds"]
                steady_warmup = args.warmup_steps * result["seconds"] / result["steps"]
                rows.append(
                    dict(
                        compile=compile_on,
                        dtype=dtype,
                        tokens_per_sec=tps,
                        ms_per_step=1000 * result["seconds"] / result["steps"],
                        warmup_s=result["warmup_seconds"],
                        compile_cost_s=max(0.0, result["warmup_seconds"] - steady_warmup)
                        if compile_on
                        else None,
                    )
                )
                print(
                    f"  {dtype} compile={'on' if compile_on else 'off'}: {tps:,.0f} tokens/s",
                    file=sys.stderr,
                    flush=True,
                )
    fastest = max(rows, key=lambda r: r["tokens_per_sec"])
    chosen = next(
        (r for r in rows if r["dtype"] == default.dtype and r["compile"] == default.compile), None
    )
    notes = [
        f"fastest on {default.device} ({args.preset}, {args.steps} timed steps): "
        f"{fastest['dtype']}, compile {'on' if fastest['compile'] else 'off'} "
        f"({fastest['tokens_per_sec']:,.0f} tokens/s)",
        f"default: {default.dtype}, compile {'on' if default.compile else 'off'} ("
        + (
            f"{chosen['tokens_per_sec']:,.0f} tokens/s, "
            f"{100 * chosen['tokens_per_sec'] / fastest['tokens_per_sec']:.0f}% of the fastest"
            if chosen
            else "not in the measured grid"
        )
        + f"): {default.why}",
    ]
    for row in rows:
        if row["compile"] and row["compile_cost_s"]:
            eager = next((r for r in rows if not r["compile"] and r["dtype"] == row["dtype"]), None)
            gain_ms = eager["ms_per_step"] - row["ms_per_step"] if eager else 0.0
            notes.append(
                f"compile ({row['dtype']}): {row['compile_cost_s']:.1f}s up front, "
                + (
                    f"pays for itself after {row['compile_cost_s'] * 1000 / gain_ms:,.0f} steps"
                    if gain_ms > 0
                    else "no faster per step than eager"
                )
            )
    result = dict(
        mode="compare-defaults",
        preset=args.preset,
        device=default.device,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        fastest={k: fastest[k] for k in ("dtype", "compile", "tokens_per_sec")},
        default={
            "dtype": default.dtype,
            "compile": default.compile,
            "tokens_per_sec": chosen["tokens_per_sec"] if chosen else None,
        },
        default_is_fastest=chosen is fastest,
    )
    return common.report("train-defaults", result, rows, notes=notes)


# --- plain vs fused loss --------------------------------------------------------------------


def bare_only(args) -> dict:
    """The bare loop once in this process: tokens/s by the clock and per CPU-second, and the
    peak memory (resident on a CPU, allocated on a GPU)."""
    from core import device as devices

    cfg = bench_config(args)
    choice = devices.choose(cfg.device, cfg.dtype, cfg.compile, loss=args.loss)
    tokens = cfg.tokens_per_step(1)
    result = run_bare(cfg, args.warmup_steps, choice)
    result.update(
        preset=args.preset,
        loss=choice.loss,
        device=choice.device,
        tokens_per_step=tokens,
        tokens_per_sec=tokens * result["steps"] / result["seconds"],
        tokens_per_cpu_sec=tokens * result["steps"] / result["cpu_seconds"],
        load_avg_1min=os.getloadavg()[0],
    )
    return common.report(
        "train-bare",
        result,
        [result],
        columns=[
            "preset",
            "loss",
            "tokens_per_sec",
            "tokens_per_cpu_sec",
            "peak_mem_mb",
            "final_loss",
        ],
    )


def _bare_process(args, preset: str, loss: str, grid: dict) -> dict:
    """bare_only in a fresh process, so ru_maxrss is this variant's alone."""
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--bare-only",
        "--preset",
        preset,
        "--loss",
        loss,
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--data",
        args.data,
        "--steps",
        str(args.steps or grid["steps"]),
        "--warmup-steps",
        str(args.warmup_steps or grid["warmup"]),
    ]
    argv += {"on": ["--compile"], "off": ["--no-compile"], "auto": []}[args.compile]
    for name in ("micro_batch_size", "seq_len", "grad_accum_steps"):
        value = getattr(args, name) or grid["shape"].get(name)
        if value:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    load = os.getloadavg()[0]
    proc = subprocess.run(
        argv, cwd=common.ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"the {preset} {loss} run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    result = common.last_json_line(proc.stdout)
    keep = ("tokens_per_sec", "tokens_per_cpu_sec", "ms_per_step", "peak_mem_mb", "final_loss")
    row = dict(
        preset=preset,
        loss=loss,
        **{k: result.get(k) for k in keep if k != "ms_per_step"},
        ms_per_step=1000 * result["seconds"] / result["steps"],
        load_before=load,
        load_after=result["load_avg_1min"],
    )
    print(
        f"  {preset} {loss}: {row['tokens_per_sec']:,.0f} tokens/s, "
        f"{row['peak_mem_mb']:,.0f} MB peak (load {load:.2f} -> {row['load_after']:.2f})",
        file=sys.stderr,
        flush=True,
    )
    return row


def _loss_summary(preset: str, rows: list[dict], grid: dict) -> dict:
    """fused/plain for one preset: the best of each (and per adjacent pair) for speed, the
    smallest peak memory of each, and whether the grid's targets are met."""
    by = {loss: [r for r in rows if r["loss"] == loss] for loss in ("plain", "fused")}
    best = {
        k: {loss: max(r[k] for r in runs) for loss, runs in by.items()}
        for k in ("tokens_per_sec", "tokens_per_cpu_sec")
    }
    memory = {loss: min(r["peak_mem_mb"] for r in runs) for loss, runs in by.items()}
    pairs = [f["tokens_per_sec"] / p["tokens_per_sec"] for p, f in zip(by["plain"], by["fused"])]
    speedup = best["tokens_per_sec"]["fused"] / best["tokens_per_sec"]["plain"]
    cpu_speedup = best["tokens_per_cpu_sec"]["fused"] / best["tokens_per_cpu_sec"]["plain"]
    memory_ratio = memory["fused"] / memory["plain"]
    met = speedup >= grid["speedup"] and (grid["memory"] is None or memory_ratio <= grid["memory"])
    return dict(
        preset=preset,
        speedup=speedup,
        cpu_speedup=cpu_speedup,
        pair_speedups=pairs,
        tokens_per_sec=best["tokens_per_sec"],
        peak_mem_mb=memory,
        memory_ratio=memory_ratio,
        target_speedup=grid["speedup"],
        target_memory_ratio=grid["memory"],
        target_met=met,
        loss_gap=max(
            abs(f["final_loss"] - p["final_loss"]) for p, f in zip(by["plain"], by["fused"])
        ),
    )


def compare_loss(args) -> dict:
    """Plain vs fused loss per preset, alternating, each run in a fresh process."""
    presets = [p for p in args.compare_loss.split(",") if p]
    unknown = [p for p in presets if p not in LOSS_GRID]
    if unknown or not presets:
        raise ValueError(
            f"--compare-loss: unknown preset(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(LOSS_GRID)}"
        )
    rows, summaries = [], []
    for preset in presets:
        grid = LOSS_GRID[preset]
        runs = []
        for repeat in range(args.repeats or grid["repeats"]):
            for loss in ("plain", "fused"):  # A B A B: drift in the load hits both alike
                runs.append(dict(_bare_process(args, preset, loss, grid), repeat=repeat + 1))
        rows += runs
        summaries.append(_loss_summary(preset, runs, grid))
    notes = [
        f"{s['preset']}: fused/plain tokens/s {s['speedup']:.2f}x by the clock "
        f"(pairs {', '.join(f'{r:.2f}' for r in s['pair_speedups'])}), "
        f"{s['cpu_speedup']:.2f}x per CPU-second; peak memory "
        f"{s['peak_mem_mb']['plain']:,.0f} -> {s['peak_mem_mb']['fused']:,.0f} MB "
        f"({100 * (1 - s['memory_ratio']):.0f}% less); final loss gap {s['loss_gap']:.1e}; target "
        f"tokens/s >= {s['target_speedup']}x"
        + (f", memory <= {s['target_memory_ratio']}x" if s["target_memory_ratio"] else "")
        + f": {'met' if s['target_met'] else 'NOT met'}"
        for s in summaries
    ]
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    notes.append(
        f"load average (1 min) during the runs: {min(loads):.2f}-{max(loads):.2f}"
        + (
            " (shared machine: other processes took CPU time; the per-CPU-second "
            "figures are the steadier ones)"
            if max(loads) > 1
            else ""
        )
    )
    result = dict(
        mode="compare-loss",
        presets=presets,
        summaries=summaries,
        target_met=all(s["target_met"] for s in summaries),
    )
    return common.report(
        "train-loss",
        result,
        rows,
        notes=notes,
        columns=[
            "preset",
            "loss",
            "repeat",
            "tokens_per_sec",
            "tokens_per_cpu_sec",
            "ms_per_step",
            "peak_mem_mb",
            "final_loss",
            "load_before",
            "load_after",
        ],
    )


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not args.compare_loss:  # --compare-loss takes what is not given from LOSS_GRID
        args.steps = args.steps or (5 if args.compare_defaults else 50)  # bf16 on a CPU is slow
        args.warmup_steps = args.warmup_steps or 2
        args.repeats = args.repeats or 2
    common.offline_env()
    from core.config import ConfigError
    from core.data.dataset import DataError

    try:
        if args.compare_defaults:
            compare_defaults(args)
        elif args.compare_loss:
            compare_loss(args)
        elif args.bare_only:
            bare_only(args)
        else:
            compare_loops(args)
    except (ConfigError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # the engine run failed: its log says why
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
