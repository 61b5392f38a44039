"""Choosing a run and one or several of its weights (step checkpoints, the best-val checkpoint,
weights-only snapshots), and loading a model once per file.

Shared by the Playground, Inspect and Model info pages; core does the work, this module only asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from core.store import checkpoint, metrics
from core.store.checkpoint import LoadedModel, load_model
from core.store.rundir import RunDir, list_run_dirs
from dashboard.state import runs_dir

LATEST = "latest"
SELECTED_RUN = "selected_run"  # the session's selected run, shared with the Runs and Live pages
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


def pick_run(prefix: str) -> RunDir:
    """A run chosen in a select box (newest first), preselected from the session's selected run;
    stops the page when there are none."""
    runs = list_run_dirs(runs_dir())
    if not runs:
        st.info(
            f"No runs in `{runs_dir()}` yet. Start one on the **New run** page, or set the "
            "runs directory in the sidebar."
        )
        st.stop()
    ids = [r.run_id for r in runs]
    key = f"{prefix}_run"
    if st.session_state.get(key) not in ids and st.session_state.get(SELECTED_RUN) in ids:
        st.session_state[key] = st.session_state[SELECTED_RUN]

    def remember():
        st.session_state[SELECTED_RUN] = st.session_state[key]

    run_id = st.selectbox("Run", ids, key=key, on_change=remember)
    return runs[ids.index(run_id)] if run_id in ids else runs[0]


def switch_to(page: str, prefix: str, run: RunDir, checkpoint_label: str | None) -> None:
    """Open another page (e.g. 'views/inspect.py') on the same run and checkpoint: its pickers
    (keys prefix_run, prefix_ckpt) start there."""
    st.session_state[SELECTED_RUN] = st.session_state[f"{prefix}_run"] = run.run_id
    if checkpoint_label:
        st.session_state[f"{prefix}_ckpt"] = checkpoint_label
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


def pick_checkpoint(run: RunDir, prefix: str) -> Path | None:
    """The chosen checkpoint file of a run (see pick_choice), or None."""
    chosen = pick_choice(run, prefix)
    return chosen.path if chosen else None


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
    key = f"{prefix}_many"
    if key in st.session_state:  # drop choices that no longer exist (pruned, new best)
        st.session_state[key] = [x for x in st.session_state[key] if x in labels]
    else:
        st.session_state[key] = [c.label for c in spread(found, default_n)]
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
