"""Choosing a run and one or several of its weights (step checkpoints, the best-val checkpoint,
weights-only snapshots), and loading a model once per file.

Shared by the Playground, Inspect and Model info pages; core does the work, this module only asks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from core.store import checkpoint, metrics
from core.store.checkpoint import LoadedModel, load_model
from core.store.rundir import RunDir, list_run_dirs
from dashboard import state

LATEST = "latest"
NO_SNAPSHOTS = (
    "This run has no snapshots: turn on snapshot_interval for more points in time "
    "(weights-only copies every N steps, a few MB each for the small presets)."
)
NO_BEST = (
    "No best-val checkpoint (best.pt): the run was trained before they were kept, or has "
    "not evaluated yet."
)


@dataclass(frozen=True)
class Choice:
    """One set of weights a page can load: its label in the pickers, file, step, kind
    ('checkpoint', 'best' or 'snapshot'), and its val loss: that of the last eval at or before
    its step (val_step says which), None before the first eval."""

    label: str
    path: Path
    step: int
    kind: str
    val_loss: float | None = None
    val_step: int | None = None

    @property
    def val_text(self) -> str:
        """'val loss 2.3100', 'val loss 2.3100 (at step 40)' or 'val loss not measured'."""
        if self.val_loss is None:
            return "val loss not measured"
        at = f" (at step {self.val_step:,})" if self.val_step not in (None, self.step) else ""
        return f"val loss {self.val_loss:.4f}{at}"

    @property
    def title(self) -> str:
        """'step 40 (snapshot) · val loss 2.3100'."""
        kind = {"snapshot": " (snapshot)", "best": " (best val)"}.get(self.kind, "")
        return f"step {self.step:,}{kind} · {self.val_text}"


@dataclass(frozen=True)
class Picked:
    """What a page's header picked: the run, its weights (None before its first checkpoint),
    the device and the precision to load them with."""

    run: RunDir
    choice: Choice | None
    device: str = "cpu"
    dtype: str = "float32"


def pick_run(prefix: str) -> RunDir:
    """A run chosen in a select box (newest first), opening on the session's selected run (so a
    run chosen on another page is followed here); choosing one selects it for every page.
    Stops the page when there are none."""
    runs = list_run_dirs(state.runs_dir())
    if not runs:
        st.info(
            f"No runs in `{state.runs_dir()}` yet. Start one on the **New run** page, or set the "
            "runs directory in the sidebar."
        )
        st.stop()
    ids = [r.run_id for r in runs]
    key = f"{prefix}_run"
    if state.selected_run() in ids:
        st.session_state[key] = state.selected_run()
    elif st.session_state.get(key) not in ids:
        st.session_state.pop(key, None)  # a deleted run: the newest instead
    run_id = st.selectbox("Run", ids, key=key, on_change=state.select_run_of, args=(key,))
    return runs[ids.index(run_id)] if run_id in ids else runs[0]


def pick_header(
    prefix: str, widths: list[float], device: bool = True, dtype: bool = False
) -> Picked:
    """The row at the top of the Playground, Inspect and Model info pages: run, weights and, as
    asked, device and precision (keys `{prefix}_run`, `_ckpt`, `_device`, `_dtype`)."""
    cols = st.columns(widths)
    with cols[0]:
        run = pick_run(prefix)
    with cols[1]:
        choice = pick_choice(run, prefix)
    picked = Picked(run, choice)
    if device:
        where = cols[2].selectbox("Device", device_options(), key=f"{prefix}_device")
        picked = dataclasses.replace(picked, device=where)
    if dtype:
        precision = cols[3].selectbox(
            "Precision",
            ["float32", "bfloat16"],
            key=f"{prefix}_dtype",
            help="bf16 halves the memory; on most CPUs it is slower",
        )
        picked = dataclasses.replace(picked, dtype=precision)
    return picked


def model_line(picked: Picked, prefix: str, caption: str, link: tuple[str, str, str]) -> None:
    """The line under a page's header: what is loaded (caption), and a link (label, page,
    hover text) that opens another page on the same run and weights."""
    c_info, c_link = st.columns([5, 1])
    c_info.caption(caption)
    label, page, helptext = link
    if c_link.button(label, key=f"{prefix}_to_{Path(page).stem}", type="tertiary", help=helptext):
        switch_to(page, picked.run, st.session_state.get(f"{prefix}_ckpt"))


def switch_to(page: str, run: RunDir, checkpoint_label: str | None) -> None:
    """Open another page (e.g. 'views/inspect.py') on the same run and weights: the run becomes
    the selected run, and the label is handed to that page's weights picker once."""
    state.select_run(run.run_id)
    state.hand_over_weights(checkpoint_label)
    st.switch_page(page)


