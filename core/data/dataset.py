"""Text in, tokens out: GPT-2 BPE through tiktoken and a token cache.

Sources: the named data set `tinyshakespeare` (from $GPT_DATA_DIR, the cache, this workplace's
shared copy, or downloaded once), a .txt file, or a folder of .txt files. Tokens are cached as a
uint16 .npy keyed by the text's sha256, so a second run does not tokenize again.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from core import atomic
from core.config import cache_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]


TINYSHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)


# This workplace's offline copies (see ../shared/data/README.md); absent on a user's machine.
_SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


EOT_TOKEN = 50256


# Sources up to this size are tokenized before a run is created (the tokens are cached, so the
# engine does not tokenize again) to refuse one too small for a batch; larger ones cannot be.
CHECK_TOKENS_BYTES = 16 * 2**20


_SNIFF_BYTES = 1 << 16


class DataError(ValueError):
    """A data source that cannot be used; the message says why and how to fix it."""


@functools.lru_cache(maxsize=1)
def get_tokenizer():
    """tiktoken's GPT-2 encoding; offline it reads this workplace's shared copy when present."""
    import tiktoken

    shared_cache = _SHARED_DATA / "tiktoken_cache"
    if "TIKTOKEN_CACHE_DIR" not in os.environ and shared_cache.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(shared_cache)
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as e:
        raise DataError(
            f"cannot load the GPT-2 tokenizer ({e}). tiktoken downloads it once; offline, set "
            "TIKTOKEN_CACHE_DIR to a folder holding its cached files"
        ) from e


def resolve_source(data: str) -> list[Path]:
    """The text files behind a data setting, in a stable order."""
    if data == "tinyshakespeare":
        return [_tinyshakespeare()]
    path = Path(data).expanduser()
    if path.is_dir():
        files = sorted(path.rglob("*.txt"))
        if not files:
            raise DataError(f"folder {path} holds no .txt files: add some or point at a file")
        return files
    if path.is_file():
        return [path]
    raise DataError(f"data {data!r} is neither 'tinyshakespeare' nor an existing file or folder")


def _tinyshakespeare() -> Path:
    candidates = []
    if os.environ.get("GPT_DATA_DIR"):
        candidates.append(Path(os.environ["GPT_DATA_DIR"]) / "tinyshakespeare.txt")
    candidates += [cache_dir() / "tinyshakespeare.txt", _SHARED_DATA / "tinyshakespeare.txt"]
    for path in candidates:
        if path.is_file():
            return path
    target = cache_dir() / "tinyshakespeare.txt"
    try:
        with urllib.request.urlopen(TINYSHAKESPEARE_URL, timeout=30) as response:
            text = response.read()
    except OSError as e:
        raise DataError(
            f"tiny shakespeare is not on this machine and the download from {TINYSHAKESPEARE_URL} "
            f"failed ({e}). Download it by hand to {target}, or set GPT_DATA_DIR to a folder "
            "holding tinyshakespeare.txt, or use --data with a local .txt file"
        ) from e
    atomic.write_bytes(target, text)
    return target


def check_text_files(files: list[Path]) -> int:
    """Refuse a source that is empty, or whose files are binary (NUL bytes) or not UTF-8 in
    their first 64 KB, with a DataError saying which file and the fix; returns the total bytes."""
    total = 0
    for path in files:
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                head = f.read(_SNIFF_BYTES)
        except OSError as e:
            raise DataError(
                f"cannot read {path} ({e.strerror}): check the path and its permissions"
            ) from e
        if b"\0" in head:
            raise DataError(
                f"{path} looks binary (it holds NUL bytes), not text: give a UTF-8 .txt file"
            )
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=size <= len(head))
        except UnicodeDecodeError as e:
            raise _not_utf8(path, e) from e
        total += size
    if not total:
        raise DataError(
            f"the data ({', '.join(p.name for p in files)}) is empty: give a text "
            "file with enough text for a few batches"
        )
    return total


def _not_utf8(path: Path, e: UnicodeDecodeError) -> DataError:
    return DataError(
        f"{path} is not UTF-8 text (byte {e.start}): convert it, e.g. "
        f"`iconv -f latin1 -t utf-8 {path.name} > fixed.txt`"
    )


def store_upload(name: str, raw: bytes) -> Path:
    """Keep an uploaded text file where a run's `data` setting can point: the cache's
    `uploads/<sha256>-<safe name>.txt` (the same text is stored once, whatever its name). Written
    atomically; a no-op when that file is already there. Returns its path."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(name).stem)
    safe = safe.strip("-_")[:40] or "upload"
    path = cache_dir() / "uploads" / f"{hashlib.sha256(raw).hexdigest()}-{safe}.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path, raw, durable=True)  # a run's data: it cannot be rebuilt
    return path


def read_text(files: list[Path]) -> str:
    parts = []
    for path in files:
        try:
            parts.append(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise _not_utf8(path, e) from e
    return "\n\n".join(parts)


def load_tokens(data: str) -> np.ndarray:
    """All tokens of a data source as uint16, tokenizing only on the first use of that text."""
    files = resolve_source(data)
    raw = b"".join(p.read_bytes() for p in files)
    key = hashlib.sha256(raw).hexdigest()[:32]
    cached = cache_dir() / "tokens" / f"gpt2-{key}.npy"
    if cached.is_file():
        try:
            return np.load(cached)
        except (ValueError, OSError):
            cached.unlink(missing_ok=True)  # a corrupt cache file: tokenize again
    tokens = encode(read_text(files))
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(cached) as tmp, open(tmp, "wb") as f:
        np.save(f, tokens)
    return tokens


def encode(text: str) -> np.ndarray:
    ids = get_tokenizer().encode_ordinary(text)
    return np.asarray(ids, dtype=np.uint16)  # GPT-2's 50,257 ids fit in 16 bits


def split(tokens: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold the last val_fraction of the stream out for validation."""
    n_val = int(len(tokens) * val_fraction)
    return tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]


def check_size(tokens: np.ndarray, micro_batch: int, seq_len: int, what: str) -> None:
    need = micro_batch * seq_len + 1
    if len(tokens) < need:
        raise DataError(
            f"the {what} split has {len(tokens):,} tokens, fewer than one micro batch needs "
            f"({micro_batch} x {seq_len} + 1 = {need:,}): use more text, or lower "
            "micro_batch_size / seq_len (or val_fraction)"
        )
