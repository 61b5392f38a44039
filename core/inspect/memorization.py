"""Command line: what a text copied verbatim from a run's training text, with source lines.

`python -m core.inspect.memorization --run-dir DIR --text "..." [--min-len 8]`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.data import dataset
from core.data.corpus import format_report, load_index


# --- command line --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.inspect.memorization",
        description="Show the spans of a text found verbatim in a run's training text.",
    )
    p.add_argument("--run-dir", required=True, help="the run directory (its config names the data)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text to check, e.g. a sample of the model")
    source.add_argument("--file", help="a UTF-8 file holding the text to check")
    p.add_argument("--min-len", type=int, default=8, help="shortest span reported, in tokens")
    p.add_argument("--data", help="the run's data file or folder, where it has moved since")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ids = _read_ids(args)
        if args.min_len < 1:
            raise ValueError(f"--min-len must be at least 1 (got {args.min_len})")
        from core.store.rundir import RunDir

        cfg = RunDir(args.run_dir).read_config()
        index = load_index(args.data or cfg.data, cfg.val_fraction)
    except (ValueError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(format_report(index, ids, index.copy_stats(ids, args.min_len), args.min_len))
    return 0


def _read_ids(args) -> list[int]:
    if args.file is not None:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{args.file} is not UTF-8 text: convert it first") from None
        except OSError as e:
            raise ValueError(f"cannot read --file {args.file}: {e.strerror or e}") from e
    else:
        text = args.text
    if not text.strip():
        raise ValueError("the text is empty: give --text or --file with something to check")
    ids = dataset.encode(text).tolist()
    if len(ids) < 2:
        raise ValueError(f"the text is one token ({text.strip()!r}): a copy needs at least two")
    return ids


if __name__ == "__main__":
    sys.exit(main())
