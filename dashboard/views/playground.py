"""Playground: generate from any checkpoint, streamed, with every token clickable for its
probability and alternatives; the next-token choice up close; spans copied from the training
text; and the same prompt across checkpoints (time travel)."""

import time

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.generate import sampling
from core.store.rundir import list_run_dirs
from dashboard import playground_settings
from dashboard import state as app_state
from dashboard import token_view as tv
from dashboard.checkpoint_picker import cached_model, model_line, pick_header
from dashboard.playground_ask import Ask, controls, copies_of, event_dict, prompt_tokens
from dashboard.playground_compare import compare_view
from dashboard.training_text import continuation_report, corpus_index


def header():
    """The run, weights, device and precision pickers, the model's line and the link to
    Inspect; returns (what was picked, the loaded model), or stops before the first
    checkpoint."""
    picked = pick_header("pg", [3, 2, 1, 1], dtype=True)
    run, choice = picked.run, picked.choice
    if choice is None:
        st.info(
            f"Run **{run.run_id}** has no checkpoint yet ({run.effective_state()}). The first "
            "one is written after `checkpoint_interval` steps; come back then."
        )
        st.stop()
    loaded = cached_model(choice.path, picked.device, picked.dtype)
    model_line(
        picked,
        "pg",
        f"{choice.path.name}: step {loaded.step:,} · {loaded.model.num_params():,} "
        f"parameters · context {loaded.model.config.block_size:,} tokens · {loaded.device}, "
        f"{loaded.dtype}",
        (
            "Inspect this checkpoint",
            "views/inspect.py",
            "Token surprise, logit lens and attention of this run and checkpoint",
        ),
    )
    return picked, loaded


def read_ask() -> Ask:
    """The header, the prompt and the controls, as one request."""
    picked, loaded = header()
    if "pg_prompt" not in st.session_state:
        st.session_state.pg_prompt = loaded.config.sample_prompt or "ROMEO:"
    prompt = st.text_area(
        "Prompt", key="pg_prompt", height=100, help="Type <|endoftext|> to start from nothing"
    )
    settings, colour, copies, min_len = controls()
    # A bad prompt is an error beside it; the last result stays below.
    prompt_ids, dropped_text = prompt_tokens(prompt, loaded.model.config.block_size)
    return Ask(picked, loaded, prompt, prompt_ids, dropped_text, settings, colour, copies, min_len)


# --- Generate --------------------------------------------------------------------------------


def _token_view(ask: Ask, result: dict, report=None) -> str:
    cells = tv.generated_cells(result["events"], ask.colour, report.notes if report else None)
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


def _show(ask: Ask, result: dict, progress, stats, view_box) -> None:
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
        report = copies_of(ask, result["events"])
        if (ask.colour or ask.copies) and result["events"]:
            st.html(tv.legend("prob" if ask.colour else "plain", copies=report is not None))
            st.html(_token_view(ask, result, report))
        else:
            st.text(result["prompt"] + result["text"])
        if report is not None:
            st.markdown(f"**{report.summary}**")
            if report.rows:
                st.dataframe(pd.DataFrame(report.rows), hide_index=True, key="pg_copy_table")


def _cancel() -> None:
    st.session_state.pg_cancelled = True


def _generate(ask: Ask, progress, stats, view_box, cancel_box, scroll_box) -> None:
    """Stream tokens into the page. The result is kept in the session as it grows, so a Cancel
    (which reruns the page and so ends this run at its next redraw) keeps the text so far."""
    st.session_state.pg_cancelled = False
    max_new = ask.settings.max_new_tokens
    result = dict(
        prompt=ask.prompt,
        dropped_text=ask.dropped_text,
        text="",
        events=[],
        asked=max_new,
        tps=None,
        ttft=None,
        eot=False,
        checkpoint=str(ask.picked.choice.path),
        done=False,
    )
    st.session_state.pg_result = result
    cancel_box.button("Cancel", key="pg_cancel", on_click=_cancel)
    t0, last_draw, scrolled = time.perf_counter(), 0.0, False
    progress.progress(0.0, text=f"0 / {max_new} tokens")
    model = ask.loaded
    for ev in sampling.stream_tokens(model.model, ask.prompt_ids, ask.settings, model.device):
        result["events"].append(event_dict(ev))
        result["text"] += ev.text
        result["eot"] = ev.eot and ask.settings.stop_at_eot
        result["ttft"] = result["ttft"] if result["ttft"] is not None else ev.elapsed_s
        elapsed = time.perf_counter() - t0
        result["tps"] = len(result["events"]) / elapsed if elapsed > 0 else None
        if elapsed - last_draw > 0.05:  # redraw at most 20 times a second
            last_draw = elapsed
            n = len(result["events"])
            progress.progress(n / max_new, text=f"{n} / {max_new} tokens")
            _stats(stats, result)
            if ask.colour:
                view_box.html(_token_view(ask, result))
            else:
                view_box.text(ask.prompt + result["text"])
            scrolled = scrolled or scroll_to(scroll_box)  # the page is long enough now
    result["done"] = True
    cancel_box.empty()
    scroll_to(scroll_box)  # the whole text, in view


