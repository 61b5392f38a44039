"""Playground: generate from any checkpoint, streamed, with every token clickable for its
probability and alternatives; the next-token choice up close; spans copied from the training
text; and the same prompt across checkpoints (time travel)."""

import time

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.data.dataset import get_tokenizer
from core.data.tokens import encode_prompt
from core.generate import sampling
from dashboard import token_view as tv
from dashboard.checkpoint_picker import (
    NO_SNAPSHOTS,
    cached_model,
    device_options,
    load_cached,
    pick_choice,
    pick_many,
    pick_run,
    switch_to,
)
from dashboard.training_text import continuation_report, copy_report, corpus_index

st.title("Playground")

c_run, c_ckpt, c_dev, c_dtype = st.columns([3, 2, 1, 1])
with c_run:
    run = pick_run("pg")
with c_ckpt:
    choice = pick_choice(run, "pg")
with c_dev:
    device = st.selectbox("Device", device_options(), key="pg_device")
with c_dtype:
    dtype = st.selectbox(
        "Precision",
        ["float32", "bfloat16"],
        key="pg_dtype",
        help="bf16 halves the memory; on most CPUs it is slower",
    )
if choice is None:
    st.info(
        f"Run **{run.run_id}** has no checkpoint yet ({run.effective_state()}). The first "
        "one is written after `checkpoint_interval` steps; come back then."
    )
    st.stop()

loaded = cached_model(choice.path, device, dtype)
block = loaded.model.config.block_size
c_info, c_link = st.columns([5, 1])
c_info.caption(
    f"{choice.path.name}: step {loaded.step:,} · {loaded.model.num_params():,} "
    f"parameters · context {block:,} tokens · {loaded.device}, {loaded.dtype}"
)
if c_link.button(
    "Inspect this checkpoint",
    key="pg_to_inspect",
    type="tertiary",
    help="Token surprise, logit lens and attention of this run and checkpoint",
):
    switch_to("views/inspect.py", "ins", run, st.session_state.get("pg_ckpt"))

if "pg_prompt" not in st.session_state:
    st.session_state.pg_prompt = loaded.config.sample_prompt or "ROMEO:"
prompt = st.text_area(
    "Prompt", key="pg_prompt", height=100, help="Type <|endoftext|> to start from nothing"
)
c1, c2, c3, c4 = st.columns(4)
max_new = c1.slider(
    "Max new tokens", *sampling.MAX_NEW_RANGE, sampling.MAX_NEW_DEFAULT, key="pg_max_new"
)
temperature = c2.slider(
    "Temperature",
    *sampling.TEMPERATURE_RANGE,
    sampling.TEMPERATURE_DEFAULT,
    step=0.05,
    key="pg_temperature",
    help="Below 1 sharpens the distribution, above 1 flattens it",
)
top_k = c3.slider(
    "Top-k",
    *sampling.TOP_K_RANGE,
    sampling.TOP_K_DEFAULT,
    key="pg_top_k",
    help="Sample only among the k most likely tokens (0 = off)",
)
top_p = c4.slider(
    "Top-p",
    0.05,
    1.0,
    1.0,
    step=0.05,
    key="pg_top_p",
    help="Nucleus sampling: the smallest set of tokens holding this much probability (1.0 = off)",
)
c1, c2, c3, c4 = st.columns(4)
seed = c1.number_input("Seed", min_value=0, value=1337, step=1, key="pg_seed")
greedy = c2.checkbox("Greedy (always the most likely)", key="pg_greedy")
stop_eot = c3.checkbox("Stop at end-of-text", value=True, key="pg_stop_eot")
colour = c4.checkbox(
    "Colour tokens by probability",
    key="pg_colour",
    help="Show the text as tokens coloured by probability (also while they "
    "stream); click any token for its probability and alternatives",
)
c1, c2, _ = st.columns([1, 1, 2])
copies = c1.toggle(
    "Copied from training data",
    key="pg_copy",
    help="Mark generated spans found verbatim in this run's training text; "
    "click one for where it comes from",
)
min_len = c2.slider(
    "Shortest copied span (tokens)", 2, 32, 8, key="pg_copy_min", disabled=not copies
)
settings = sampling.SamplingSettings(
    temperature, top_k, top_p, max_new, int(seed), stop_eot, greedy
)

