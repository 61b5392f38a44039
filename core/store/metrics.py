"""The records of metrics.jsonl: their kinds and fields, the writer, the reader and the summary.

This module alone knows the record format; the engine writes through `MetricsLog` and every
page, command and benchmark reads through `MetricsReader`, `clean`, `read_columns` (many records
at once, as numpy columns: the summary and the Live page's series) and `RunSummary`. To add a
metric, add its field to a kind in `KINDS` (or a new kind) and write it in the engine: the Live
page's series then has it as a column, for a chart to name; fold it into `RunSummary.update`
(and `_SUMMARY_FIELDS`) if a table should show it.

A line is one JSON object with a `kind`. Readers skip what they cannot use, never fail: a torn
or malformed line, a record that is not an object, a field of the wrong type (dropped), and a
record of a kind they do not know (kept by `clean`, ignored by the summary and the charts), so
runs written by a newer engine stay readable.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from core import atomic

NUMBER, TEXT, FLAG = (int, float), (str,), (bool,)
NUMBERS = (list,)  # a list of numbers (every item is checked)

# kind -> {field: accepted types}. Every record also has `step` (int) and `time` (unix seconds).
KINDS: dict[str, dict[str, tuple]] = {
    # One optimizer step. train_time_s is the training time summed over every process segment
    # of the run (stops and resumes included); batch_checksum names the tokens it trained on;
    # micro_grad_norm is the norm of its first micro batch's gradient (when accumulating: the
    # gradient noise scale, core.dynamics.noise_scale).
    "train": dict(
        loss=NUMBER,
        lr=NUMBER,
        grad_norm=NUMBER,
        dt_ms=NUMBER,
        tokens_per_sec=NUMBER,
        tokens_seen=NUMBER,
        mfu=NUMBER,
        peak_mem_mb=NUMBER,
        train_time_s=NUMBER,
        batch_checksum=TEXT,
        micro_grad_norm=NUMBER,
    ),
    # A validation estimate; copy_rate is the share of sampled tokens found verbatim in the
    # training text (spans of >= copy_min_len tokens), longest_copy the longest such span.
    "eval": dict(val_loss=NUMBER, copy_rate=NUMBER, longest_copy=NUMBER, copy_min_len=NUMBER),
    # A text sample from the fixed prompt.
    "sample": dict(prompt=TEXT, text=TEXT),
    # A process began training the run (a start or a resume): the segments of its time line;
    # and the peak FLOP/s its MFU figures are measured against, with where that peak comes from.
    "start": dict(
        resumed=FLAG, world_size=NUMBER, max_steps=NUMBER, peak_flops=NUMBER, peak_source=TEXT
    ),
    # Process resources, at most once a second.
    "system": dict(cpu_percent=NUMBER, rss_mb=NUMBER, gpu_mem_mb=NUMBER, gpu_util=NUMBER),
    # Training dynamics at an eval, on fixed probes (core/dynamics/eval_probes.py): every head's
    # prefix-matching score (n_layer x n_head, row by row) and the loss on the first and second
    # copy of repeated random tokens (Olsson et al. 2022); the val probe's mean loss and its
    # late-minus-early loss (context_icl); exact memorization (share of argmax hits) on the
    # train and val probes (Tirumala et al. 2022); the unigram, bigram and trigram models' loss
    # on the val probe and the KL from the network to the bigram model (Belrose et al. 2024);
    # probe_s, the seconds all of it took.
    "dynamics": dict(
        head_scores=NUMBERS,
        n_layer=NUMBER,
        n_head=NUMBER,
        repeat_first_loss=NUMBER,
        repeat_second_loss=NUMBER,
        probe_loss=NUMBER,
        context_icl=NUMBER,
        train_exact=NUMBER,
        val_exact=NUMBER,
        unigram_loss=NUMBER,
        bigram_loss=NUMBER,
        trigram_loss=NUMBER,
        bigram_kl=NUMBER,
        probe_s=NUMBER,
    ),
    # Extraction at the end of a run (Carlini et al. 2023): k training prefixes of prefix_len
    # tokens continued greedily for suffix_len; `extracted` is the share reproduced exactly,
    # `offsets` the training-split offsets of the prefixes that were.
    "extraction": dict(
        k=NUMBER, prefix_len=NUMBER, suffix_len=NUMBER, extracted=NUMBER, offsets=NUMBERS
    ),
}


def clean(record) -> dict | None:
    """A record as readers may trust it, or None when it is unusable (not an object, no kind,
    no integer step). Fields of a known kind with the wrong type are dropped; non-finite numbers
    stay (a diverged loss is a fact to show)."""
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        return None
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step):
        return None
    spec = KINDS.get(record["kind"])
    if spec is None:
        return record  # a newer kind: kept for exports, ignored by everything that draws
    out = {"kind": record["kind"], "step": int(step)}
    if isinstance(record.get("time"), NUMBER) and not isinstance(record["time"], bool):
        out["time"] = record["time"]
    for name, types in spec.items():
        value = record.get(name)
        if types is NUMBERS:
            if isinstance(value, list) and all(_is_number(v) for v in value):
                out[name] = value
        elif isinstance(value, types) and (types is FLAG or not isinstance(value, bool)):
            out[name] = value
    return out


def _is_number(value) -> bool:
    return isinstance(value, NUMBER) and not isinstance(value, bool)


def parse_records(chunk: bytes) -> list[dict]:
    """The clean records of complete JSON lines, skipping torn and malformed ones."""
    records = []
    for line in chunk.splitlines():
        try:
            record = clean(json.loads(line))
        except (ValueError, RecursionError):  # a line torn by a crash, bad UTF-8, absurd nesting
            continue
        if record is not None:
            records.append(record)
    return records


# --- columns: many records at once -----------------------------------------------------------
# A chunk of lines as {kind: {name: column}}, for the kinds and fields asked for: numbers and
# flags as float64 arrays (NaN where a record lacks the field, a flag 0 or 1), text as lists of
# str ("" where absent), plus `step`, `time` and `row` (the record's place in the chunk, so
# records of different kinds can be put back in file order).


def series_fields(kind: str) -> tuple[str, ...]:
    """The numeric and flag fields of a kind (what a chart can draw), in KINDS order; lists of
    numbers (NUMBERS) are not columns."""
    return tuple(name for name, types in KINDS[kind].items() if types not in (TEXT, NUMBERS))


def every_field() -> dict[str, tuple[str, ...]]:
    """Every known kind with all its column fields (not NUMBERS lists): what read_columns
    reads by default."""
    return {
        kind: tuple(name for name, types in spec.items() if types is not NUMBERS)
        for kind, spec in KINDS.items()
    }


def read_columns(chunk: bytes, want: dict[str, tuple[str, ...]] | None = None) -> dict:
    """The records of complete JSON lines as columns per kind (see above): in bulk with pyarrow
    for a large chunk, else (or when the bulk reader declines) record by record through clean,
    the same result either way. Unknown kinds, torn and malformed lines are skipped."""
    want = every_field() if want is None else want
    tables = bulk_columns(chunk, want) if len(chunk) > BULK_MIN_BYTES else None
    return tables if tables is not None else record_columns(parse_records(chunk), want)


def record_columns(records: list[dict], want: dict[str, tuple[str, ...]]) -> dict:
    """Clean records (see clean) as columns per kind of `want`."""
    import numpy as np

    by_kind = {kind: [] for kind in want}
    for i, r in enumerate(records):
        if r["kind"] in by_kind:
            by_kind[r["kind"]].append((i, r))
    tables = {}
    for kind, names in want.items():
        rows = by_kind[kind]
        table = {"row": np.array([i for i, _ in rows], dtype=np.int64)}
        for name in ("step", "time", *names):
            values = [r.get(name) for _, r in rows]
            table[name] = (
                [v if isinstance(v, str) else "" for v in values]
                if KINDS[kind].get(name) is TEXT
                else np.array([np.nan if v is None else float(v) for v in values], dtype=float)
            )
        tables[kind] = table
    return tables


def bulk_columns(chunk: bytes, want: dict[str, tuple[str, ...]]) -> dict | None:
    """read_columns for many lines at once, parsed by pyarrow's JSON reader (several times
    faster than json.loads per line). None when pyarrow is missing or any line is one that
    clean would treat with care (torn, not an object, no kind or step, a field of the wrong
    type): the caller then reads record by record, which drops just that line or field."""
    try:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.json as pj
    except ImportError:
        return None
    types = {name: KINDS[kind].get(name) for kind, names in want.items() for name in names}
    arrow = {TEXT: pa.string(), FLAG: pa.bool_()}
    schema = pa.schema(
        [("kind", pa.string()), ("step", pa.float64()), ("time", pa.float64())]
        + [(name, arrow.get(t, pa.float64())) for name, t in types.items()]
    )
    try:
        table = pj.read_json(
            io.BytesIO(chunk),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    kind, step = table.column("kind"), table.column("step")
    if kind.null_count or step.null_count or not np.isfinite(step.to_numpy()).all():
        return None  # records clean() would drop: let the careful path drop them
    whole: dict = {}
    return {
        k: _bulk_table(table, np.flatnonzero(pc.equal(kind, k).to_numpy(False)), k, names, whole)
        for k, names in want.items()
    }


def _bulk_table(table, rows, kind: str, names: tuple[str, ...], whole: dict) -> dict:
    """The columns of one kind, its rows at `rows`; `whole` caches each numeric column of the
    table as one numpy array (kinds share `step` and `time`)."""
    import numpy as np
    import pyarrow as pa

    out = {"row": rows}
    for name in ("step", "time", *names):
        if KINDS[kind].get(name) is TEXT:
            out[name] = [v or "" for v in table.column(name).take(rows).to_pylist()]
            continue
        if name not in whole:
            column = table.column(name).cast(pa.float64())
            whole[name] = column.to_numpy(zero_copy_only=False)
        out[name] = whole[name][rows]
    out["step"] = np.trunc(out["step"])  # clean keeps int(step)
    return out


class MetricsLog:
    """The engine's writer: one line per record, flushed as written, checked against KINDS."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = open(path, "a", buffering=1)

    def write(self, kind: str, step: int, time: float, **values) -> dict:
        unknown = set(values) - set(KINDS[kind])
        assert not unknown, f"fields {unknown} are not declared for kind {kind!r} in KINDS"
        record = {"kind": kind, "step": step, "time": time, **values}
        try:
            self._file.write(json.dumps(record) + "\n")
        except OSError as e:  # a full disk: say which file it refused
            raise OSError(e.errno, e.strerror, str(self.path)) from e
        return record

    def close(self) -> None:
        self._file.close()


