"""Training dynamics: what the per-eval probes (core/dynamics) cost, and a run on which an
induction head forms on a CPU.

    python bench/dynamics.py cost [--preset nano micro gpt2-124m]   # seconds per eval
    python bench/dynamics.py induction [--steps 400]                # the detector firing

`cost` times EvalProbes.measure (the induction probe, the val and train probes) on each
preset's model as initialised, after one warm-up call, and extraction once, against the
preset's time between evals (its eval_interval times a measured training step). `induction`
trains a small model on a text where copying pays early: lines of 24 random words, each line
said twice ("w1 ... w24 | w1 ... w24"), the kind of repeated passage the data X-ray finds; it
prints each eval's best prefix-matching score and the step at which a head crossed the threshold.
Every figure is printed with the machine's load (uptime): on a shared machine they are upper
bounds.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def repeated_text(path: Path, lines: int = 3000, words: int = 24, seed: int = 0) -> Path:
    """Lines of random words from a fixed list, each line's words said twice."""
    rng = random.Random(seed)
    vocab = sorted({w.strip(".,;:!?'").lower() for w in _shakespeare_words() if w.isalpha()})
    out = []
    for _ in range(lines):
        chosen = " ".join(rng.choice(vocab) for _ in range(words))
        out.append(f"{chosen} | {chosen}")
    path.write_text("\n".join(out) + "\n")
    return path


def _shakespeare_words() -> list[str]:
    from core.data.dataset import read_text, resolve_source

    return read_text(resolve_source("tinyshakespeare")).split()[:50_000]


def cost(presets: list[str]) -> None:
    import torch

    from core import device as devices
    from core.config import preset
    from core.data.dataset import load_tokens, split
    from core.dynamics.eval_probes import EvalProbes
    from core.model.gpt import GPT, ModelConfig

    for name in presets:
        cfg = preset(name, device="auto")
        choice = devices.choose(cfg.device, cfg.dtype, "off", 0, cfg.loss_path)
        torch.manual_seed(0)
        model = GPT(ModelConfig.of(cfg)).to(choice.device)
        train, val = split(load_tokens(cfg.data), cfg.val_fraction)
        with tempfile.TemporaryDirectory() as tmp:
            probes = EvalProbes(cfg, Path(tmp) / "c.bin", train, val)
            probes.measure(model, 0, choice)  # warm-up
            t0 = time.perf_counter()
            fields = probes.measure(model, 1, choice)
            measure_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            probes.extraction(model, choice)
            extract_s = time.perf_counter() - t0
        step_s = _step_seconds(cfg, choice, train)
        share = measure_s / (cfg.eval_interval * step_s)
        print(
            f"{name}: probes {measure_s:.2f} s per eval (recorded probe_s "
            f"{fields['probe_s']:.2f}), extraction {extract_s:.2f} s once, a training step "
            f"{step_s:.2f} s: {share:.1%} of the {cfg.eval_interval} steps between evals, on "
            f"{choice.device} | {uptime()}",
            flush=True,
        )


def _step_seconds(cfg, choice, train, steps: int = 3) -> float:
    """Seconds per optimizer step of the preset (forward, backward, AdamW), after one warm-up."""
    import torch

    from core.data.walker import BatchWalker
    from core.model.gpt import GPT, ModelConfig
    from core.train.optim import make_optimizer

    model = GPT(ModelConfig.of(cfg), fused_loss=choice.loss == "fused").to(choice.device)
    optimizer = make_optimizer(model, cfg, choice.type)
    batches = BatchWalker(train, cfg.micro_batch_size, cfg.seq_len)
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        for micro in range(cfg.grad_accum_steps):
            x, y = (t.to(choice.device) for t in batches.batch(i * cfg.grad_accum_steps + micro))
            with choice.autocast():
                _, loss = model(x, y)
            (loss / cfg.grad_accum_steps).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if choice.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def induction(steps: int, out: Path | None) -> None:
    from core.config import TrainConfig
    from core.dynamics.induction import INDUCTION_THRESHOLD
    from core.store import metrics
    from core.store.rundir import RunDir
    from core.train.engine import train

    root = Path(out or tempfile.mkdtemp(prefix="induction-"))
    root.mkdir(parents=True, exist_ok=True)
    text = repeated_text(root / "repeated.txt")
    cfg = TrainConfig(
        **INDUCTION_SHAPE, max_steps=steps, data=str(text), device="cpu", target_loss=0.0
    )
    name = f"induction-{int(time.time())}"
    run = RunDir.create(root / "runs", name, cfg)
    began = time.perf_counter()
    state = train(str(run.path))
    wall = time.perf_counter() - began
    dyn = [r for r in metrics.read_all(run.metrics_path) if r["kind"] == "dynamics"]
    formed = None
    for r in dyn:
        best = max(r.get("head_scores") or [0.0])
        print(
            f"step {r['step']:5d} | best prefix-matching {best:.3f} | repeat ICL "
            f"{r['repeat_second_loss'] - r['repeat_first_loss']:+.3f} nats"
        )
        if formed is None and best >= INDUCTION_THRESHOLD:
            formed = r["step"]
    print(
        f"{state} in {wall:.0f} s; induction head formed at step {formed} "
        f"(threshold {INDUCTION_THRESHOLD}); run in {run.path} | {uptime()}"
    )


# A small model: the 50k-token output layer is most of its cost, so it stays narrow.
INDUCTION_SHAPE = dict(
    n_layer=2,
    n_head=4,
    n_embd=64,
    block_size=128,
    seq_len=128,
    micro_batch_size=8,
    grad_accum_steps=1,
    max_lr=3e-3,
    min_lr=3e-4,
    warmup_steps=20,
    eval_interval=25,
    eval_batches=4,
    sample_tokens=16,
    checkpoint_interval=0,
    copy_min_len=0,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost")
    c.add_argument("--preset", nargs="+", default=["nano", "micro"])
    i = sub.add_parser("induction")
    i.add_argument("--steps", type=int, default=400)
    i.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.what == "cost":
        cost(args.preset)
    else:
        induction(args.steps, args.out)


if __name__ == "__main__":
    main()
