"""Backtest the loss forecast (core.dynamics.forecast) on finished runs: fit on the first 25% and
50% of each run's steps, predict its final train loss and its best val loss, print the errors.

    python bench/forecast.py --runs-dir runs                 # every completed run there
    python bench/forecast.py --make-tiny 3 --steps 300       # train tiny runs first, then backtest

"Final train loss" is the mean of the last 2% of the train records (at least 5): one step's loss
is noise around the curve the law describes. The predicted best val loss is the lower of the
best val seen by the cut and the forecast's lowest point after it. `--make-tiny` trains 2-layer,
32-wide models on tiny shakespeare in a temp folder (seconds each): they test the fitting, not
what the CPU presets reach; rows say which runs they are.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import offline_env, positive, report

FRACTIONS = (0.25, 0.5)
TINY = dict(  # seconds per run on a CPU; lr and width vary between runs
    n_layer=2,
    n_head=2,
    n_embd=32,
    block_size=64,
    seq_len=64,
    micro_batch_size=8,
    grad_accum_steps=1,
    min_lr=3e-4,
    warmup_steps=20,
    eval_batches=4,
    sample_tokens=8,
    checkpoint_interval=0,
    keep_checkpoints=1,
    snapshot_interval=0,
    target_loss=0.0,
    device="cpu",
)
TINY_VARIANTS = ({"max_lr": 3e-3}, {"max_lr": 1e-2}, {"max_lr": 3e-3, "n_embd": 64, "seed": 2})


def make_tiny_runs(runs_dir: Path, count: int, steps: int) -> None:
    """Train `count` tiny runs to completion in runs_dir (their own process each, as the app)."""
    from core.config import TrainConfig
    from core.store.rundir import RunDir
    from core.train.engine import train

    for i in range(count):
        variant = TINY_VARIANTS[i % len(TINY_VARIANTS)]
        cfg = TrainConfig(**{**TINY, **variant, "max_steps": steps, "eval_interval": steps // 12})
        run = RunDir.create(runs_dir, f"tiny-{i}", cfg)
        print(f"training {run.run_id} ({steps} steps, {variant})", flush=True)
        train(str(run.path))


def _columns(records: list[dict], kind: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(r["step"], r[field]) for r in records if r["kind"] == kind and field in r]
    table = np.array(rows, dtype=np.float64).reshape(-1, 2)
    return table[:, 0], table[:, 1]


def backtest(run, fraction: float) -> dict | None:
    """One row: the forecast from the first `fraction` of the run against what it reached."""
    from core.dynamics.forecast import NotEnoughData, train_forecast, val_forecast
    from core.store.metrics import read_all

    cfg = run.read_config()
    records = read_all(run.metrics_path)
    steps, loss = _columns(records, "train", "loss")
    ev_steps, val = _columns(records, "eval", "val_loss")
    if not steps.size:
        return None
    cut, last = int(fraction * cfg.max_steps), max(5, steps.size // 50)
    actual = float(np.mean(loss[-last:]))
    row = dict(run=run.run_id, model=f"{cfg.n_layer}L x {cfg.n_embd}", steps=cfg.max_steps)
    row["fit on"] = f"{fraction:.0%}"
    try:
        f = train_forecast(cfg, steps[steps <= cut], loss[steps <= cut])
    except NotEnoughData as e:
        return {**row, "note": str(e)}
    mean, lo, hi = f.final
    row.update({"train pred": mean, "band": f"{lo:.2f}-{hi:.2f}", "train actual": actual})
    row.update({"train err": mean - actual, "in band": lo <= actual <= hi})
    if val.size:
        seen = val[ev_steps <= cut]
        best_seen = float(seen.min()) if seen.size else np.inf
        try:
            fv = val_forecast(cfg, ev_steps[ev_steps <= cut], val[ev_steps <= cut], f)
            pred = min(best_seen, float(fv.mean.min()))
        except NotEnoughData:
            pred = best_seen
        if np.isfinite(pred):
            row.update({"best val pred": pred, "best val actual": float(val.min())})
            row["val err"] = pred - float(val.min())
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path, help="backtest the completed runs here")
    parser.add_argument("--make-tiny", type=positive, help="train this many tiny runs first")
    parser.add_argument("--steps", type=positive, default=300, help="steps of each tiny run")
    args = parser.parse_args(argv)
    if not args.runs_dir and not args.make_tiny:
        parser.error("give --runs-dir with finished runs, or --make-tiny N to train some")
    offline_env()
    from core.store.rundir import list_run_dirs

    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="forecast-bench-"))
    if args.make_tiny:
        make_tiny_runs(runs_dir, args.make_tiny, args.steps)
    runs = [r for r in list_run_dirs(runs_dir) if r.effective_state() == "completed"]
    rows = [row for r in runs for f in FRACTIONS if (row := backtest(r, f))]
    summary = {}
    for f in FRACTIONS:
        errs = [abs(r["train err"]) for r in rows if r["fit on"] == f"{f:.0%}" and "train err" in r]
        summary[f"mean |train err| at {f:.0%}"] = float(np.mean(errs)) if errs else None
    notes = [f"{k}: {v:.3f} nats" for k, v in summary.items() if v is not None]
    if args.make_tiny:
        notes.append("tiny runs made by this script (2 layers, 32-64 wide): not the CPU presets")
    return report("forecast", {"runs": len(runs), **summary}, rows, notes=notes)


if __name__ == "__main__":
    main()