@dataclass
class MetricsReader:
    """Reads metrics.jsonl incrementally: remembers the byte offset and skips a torn last line.

    A resume rewrites the file (a new inode, perhaps soon longer than before); the reader then
    starts over from the top and says so, so that callers drop what they built from the old file.
    """

    path: Path
    offset: int = 0
    file_id: tuple | None = None  # (device, inode) of the file read so far

    def read_new_bytes(self, limit: int | None = None) -> tuple[bytes, bool]:
        """Complete lines appended since the last call (about `limit` bytes of them at most, so
        a long file can be read in pieces), and whether the file was replaced since (then the
        bytes start at the new file's start)."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                restarted = (
                    self.file_id not in (None, (st.st_dev, st.st_ino)) or st.st_size < self.offset
                )
                if restarted:
                    self.offset = 0
                self.file_id = (st.st_dev, st.st_ino)
                f.seek(self.offset)
                chunk = f.read(limit) if limit else f.read()
                if limit and len(chunk) == limit and b"\n" not in chunk:
                    chunk += f.readline()  # one line longer than the limit: take it whole
        except (FileNotFoundError, IsADirectoryError):
            return b"", False
        end = chunk.rfind(b"\n") + 1  # a line without its newline is still being written
        self.offset += end
        return chunk[:end], restarted

    def read_new(self) -> list[dict]:
        """Clean records appended since the last call (complete lines only)."""
        return parse_records(self.read_new_bytes()[0])


def read_all(path: Path) -> list[dict]:
    """Every clean record of a metrics file."""
    return MetricsReader(Path(path)).read_new()


def world_segments(records) -> list[tuple[int, int]]:
    """(step it starts after, world size) of each training segment, from the start records: a
    resume may run on another number of processes. A start at a step at or before an earlier
    one's (a resume from an older checkpoint) replaces what followed it."""
    segments: list[tuple[int, int]] = []
    for r in records:
        size = r.get("world_size") if r["kind"] == "start" else None
        if isinstance(size, int) and size >= 1:
            while segments and segments[-1][0] >= r["step"]:
                segments.pop()
            segments.append((r["step"], size))
    return segments


