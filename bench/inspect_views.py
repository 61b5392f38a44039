"""Time of each "look inside the model" view (surprise, diff, logit lens, attention, head
scores, the batch behind a step) on a 256-token text, for random-init models of three sizes.

Targets: under 1 s per view for nano and micro, under 5 s for GPT-2 124M, on a CPU. Weights are
random (the time does not depend on them). Prints a readable table, then one JSON line.

    python bench/inspect_views.py                         # nano, micro and gpt2-124m
    python bench/inspect_views.py --models nano micro     # skip the 124M model
    python bench/inspect_views.py --threads 1             # on a busy machine

(Not named inspect.py: run as a script, its folder comes first on sys.path, and a file named
inspect.py there would stand in for the standard library's inspect, which torch imports.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import offline_env, positive, report
from core.config import TrainConfig
from core.data import dataset
from core.data.walker import batch_checksum, train_walker
from core.inspect.attention import attention_text, head_scores
from core.inspect.batch import describe_step
from core.inspect.logit_lens import logit_lens_text
from core.inspect.surprise import surprise, surprise_diff
from core.model.gpt import GPT, ModelConfig

MODELS = {  # (n_layer, n_head, n_embd, block_size), target seconds per view
    "nano": ((2, 2, 64, 256), 1.0),
    "micro": ((4, 4, 128, 256), 1.0),
    "gpt2-124m": ((12, 12, 768, 1024), 5.0),
}
TEXT_TOKENS = 256


def median_time(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_text(data_name: str) -> str:
    """256 tokens from the start of the data's validation split, as text."""
    _, val = dataset.split(dataset.load_tokens(data_name), 0.1)
    return dataset.get_tokenizer().decode([int(t) for t in val[:TEXT_TOKENS]])


def views(name: str, text: str, data_name: str, device: str) -> dict:
    """The calls a page makes for each view, ready to time."""
    (n_layer, n_head, n_embd, block), _ = MODELS[name]
    torch.manual_seed(0)
    make = lambda: GPT(ModelConfig(n_layer, n_head, n_embd, block)).to(device).eval()  # noqa: E731
    model, other = make(), make()
    # The batch view on a run of this model reading one 256-token window per step.
    cfg = TrainConfig(
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        block_size=block,
        seq_len=TEXT_TOKENS,
        micro_batch_size=1,
        grad_accum_steps=1,
        data=data_name,
    )
    walker = train_walker(cfg)
    return {
        "surprise": lambda: surprise(model, text, device, top_k=5),
        "diff": lambda: surprise_diff(model, other, text, device),
        "logit_lens": lambda: logit_lens_text(model, text, device, top_k=5),
        "attention": lambda: attention_text(model, text, device),
        "head_scores": lambda: head_scores(model, device=device),
        "batch_data": lambda: train_walker(cfg),
        "batch_checksum": lambda: batch_checksum(
            walker.batch(n)[0] for n in range(32)
        ),  # the 124M recipe's 32 micro batches a step
        "batch": lambda: describe_step(cfg, 1, 1, model, device, walker),
    }, model.num_params()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--repeats", type=positive, default=3, help="timed calls per view (median)")
    p.add_argument("--data", default="tinyshakespeare", help="where the text and batches come from")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args(argv)
    offline_env()
    if args.threads:
        torch.set_num_threads(args.threads)
    text = bench_text(args.data)
    rows = []
    for name in args.models:
        calls, n_params = views(name, text, args.data, args.device)
        target = MODELS[name][1]
        for view, fn in calls.items():
            seconds = median_time(fn, args.repeats)
            rows.append(
                {
                    "model": name,
                    "params": n_params,
                    "view": view,
                    "seconds": seconds,
                    "target_s": target,
                    "met": seconds < target,
                }
            )
            print(f"  {name} {view}: {seconds:.3f} s", file=sys.stderr, flush=True)
        del calls
    report(
        "inspect_views",
        {
            "device": args.device,
            "text_tokens": TEXT_TOKENS,
            "repeats": args.repeats,
            "all_met": all(r["met"] for r in rows),
        },
        rows,
        ["model", "params", "view", "seconds", "target_s", "met"],
        notes=[
            "Median of the timed calls after one warm-up; random weights.",
            "batch: step_batches + checksum + per-token losses of one 1 x 256 window; "
            "batch_data: reading and splitting the run's tokens (a page caches it); "
            "batch_checksum: hashing 32 micro batches' inputs (what the engine adds a "
            "step).",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
