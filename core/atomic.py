"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the project replaces (run status, config and notes, the run queue, a rewritten
metrics log, checkpoints and snapshots, token caches, the suffix-array index, downloads and
uploads) is written to a hidden temp file beside its final name, then renamed over it with
`os.replace` (atomic on POSIX and Windows within one file system). On any error the temp file
is removed, so a full disk leaves nothing behind. With `durable=True` the data is fsynced before
the rename and the folder after it, so the new file also survives a power cut: for files that
cannot be rebuilt (checkpoints, config, queue); caches and the once-a-second status skip it.

Imports nothing from core: every layer may use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temp_path(path: Path) -> Path:
    """The hidden temp name beside path that this process writes first: `.<name>.<pid>.tmp`."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def replacing(path: Path, durable: bool = False) -> Iterator[Path]:
    """Yield the temp path for the caller to write (by name, e.g. torch.save(state, tmp)); when
    the block ends without an error, the temp file replaces path. Any error removes it."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):  # a full disk must not leave temp files behind
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and not e.filename:  # a failed write names no file: say it
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    if durable:
        _fsync(path.parent)


def write_bytes(path: Path, data: bytes, durable: bool = False) -> None:
    """Replace path's contents with data atomically (see replacing)."""
    with replacing(path, durable) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str, durable: bool = False) -> None:
    """Replace path's contents with text (UTF-8) atomically (see replacing)."""
    write_bytes(path, text.encode("utf-8"), durable)


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk; a no-op where the OS refuses
    (a folder on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