def truncate_after(path: Path, step: int) -> None:
    """On resume, drop records past the checkpoint's step so the log never has two of one step;
    the file is replaced atomically (readers see a new inode and start over)."""
    if not path.exists():
        return
    kept = [r for r in read_all(path) if r["step"] <= step]
    atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in kept), durable=True)


def last_step_time_ms(path: Path) -> float:
    """The newest train record's step time, read from the file's tail (0 when none)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
            tail = f.read()
    except OSError:
        return 0.0
    lines = tail.splitlines()[1:] or tail.splitlines()  # the first line may be cut
    for record in reversed(parse_records(b"\n".join(lines) + b"\n")):
        if record["kind"] == "train" and "dt_ms" in record:
            return float(record["dt_ms"])
    return 0.0


def first_start(path: Path, head_bytes: int = 65536) -> dict | None:
    """The run's first start record (its peak FLOP/s and where that peak comes from), read from
    the file's head: it is among the first lines, however long the file grows."""
    try:
        with open(path, "rb") as f:
            head = f.read(head_bytes)
    except OSError:
        return None
    lines = head.splitlines()
    lines = lines[:-1] if len(head) == head_bytes else lines  # the last line may be cut
    return next((r for r in parse_records(b"\n".join(lines) + b"\n") if r["kind"] == "start"), None)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@dataclass
