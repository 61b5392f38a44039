"""Live page data path on a long run: cold load and incremental refresh.

    python bench/dashboard.py                       # runs of 10,000 and 100,000 steps
    python bench/dashboard.py --steps 1000000       # one run of a million steps

For each size it writes a synthetic run (train lines like the engine's, an eval line every
--eval-interval steps, a sample every --sample-interval) into a temp runs dir, then times
- cold: a fresh RunSeries reads metrics.jsonl, smooths, downsamples and builds the five
  figures, serialised as st.plotly_chart does (the page's work on first open, minus drawing);
- incremental: --append more train lines are appended, then the same refresh (only the new
  bytes are read; smoothing and finished buckets are extended, not recomputed).
Targets: cold under 1 s for 100,000 steps; incremental under 50 ms, whatever the length.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

COLD_TARGET_S = 1.0
INCREMENTAL_TARGET_MS = 50.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/dashboard.py",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--steps",
        type=common.positive,
        nargs="+",
        default=[10_000, 100_000],
        help="train steps of each synthetic run",
    )
    parser.add_argument(
        "--append",
        type=common.positive,
        default=100,
        help="lines appended before each incremental refresh",
    )
    parser.add_argument(
        "--repeats",
        type=common.positive,
        default=5,
        help="cold loads and incremental refreshes timed (median reported)",
    )
    parser.add_argument(
        "--eval-interval",
        type=common.positive,
        default=100,
        help="steps between eval lines (each followed by a sample line)",
    )
    parser.add_argument(
        "--sample-interval", type=common.positive, default=500, help="steps between sample lines"
    )
    parser.add_argument("--smoothing", type=float, default=0.6, help="EMA weight in [0, 1)")
    parser.add_argument(
        "--axis", choices=["step", "tokens", "time"], default="step", help="x axis of the figures"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp runs dir and print it")
    return parser


class Writer:
    """Appends engine-shaped records to a run's metrics.jsonl."""

    def __init__(self, run, seed: int = 0):
        self.rng = random.Random(seed)
        self.f = open(run.metrics_path, "a", buffering=1)
        self.step, self.t = 0, 1.7e9
        self.tokens_per_step = 8 * 64

    def lines(self, n: int, eval_interval: int, sample_interval: int) -> None:
        for _ in range(n):
            self.step += 1
            dt = 0.05 * (1 + 0.1 * self.rng.random())
            self.t += dt
            loss = 0.1 + 10.8 * math.exp(-self.step / 2000) + 0.05 * self.rng.random()
            if self.rng.random() < 1e-3:
                loss *= 3  # a spike, as real runs have, that downsampling must keep
            self.f.write(
                json.dumps(
                    dict(
                        kind="train",
                        step=self.step,
                        time=self.t,
                        loss=loss,
                        lr=6e-4 * (1 - self.step / 1e7),
                        grad_norm=0.5 + self.rng.random(),
                        dt_ms=dt * 1000,
                        tokens_per_sec=self.tokens_per_step / dt,
                        tokens_seen=self.step * self.tokens_per_step,
                        mfu=0.4,
                        peak_mem_mb=812.5,
                    )
                )
                + "\n"
            )
            if self.step % eval_interval == 0:
                self.f.write(
                    json.dumps(dict(kind="eval", step=self.step, time=self.t, val_loss=loss + 0.1))
                    + "\n"
                )
            if self.step % sample_interval == 0:
                self.f.write(
                    json.dumps(
                        dict(
                            kind="sample",
                            step=self.step,
                            time=self.t,
                            prompt="ROMEO:",
                            text=" what *light* _through_ # $5",
                        )
                    )
                    + "\n"
                )
        self.f.flush()


