"""Runs table summary and Model info's training results on a very long run: cold and rerun.

    python bench/long_run.py                  # 960,000 steps (about 200 MB of metrics.jsonl)
    python bench/long_run.py --steps 100000

Writes a synthetic run through core.store.metrics.MetricsLog (train records like the engine's, an
eval every --eval-interval steps, a sample every 500, a system record every 20, a resume every
--segment steps) into a temp runs dir, then, each in a fresh process with core, numpy and
pyarrow already imported (as in a Streamlit server):
- summary: core.store.metrics.cached_summary (the Runs table) cold, then a rerun;
- results: core.inspect.model_info.training_results (Model info) cold, then a rerun;
with the peak memory the process added while reading. Targets: cold < 3 s, rerun < 0.3 s,
memory < 500 MB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

COLD_TARGET_S, RERUN_TARGET_S, MEMORY_TARGET_MB = 3.0, 0.3, 500.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/long_run.py",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", type=common.positive, default=960_000, help="train steps")
    parser.add_argument("--eval-interval", type=common.positive, default=100)
    parser.add_argument(
        "--segment",
        type=common.positive,
        default=250_000,
        help="steps between resumes (each adds a start record)",
    )
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "RUN_DIR"), help=argparse.SUPPRESS)
    return parser


def write_run(root: Path, args) -> Path:
    """A run directory whose metrics.jsonl holds args.steps train steps."""
    from core.config import preset
    from core.store import metrics
    from core.store.rundir import RunDir

    run = RunDir.create(root, "long", preset("nano", max_steps=args.steps))
    log, rng, t = metrics.MetricsLog(run.metrics_path), random.Random(0), 1.7e9
    for step in range(1, args.steps + 1):
        if step % args.segment == 1:
            log.write("start", step - 1, t, resumed=step > 1, world_size=1, max_steps=args.steps)
        dt = 0.05 * (1 + 0.1 * rng.random())
        t += dt
        loss = 0.1 + 10.8 * math.exp(-step / 2000) + 0.05 * rng.random()
        log.write(
            "train",
            step,
            t,
            loss=loss,
            lr=6e-4,
            grad_norm=0.5 + rng.random(),
            dt_ms=dt * 1000,
            tokens_per_sec=512 / dt,
            tokens_seen=step * 512,
            train_time_s=step * 0.05,
            peak_mem_mb=812.5,
            mfu=0.4,
        )
        if step % args.eval_interval == 0:
            log.write("eval", step, t, val_loss=loss + 0.1)
        if step % 500 == 0:
            log.write("sample", step, t, prompt="ROMEO:", text=" what *light* through # $5")
        if step % 20 == 0:
            log.write("system", step, t, cpu_percent=99.0, rss_mb=400.0)
    log.close()
    run.write_status(state="completed", step=args.steps, max_steps=args.steps)
    return run.path


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(what: str, run_path: str) -> None:
    """Time one reader cold and rerun in this fresh process; print one JSON line."""
    import pyarrow.json  # noqa: F401  (a Streamlit server has it loaded)

    from core.inspect import model_info as inspect_model
    from core.store import metrics
    from core.store.rundir import RunDir

    run = RunDir(run_path)
    read = {
        "summary": lambda: metrics.cached_summary(run.metrics_path),
        "results": lambda: inspect_model.training_results(run),
    }[what]
    before = _rss_mb()
    t0 = time.perf_counter()
    first = read()
    t1 = time.perf_counter()
    read()
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    last_step = first.last_step if what == "summary" else first["steps"]
    print(
        json.dumps(
            {
                "reader": what,
                "cold_s": round(t1 - t0, 3),
                "rerun_s": round(t2 - t1, 4),
                "added_mb": round(max(0.0, peak - before), 1),
                "peak_rss_mb": round(peak, 1),
                "last_step": last_step,
            }
        )
    )


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.child:
        child(*args.child)
        return {}
    with tempfile.TemporaryDirectory(prefix="bench-long-run-") as tmp:
        t = time.perf_counter()
        run_path = write_run(Path(tmp), args)
        write_s = time.perf_counter() - t
        size_mb = (run_path / "metrics.jsonl").stat().st_size / 1e6
        rows = []
        for what in ("summary", "results"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", what, str(run_path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rows.append(common.last_json_line(out))
    result = {
        "steps": args.steps,
        "file_mb": round(size_mb, 1),
        "write_s": round(write_s, 1),
        "cold_target_met": all(r["cold_s"] < COLD_TARGET_S for r in rows),
        "rerun_target_met": all(r["rerun_s"] < RERUN_TARGET_S for r in rows),
        "memory_target_met": all(r["added_mb"] < MEMORY_TARGET_MB for r in rows),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
    notes = [
        f"{args.steps:,} steps, {size_mb:.0f} MB of metrics.jsonl; each reader in a fresh "
        f"process; targets: cold < {COLD_TARGET_S:g} s, rerun < {RERUN_TARGET_S:g} s, "
        f"added memory < {MEMORY_TARGET_MB:g} MB; load average {result['load_avg_1_5_15']} "
        "(above ~1 on a 2-core machine: shared, timings inflated)"
    ]
    return common.report("long_run", result, rows, notes=notes)


if __name__ == "__main__":
    main()
