"""Playground: generate from any checkpoint, streamed, and look inside the next-token choice."""

import html
import time

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import sampling as S
from dashboard.checkpoint_picker import cached_model, device_options, pick_checkpoint, pick_run

st.title("Playground")

c_run, c_ckpt, c_dev, c_dtype = st.columns([3, 2, 1, 1])
with c_run:
    run = pick_run("pg")
with c_ckpt:
    ckpt = pick_checkpoint(run, "pg")
with c_dev:
    device = st.selectbox("Device", device_options(), key="pg_device")
with c_dtype:
    dtype = st.selectbox("Precision", ["float32", "bfloat16"], key="pg_dtype",
                         help="bf16 halves the memory; on most CPUs it is slower")
if ckpt is None:
    st.info(f"Run **{run.run_id}** has no checkpoint yet ({run.effective_state()}). The first "
            "one is written after `checkpoint_interval` steps; come back then.")
    st.stop()

loaded = cached_model(ckpt, device, dtype)
block = loaded.model.config.block_size
st.caption(f"{ckpt.name}: step {loaded.step:,} · {loaded.model.num_params():,} parameters · "
           f"context {block:,} tokens · {loaded.device}, {loaded.dtype}")

prompt = st.text_area("Prompt", value=loaded.config.sample_prompt or "ROMEO:", key="pg_prompt",
                      height=100, help="Type <|endoftext|> to start from nothing")
c1, c2, c3, c4 = st.columns(4)
max_new = c1.slider("Max new tokens", *S.MAX_NEW_RANGE, S.MAX_NEW_DEFAULT, key="pg_max_new")
temperature = c2.slider("Temperature", *S.TEMPERATURE_RANGE, S.TEMPERATURE_DEFAULT, step=0.05,
                        key="pg_temperature", help="Below 1 sharpens the distribution, above 1 "
                        "flattens it")
top_k = c3.slider("Top-k", *S.TOP_K_RANGE, S.TOP_K_DEFAULT, key="pg_top_k",
                  help="Sample only among the k most likely tokens (0 = off)")
top_p = c4.slider("Top-p", 0.05, 1.0, 1.0, step=0.05, key="pg_top_p",
                  help="Nucleus sampling: the smallest set of tokens holding this much "
                       "probability (1.0 = off)")
c1, c2, c3, c4 = st.columns(4)
seed = c1.number_input("Seed", min_value=0, value=1337, step=1, key="pg_seed")
greedy = c2.checkbox("Greedy (always the most likely)", key="pg_greedy")
stop_eot = c3.checkbox("Stop at end-of-text", value=True, key="pg_stop_eot")
colour = c4.checkbox("Colour tokens by probability", key="pg_colour",
                     help="Show the finished text as tokens coloured by probability, with the "
                          "top alternatives on hover")

try:
    prompt_ids, dropped = S.encode_prompt(prompt, block)
except ValueError as e:
    st.error(f"Prompt: {e}")
    st.stop()
if dropped:
    st.warning(f"The prompt has {len(prompt_ids) + dropped:,} tokens but the model's context is "
               f"{block:,}: the first {dropped:,} are dropped and the model sees only the rest.")


def _colour(p: float) -> str:
    """Red (unlikely) through yellow to green (likely), pale enough to read text on."""
    return f"hsl({int(120 * p)}, 75%, 82%)"


def _token_html(prompt_text: str, events: list[dict]) -> str:
    """Generated tokens as spans coloured by probability, alternatives in the hover title."""
    spans = [f'<span style="color:#888">{html.escape(prompt_text)}</span>']
    for e in events:
        shown = e["text"] if e["text"] else ("⟨end of text⟩" if e["eot"] else "")
        if not shown:
            continue  # part of a character completed by a later token
        alts = "\n".join(f"{S.readable_token(t)}  {p:.1%}" for t, p in e["top"])
        title = f"p = {e['prob']:.1%}\ntop alternatives:\n{alts}"
        spans.append(f'<span title="{html.escape(title, quote=True)}" style="background:'
                     f'{_colour(e["prob"])};color:#111;border-radius:3px;'
                     f'box-shadow:inset -1px 0 0 rgba(0,0,0,0.25)">{html.escape(shown)}</span>')
    return ('<div style="white-space:pre-wrap;font-family:ui-monospace,monospace;'
            'line-height:1.7;font-size:0.95rem">' + "".join(spans) + "</div>")


def _show(result: dict, progress, stats, text_box, tokens_box) -> None:
    n = len(result["events"])
    done = f"{n} / {result['asked']} tokens" + (" · stopped at end-of-text" if result["eot"] else "")
    progress.progress(min(1.0, n / result["asked"]), text=done)
    with stats.container():
        a, b, c = st.columns(3)
        a.metric("Tokens", n)
        b.metric("Tokens/s", f"{result['tps']:.1f}" if result["tps"] else "-")
        c.metric("Time to first token", f"{result['ttft'] * 1000:.0f} ms"
                 if result["ttft"] is not None else "-")
    if colour and result["events"]:
        text_box.caption("Each token coloured by its probability (red unlikely, green likely); "
                         "hover a token for its top alternatives.")
        with tokens_box.container():
            st.html(_token_html(result["prompt"], result["events"]))
    else:
        text_box.text(result["prompt"] + result["text"])
        tokens_box.empty()


