"""The checks a run must pass before its directory is created, shared by the command line and
the launcher (so launching a run never loads the training engine)."""

from __future__ import annotations

import os

from core.config import ConfigError, TrainConfig, validate


def check_runnable(cfg: TrainConfig) -> None:
    """Field rules, then the device, the process count and the data source: raises ConfigError
    naming the fix."""
    validate(cfg)
    from core import device  # torch-heavy: only once the fields are known good
    from core.store import pretrained

    try:
        choice = device.choose(cfg.device, cfg.dtype, cfg.compile, loss=cfg.loss_path)
        _check_nproc(cfg.nproc, choice.type)
        _check_data(cfg)
        conflicts = pretrained.shape_conflicts(cfg, cfg.init_from) if cfg.init_from else []
    except (ValueError, OSError) as e:  # OSError: the token cache cannot be written
        raise ConfigError(str(e)) from e
    if conflicts:
        raise ConfigError("; ".join(conflicts))


def _check_nproc(nproc: int, device_type: str) -> None:
    """One process per GPU, or per CPU core: more only thrash (a launch starts them all on this
    machine). Under torchrun the processes exist already and may span machines: not checked."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    if device_type == "cuda":
        import torch

        have, what = torch.cuda.device_count(), "GPU(s)"
    elif device_type == "cpu":
        have = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        what = "CPU core(s)"
    else:
        return
    if have and nproc > have:
        raise ConfigError(
            f"nproc: {nproc} processes, but this machine has {have} {what}: use at most {have}"
        )


def _check_data(cfg: TrainConfig) -> None:
    """The source exists and is text; a small one is tokenized (and cached for the engine) to
    check both splits hold a micro batch."""
    from core.data import dataset

    files = dataset.resolve_source(cfg.data)
    if dataset.check_text_files(files) > dataset.CHECK_TOKENS_BYTES:
        return
    train, val = dataset.split(dataset.load_tokens(cfg.data), cfg.val_fraction)
    dataset.check_size(train, cfg.micro_batch_size, cfg.seq_len, "training")
    dataset.check_size(val, cfg.micro_batch_size, cfg.seq_len, "validation")


def device_problems(cfg: TrainConfig):
    """(the device cfg resolves to on this machine, or None; the problems by field that keep it
    from training there: 'device', or 'nproc' for more processes than visible GPUs). What the
    New run form shows beside the fields before a launch."""
    from core import device

    try:
        choice = device.choose(cfg.device, cfg.dtype, cfg.compile, loss=cfg.loss_path)
    except ValueError as e:
        return None, {"device": str(e).removeprefix("device: ")}
    if cfg.nproc > 1 and choice.type == "cuda":
        import torch

        gpus = torch.cuda.device_count()
        if cfg.nproc > gpus:
            why = (
                f"{cfg.nproc} processes but {gpus} GPU(s) visible: use at most one process per GPU"
            )
            return choice, {"nproc": why}
    return choice, {}