def refresh(series, args) -> dict:
    """One refresh of the live page's data: read what is new, build and serialise the figures.
    Returns the seconds each part took."""
    import plotly.io

    from dashboard.live_figures import build_figures

    t0 = time.perf_counter()
    new = series.refresh()
    t1 = time.perf_counter()
    figures = build_figures(
        [series],
        axis=args.axis,
        weight=args.smoothing,
        log_y=False,
        color_of=lambda _: "#1f77b4",
        targets={series.run.run_id: 0.1},
        clips={series.run.run_id: 1.0},
    )
    t2 = time.perf_counter()
    # What st.plotly_chart does with a figure before sending it to the browser.
    points = 0
    for fig in figures.values():
        spec = fig.to_dict()
        plotly.io.to_json(spec, validate=False)
        points += sum(len(trace.x) for trace in fig.data if trace.x is not None)
    t3 = time.perf_counter()
    return dict(
        read=t1 - t0, figures=t2 - t1, serialise=t3 - t2, total=t3 - t0, new=new, points=points
    )


def bench_size(steps: int, args, root: Path) -> dict:
    from core.config import preset
    from core.store.rundir import RunDir
    from dashboard.live_series import RunSeries

    run = RunDir.create(root, f"bench-{steps}", preset("nano", max_steps=steps * 2))
    writer = Writer(run)
    t = time.perf_counter()
    writer.lines(steps, args.eval_interval, args.sample_interval)
    write_s = time.perf_counter() - t
    size_mb = run.metrics_path.stat().st_size / 1e6

    colds = [refresh(RunSeries(run), args) for _ in range(args.repeats)]
    series = RunSeries(run)
    refresh(series, args)
    incs = []
    for _ in range(args.repeats):
        writer.lines(args.append, args.eval_interval, args.sample_interval)
        incs.append(refresh(series, args))
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    return {
        "steps": steps,
        "file_mb": round(size_mb, 1),
        "write_s": round(write_s, 2),
        "cold_first_s": round(colds[0]["total"], 3),
        "cold_s": round(med(colds, "total"), 3),
        "cold_read_s": round(med(colds, "read"), 3),
        "cold_figures_s": round(med(colds, "figures"), 3),
        "cold_serialise_s": round(med(colds, "serialise"), 3),
        "incremental_ms": round(med(incs, "total") * 1000, 1),
        "inc_read_ms": round(med(incs, "read") * 1000, 2),
        "inc_figures_ms": round(med(incs, "figures") * 1000, 1),
        "inc_serialise_ms": round(med(incs, "serialise") * 1000, 1),
        "points_drawn": colds[-1]["points"],
        "new_records_per_refresh": incs[-1]["new"],
    }


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.smoothing < 1.0:
        raise SystemExit(f"--smoothing must be in [0, 1) (got {args.smoothing})")
    # Imported before timing: a Streamlit server has these loaded long before a page opens.
    import plotly.graph_objects
    import plotly.io  # noqa: F401
    import pyarrow.json  # noqa: F401

    import dashboard.live_figures  # noqa: F401

    tmp = tempfile.TemporaryDirectory(prefix="bench-dashboard-")
    rows = [bench_size(steps, args, Path(tmp.name)) for steps in sorted(args.steps)]
    big = rows[-1]
    result = {
        "steps": big["steps"],
        "cold_s": big["cold_s"],
        "cold_first_s": big["cold_first_s"],
        "incremental_ms": big["incremental_ms"],
        "cold_target_met": big["cold_s"] < COLD_TARGET_S if big["steps"] <= 100_000 else None,
        "incremental_target_met": all(r["incremental_ms"] < INCREMENTAL_TARGET_MS for r in rows),
        "append": args.append,
        "smoothing": args.smoothing,
        "axis": args.axis,
    }
    notes = [
        f"cold: median of {args.repeats} fresh loads (cold_first_s: the first, which also "
        f"warms pyarrow and plotly); incremental: median of {args.repeats} refreshes, each "
        f"after {args.append} appended steps; targets: cold < {COLD_TARGET_S:g} s at 100,000 "
        f"steps, incremental < {INCREMENTAL_TARGET_MS:g} ms at any length"
    ]
    if args.keep:
        notes.append(f"runs kept in {tmp.name}")
        tmp._finalizer.detach()
    else:
        tmp.cleanup()
    return common.report("dashboard", result, rows, notes=notes)


if __name__ == "__main__":
    main()