# --- what a run offers ---------------------------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def _weights_facts(path: str, mtime: float) -> tuple[int, float | None]:
    """Step and val loss recorded in a checkpoint or snapshot file (best.pt: the best val loss)."""
    ckpt = checkpoint.load(path, training=False)
    return ckpt.step, ckpt.best_val_loss


@st.cache_data(max_entries=16, show_spinner=False)
def _eval_losses(path: str, mtime: float, size: int) -> dict[int, float]:
    return {
        r["step"]: float(r["val_loss"])
        for r in metrics.read_all(Path(path))
        if r["kind"] == "eval" and isinstance(r.get("val_loss"), (int, float))
    }


def eval_losses(run: RunDir) -> dict[int, float]:
    """Val loss of every eval step of a run (from its metrics), read again when the file grows."""
    try:
        stat = run.metrics_path.stat()
    except OSError:
        return {}
    return _eval_losses(str(run.metrics_path), stat.st_mtime, stat.st_size)


def val_loss_at(losses: dict[int, float], step: int) -> tuple[float | None, int | None]:
    """The val loss of the last eval at or before step, and that eval's step."""
    before = [s for s in losses if s <= step]
    return (losses[max(before)], max(before)) if before else (None, None)


def _facts(path: Path) -> tuple[int, float | None] | None:
    try:
        return _weights_facts(str(path), path.stat().st_mtime)
    except (ValueError, OSError):
        return None  # unreadable: left out of the choices (the loader says why where it matters)


def choices(run: RunDir) -> list[Choice]:
    """Everything a run offers, newest step first: its step checkpoints and its snapshots
    ('step N (snapshot)'), with the best-val checkpoint first where the run has one. Val losses
    come from the run's eval records (the last at or before each step); a snapshot of a run
    without them falls back to the val loss written in the file."""
    losses = eval_losses(run)
    found = [
        Choice(f"step {s}", p, s, "checkpoint", *val_loss_at(losses, s))
        for s, p in run.checkpoints()
    ]
    for s, p in run.snapshots():
        val, at = val_loss_at(losses, s)
        if not losses and (facts := _facts(p)):
            val = facts[1]
        found.append(Choice(f"step {s} (snapshot)", p, s, "snapshot", val, at))
    found.sort(key=lambda c: (-c.step, c.kind != "checkpoint"))
    best = run.best_checkpoint_path
    if best.is_file() and (facts := _facts(best)):
        step, val = facts
        val = val if val is not None else losses.get(step)
        loss = f", val loss {val:.4f}" if val is not None else ""
        found.insert(0, Choice(f"best (val): step {step}{loss}", best, step, "best", val, step))
    return found


def latest(found: list[Choice]) -> Choice | None:
    """The newest step checkpoint (full precision), else the newest snapshot, else best.pt."""
    for kind in ("checkpoint", "snapshot", "best"):
        of_kind = [c for c in found if c.kind == kind]
        if of_kind:
            return max(of_kind, key=lambda c: c.step)
    return None


def missing_notes(run: RunDir) -> list[str]:
    """What a run written before best-val checkpoints and snapshots existed lacks, in words."""
    notes = []
    if run.checkpoints() and not run.best_checkpoint_path.is_file():
        notes.append(NO_BEST)
    if not run.snapshots():
        notes.append(NO_SNAPSHOTS)
    return notes


