"""The checks a run must pass before its directory is created, shared by the command line and
the launcher (so launching a run never loads the training engine)."""

from __future__ import annotations

from core.config import ConfigError, TrainConfig, validate


def check_runnable(cfg: TrainConfig) -> None:
    """Field rules, then the device and the data source: raises ConfigError naming the fix."""
    validate(cfg)
    from core import data, device, pretrained  # torch-heavy: only once the fields are known good

    try:
        device.choose(cfg.device, cfg.dtype, cfg.compile)
        data.resolve_source(cfg.data)
        conflicts = pretrained.shape_conflicts(cfg, cfg.init_from) if cfg.init_from else []
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if conflicts:
        raise ConfigError("; ".join(conflicts))