class RunSummary:
    """What tables show about a run, folded from its records in one pass (and extended as
    records arrive): last and best loss, best val loss and its step, tokens seen, training time
    summed over every segment, throughput, the latest copy rate, where each segment began."""

    last_step: int = 0
    last_loss: float | None = None
    first_loss: float | None = None
    best_loss: float | None = None
    best_val_loss: float | None = None
    best_val_step: int | None = None
    last_val_loss: float | None = None
    tokens_seen: int = 0
    train_time_s: float = 0.0
    tokens_per_sec: float | None = None
    timed_steps: int = 0  # steps after each segment's first (which pays for warm-up)
    timed_ms: float = 0.0
    timed_tokens_per_sec: float = 0.0
    peak_mem_mb: float | None = None
    copy_rate: float | None = None
    longest_copy: int | None = None
    segment_starts: list = field(default_factory=list)  # steps where a process began training
    _segment_first: bool = True

    def update(self, records: list[dict]) -> RunSummary:
        for r in records:
            fold = _FOLDS.get(r["kind"])
            if fold:
                fold(self, r)
        return self

    def _train(self, r: dict) -> None:
        loss = r.get("loss")
        if not _finite(loss):
            return
        self.last_step = max(self.last_step, r["step"])
        self.first_loss = loss if self.first_loss is None else self.first_loss
        self.last_loss = loss
        self.best_loss = loss if self.best_loss is None else min(self.best_loss, loss)
        self.tokens_seen = int(r.get("tokens_seen", self.tokens_seen))
        self.train_time_s = float(
            r.get("train_time_s", self.train_time_s + r.get("dt_ms", 0) / 1000)
        )
        self.tokens_per_sec = r.get("tokens_per_sec", self.tokens_per_sec)
        if _finite(r.get("peak_mem_mb")):
            self.peak_mem_mb = max(self.peak_mem_mb or 0.0, r["peak_mem_mb"])
        if self._segment_first:
            self._segment_first = False
        else:
            self.timed_steps += 1
            self.timed_ms += r.get("dt_ms", 0.0)
            self.timed_tokens_per_sec += r.get("tokens_per_sec", 0.0)

    def _eval(self, r: dict) -> None:
        v = r.get("val_loss")
        if _finite(v):
            self.last_val_loss = v
            if self.best_val_loss is None or v < self.best_val_loss:
                self.best_val_loss, self.best_val_step = v, r["step"]
        if _finite(r.get("copy_rate")):
            self.copy_rate = r["copy_rate"]
            self.longest_copy = int(r.get("longest_copy", 0))

    def _start(self, r: dict) -> None:
        self.segment_starts.append(r["step"])
        self._segment_first = True

    @property
    def mean_step_ms(self) -> float | None:
        return self.timed_ms / self.timed_steps if self.timed_steps else None

    @property
    def mean_tokens_per_sec(self) -> float | None:
        return self.timed_tokens_per_sec / self.timed_steps if self.timed_steps else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunSummary:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


