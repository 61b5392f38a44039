"""Shared helpers for the bench/ scripts: the command-line flags they share, the machine they
ran on, and the output every script ends with (a readable table, then one JSON line).

Run a script from the project root (`python bench/train.py`); importing this module puts the
root on sys.path so `core` imports either way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_SHARED_DATA = ROOT.parent / "shared" / "data"


def offline_env() -> None:
    """Point the tokenizer at this workplace's offline copy when present (as the tests do)."""
    if (_SHARED_DATA / "tiktoken_cache").is_dir():
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_SHARED_DATA / "tiktoken_cache"))


def add_run_flags(
    parser: argparse.ArgumentParser,
    preset: str = "nano",
    steps: int | None = 20,
    steps_help: str = "timed steps",
) -> None:
    """The flags every model benchmark takes: --preset, --device, --dtype, --compile/--no-compile,
    --steps. dtype and compile default to 'auto', the engine's own choice for the device."""
    from core.config import DTYPES, PRESETS

    parser.add_argument(
        "--preset", choices=list(PRESETS), default=preset, help="model and batch preset"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="autocast dtype")
    parser.add_argument(
        "--compile",
        dest="compile",
        action="store_const",
        const="on",
        default="auto",
        help="torch.compile the model (default: the device's default)",
    )
    parser.add_argument(
        "--no-compile", dest="compile", action="store_const", const="off", help="run eager"
    )
    parser.add_argument("--steps", type=positive, default=steps, help=steps_help)


def positive(value: str) -> int:
    """argparse type: a whole number >= 1, with a message naming the rule."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {value})")
    return number


def machine() -> dict:
    """What the figures were measured on: CPU, cores, torch's threads and version, the GPU, and
    the load average at the time."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    # Other processes on a small machine skew timings: the load average says how busy it was.
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__.split("+")[0],
        "gpu": gpu,
        "load_avg_1_5_15": load,
    }


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Rows of dicts as an aligned plain-text table; floats get 3 significant decimals."""
    if not rows:
        return "(no rows)"
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.rjust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def report(
    bench: str,
    result: dict,
    rows: list[dict],
    columns: list[str] | None = None,
    notes: list[str] = (),
) -> dict:
    """Print the readable table and notes, then the results as one JSON line (always the last
    line of stdout, so `tail -n 1 | jq` or a test can read it). Returns the printed record."""
    record = {"bench": bench, **result, "rows": rows, "machine": machine()}
    print(format_table(rows, columns))
    for note in notes:
        print(note)
    print(json.dumps(record, default=str), flush=True)
    return record


def last_json_line(stdout: str) -> dict:
    """The JSON record a bench script printed last (for tests and for scripts that chain)."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise ValueError("the benchmark printed no JSON line")
    return json.loads(lines[-1])