# --- pickers -------------------------------------------------------------------------------------


def pick_choice(run: RunDir, prefix: str, label: str = "Checkpoint") -> Choice | None:
    """The chosen weights of a run: 'latest' (follows a run that is still training), 'best
    (val)', a step checkpoint or a snapshot. None when the run has none yet."""
    found = choices(run)
    if not found:
        st.selectbox(label, ["none yet"], key=f"{prefix}_ckpt_none", disabled=True)
        return None
    labels = [LATEST] + [c.label for c in found]
    key = f"{prefix}_ckpt"
    handed = state.take_weights()
    if handed in labels:  # another page opened this one on these weights
        st.session_state[key] = handed
    if st.session_state.get(key) not in (None, *labels):
        st.session_state[key] = LATEST  # e.g. the best checkpoint moved to a new step
    choice = st.selectbox(
        label,
        labels,
        key=key,
        help="'latest' always reads the newest checkpoint, also while "
        "training; 'best (val)' the one with the lowest val loss; "
        "snapshots are weights-only copies in half precision",
    )
    if choice == LATEST or choice not in labels:
        return latest(found)
    return found[labels.index(choice) - 1]


def spread(found: list[Choice], n: int = 4) -> list[Choice]:
    """Up to n choices spread evenly over the run's steps, oldest first (best.pt left out)."""
    one: dict[int, Choice] = {}
    for c in sorted(found, key=lambda c: (c.step, c.kind != "checkpoint")):
        if c.kind != "best":
            one.setdefault(c.step, c)  # one per step, the full checkpoint where both exist
    steps = list(one.values())
    if len(steps) <= n or n < 2:
        return steps[-n:] if n > 0 else []
    return [steps[round(i * (len(steps) - 1) / (n - 1))] for i in range(n)]


def pick_many(
    run: RunDir, prefix: str, label: str = "Checkpoints to compare", default_n: int = 4
) -> list[Choice]:
    """Several of a run's weights for comparing across training (time travel), ordered by step;
    by default up to default_n spread from the first to the last."""
    found = choices(run)
    if not found:
        return []
    labels = [c.label for c in found]
    key, default_key = f"{prefix}_many", f"{prefix}_many_default"
    fresh = [c.label for c in spread(found, default_n)]
    if key not in st.session_state or st.session_state[key] == st.session_state.get(default_key):
        st.session_state[key] = fresh  # not chosen by hand: a spread over what exists now
    else:  # the user's choice, less what no longer exists (pruned, new best)
        st.session_state[key] = [x for x in st.session_state[key] if x in labels]
    st.session_state[default_key] = fresh
    chosen = st.multiselect(
        label, labels, key=key, help="The same prompt and seed are generated from each"
    )
    picked = [found[labels.index(x)] for x in chosen if x in labels]
    return sorted(picked, key=lambda c: (c.step, c.kind))


# --- loading -------------------------------------------------------------------------------------


def device_options() -> list[str]:
    options = ["cpu"]
    if torch.cuda.is_available():
        options.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        options.append("mps")
    return options


@st.cache_resource(max_entries=6, show_spinner="Loading the model...")
def _cached_model(path: str, mtime: float, device: str, dtype: str) -> LoadedModel:
    return load_model(path, device, dtype)


def load_cached(path: Path, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """The model of a checkpoint or snapshot, loaded once per file (reloaded when the file
    changes: path + mtime is the key). ValueError, FileNotFoundError, OSError as load_model."""
    return _cached_model(str(path), path.stat().st_mtime, device, dtype)


def cached_model(path: Path, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """load_cached, showing the error and stopping the page when the file cannot be used."""
    try:
        return load_cached(path, device, dtype)
    except (ValueError, FileNotFoundError, OSError) as e:
        st.error(f"Cannot load this checkpoint: {e}")
        st.stop()