_FOLDS = {"train": RunSummary._train, "eval": RunSummary._eval, "start": RunSummary._start}


SUMMARY_CHUNK_BYTES = 16 * 2**20  # summaries read long files in pieces of this size
BULK_MIN_BYTES = 1 << 16  # below this, parsing line by line is as fast as pyarrow's start-up
# The fields the summary folds, per kind.
_SUMMARY_FIELDS = {
    "train": ("loss", "tokens_seen", "train_time_s", "tokens_per_sec", "dt_ms", "peak_mem_mb"),
    "eval": ("val_loss", "copy_rate", "longest_copy"),
    "start": (),
}


def fold_bytes(summary: RunSummary, chunk: bytes) -> RunSummary:
    """Fold complete JSON lines into summary: in bulk with pyarrow where it is installed and
    every line parses, else record by record (the same result)."""
    if not (len(chunk) > BULK_MIN_BYTES and _fold_bulk(summary, chunk)):
        summary.update(parse_records(chunk))
    return summary


def _fold_bulk(summary: RunSummary, chunk: bytes) -> bool:
    """RunSummary.update for many lines at once: the columnar reader parses them, numpy folds
    the train records (the bulk of a file), eval and start records go one by one. False, with
    summary untouched, when the bulk reader cannot take the chunk (see bulk_columns): the caller
    then takes the record-by-record path."""
    import numpy as np

    tables = bulk_columns(chunk, _SUMMARY_FIELDS)
    if tables is None:
        return False
    train, ev = tables["train"], tables["eval"]
    _fold_train(summary, train, tables["start"])
    for i in range(len(ev["step"])):
        values = {c: float(ev[c][i]) for c in _SUMMARY_FIELDS["eval"] if not np.isnan(ev[c][i])}
        summary._eval({"step": int(ev["step"][i]), **values})
    return True