# A bad prompt is an error beside it; the last result stays below.
prompt_ids, dropped, dropped_text = None, 0, ""
try:
    prompt_ids, dropped = encode_prompt(prompt, block)
except ValueError as e:
    st.error(f"Prompt: {e}")
if dropped:
    full = get_tokenizer().encode(prompt, allowed_special={"<|endoftext|>"})
    dropped_text = get_tokenizer().decode(full[:dropped], errors="replace")
    if not prompt.startswith(dropped_text):
        dropped_text = ""
    st.warning(
        f"The prompt has {len(prompt_ids) + dropped:,} tokens but the model's context is "
        f"{block:,}: the first {dropped:,} are dropped (struck out below) and the model "
        "sees only the rest."
    )
    with st.expander("What the model sees of the prompt"):
        st.html(tv.render([], tv.prompt_html(prompt[len(dropped_text) :], dropped_text)))


def _event(ev) -> dict:
    return dict(text=ev.text, prob=ev.prob, top=list(ev.top), eot=ev.eot, id=ev.token_id)


def _copies_of(events: list[dict]):
    """The copy report of generated tokens, or None (switch off, no text, or no index: then
    the reason is shown once)."""
    if not copies or not events:
        return None
    index, problem = corpus_index(loaded.config)
    if index is None:
        st.warning(problem)
        return None
    try:
        return copy_report(index, [e["id"] for e in events], min_len)
    except ValueError as e:
        st.warning(f"Cannot look up the training text: {e}")
        return None


def _token_view(result: dict, report=None) -> str:
    cells = tv.generated_cells(result["events"], colour, report.notes if report else None)
    seen = result["prompt"][len(result.get("dropped_text", "")) :]
    return tv.render(cells, tv.prompt_html(seen, result.get("dropped_text", "")))


def _stats(box, result: dict) -> None:
    with box.container():
        a, b, c = st.columns(3)
        a.metric("Tokens", len(result["events"]))
        b.metric("Tokens/s", f"{result['tps']:.1f}" if result["tps"] else "-")
        c.metric(
            "Time to first token",
            f"{result['ttft'] * 1000:.0f} ms" if result["ttft"] is not None else "-",
        )


def _show(result: dict, progress, stats, view_box) -> None:
    n = len(result["events"])
    done = f"{n} / {result['asked']} tokens" + (
        " · stopped at end-of-text" if result["eot"] else ""
    )
    if result.get("cancelled"):
        done += " · cancelled"
    progress.progress(min(1.0, n / result["asked"]), text=done)
    _stats(stats, result)
    with view_box.container():
        if result.get("cancelled"):
            why = (
                "Cancelled"
                if result["cancelled"] == "button"
                else "Stopped early (a control changed while generating)"
            )
            st.info(f"{why} after {n} of {result['asked']} tokens; the text so far is kept.")
        report = _copies_of(result["events"])
        if (colour or copies) and result["events"]:
            st.html(tv.legend("prob" if colour else "plain", copies=report is not None))
            st.html(_token_view(result, report))
        else:
            st.text(result["prompt"] + result["text"])
        if report is not None:
            st.markdown(f"**{report.summary}**")
            if report.rows:
                st.dataframe(pd.DataFrame(report.rows), hide_index=True, key="pg_copy_table")


def _cancel() -> None:
    st.session_state.pg_cancelled = True


def _generate(progress, stats, view_box, cancel_box) -> None:
    """Stream tokens into the page. The result is kept in the session as it grows, so a Cancel
    (which reruns the page and so ends this run at its next redraw) keeps the text so far."""
    st.session_state.pg_cancelled = False
    result = dict(
        prompt=prompt,
        dropped_text=dropped_text,
        text="",
        events=[],
        asked=max_new,
        tps=None,
        ttft=None,
        eot=False,
        checkpoint=str(choice.path),
        done=False,
    )
    st.session_state.pg_result = result
    cancel_box.button("Cancel", key="pg_cancel", on_click=_cancel)
    t0, last_draw = time.perf_counter(), 0.0
    progress.progress(0.0, text=f"0 / {max_new} tokens")
    for ev in sampling.stream_tokens(loaded.model, prompt_ids, settings, loaded.device):
        result["events"].append(_event(ev))
        result["text"] += ev.text
        result["eot"] = ev.eot and stop_eot
        result["ttft"] = result["ttft"] if result["ttft"] is not None else ev.elapsed_s
        elapsed = time.perf_counter() - t0
        result["tps"] = len(result["events"]) / elapsed if elapsed > 0 else None
        if elapsed - last_draw > 0.05:  # redraw at most 20 times a second
            last_draw = elapsed
            progress.progress(
                len(result["events"]) / max_new, text=f"{len(result['events'])} / {max_new} tokens"
            )
            _stats(stats, result)
            if colour:
                view_box.html(_token_view(result))
            else:
                view_box.text(prompt + result["text"])
    result["done"] = True
    cancel_box.empty()