gen_tab, next_tab = st.tabs(["Generate", "Next token"])
with gen_tab:
    clicked = st.button("Generate", key="pg_generate", type="primary")
    progress, stats, text_box, tokens_box = st.empty(), st.empty(), st.empty(), st.empty()
    if clicked:
        settings = S.SamplingSettings(temperature, top_k, top_p, max_new, int(seed), stop_eot, greedy)
        try:
            settings.check()
        except ValueError as e:
            st.error(str(e))
            st.stop()
        result = dict(prompt=prompt, text="", events=[], asked=max_new, tps=None, ttft=None,
                      eot=False, checkpoint=str(ckpt))
        t0, last_draw = time.perf_counter(), 0.0
        progress.progress(0.0, text=f"0 / {max_new} tokens")
        for ev in S.stream_tokens(loaded.model, prompt_ids, settings, loaded.device):
            result["events"].append(dict(text=ev.text, prob=ev.prob, top=ev.top, eot=ev.eot,
                                         id=ev.token_id))
            result["text"] += ev.text
            result["eot"] = ev.eot and stop_eot
            result["ttft"] = result["ttft"] if result["ttft"] is not None else ev.elapsed_s
            elapsed = time.perf_counter() - t0
            result["tps"] = len(result["events"]) / elapsed if elapsed > 0 else None
            if elapsed - last_draw > 0.05:  # redraw at most 20 times a second
                last_draw = elapsed
                progress.progress(len(result["events"]) / max_new,
                                  text=f"{len(result['events'])} / {max_new} tokens")
                with stats.container():
                    a, b, c = st.columns(3)
                    a.metric("Tokens", len(result["events"]))
                    b.metric("Tokens/s", f"{result['tps']:.1f}" if result["tps"] else "-")
                    c.metric("Time to first token", f"{result['ttft'] * 1000:.0f} ms")
                text_box.text(prompt + result["text"])
        st.session_state.pg_result = result
    result = st.session_state.get("pg_result")
    if result:
        _show(result, progress, stats, text_box, tokens_box)
    else:
        st.caption("Set the prompt and the controls, then press **Generate**.")

with next_tab:
    k = st.slider("Tokens shown", 3, 30, 10, key="pg_nt_k")
    logits = S.next_token_logits(loaded.model, prompt_ids, loaded.device)
    rows = S.temperature_table(logits, temperature, k)
    here, base = S.next_token(logits, temperature, 1), S.next_token(logits, 1.0, 1)
    a, b, c = st.columns(3)
    a.metric(f"Entropy at T = {temperature:g}", f"{here.entropy_bits:.2f} bits")
    b.metric("Entropy at T = 1", f"{base.entropy_bits:.2f} bits")
    c.metric("Most likely next token", S.readable_token(here.top[0][1]),
             f"{here.top[0][2]:.2%}", delta_color="off", delta_arrow="off")
    labels = [f"{r['rank']}. {r['token']}" for r in rows]
    fig = go.Figure()
    fig.add_bar(y=labels, x=[r["p"] for r in rows], orientation="h", name=f"T = {temperature:g}",
                hovertemplate="%{y}: %{x:.2%}<extra>T = " + f"{temperature:g}</extra>")
    if abs(temperature - 1.0) > 1e-9:
        fig.add_bar(y=labels, x=[r["p_at_1"] for r in rows], orientation="h", name="T = 1",
                    marker_color="rgba(150,150,150,0.6)",
                    hovertemplate="%{y}: %{x:.2%}<extra>T = 1</extra>")
    fig.update_layout(barmode="group", height=max(280, 28 * len(rows) + 80),
                      margin=dict(l=10, r=10, t=30, b=10), xaxis_tickformat=".3~%",
                      xaxis_title="probability", yaxis_autorange="reversed",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    left, right = st.columns([3, 2])
    left.plotly_chart(fig, key="pg_nt_chart")
    table = pd.DataFrame([{"token": r["token"], "id": r["id"], f"p (T={temperature:g})": r["p"],
                           "p (T=1)": r["p_at_1"]} for r in rows])
    right.dataframe(table, hide_index=True, column_config={
        f"p (T={temperature:g})": st.column_config.NumberColumn(format="percent"),
        "p (T=1)": st.column_config.NumberColumn(format="percent"),
    })
    st.caption("Temperature divides the logits before the softmax: below 1 the likely tokens "
               "gain probability and the entropy falls; above 1 the distribution flattens. "
               "␣ is a space, ↵ a newline.")