def busy_note(box, ask: Ask) -> None:
    """Beside Generate: a run training on this machine takes most of the CPU."""
    runs = list_run_dirs(app_state.runs_dir())
    training = [r.run_id for r in runs if r.effective_state() == "running"]
    if training and str(ask.loaded.device).startswith("cpu"):
        box.caption(
            f"⏳ {training[0]} is training on this machine: generating here is much slower "
            "until it ends (25-30 times on a 2-core CPU: 4-6 tokens/s instead of 120-150)."
        )


def scroll_to(box) -> bool:
    """Bring the generated text into view (below the fold on a laptop screen) with a script in
    box; the time in it makes each one new, so the browser runs it again. Returns True."""
    box.html(
        "<script>document.querySelector('.st-key-pg_result_box')"
        f"?.scrollIntoView({{behavior: 'smooth', block: 'start'}}); // {time.time()}</script>",
        unsafe_allow_javascript=True,
    )
    return True


def generate_tab(ask: Ask) -> None:
    b1, b2 = st.columns([1, 6])
    disabled = ask.prompt_ids is None
    clicked = b1.button("Generate", key="pg_generate", type="primary", disabled=disabled)
    cancel_box = b2.empty()
    busy_note(cancel_box, ask)
    with st.container(key="pg_result_box"):  # scrolled into view on Generate
        progress, stats, view_box = st.empty(), st.empty(), st.empty()
    scroll_box = st.empty()
    previous = st.session_state.get("pg_result")
    if previous and not previous.get("done"):  # a rerun ended the last generation early
        previous["done"] = True
        previous["cancelled"] = "button" if st.session_state.get("pg_cancelled") else "rerun"
    if clicked and not disabled:
        _generate(ask, progress, stats, view_box, cancel_box, scroll_box)
    result = st.session_state.get("pg_result")
    if result:
        _show(ask, result, progress, stats, view_box)
    else:
        st.caption("Set the prompt and the controls, then press **Generate**.")


# --- Next token ------------------------------------------------------------------------------


def _append(text: str) -> None:
    st.session_state.pg_prompt = st.session_state.pg_prompt + text


def _next_token_chart(rows: list[dict], log_axis: bool, temperature: float) -> go.Figure:
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
        ticks, labels = tv.decade_ticks([r["p"] for r in rows] + [r["p_sampled"] for r in rows])
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=labels)
    else:
        fig.update_xaxes(tickformat=".3~%")
    return fig


def _next_token_metrics(logits, sampled, temperature: float):
    """Entropy here and at T = 1, the most likely token, how many tokens sampling keeps;
    returns the distribution at this temperature."""
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


def _next_token_table(rows: list[dict], temperature: float) -> pd.DataFrame:
    return pd.DataFrame(
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


def _next_token_view(ask: Ask) -> None:
    k = st.slider("Tokens shown", 3, 30, key="pg_nt_k")
    log_axis = st.checkbox("Log scale (small probabilities stay visible)", key="pg_nt_log")
    s, model = ask.settings, ask.loaded
    temperature, top_k, top_p = s.temperature, s.top_k, s.top_p
    logits = sampling.next_token_logits(model.model, ask.prompt_ids, model.device)
    rows = sampling.temperature_table(logits, temperature, k)
    sampled = sampling.probabilities(logits, temperature, 1 if s.greedy else top_k, top_p)
    for r in rows:
        r["p_sampled"] = float(sampled[r["id"]])
    _next_token_metrics(logits, sampled, temperature)
    left, right = st.columns([3, 2])
    left.plotly_chart(_next_token_chart(rows, log_axis, temperature), key="pg_nt_chart")
    right.dataframe(_next_token_table(rows, temperature), hide_index=True, key="pg_nt_table")
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
    _training_continuation(ask, k)


def _training_continuation(ask: Ask, k: int) -> None:
    st.markdown("**What the training text continues with**")
    index, problem = corpus_index(ask.loaded.config)
    if index is None:
        st.warning(problem)
        return
    report = continuation_report(index, ask.prompt_ids, k)
    st.write(report.line)
    if report.rows:
        st.dataframe(
            pd.DataFrame([{**r, "share": tv.fmt_prob(r["share"])} for r in report.rows]),
            hide_index=True,
            key="pg_nt_corpus",
        )


def main() -> None:
    st.title("Playground")
    playground_settings.restore()  # the settings as the user left them (or as the URL says)
    ask = read_ask()
    gen_tab, next_tab, compare_tab = st.tabs(["Generate", "Next token", "Compare checkpoints"])
    with gen_tab:
        generate_tab(ask)
    with next_tab:
        if ask.prompt_ids is None:
            st.info("Fix the prompt above to see the next-token distribution.")
        else:
            _next_token_view(ask)
    with compare_tab:
        compare_view(ask)
    playground_settings.save(ask.picked.run.run_id)


main()
