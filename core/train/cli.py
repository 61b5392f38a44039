"""Command line: `python -m core.train [--preset NAME] [--FIELD VALUE ...] [--resume]`.

`--run-dir DIR --resume --max-steps N [--target-loss X]` trains a run further than planned
(Continue training; the cosine keeps its old length). When a run ends, the next run waiting in
its runs directory's queue starts (core/runs/queue.py). Every config field is a flag. Invalid
settings are refused with one clear line and exit code 2 before anything is created. Also the
entry point torchrun starts on every rank. The process that prepares a run (rank 0) holds the
run's writer lock until it ends, so two processes never train one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from core import config
from core.data import dataset
from core.runs import launcher
from core.runs.preflight import check_runnable
from core.store import pretrained
from core.store.rundir import RunDir, RunLock, default_run_name, default_runs_dir
from core.train.distributed import init_distributed
from core.train.engine import train

_held: list[RunLock] = []  # the writer lock of the run this process trains (see prepare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.train",
        description="Train a GPT-2 style model; every step's metrics go to the run directory.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--preset",
        choices=list(config.PRESETS),
        default="gpt2-124m",
        help="starting values for every field (flags below override them)",
    )
    run.add_argument("--config", metavar="FILE.json", help="starting values from a JSON file")
    run.add_argument("--run-dir", help="the run directory (created unless --resume)")
    run.add_argument("--runs-dir", default=None, help="where new runs go ($GPT_RUNS_DIR or runs/)")
    run.add_argument("--name", help="run name inside --runs-dir (default: preset and time)")
    run.add_argument(
        "--resume", action="store_true", help="continue --run-dir from its latest checkpoint"
    )
    defaults = config.TrainConfig()
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(config.TrainConfig):
        group = groups.setdefault(
            f.metadata["group"], parser.add_argument_group(f.metadata["group"])
        )
        flag = "--" + f.name.replace("_", "-")
        default_text = f"(gpt2-124m: {getattr(defaults, f.name)})"
        if f.name == "compile":
            group.add_argument(
                "--compile",
                dest="compile",
                action="store_const",
                const="on",
                default=None,
                help="torch.compile the model (default: on for CUDA)",
            )
            group.add_argument(
                "--no-compile", dest="compile", action="store_const", const="off", help="run eager"
            )
            continue
        group.add_argument(
            flag,
            dest=f.name,
            default=None,
            help=f"{f.metadata['help']} {default_text}",
            **_parsing(type(getattr(defaults, f.name))),
        )
    return parser


def _parsing(kind: type) -> dict:
    """How argparse reads a field of this type: a bool as --flag / --no-flag, else its value."""
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    return {"type": {int: int, float: float, str: str}[kind]}


def _given_fields(args) -> dict:
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config.TrainConfig)
        if getattr(args, f.name) is not None
    }


def config_from_args(args) -> config.TrainConfig:
    """The preset (or --config file), then --init-from's model shape, then the given flags."""
    base = config.load_json(args.config) if args.config else config.preset(args.preset)
    if args.init_from:
        base = base.replace(**pretrained.source_shape(args.init_from))
    return base.replace(**_given_fields(args))


def prepare(argv=None, world_size: int = 1) -> tuple[RunDir, bool]:
    """Parse the command line into a run directory to train, creating it unless resuming; under
    torchrun a new run records world_size as its nproc (so total_batch_tokens is checked
    against the real process count before anything is created). Takes the run's writer lock,
    kept until release_lock() or the process ends: a second process for one run is refused."""
    args = build_parser().parse_args(argv)
    if args.run_dir and (args.runs_dir or args.name):
        raise config.ConfigError("give either --run-dir, or --runs-dir with --name, not both")
    if args.run_dir and RunDir(args.run_dir).exists():
        return _prepare_existing(RunDir(args.run_dir), args)
    if args.resume:
        raise config.ConfigError(
            f"--resume needs --run-dir of an existing run (got {args.run_dir!r})"
        )
    cfg = config_from_args(args)
    if world_size > 1:
        cfg = cfg.replace(nproc=world_size)
    check_runnable(cfg)
    if args.run_dir:
        path = Path(args.run_dir)
        runs_dir, name = path.parent, path.name
    else:
        runs_dir = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
        name = args.name or default_run_name(args.preset, runs_dir)
    run = RunDir.create(runs_dir, name, cfg)
    _held.append(run.lock())
    return run, False


