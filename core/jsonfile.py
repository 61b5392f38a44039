"""One reading rule for every JSON file this project writes (status, config, notes, the run
queue, a --config file, caches): anything that is not what we wrote is damaged.

json.loads alone lets through more than ValueError: 100,000 nested brackets raise
RecursionError, a folder in the file's place IsADirectoryError, a value of the wrong type the
caller's TypeError later. Here each of those becomes one DamagedFile (a ValueError) that names
the file and the fix, so a reader shows "damaged" for that run or that panel and every other
one keeps working. Imports nothing from core: every layer may use it.
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_BYTES = 64 * 2**20  # no file of ours is near this; a larger one is not ours as written


class DamagedFile(ValueError):
    """A file of ours that is not what we wrote; the message names it, what is wrong and the
    fix. `reason` is what is wrong alone."""

    def __init__(self, name: str | Path, reason: str, fix: str):
        self.name, self.reason = str(name), reason
        super().__init__(f"{name} is damaged ({reason}): {fix}")


def _kind(expect: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", str: "a string"}
    types = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join(names.get(t, t.__name__) for t in types)


def parse_json(
    raw: bytes | str,
    expect: type | tuple[type, ...] | None = dict,
    name: str | Path = "the file",
    fix: str = "delete it or restore it",
):
    """The value of one JSON document that must be of type `expect` (None: any);
    DamagedFile for bad UTF-8, bad JSON, nesting too deep to parse, or another type."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSON or UTF-8 errors; absurd nesting
        what = "nested too deeply" if isinstance(e, RecursionError) else f"not JSON: {e}"
        raise DamagedFile(name, what, fix) from None
    if expect is not None and not isinstance(value, expect):
        raise DamagedFile(name, f"holds {type(value).__name__}, not {_kind(expect)}", fix)
    return value


def read_json(
    path: str | Path,
    expect: type | tuple[type, ...] | None = dict,
    fix: str = "delete it or restore it",
):
    """The value of the JSON file at path, of type `expect`. FileNotFoundError when there is no
    file (callers decide what missing means); DamagedFile for everything else that is not
    what we wrote: a folder or unreadable file, a file over MAX_BYTES, or what parse_json
    refuses."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise DamagedFile(path, f"over {MAX_BYTES // 2**20} MB", fix)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:  # a folder in its place, no permission, an I/O error
        raise DamagedFile(path, f"cannot be read: {e.strerror or e}", fix) from None
    return parse_json(raw, expect, path, fix)
