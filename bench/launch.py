"""Start-up cost: from launching a run to its first train line in metrics.jsonl, and the data
preparation a second run pays.

    python bench/launch.py                  # nano, eager and compiled, token cache cold and warm
    python bench/launch.py --no-compile     # eager only (a cold compile takes a minute on a CPU)

Each launch goes through core.runs.launcher.launch (the dashboard's path) into a temp runs dir.
"Cold" points GPT_CACHE_DIR (token cache, measured CPU peak) and TORCHINDUCTOR_CACHE_DIR at fresh
temp folders, as on a first run; "warm" launches again with the same folders. Then
core.data.dataset.load_tokens on tiny shakespeare is timed cold and warm in this process.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common
from bench.train import _env

DATA_TARGET_S = 0.2  # the second run on a data set spends less than this preparing it
_LOADED = re.compile(r"loaded [\d,]+ tokens .* in ([\d.]+)s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/launch.py",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    common.add_run_flags(parser, preset="nano", steps=2)
    parser.add_argument("--micro-batch-size", type=common.positive, help="override the preset's")
    parser.add_argument("--seq-len", type=common.positive, help="override the preset's")
    parser.add_argument("--data", default="tinyshakespeare", help="data source")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for one launch's first train line",
    )
    parser.add_argument(
        "--load-repeats",
        type=common.positive,
        default=5,
        help="warm load_tokens calls timed (the median is reported)",
    )
    return parser


def _start(cfg, runs_dir: Path, name: str):
    """Start a run the way the dashboard does."""
    from core.runs import launcher
    from core.store.rundir import RunDir

    return RunDir(runs_dir / launcher.launch(cfg, runs_dir, name))


def time_launch(cfg, runs_dir: Path, name: str, timeout: float) -> dict:
    """Seconds from launch to the engine starting, and to its first train record on disk."""
    from core.store.metrics import MetricsReader
    from core.store.rundir import ACTIVE_STATES

    t0 = time.time()
    run = _start(cfg, runs_dir, name)
    reader = MetricsReader(run.metrics_path)
    first = None
    while first is None:
        first = next((r for r in reader.read_new() if r.get("kind") == "train"), None)
        status = run.read_status()
        if first is None and status.get("state") not in ACTIVE_STATES:
            raise RuntimeError(
                f"run {name} ended as {status.get('state')} before its first step: "
                f"{status.get('error') or run.log_path.read_text()[-1500:]}"
            )
        if first is None and time.time() - t0 > timeout:
            raise RuntimeError(f"run {name}: no train line within {timeout:.0f}s (see --timeout)")
        time.sleep(0.02)
    # Let it finish (a couple of steps), so the next launch does not share the CPU with it.
    deadline = time.time() + timeout
    while run.read_status().get("state") in ACTIVE_STATES and time.time() < deadline:
        time.sleep(0.1)
    started = run.read_status().get("started")
    loaded = _LOADED.search(run.log_path.read_text(errors="replace"))
    to_start = started - t0 if started else None  # process start, imports, config checks
    data_s = float(loaded.group(1)) if loaded else None  # as the engine logged it
    to_first = first["time"] - t0
    return {
        "to_engine_start_s": to_start,
        "data_s": data_s,
        # Model, optimizer (AdamW's first construction imports torch._dynamo), CPU peak.
        "setup_s": to_first - to_start - data_s - first["dt_ms"] / 1000
        if to_start is not None and data_s is not None
        else None,
        "first_step_ms": first["dt_ms"],  # with compile on, this holds the compilation
        "to_first_line_s": to_first,
    }


def time_load_tokens(data_name: str, repeats: int) -> dict:
    """core.data.dataset.load_tokens cold (tokenizes, writes the cache) and warm, in this process, plus
    the engine's whole data preparation (split, batch walker) when warm."""
    from core.data import dataset
    from core.data.walker import BatchWalker

    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache, _env(GPT_CACHE_DIR=cache):
        dataset.get_tokenizer()  # the tokenizer loads once per process, not per data set
        t0 = time.perf_counter()
        tokens = dataset.load_tokens(data_name)
        cold = time.perf_counter() - t0
        warm, prep = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            tokens = dataset.load_tokens(data_name)
            warm.append(time.perf_counter() - t0)
            train, val = dataset.split(tokens, 0.1)
            BatchWalker(train, 8, 64), BatchWalker(val, 8, 64)
            prep.append(time.perf_counter() - t0)
    return {
        "tokens": int(len(tokens)),
        "cold_s": cold,
        "warm_s": statistics.median(warm),
        "warm_prep_s": statistics.median(prep),
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    common.offline_env()
    from core.config import ConfigError, preset, validate
    from core.data.dataset import DataError

    modes = {"auto": ("off", "on"), "on": ("on",), "off": ("off",)}[args.compile]
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
            runs_dir = Path(tmp) / "runs"
            for compile_mode in modes:
                cfg = preset(
                    args.preset,
                    device=args.device,
                    dtype=args.dtype,
                    compile=compile_mode,
                    data=args.data,
                    max_steps=args.steps,
                    eval_interval=0,
                    checkpoint_interval=0,
                    target_loss=0.0,
                    **{
                        k: getattr(args, k)
                        for k in ("micro_batch_size", "seq_len")
                        if getattr(args, k) is not None
                    },
                )
                validate(cfg)
                caches = {
                    k: tempfile.mkdtemp(prefix=f"{k}-", dir=tmp)
                    for k in ("GPT_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR")
                }
                for cache in ("cold", "warm"):
                    with _env(**caches):
                        result = time_launch(cfg, runs_dir, f"{compile_mode}-{cache}", args.timeout)
                    rows.append(dict(compile=compile_mode, cache=cache, **result))
                    print(
                        f"  compile {compile_mode}, {cache}: first line after "
                        f"{result['to_first_line_s']:.1f}s",
                        file=sys.stderr,
                        flush=True,
                    )
        load = time_load_tokens(args.data, args.load_repeats)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a launched run failed or timed out: its log says why
        print(f"error: {e}", file=sys.stderr)
        return 1
    met = load["warm_s"] < DATA_TARGET_S
    notes = [
        f"load_tokens({args.data!r}): {load['tokens']:,} tokens, cold {load['cold_s']:.3f}s, "
        f"warm {load['warm_s'] * 1000:.1f} ms (median of {args.load_repeats}); with split and "
        f"batch walkers {load['warm_prep_s'] * 1000:.1f} ms "
        f"(target < {DATA_TARGET_S}s: {'met' if met else 'NOT met'})",
    ]
    result = dict(
        preset=args.preset,
        steps=args.steps,
        launches=rows,
        load_tokens=load,
        data_target_s=DATA_TARGET_S,
        data_target_met=met,
    )
    common.report("launch", result, rows, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