def _prepare_existing(run: RunDir, args) -> tuple[RunDir, bool]:
    """A run the launcher prepared, or (--resume) one to continue. Locked before its state is
    checked, so two resumes cannot both pass the check."""
    if not run.is_ours():
        raise config.ConfigError(
            f"{run.path} is not a run directory of this tool (its config.json "
            "has no schema_version): pick another --run-dir"
        )
    field_flags = _given_fields(args)
    _held.append(run.lock())
    try:
        cfg = run.read_config()
        status = run.read_status()
        if args.resume:
            if run.effective_state(status) == "running":
                raise config.ConfigError(
                    f"run {run.run_id} is still running (pid {status.get('pid')}): "
                    "stop it before resuming"
                )
            resumed = _resumed_config(run, cfg, field_flags)
            if resumed != cfg:  # e.g. --max-steps to train further than first planned
                check_runnable(resumed)
                run.write_config(resumed)
            return run, True
        if status.get("state") == "queued" and not field_flags:
            return run, False  # prepared by the launcher
        raise config.ConfigError(
            f"run directory {run.path} already holds a run: use --resume "
            "to continue it, or another --run-dir"
        )
    except BaseException:
        release_lock()
        raise


def release_lock() -> None:
    """Let go of the writer lock prepare() took (the end of the process does it too)."""
    while _held:
        _held.pop().release()


def _refused(e: Exception) -> str:
    """One line for a refused command: the message of a ConfigError / DataError, or what an
    OS error hit (a read-only or full runs directory)."""
    if isinstance(e, OSError):
        where = f" ({e.filename})" if e.filename else ""
        return f"{e.strerror or e}{where}: check that the runs directory is writable and has room"
    return str(e)


def _resumed_config(run: RunDir, cfg: config.TrainConfig, given: dict) -> config.TrainConfig:
    """The config a resume trains with. A new --max-steps (and --target-loss) goes through
    launcher.continued_config, as Continue training in the app does (the cosine keeps its old
    length); other flags given replace their fields. Refused when there is no checkpoint, or
    when the checkpoint already reached max_steps and no higher --max-steps is given."""
    step = launcher.checkpoint_step(run)
    if step is None:
        raise config.ConfigError(
            f"run {run.run_id} has no checkpoint to resume from (it ended before "
            "its first save): start a new run instead"
        )
    given = dict(given)
    if "max_steps" in given:
        cfg = launcher.continued_config(
            cfg, step, given.pop("max_steps"), given.pop("target_loss", None)
        )
    elif step >= cfg.max_steps:
        raise config.ConfigError(
            f"run {run.run_id} already reached max_steps {cfg.max_steps} (step "
            f"{step}): give --max-steps above {step} to train further"
        )
    return cfg.replace(**given) if given else cfg


def _start_queued(run_path: str | Path) -> None:
    """Now that this run has ended (whatever its state), start the next run waiting in its
    runs directory's queue, if any. Never raises: the run's own result stands."""
    try:
        from core.runs import queue as run_queue

        started = run_queue.start_next(Path(run_path).parent)
        if started:
            print(f"run queue: started {started}", flush=True)
    except Exception as e:
        print(
            f"run queue: could not start the next run: {type(e).__name__}: {e}",
            file=sys.stderr,
            flush=True,
        )


def main(argv=None) -> int:
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        return _main_distributed(argv)
    try:
        run, resume = prepare(argv)
    except (config.ConfigError, dataset.DataError, OSError) as e:
        print(f"error: {_refused(e)}", file=sys.stderr)
        return 2
    try:
        print(f"run directory: {run.path}", flush=True)
        state = train(str(run.path), resume)
    finally:
        release_lock()
    _start_queued(run.path)
    return 0 if state != "failed" else 1


def _main_distributed(argv) -> int:
    """Under torchrun: rank 0 checks the flags and prepares the run directory, then tells every
    rank where it is (or that the flags were refused, so all exit 2 together)."""
    import torch.distributed as dist

    args = build_parser().parse_args(argv)
    cfg_device = args.device or "auto"
    if not args.device and args.run_dir and RunDir(args.run_dir).exists():
        try:  # the run's own device picks the backend: a CPU run on a GPU machine needs gloo
            cfg_device = RunDir(args.run_dir).read_config().device
        except config.ConfigError:
            pass  # rank 0's prepare() reports the broken config
    ddp = init_distributed(cfg_device)
    message = [None, False, None]  # run dir, resume, error
    if ddp.master:
        try:
            run, resume = prepare(argv, ddp.world_size)
            # A prepared or resumed run may meet another world size than it was set up for.
            config.with_derived_accum(run.read_config(), ddp.world_size)
            message = [str(run.path), resume, None]
            print(f"run directory: {run.path} ({ddp.world_size} processes)", flush=True)
        except (config.ConfigError, dataset.DataError, OSError) as e:
            release_lock()
            message = [None, False, _refused(e)]
    dist.broadcast_object_list(message, src=0)
    run_dir, resume, error = message
    if error:
        if ddp.master:
            print(f"error: {error}", file=sys.stderr)
        dist.destroy_process_group()
        return 2
    try:
        state = train(run_dir, resume)
    finally:
        release_lock()
    if ddp.master:
        _start_queued(run_dir)
    return 0 if state != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
