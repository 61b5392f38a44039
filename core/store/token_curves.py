"""Per-token learning curves on disk: the loss of every token of a run's fixed val probe at
each eval, in half precision, one file per run (RunDir.token_curves_path).

Layout: a header (magic, the number of scored tokens n, the probe's n + 1 token ids as uint32),
then one fixed-size record per eval: the step (int64) and n float16 losses. Records are only
appended, so a crash can tear the last one at most, and readers ignore a torn tail; a resume
drops records past its checkpoint (truncate_after), as core.store.metrics does with lines.
1,024 tokens cost 2 KB an eval: 2 MB for a thousand evals.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"GPTTOKC1"
_HEAD = np.dtype([("magic", "S8"), ("n", "<u4"), ("reserved", "<u4")])


def _record_dtype(n: int) -> np.dtype:
    return np.dtype([("step", "<i8"), ("loss", "<f2", (n,))])


@dataclass(frozen=True)
class TokenCurves:
    """A run's per-token curves: probe ids (n + 1; token i + 1 is scored from ids[: i + 1]),
    the eval steps (E,) and the losses (E, n), float16, in nats."""

    ids: np.ndarray
    steps: np.ndarray
    losses: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


def _header(ids: np.ndarray) -> bytes:
    head = np.array([(MAGIC, len(ids) - 1, 0)], dtype=_HEAD)
    return head.tobytes() + np.asarray(ids, dtype="<u4").tobytes()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def append(path: Path, ids: np.ndarray, step: int, losses: np.ndarray) -> None:
    """Add one eval's losses (n,) for the probe `ids` (n + 1). A file of another probe (its
    data changed) or a damaged one is started over: its curves are of other tokens."""
    path = Path(path)
    header = _header(ids)
    if len(losses) != len(ids) - 1:
        raise ValueError(f"{len(losses)} losses for a probe of {len(ids) - 1} scored tokens")
    try:
        with open(path, "rb") as f:
            same = f.read(len(header)) == header
    except FileNotFoundError:
        same = False
    if not same:
        _write_atomic(path, header)
    record = np.zeros(1, dtype=_record_dtype(len(losses)))
    record["step"], record["loss"][0] = step, np.asarray(losses, dtype=np.float16)
    with open(path, "ab") as f:
        f.write(record.tobytes())


def read(path: Path) -> TokenCurves | None:
    """The curves of a run, or None when it has none (a run from before they were recorded,
    or probes switched off) or the file is not one (bad header). A torn last record is left out."""
    try:
        raw = Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    if len(raw) < _HEAD.itemsize:
        return None
    head = np.frombuffer(raw, _HEAD, count=1)[0]
    n = int(head["n"])
    body = _HEAD.itemsize + 4 * (n + 1)
    if head["magic"] != MAGIC or n < 1 or len(raw) < body:
        return None
    ids = np.frombuffer(raw, "<u4", count=n + 1, offset=_HEAD.itemsize).astype(np.int64)
    dtype = _record_dtype(n)
    records = np.frombuffer(raw, dtype, count=(len(raw) - body) // dtype.itemsize, offset=body)
    return TokenCurves(ids, records["step"].copy(), records["loss"].copy())


def truncate_after(path: Path, step: int) -> None:
    """On resume, drop the records of evals past the checkpoint's step (atomically)."""
    curves = read(path)
    if curves is None:
        return
    keep = curves.steps <= step
    if keep.all() and Path(path).stat().st_size == _expected_size(curves):
        return
    records = np.zeros(int(keep.sum()), dtype=_record_dtype(curves.losses.shape[1]))
    records["step"], records["loss"] = curves.steps[keep], curves.losses[keep]
    _write_atomic(Path(path), _header(curves.ids) + records.tobytes())


def _expected_size(curves: TokenCurves) -> int:
    n = curves.losses.shape[1]
    return _HEAD.itemsize + 4 * (n + 1) + len(curves) * _record_dtype(n).itemsize
