"""Run controls shared by the Runs and Live pages: Stop, Resume (enabled only where it would
train something, the reason on hover), Continue training (a new max_steps and target loss) and
"New run from this one".

Each page passes its own keys, so the widgets of both pages never share state; the texts, the
checks and what a press does are the same on both.
"""

from __future__ import annotations

import streamlit as st

from core.config import ConfigError
from core.runs import launcher
from core.store.rundir import ACTIVE_STATES, STOPPING, RunDir
from dashboard import state as app_state

STOP_HELP = "Checkpoint and stop after the current step; the next queued run then starts"

# What a run does between Stop and its end (seconds to a minute or more on a busy CPU).
STOPPING_NOTE = "stopping: final eval, sample and checkpoint, then it ends"


def resume_reason(run: RunDir) -> tuple[bool, str]:
    """(whether Resume would train anything, the launcher's reason as a sentence)."""
    try:
        can, why = launcher.can_resume(run)
    except (ConfigError, OSError) as e:  # a damaged config.json
        can, why = False, f"cannot read the run: {e}"
    return can, why[:1].upper() + why[1:]


def stop_button(run: RunDir, state: str, key: str) -> None:
    """Stop (enabled while the run trains): asks the engine to checkpoint and end after the
    current step, then redraws the page, which shows "stopping" at once (the button disabled,
    what is left on hover) until the engine has run its final eval and checkpoint."""
    stopping = run.shown_state(state) == STOPPING
    if st.button(
        "Stopping..." if stopping else "Stop",
        key=key,
        disabled=state not in ACTIVE_STATES or stopping,
        width="stretch",
        help=STOPPING_NOTE.capitalize() if stopping else STOP_HELP,
    ):
        launcher.stop(run, wait=False)
        st.rerun()  # "stopping" now, not at the next refresh


def resume_button(run: RunDir, key: str) -> None:
    """Resume, enabled only where it would train something, with resume_reason on hover; a
    resumed run becomes the selected run of every page."""
    can, why = resume_reason(run)
    if not st.button("Resume", key=key, disabled=not can, width="stretch", help=why):
        return
    try:
        launcher.resume(run)
    except (ConfigError, OSError) as e:
        st.error(str(e))
    else:
        app_state.select_run(run.run_id)
        st.toast(f"Resumed {run.run_id} from its latest checkpoint.")
        st.rerun()


def schedule_note(cfg) -> str:
    """What continuing does to the learning rate, in the words both pages use."""
    return (
        f"The learning-rate schedule keeps its length: the cosine ends at step "
        f"{cfg.lr_decay_steps or cfg.max_steps:,} as planned, and the extra steps train at "
        f"min_lr ({cfg.min_lr:g})."
    )


def continue_training(run: RunDir, state: str, prefix: str) -> None:
    """A popover to train a run further than planned: a new max_steps (and target loss), passed
    to launcher.continue_run. Its widgets' keys are `{prefix}_more_*_{run id}`."""
    rid = run.run_id
    step = launcher.checkpoint_step(run)
    if state in ACTIVE_STATES or step is None:
        st.button(
            "Continue training",
            key=f"{prefix}_more_{rid}",
            disabled=True,
            width="stretch",
            help="Needs a run that is not training and has a checkpoint",
        )
        return
    with st.popover(
        "Continue training",
        width="stretch",
        help="Train further than planned, from the latest checkpoint",
    ):
        try:
            cfg = run.read_config()
        except ConfigError as e:
            st.error(str(e))
            return
        stopped_at_target = "target loss" in str(run.read_status().get("reason") or "")
        max_steps = st.number_input(
            "Train up to step",
            min_value=step + 1,
            value=max(step + 1, 2 * cfg.max_steps),
            step=1,
            key=f"{prefix}_more_steps_{rid}",
        )
        target = st.number_input(
            "Target loss (0 = off)",
            min_value=0.0,
            value=0.0 if stopped_at_target else float(cfg.target_loss),
            format="%.3f",
            key=f"{prefix}_more_target_{rid}",
        )
        continue_notes(run, step, cfg)
        st.caption(_continue_forecast(run, step, int(max_steps)))
        if st.button("Continue", key=f"{prefix}_more_go_{rid}", type="primary"):
            try:
                launcher.continue_run(run, int(max_steps), float(target))
            except ConfigError as e:
                st.error(str(e))
            else:
                st.toast(f"Continuing {rid} up to step {int(max_steps):,}.")
                st.rerun()


def continue_notes(run: RunDir, step: int, cfg) -> None:
    """Where continuing starts and what it does to the schedule; a warning when another run
    trains (continuing would start beside it)."""
    st.caption(f"Continues from the checkpoint at step {step:,}. {schedule_note(cfg)}")
    busy = training_beside(run)
    if busy:
        st.warning(
            f"{busy} is training now: continuing starts beside it, and on a small machine "
            "two runs at once halve each other's speed. Stop it first, or continue later."
        )


def training_beside(run: RunDir) -> str | None:
    """Another run of run's runs directory that is training or starting now, or None."""
    for info in launcher.list_runs(run.path.parent):
        if info.run_id != run.run_id and info.state in ACTIVE_STATES:
            return info.run_id
    return None


def _continue_forecast(run: RunDir, step: int, max_steps: int) -> str:
    """The forecast for the new max_steps, refitted only when the run's records change."""
    try:
        stat = run.metrics_path.stat()
    except OSError:
        return ""
    return _cached_continue_note(str(run.path), stat.st_mtime_ns, stat.st_size, step, max_steps)


@st.cache_data(max_entries=32, show_spinner=False)
def _cached_continue_note(path: str, mtime_ns: int, size: int, step: int, max_steps: int) -> str:
    """continue_note, cached per state of the metrics file (its mtime and size are the key)."""
    from dashboard.live_forecast import continue_note

    return continue_note(RunDir(path), step, max_steps)


# --- "New run from this one": a run's config handed to the New run page ----------------------
_PREFILL = "new_run_prefill"


def open_new_run_from(run: RunDir) -> None:
    """Open the New run page with its form filled from run's config (it loads it once)."""
    try:
        cfg = run.read_config()
    except ConfigError as e:
        st.error(f"Cannot copy {run.run_id}: {e}")
        return
    st.session_state[_PREFILL] = {"run_id": run.run_id, "config": cfg.to_dict()}
    st.switch_page("views/new_run.py")


def take_prefill() -> dict | None:
    """The {"run_id", "config"} that "New run from this one" left for the New run page, once:
    it is gone after this call."""
    return st.session_state.pop(_PREFILL, None)