gen_tab, next_tab, compare_tab = st.tabs(["Generate", "Next token", "Compare checkpoints"])
with gen_tab:
    b1, b2 = st.columns([1, 6])
    clicked = b1.button("Generate", key="pg_generate", type="primary", disabled=prompt_ids is None)
    cancel_box = b2.empty()
    progress, stats, view_box = st.empty(), st.empty(), st.empty()
    previous = st.session_state.get("pg_result")
    if previous and not previous.get("done"):  # a rerun ended the last generation early
        previous["done"] = True
        previous["cancelled"] = "button" if st.session_state.get("pg_cancelled") else "rerun"
    if clicked and prompt_ids is not None:
        _generate(progress, stats, view_box, cancel_box)
    result = st.session_state.get("pg_result")
    if result:
        _show(result, progress, stats, view_box)
    else:
        st.caption("Set the prompt and the controls, then press **Generate**.")


def _append(text: str) -> None:
    st.session_state.pg_prompt = st.session_state.pg_prompt + text


def _next_token_chart(rows: list[dict], log_axis: bool) -> go.Figure:
    labels = [f"{r['rank']}. {r['token']}" for r in rows]
    fig = go.Figure()
    fig.add_bar(
        y=labels,
        x=[r["p"] for r in rows],
        orientation="h",
        name=f"model at T = {temperature:g}",
        hovertemplate="%{y}: %{x:.3%}<extra>model at T = " + f"{temperature:g}</extra>",
    )
    fig.add_bar(
        y=labels,
        x=[r["p_sampled"] for r in rows],
        orientation="h",
        name="sampled from (after top-k / top-p)",
        marker_color="#ff7f0e",
        hovertemplate="%{y}: %{x:.3%}<extra>after top-k / top-p</extra>",
    )
    fig.update_layout(
        barmode="group",
        height=max(300, 34 * len(rows) + 90),
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="probability",
        yaxis_autorange="reversed",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    if log_axis:
        fig.update_xaxes(type="log", tickformat=".1~%", dtick=1)
    else:
        fig.update_xaxes(tickformat=".3~%")
    return fig


def _next_token_view() -> None:
    k = st.slider("Tokens shown", 3, 30, 10, key="pg_nt_k")
    log_axis = st.checkbox("Log scale (small probabilities stay visible)", key="pg_nt_log")
    logits = sampling.next_token_logits(loaded.model, prompt_ids, loaded.device)
    rows = sampling.temperature_table(logits, temperature, k)
    sampled = sampling.probabilities(logits, temperature, 1 if greedy else top_k, top_p)
    for r in rows:
        r["p_sampled"] = float(sampled[r["id"]])
    here, base = sampling.next_token(logits, temperature, 1), sampling.next_token(logits, 1.0, 1)
    a, b, c, d = st.columns(4)
    a.metric(f"Entropy at T = {temperature:g}", f"{here.entropy_bits:.2f} bits")
    b.metric("Entropy at T = 1", f"{base.entropy_bits:.2f} bits")
    c.metric(
        "Most likely next token",
        sampling.readable_token(here.top[0][1]),
        f"{here.top[0][2]:.2%}",
        delta_color="off",
        delta_arrow="off",
    )
    d.metric(
        "Tokens left to sample from",
        f"{int((sampled > 0).sum()):,}",
        help="after top-k and top-p (greedy: 1)",
    )
    left, right = st.columns([3, 2])
    left.plotly_chart(_next_token_chart(rows, log_axis), key="pg_nt_chart")
    table = pd.DataFrame(
        [
            {
                "token": r["token"],
                "id": r["id"],
                f"p (T={temperature:g})": tv.fmt_prob(r["p"]),
                "p sampled": tv.fmt_prob(r["p_sampled"]) if r["p_sampled"] else "0 (cut)",
                "p (T=1)": tv.fmt_prob(r["p_at_1"]),
            }
            for r in rows
        ]
    )
    right.dataframe(table, hide_index=True, key="pg_nt_table")
    st.caption(
        f"Blue: the model's distribution at T = {temperature:g}. Orange: what sampling "
        f"draws from after top-k = {top_k or 'off'} and top-p = {top_p:g} cut the tail "
        "and renormalise. Temperature divides the logits before the softmax. "
        "␣ is a space, ↵ a newline."
    )
    st.markdown("**Append a token to the prompt** (step through a continuation by hand)")
    cols = st.columns(5)
    for i, (tid, text, p) in enumerate(sampling.next_token(logits, temperature, min(k, 10)).top):
        cols[i % 5].button(
            f"{sampling.readable_token(text)}  ·  {tv.fmt_prob(p)}",
            key=f"pg_append_{i}",
            on_click=_append,
            args=(text,),
            help=f"append token {tid}",
            width="stretch",
        )
    _training_continuation(k)


def _training_continuation(k: int) -> None:
    st.markdown("**What the training text continues with**")
    index, problem = corpus_index(loaded.config)
    if index is None:
        st.warning(problem)
        return
    report = continuation_report(index, prompt_ids, k)
    st.write(report.line)
    if report.rows:
        st.dataframe(
            pd.DataFrame([{**r, "share": tv.fmt_prob(r["share"])} for r in report.rows]),
            hide_index=True,
            key="pg_nt_corpus",
        )


with next_tab:
    if prompt_ids is None:
        st.info("Fix the prompt above to see the next-token distribution.")
    else:
        _next_token_view()


def _compare_generate(chosen) -> list[dict]:
    """The same prompt, settings and seed through each chosen checkpoint."""
    out = []
    bar = st.progress(0.0, text="Generating...")
    for i, c in enumerate(chosen):
        item = dict(
            label=c.label, step=c.step, val=c.val_text, kind=c.kind, events=[], text="", error=None
        )
        try:
            model = load_cached(c.path, device, dtype)
            for ev in sampling.stream_tokens(model.model, prompt_ids, settings, model.device):
                item["events"].append(_event(ev))
                item["text"] += ev.text
        except (ValueError, OSError) as e:
            item["error"] = str(e)
        out.append(item)
        bar.progress((i + 1) / len(chosen), text=f"{i + 1} / {len(chosen)} checkpoints")
    bar.empty()
    return out


def _compare_view() -> None:
    has_snapshots = bool(run.snapshots())
    if not has_snapshots:
        st.caption(NO_SNAPSHOTS)
    chosen = pick_many(run, "pg_tt")
    go_clicked = st.button(
        "Generate from each",
        key="pg_tt_go",
        type="primary",
        disabled=prompt_ids is None or not chosen,
    )
    if go_clicked:
        st.session_state.pg_tt_result = dict(prompt=prompt, items=_compare_generate(chosen))
    result = st.session_state.get("pg_tt_result")
    if not result:
        st.caption(
            "The same prompt and seed from several points in training, side by side: "
            "noise becomes words, words become verse, verse becomes copying."
        )
        return
    st.caption(f"Prompt: {result['prompt'][-120:]!r} · seed {int(seed)} · T = {temperature:g}")
    per_row = min(4, len(result["items"]))
    for start in range(0, len(result["items"]), per_row):
        cols = st.columns(per_row)
        for col, item in zip(cols, result["items"][start : start + per_row]):
            with col.container(border=True, key=f"pg_tt_col_{start}_{item['step']}_{item['kind']}"):
                st.markdown(
                    f"**step {item['step']:,}**"
                    + (
                        " (snapshot)"
                        if item["kind"] == "snapshot"
                        else " (best val)"
                        if item["kind"] == "best"
                        else ""
                    )
                )
                st.caption(item["val"])
                if item["error"]:
                    st.error(f"Cannot generate: {item['error']}")
                    continue
                report = _copies_of(item["events"])
                if colour or copies:
                    st.html(
                        tv.render(
                            tv.generated_cells(
                                item["events"], colour, report.notes if report else None
                            )
                        )
                    )
                else:
                    st.text(item["text"])
                if report is not None:
                    st.caption(report.summary)


with compare_tab:
    _compare_view()
