"""Quality against wall time: how good a model each preset (or any config) gets in N minutes.

Launches a real run (its own process, as the dashboard does) on tiny shakespeare, fp32, and
stops it once the largest budget has passed. Per budget it prints the best val loss reached by
then and its perplexity, the step, tokens seen, epochs, tokens/s, and a sample at the
Playground's default settings from the weights of that best step (snapshots are taken at every
eval for this); then the val-loss-against-time curve as CSV, and the usual last JSON line.

    python bench/quality.py --preset nano --minutes 2
    python bench/quality.py --preset micro --minutes 2 5 10 --set max_steps=3000
    python bench/quality.py --preset nano --minutes 1 --csv curve.csv

Times count from the launch, process start-up included: what a person waits for.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import offline_env, report

SAMPLE_PROMPT = "ROMEO:"


def parse_overrides(pairs: list[str], cfg):
    """`field=value` strings into a config (values typed like the field)."""
    changes = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not hasattr(cfg, name):
            raise SystemExit(f"error: unknown config field {name!r} in --set")
        kind = type(getattr(cfg, name))
        changes[name] = kind(float(value)) if kind is int else kind(value)
    return cfg.replace(**changes)


def train_for(cfg, minutes: float, runs_dir: Path) -> tuple[object, float]:
    """Launch cfg and stop it once `minutes` have passed (or let it end); returns the run and
    the launch time."""
    from core.runs import launcher
    from core.store.rundir import ACTIVE_STATES, RunDir

    t0 = time.time()
    run = RunDir(runs_dir / launcher.launch(cfg, runs_dir, "quality"))
    while launcher.state_of(run) in ACTIVE_STATES:
        if time.time() - t0 > minutes * 60:
            launcher.stop(run, wait=True)
            break
        time.sleep(0.5)
    return run, t0


def sample_at(run, step: int) -> str:
    """A sample at the Playground's defaults from the snapshot of `step`."""
    from core.data.tokens import encode_prompt
    from core.generate.sampling import SamplingSettings, stream_tokens
    from core.store import checkpoint

    model = checkpoint.load(run.snapshot_path(step)).build_model()
    ids, _ = encode_prompt(SAMPLE_PROMPT, model.config.block_size)
    return SAMPLE_PROMPT + "".join(e.text for e in stream_tokens(model, ids, SamplingSettings()))


def budget_rows(run, t0: float, budgets: list[float], train_tokens: int) -> list[dict]:
    """One row per budget: the best val loss reached by then, with its step, tokens and sample."""
    from core.store import metrics

    records = metrics.read_all(run.metrics_path)
    evals = [r for r in records if r["kind"] == "eval" and "val_loss" in r]
    train = {r["step"]: r for r in records if r["kind"] == "train"}
    rows = []
    for minutes in budgets:
        within = [e for e in evals if e["time"] - t0 <= minutes * 60]
        if not within:
            rows.append({"minutes": minutes, "best_val_loss": None})
            continue
        best = min(within, key=lambda e: e["val_loss"])
        seen = train[best["step"]]["tokens_seen"]
        rates = [r["tokens_per_sec"] for r in train.values() if r["time"] - t0 <= minutes * 60][1:]
        rows.append(
            {
                "minutes": minutes,
                "best_val_loss": round(best["val_loss"], 4),
                "val_perplexity": round(math.exp(best["val_loss"]), 1),
                "step": best["step"],
                "at_s": round(best["time"] - t0, 1),
                "tokens_seen": seen,
                "epochs": round(seen / train_tokens, 2),
                "tokens_per_s": round(sum(rates) / len(rates)) if rates else None,
                "sample": sample_at(run, best["step"]),
            }
        )
    return rows


def curve_csv(run, t0: float) -> str:
    from core.store import metrics

    lines = ["seconds,step,val_loss"]
    for r in metrics.read_all(run.metrics_path):
        if r["kind"] == "eval" and "val_loss" in r:
            lines.append(f"{r['time'] - t0:.1f},{r['step']},{r['val_loss']:.5f}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="nano", help="starting config (a core.config preset)")
    p.add_argument("--minutes", type=float, nargs="+", default=[2.0], help="wall-clock budgets")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="config overrides")
    p.add_argument("--csv", help="also write the val-loss curve here")
    p.add_argument("--runs-dir", help="keep the run here (default: a temp folder)")
    args = p.parse_args(argv)
    offline_env()
    from core.config import preset
    from core.data import dataset

    cfg = parse_overrides(args.set, preset(args.preset, device="cpu", dtype="float32"))
    cfg = cfg.replace(snapshot_interval=cfg.eval_interval, snapshot_cap_mb=100_000)
    train_tokens = len(dataset.split(dataset.load_tokens(cfg.data), cfg.val_fraction)[0])
    with tempfile.TemporaryDirectory() as tmp:
        run, t0 = train_for(cfg, max(args.minutes), Path(args.runs_dir or tmp))
        rows = budget_rows(run, t0, sorted(args.minutes), train_tokens)
        curve = curve_csv(run, t0)
    if args.csv:
        Path(args.csv).write_text(curve)
    samples = {r["minutes"]: r.pop("sample", "") for r in rows}
    notes = [f"--- sample after {m} min (best val step):\n{text}" for m, text in samples.items()]
    report(
        "quality",
        {"preset": args.preset, "overrides": args.set, "samples": samples, "curve_csv": curve},
        rows,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
