"""The Playground's "Compare checkpoints" tab (time travel): the same prompt, settings and seed
through several of a run's checkpoints and snapshots, side by side."""

from __future__ import annotations

import streamlit as st

from core.generate import sampling
from dashboard import token_view as tv
from dashboard.checkpoint_picker import NO_SNAPSHOTS, load_cached, pick_many
from dashboard.playground_ask import Ask, copies_of, event_dict

KIND_NOTES = {"snapshot": " (snapshot)", "best": " (best val)"}


def compare_generate(ask: Ask, chosen) -> list[dict]:
    """The same prompt, settings and seed through each chosen checkpoint."""
    out = []
    bar = st.progress(0.0, text="Generating...")
    for i, c in enumerate(chosen):
        item = dict(
            label=c.label, step=c.step, val=c.val_text, kind=c.kind, events=[], text="", error=None
        )
        try:
            model = load_cached(c.path, ask.picked.device, ask.picked.dtype)
            stream = sampling.stream_tokens(model.model, ask.prompt_ids, ask.settings, model.device)
            for ev in stream:
                item["events"].append(event_dict(ev))
                item["text"] += ev.text
        except (ValueError, OSError) as e:
            item["error"] = str(e)
        out.append(item)
        bar.progress((i + 1) / len(chosen), text=f"{i + 1} / {len(chosen)} checkpoints")
    bar.empty()
    return out


def compare_item(ask: Ask, item: dict) -> None:
    """One checkpoint's column: its step and val loss, then what it generated."""
    st.markdown(f"**step {item['step']:,}**" + KIND_NOTES.get(item["kind"], ""))
    st.caption(item["val"])
    if item["error"]:
        st.error(f"Cannot generate: {item['error']}")
        return
    report = copies_of(ask, item["events"])
    if ask.colour or ask.copies:
        notes = report.notes if report else None
        st.html(tv.render(tv.generated_cells(item["events"], ask.colour, notes)))
    else:
        st.text(item["text"])
    if report is not None:
        st.caption(report.summary)


def compare_view(ask: Ask) -> None:
    """Pick checkpoints, generate from each, and show them four to a row."""
    run = ask.picked.run
    if not run.snapshots():
        st.caption(NO_SNAPSHOTS)
    chosen = pick_many(run, "pg_tt")
    go_clicked = st.button(
        "Generate from each",
        key="pg_tt_go",
        type="primary",
        disabled=ask.prompt_ids is None or not chosen,
    )
    if go_clicked:
        st.session_state.pg_tt_result = dict(prompt=ask.prompt, items=compare_generate(ask, chosen))
    result = st.session_state.get("pg_tt_result")
    if not result:
        st.caption(
            "The same prompt and seed from several points in training, side by side: "
            "noise becomes words, words become verse, verse becomes copying."
        )
        return
    s = ask.settings
    st.caption(f"Prompt: {result['prompt'][-120:]!r} · seed {s.seed} · T = {s.temperature:g}")
    per_row = min(4, len(result["items"]))
    for start in range(0, len(result["items"]), per_row):
        cols = st.columns(per_row)
        for col, item in zip(cols, result["items"][start : start + per_row]):
            with col.container(border=True, key=f"pg_tt_col_{start}_{item['step']}_{item['kind']}"):
                compare_item(ask, item)
