"""Command line: `python -m core.generate --run-dir DIR [--checkpoint FILE] --prompt TEXT ...`.

Streams the continuation to stdout as it is generated. Bad input: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import math
import re
import sys

from core.config import DEVICES, MAX_SEED
from core.data.tokens import encode_prompt
from core.generate.sampling import SamplingSettings, stream_tokens
from core.store.checkpoint import load_model, resolve_checkpoint
from core.store.rundir import RunDir


def build_parser() -> argparse.ArgumentParser:
    d = SamplingSettings()
    p = argparse.ArgumentParser(
        prog="python -m core.generate",
        description="Generate text from a run's checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--run-dir", required=True, help="the run directory")
    p.add_argument("--checkpoint", help="checkpoint file or name (default: the newest)")
    p.add_argument(
        "--prompt", required=True, help="text to continue (<|endoftext|> to start from nothing)"
    )
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--top-k", type=int, default=d.top_k, help="0 = off")
    p.add_argument("--top-p", type=float, default=d.top_p, help="nucleus sampling; 1.0 = off")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--no-stop", action="store_true", help="do not stop at <|endoftext|>")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--no-cache", action="store_true", help="recompute the whole prefix per token")
    p.add_argument(
        "--show-copies",
        action="store_true",
        help="after the sample, list the spans found verbatim in the training text",
    )
    p.add_argument(
        "--min-len",
        type=int,
        default=8,
        help="tokens a span must share with the training text to count as copied",
    )
    return p


def check_args(args) -> None:
    """Refuse what the sampling settings do not check themselves: non-finite numbers, an
    unknown device, a seed out of range (ValueError naming the flag)."""
    for name in ("temperature", "top_p"):
        if not math.isfinite(getattr(args, name)):
            raise ValueError(f"{name} must be a finite number (got {getattr(args, name)})")
    if not (args.device in DEVICES or re.fullmatch(r"cuda:\d+", args.device)):
        raise ValueError(
            f"device: unknown device {args.device!r}: use cpu, cuda, cuda:N, mps or auto"
        )
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and {MAX_SEED} (got {args.seed})")
    if args.min_len < 1:
        raise ValueError(f"min-len must be a whole number >= 1 (got {args.min_len})")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = SamplingSettings(
        args.temperature,
        args.top_k,
        args.top_p,
        args.max_new_tokens,
        args.seed,
        not args.no_stop,
        args.greedy,
    )
    try:
        check_args(args)
        settings.check()
        path = resolve_checkpoint(RunDir(args.run_dir), args.checkpoint)
        loaded = load_model(path, args.device, args.dtype)
        ids, dropped = encode_prompt(args.prompt, loaded.model.config.block_size)
    except (ValueError, OSError) as e:  # OSError: FileNotFoundError, an unreadable file
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # torch: a device that exists in name only (cuda:7 of 1 GPU)
        print(f"error: device {args.device}: {str(e).splitlines()[0][:200]}", file=sys.stderr)
        return 2
    if dropped:
        print(
            f"note: the prompt has {len(ids) + dropped} tokens, the context "
            f"{len(ids)}: the first {dropped} were dropped",
            file=sys.stderr,
        )
    sys.stdout.write(args.prompt)
    generated = []
    for event in stream_tokens(
        loaded.model, ids, settings, loaded.device, use_cache=not args.no_cache
    ):
        sys.stdout.write(event.text)
        sys.stdout.flush()
        generated.append(event.token_id)
    sys.stdout.write("\n")
    return show_copies(loaded.config, generated, args.min_len) if args.show_copies else 0


def show_copies(cfg, ids: list[int], min_len: int) -> int:
    """Print the generated spans found verbatim in the run's training text, with their source
    lines (core.data.corpus); exit 2 with one line when the run's data cannot be indexed."""
    from core.data import corpus as memorization
    from core.data.corpus import format_report

    try:
        index = memorization.load_index(cfg.data, cfg.val_fraction)
    except (ValueError, OSError) as e:
        print(f"error: cannot check for copies: {e}", file=sys.stderr)
        return 2
    stats = index.copy_stats(ids, min_len)
    print("\n--- copied from the training data ---")
    print(format_report(index, ids, stats, min_len))
    return 0


if __name__ == "__main__":
    sys.exit(main())
