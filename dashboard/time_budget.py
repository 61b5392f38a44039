"""The New run page's time budget: "train for about N minutes" as max_steps, and the warning
at Launch when the settings take much longer than that on this machine right now, with the fix
in one click (fewer steps, or a smaller preset).

The arithmetic is core.train.budget's; this module draws it. Values change through widget
callbacks, which run before the next script run, so the form's fields can still be set.
"""

from __future__ import annotations

import streamlit as st

from core.config import TrainConfig
from core.train import budget
from core.train.estimate import Estimate
from core.train.throughput import Probe
from core.units import format_duration
from dashboard import new_run_form

PREFIX = new_run_form.KEY_PREFIX
BUDGET_KEY = PREFIX + "budget_minutes"
MAX_STEPS_KEY = PREFIX + "max_steps"


def reset_for_preset(name: str) -> None:
    """A preset was chosen: the budget becomes its label's minutes (10 for micro), or 0 (off)
    for a preset without one."""
    st.session_state[BUDGET_KEY] = float(budget.preset_minutes(name) or 0)


def _fill_steps(cfg: TrainConfig, tokens_per_sec: float, probe: Probe | None) -> None:
    """Callback of the budget input: max_steps becomes what fits in its minutes."""
    minutes = st.session_state.get(BUDGET_KEY) or 0
    if minutes > 0:
        st.session_state[MAX_STEPS_KEY] = budget.steps_for_seconds(
            cfg, minutes * 60, tokens_per_sec, probe
        )


def budget_input(cfg: TrainConfig, est: Estimate, probe: Probe | None) -> None:
    """'Train for about N minutes' (filling max_steps from the measured speed) and, back, what
    the form's max_steps takes at that speed."""
    st.session_state.setdefault(BUDGET_KEY, 0.0)
    tps = est.tokens_per_sec
    st.number_input(
        "Train for about (minutes)",
        min_value=0.0,
        max_value=10_000.0,
        step=1.0,
        format="%g",
        key=BUDGET_KEY,
        disabled=not tps,
        on_change=_fill_steps,
        args=(cfg, tps, probe),
        help="Sets max_steps to what fits in this many minutes at the speed this machine "
        "trains this shape now (the estimate's tokens/s); 0 leaves max_steps as you set it",
    )
    if tps and est.time_s:
        st.caption(
            f"max_steps {cfg.max_steps:,} takes about {format_duration(est.time_s)} at "
            f"{tps:,.0f} tokens/s ({'a rough guess' if est.time_is_guess else 'measured'}), "
            "evals, samples and start-up included."
        )


def _apply(steps: int | None, preset_name: str | None, apply_preset) -> None:
    """Callback of the warning's buttons: fewer steps, or a smaller preset (its label's budget)."""
    if preset_name:
        st.session_state[PREFIX + "preset"] = preset_name
        apply_preset()
    elif steps:
        st.session_state[MAX_STEPS_KEY] = steps


def slow_warning(
    cfg: TrainConfig, est: Estimate, preset_name: str, probe: Probe | None, apply_preset
) -> None:
    """Beside Launch: when the settings take TOO_SLOW times the budget (the preset's label
    unless the user set one) at the speed measured now, say so and offer the two fixes."""
    minutes = st.session_state.get(BUDGET_KEY) or budget.preset_minutes(preset_name)
    if not est.tokens_per_sec or not budget.too_slow(est.time_s, minutes):
        return
    steps = budget.steps_for_seconds(cfg, minutes * 60, est.tokens_per_sec, probe)
    st.warning(
        f"At the speed measured now ({est.tokens_per_sec:,.0f} tokens/s) these settings take "
        f"about {format_duration(est.time_s)}, not about {minutes:g} minutes: the machine is "
        "slower or busier than where the preset was measured."
    )
    other = budget.smaller_preset(preset_name)
    fixes = [
        (
            f"Fit {minutes:g} minutes: {steps:,} steps",
            "fit_budget",
            (steps, None),
            "Sets max_steps to what fits in the budget at this speed",
        )
    ]
    if other:
        fixes.append(
            (
                f"Use {other} instead",
                "smaller_preset",
                (None, other),
                f"A smaller model; its label: about {budget.preset_minutes(other)} minutes",
            )
        )
    for column, (label, key, args, why) in zip(st.columns(2), fixes):
        column.button(
            label,
            key=PREFIX + key,
            on_click=_apply,
            args=(*args, apply_preset),
            width="stretch",
            help=why,
        )