def _fold_train(s: RunSummary, train: dict, start: dict) -> None:
    """RunSummary._train over the train columns (file order; rows without a finite loss are
    skipped) and the segment starts of the same chunk, vectorised."""
    import numpy as np

    keep = np.isfinite(train["loss"])
    col = {c: v[keep] for c, v in train.items()}
    rows, starts = col["row"], start["row"]
    s.segment_starts.extend(int(step) for step in start["step"])
    if not len(rows):
        s._segment_first = s._segment_first or bool(len(starts))
        return
    first = np.zeros(len(rows), dtype=bool)  # each segment's first step pays for warm-up
    after = np.searchsorted(rows, starts)  # the first train record after each start
    first[after[after < len(rows)]] = True
    first[0] |= s._segment_first
    s._segment_first = bool(len(starts)) and starts[-1] > rows[-1]
    loss = col["loss"]
    s.last_step = max(s.last_step, int(col["step"].max()))
    s.first_loss = float(loss[0]) if s.first_loss is None else s.first_loss
    s.last_loss = float(loss[-1])
    s.best_loss = float(loss.min()) if s.best_loss is None else min(s.best_loss, float(loss.min()))
    dt = np.nan_to_num(col["dt_ms"], nan=0.0)
    for name in ("tokens_seen", "tokens_per_sec"):
        given = np.flatnonzero(~np.isnan(col[name]))
        if len(given):
            setattr(s, name, col[name][given[-1]].item())
    s.tokens_seen = int(s.tokens_seen)
    given = np.flatnonzero(~np.isnan(col["train_time_s"]))
    if len(given):  # the last total written, plus the step times of records without one
        s.train_time_s = float(col["train_time_s"][given[-1]] + dt[given[-1] + 1 :].sum() / 1000)
    else:
        s.train_time_s = float(s.train_time_s + dt.sum() / 1000)
    mem = col["peak_mem_mb"][np.isfinite(col["peak_mem_mb"])]
    if len(mem):
        s.peak_mem_mb = max(s.peak_mem_mb or 0.0, float(mem.max()))
    timed = ~first
    s.timed_steps += int(timed.sum())
    s.timed_ms += float(dt[timed].sum())
    s.timed_tokens_per_sec += float(np.nan_to_num(col["tokens_per_sec"], nan=0.0)[timed].sum())


def summarize(path: Path) -> RunSummary:
    """The summary of every record in a metrics file (one pass, no cache)."""
    return _SummaryEntry(Path(path)).refresh()


class _SummaryEntry:
    """A summary and the reader that feeds it, read in pieces (memory stays flat)."""

    def __init__(self, path: Path):
        self.reader, self.summary = MetricsReader(path), RunSummary()

    def refresh(self) -> RunSummary:
        while True:
            chunk, restarted = self.reader.read_new_bytes(limit=SUMMARY_CHUNK_BYTES)
            if restarted:  # a resume rewrote the file: forget the old records
                self.summary = RunSummary()
            if not chunk:
                return self.summary
            fold_bytes(self.summary, chunk)


class SummaryCache:
    """Per-file summaries kept up to date by reading only appended bytes; safe to share between
    threads (Streamlit serves every browser session from one process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, _SummaryEntry] = {}

    def get(self, path: Path) -> RunSummary:
        key = str(path)
        with self._lock:
            entry = self._entries.setdefault(key, _SummaryEntry(Path(path)))
            return entry.refresh()


_SUMMARIES = SummaryCache()


def cached_summary(path: Path) -> RunSummary:
    """The summary of a metrics file from this process's shared cache (appended bytes only)."""
    return _SUMMARIES.get(path)


def _with_iso_time(record: dict) -> dict:
    """The record with `time_utc` right after `time` (when time is a number)."""
    t = record.get("time")
    if not _finite(t):
        return record
    iso = datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")
    out = {}
    for key, value in record.items():
        out[key] = value
        if key == "time":
            out["time_utc"] = iso
    return out


def to_csv(records: list[dict]) -> str:
    """Records as CSV, one row each; the `kind` column tells them apart, a field a kind lacks
    stays empty. Beside `time` (epoch seconds), `time_utc` gives it as ISO 8601."""
    records = [_with_iso_time(r) for r in records]
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or ["kind", "step"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()
