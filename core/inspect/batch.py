"""The batch behind any step: its text, the checksum the engine recorded, and per-token losses.

Which micro batches step s used is core.data.walker's; this module shows them.

Command line: `python -m core.inspect.batch --run-dir DIR --step N [--checkpoint PATH]`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from core.config import TrainConfig, with_derived_accum
from core.data import dataset
from core.data.walker import BatchWalker, Segments, batch_checksum, step_batches, world_size_at
from core.model.gpt import GPT
from core.store.metrics import world_segments


@torch.no_grad()
def window_losses(
    model: GPT, x: torch.Tensor, y: torch.Tensor, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Per-token loss in nats (B, T) of targets y given inputs x, float32; its mean is the
    model's loss on that micro batch (model(x, y))."""
    logits, _ = model(x.to(device))
    losses = F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten(), reduction="none")
    return losses.view(y.shape).cpu().numpy()


@dataclass(frozen=True)
class MicroBatchView:
    number: int
    micro: int  # index of the micro step within the optimizer step
    rank: int  # the process that trained it
    texts: list[str]  # the decoded input of each row
    losses: np.ndarray | None  # (B, T) nats per token under the given model, else None
    tokens: list[list[str]] = field(default_factory=list)  # each row's tokens, decoded one by one

    @property
    def mean_loss(self) -> float | None:
        return None if self.losses is None else float(self.losses.mean())


@dataclass(frozen=True)
class StepView:
    step: int
    world_size: int
    grad_accum_steps: int
    checksum: str
    batches: list[MicroBatchView]


def describe_step(
    cfg: TrainConfig,
    step: int,
    world_size: int = 1,
    model: GPT | None = None,
    device: str | torch.device = "cpu",
    walker: BatchWalker | None = None,
    segments: Segments = (),
) -> StepView:
    """Everything about one step's data: each micro batch's number, micro step, rank and text,
    the step's checksum and, with a model, per-token losses (one forward per micro batch).
    segments (metrics.world_segments): the world size of each part of a resumed run."""
    world_size = world_size_at(step, segments, world_size)
    batches = step_batches(cfg, step, world_size, walker, segments)
    enc = dataset.get_tokenizer()
    start = batches[0].number
    views = []
    for b in batches:
        rows = b.x.tolist()
        texts = [enc.decode(row, errors="replace") for row in rows]
        tokens = [[enc.decode([t], errors="replace") for t in row] for row in rows]
        losses = window_losses(model, b.x, b.y, device) if model is not None else None
        micro, rank = divmod(b.number - start, world_size)
        views.append(MicroBatchView(b.number, micro, rank, texts, losses, tokens))
    accum = with_derived_accum(cfg, world_size).grad_accum_steps
    return StepView(step, world_size, accum, batch_checksum(b.x for b in batches), views)


def recorded_checksum(records: Iterable[dict], step: int) -> str | None:
    """The checksum the engine recorded for a step in metrics records, or None."""
    for r in records:
        if r["kind"] == "train" and r["step"] == step and "batch_checksum" in r:
            return r["batch_checksum"]
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.inspect.batch",
        description="Show the micro batches a run trained on at a step.",
    )
    p.add_argument("--run-dir", required=True, help="the run directory")
    p.add_argument("--step", required=True, type=int, help="the optimizer step, from 1")
    p.add_argument("--checkpoint", help="checkpoint file or name: also show per-token losses")
    p.add_argument(
        "--world-size",
        type=int,
        help="processes the run trained on (default: from status.json, else nproc)",
    )
    p.add_argument("--chars", type=int, default=160, help="characters of each row to print")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    return p


def _shorten(text: str, chars: int) -> str:
    """One line: newlines shown as '↵', the middle cut out past `chars` characters."""
    text = text.replace("\r", "").replace("\n", "↵")
    if len(text) <= chars:
        return text
    head = max(1, chars * 2 // 3)
    return f"{text[:head]} … {text[-max(1, chars - head - 3) :]}"


def _load(args):
    """(config, world size, model or None, metrics records, steps trained) for the CLI;
    ValueError if bad."""
    from core.store.checkpoint import load_model, resolve_checkpoint
    from core.store.metrics import MetricsReader
    from core.store.rundir import RunDir

    run = RunDir(args.run_dir)
    if not run.exists():
        raise ValueError(f"{run.path} is not a run directory (no config.json): check --run-dir")
    cfg = run.read_config()
    status = run.read_status()
    world_size = args.world_size
    if world_size is None:
        world_size = int(status.get("world_size") or cfg.nproc)
    if args.chars < 10:
        raise ValueError(f"--chars must be at least 10 (got {args.chars})")
    model = None
    if args.checkpoint:
        model = load_model(resolve_checkpoint(run, args.checkpoint), args.device).model
    records = MetricsReader(run.metrics_path).read_new()
    return cfg, world_size, model, records, status.get("step") or 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, world_size, model, records, trained = _load(args)
        segments = world_segments(records) if args.world_size is None else []
        view = describe_step(cfg, args.step, world_size, model, args.device, segments=segments)
        world_size = view.world_size
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    print(
        f"step {view.step}: {len(view.batches)} micro batches ({view.grad_accum_steps} micro "
        f"steps x {world_size} process(es)), {cfg.micro_batch_size} x {cfg.seq_len} tokens each"
    )
    if args.step > (trained or 0):
        print(
            f"note: the run has trained {trained or 0} steps: this is the data step {args.step} "
            "would train on"
        )
    for b in view.batches:
        loss = f" | mean loss {b.mean_loss:.4f}" if b.losses is not None else ""
        print(f"-- micro batch {b.number} (micro step {b.micro}, rank {b.rank}){loss}")
        for row, text in enumerate(b.texts):
            row_loss = f" [{float(b.losses[row].mean()):.3f}]" if b.losses is not None else ""
            print(f"   row {row}{row_loss}: {_shorten(text, args.chars)}")
    recorded = recorded_checksum(records, args.step)
    print(f"checksum {view.checksum}")
    if recorded is None:
        print("the run recorded no checksum for this step")
        return 0
    if recorded == view.checksum:
        print("matches the checksum the run recorded")
        return 0
    print(
        f"MISMATCH: the run recorded {recorded}; the data or the data order changed since "
        "(or the world size changed on a resume)"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
