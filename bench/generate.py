"""Generation speed: tokens/s and time to first token, with and without the key/value cache.

Random weights (speed does not depend on them). Prints a readable table, then one JSON line.

    python bench/generate.py                                  # nano and gpt2-124m, 50/200/1000
    python bench/generate.py --presets nano --tokens 50 200   # a quick CPU run
    python bench/generate.py --no-uncached-above 200          # skip the slow uncached long runs
    python bench/generate.py --threads 1                      # on a busy machine

Past the context length (nano: 64 tokens; gpt2-124m: 1,024) the window slides: with learned
positions every cached key is stale, so each further token costs a full-context pass either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report
from core.config import preset
from core.generate.sampling import generate_ids
from core.model.gpt import GPT, ModelConfig


def measure(model: GPT, prompt_len: int, new_tokens: int, use_cache: bool, device: str) -> dict:
    """One generation: time to first token (prefill + first sample) and steady tokens/s."""
    g = torch.Generator(device=device).manual_seed(0)
    ids = torch.randint(0, 50257, (1, prompt_len), generator=g, device=device)
    stamps = []
    t0 = time.perf_counter()
    for next_id, _ in generate_ids(
        model, ids, new_tokens, temperature=1.0, top_k=50, generator=g, use_cache=use_cache
    ):
        next_id.item()  # wait for the device
        stamps.append(time.perf_counter() - t0)
    total = stamps[-1]
    rest = total - stamps[0]
    return {
        "ttft_ms": stamps[0] * 1000,
        "total_s": total,
        "tokens_per_s": new_tokens / total,
        "decode_tokens_per_s": (new_tokens - 1) / rest if rest > 0 else None,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--presets",
        nargs="+",
        default=["nano", "gpt2-124m"],
        help="model sizes to time (any preset of core.config)",
    )
    p.add_argument(
        "--tokens", nargs="+", type=int, default=[50, 200, 1000], help="new tokens per generation"
    )
    p.add_argument("--prompt-len", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0 = torch's default); on a busy machine 1 avoids "
        "threads spinning against each other",
    )
    p.add_argument(
        "--no-uncached-above",
        type=int,
        default=0,
        help="skip uncached runs longer than this many new tokens (0 = never skip)",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name in args.presets:
        cfg = preset(name)
        model = GPT(ModelConfig.of(cfg)).to(args.device).eval()
        measure(model, args.prompt_len, 3, True, args.device)  # warm-up: allocator, threads
        for n in args.tokens:
            for cache in (True, False):
                if not cache and args.no_uncached_above and n > args.no_uncached_above:
                    continue
                r = measure(model, args.prompt_len, n, cache, args.device)
                rows.append(
                    {
                        "preset": name,
                        "params": model.num_params(),
                        "context": cfg.block_size,
                        "new_tokens": n,
                        "cache": cache,
                        **r,
                    }
                )
                print(
                    f"  {name} {n} tokens cache={cache}: {r['tokens_per_s']:.1f} tok/s",
                    file=sys.stderr,
                    flush=True,
                )
        del model
    report(
        "generate",
        {"device": args.device, "prompt_len": args.prompt_len},
        rows,
        [
            "preset",
            "params",
            "context",
            "new_tokens",
            "cache",
            "ttft_ms",
            "tokens_per_s",
            "decode_tokens_per_s",
        ],
        notes=[
            "ttft: prefill of the prompt and the first token; decode: the tokens after it.",
            "Past the context the window slides and every token is a full-context pass, "
            "cached or not (learned positions shift).",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
