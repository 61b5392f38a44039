"""Text as clickable tokens: each token a coloured box that opens a popover on click (pure HTML
and CSS for st.html: a focusable span shows its popover while it has the focus, no script). The
popover lets clicks through, so clicking the token under an open popover moves to that token.

Shared by the Playground (generated tokens coloured by probability, copied spans marked) and the
Inspect page (tokens coloured by surprise in bits, or by the change in bits between two
checkpoints). A newline token shows as a visible '↵' box followed by a real line break, so it has
a size and can be clicked like any other token.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

LN2 = math.log(2)
MAX_BITS = 10.0  # surprise colour scale: 0 bits green ... this many bits (p ~ 0.1%) red
MAX_DELTA_BITS = 4.0  # difference colour scale: 16x easier (blue) ... 16x harder (red)
COPY_COLOUR, HELD_OUT_COLOUR = "#e67e00", "#1f77b4"
NEUTRAL = "#eceff3"

CSS = f"""<style>
.tv{{white-space:pre-wrap;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;
  line-height:1.95;font-size:0.92rem;padding-bottom:0.2rem;overflow-wrap:anywhere}}
.tv .pr{{color:#777}}
.tv .dropped{{color:#aaa;text-decoration:line-through}}
.tv .t{{position:relative;border-radius:3px;color:#111;cursor:pointer;
  box-shadow:inset -1px 0 0 rgba(0,0,0,0.22);padding:1px 0}}
.tv .t:focus{{outline:2px solid #333;outline-offset:0}}
.tv .g{{color:#666;padding:0 2px}}
.tv .copy{{border-bottom:3px solid {COPY_COLOUR}}}
.tv .held{{border-bottom:3px dotted {HELD_OUT_COLOUR}}}
.tv .pop{{display:none;position:absolute;left:0;top:1.75em;z-index:1000;width:max-content;
  min-width:15rem;max-width:30rem;background:#fff;color:#111;border:1px solid #b8bec7;
  border-radius:6px;box-shadow:0 4px 16px rgba(0,0,0,0.2);padding:0.45rem 0.6rem;
  white-space:normal;font-size:0.78rem;line-height:1.35;pointer-events:none;
  font-family:ui-sans-serif,system-ui,sans-serif}}
.tv .t:focus .pop,.tv .t:focus-within .pop{{display:block}}
.tv .pop table{{border-collapse:collapse;margin-top:0.3rem;width:100%}}
.tv .pop td,.tv .pop th{{padding:1px 6px 1px 0;text-align:left;border:none;font-size:0.76rem}}
.tv .pop th{{color:#666;font-weight:600}}
.tv .pop td.n{{text-align:right;font-variant-numeric:tabular-nums}}
.tv .pop tr.me td{{font-weight:700}}
.tv .pop code{{font-family:ui-monospace,monospace;background:#f1f3f6;padding:0 3px;
  border-radius:3px;white-space:pre}}
.tv .pop pre{{margin:0.3rem 0 0;padding:0.3rem;background:#faf6ee;border-left:3px solid
  {COPY_COLOUR};font-size:0.74rem;white-space:pre-wrap}}
.tv .pop .src{{margin-top:0.35rem}}
.tvl{{font-family:ui-sans-serif,system-ui,sans-serif;font-size:0.8rem;color:#444;
  display:flex;flex-wrap:wrap;gap:0.4rem 1.2rem;align-items:center;margin:0.2rem 0 0.4rem}}
.tvl .bar{{display:inline-block;width:9rem;height:0.8rem;border-radius:3px;
  vertical-align:middle;margin:0 0.3rem}}
.tvl .sw{{display:inline-block;width:1.6rem;height:0.9rem;vertical-align:middle;
  margin-right:0.3rem;background:{NEUTRAL}}}
</style>"""


@dataclass(frozen=True)
class Cell:
    """One token to show: its text, its background colour, the popover's HTML (already escaped)
    and an optional mark class ('copy': copied from the training text, 'held': found only in the
    held-out text)."""

    text: str
    colour: str
    popover: str
    mark: str = ""


# --- colours -------------------------------------------------------------------------------------


def prob_colour(p: float) -> str:
    """Red (unlikely) through yellow to green (likely), pale enough to read text on."""
    p = min(max(float(p), 0.0), 1.0)
    return f"hsl({int(120 * p)}, 75%, 82%)"


def bits_colour(bits: float | None) -> str:
    """Green (0 bits: no surprise) through yellow to red (MAX_BITS or more); grey when unscored."""
    if bits is None or not math.isfinite(bits):
        return NEUTRAL
    return prob_colour(1 - min(max(bits, 0.0), MAX_BITS) / MAX_BITS)


def delta_colour(delta: float | None) -> str:
    """Blue where a token became easier (fewer bits), red where harder, white where unchanged."""
    if delta is None or not math.isfinite(delta):
        return NEUTRAL
    strength = min(abs(delta), MAX_DELTA_BITS) / MAX_DELTA_BITS
    hue = 210 if delta < 0 else 0
    return f"hsl({hue}, 80%, {int(97 - 30 * strength)}%)"


# --- text pieces ---------------------------------------------------------------------------------


def visible(text: str) -> str:
    """A token's text as shown inside its box: newlines become '↵' (the line break follows the
    box), a tab '⇥', a carriage return '⏎'; an empty token '∅'."""
    if not text:
        return "∅"
    return text.replace("\r", "⏎").replace("\n", "↵").replace("\t", "⇥")


def readable(text: str) -> str:
    """A token's text for a table: spaces as '␣' as well, so ' the' and 'the' read apart."""
    return visible(text).replace(" ", "␣")


def _token_box(cell: Cell) -> str:
    text = cell.text
    shown = html.escape(visible(text))
    glyphs = "\n" in text or "\r" in text or "\t" in text
    if glyphs:  # the whitespace glyphs lighter than real text, so the text still reads
        shown = "".join(
            f'<span class="g">{html.escape(c)}</span>' if c in "↵⏎⇥" else html.escape(c)
            for c in visible(text)
        )
    classes = "t" + (f" {cell.mark}" if cell.mark else "")
    box = (
        f'<span class="{classes}" tabindex="0" style="background:{cell.colour}">{shown}'
        f'<span class="pop">{cell.popover}</span></span>'
    )
    return box + "\n" * text.count("\n")  # the real line breaks, after the box


def render(cells: list[Cell], before: str = "", after: str = "") -> str:
    """The tokens as one block of HTML for st.html; `before` and `after` are HTML (escaped by
    the caller) shown in the same text flow, e.g. the prompt in grey."""
    body = "".join(_token_box(c) for c in cells)
    return f'{CSS}<div class="tv">{before}{body}{after}</div>'


def prompt_html(seen: str, dropped: str = "") -> str:
    """The prompt in grey; the part the model did not see (cut to fit its context) struck out."""
    out = ""
    if dropped:
        out += (
            f'<span class="dropped" title="cut: the model did not see this">'
            f"{html.escape(dropped)}</span>"
        )
    return out + f'<span class="pr">{html.escape(seen)}</span>'


def fmt_prob(p: float) -> str:
    """A probability readable at every size: 42.1%, 0.31%, 0.0042%, 3.1e-09."""
    if p >= 0.1:
        return f"{p:.1%}"
    if p >= 1e-4:
        return f"{p:.2%}" if p >= 0.01 else f"{p:.3%}"
    return f"{p:.1e}"


def cell_chars(columns: int) -> int:
    """Characters a chart cell's label may have when columns cells share the chart's width
    (~900 px at 10-11 px a character)."""
    return max(2, 80 // max(columns, 1))


def clip(text: str, width: int) -> str:
    """text cut to width characters, the cut marked with '…' (whole hover text elsewhere)."""
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def decade_ticks(values) -> tuple[list[float], list[str]]:
    """Tick positions and labels for a log probability axis over values: one per power of ten
    from the smallest positive value up to 1, labelled readably (0.01%, 0.1%, 1%, 10%, 100%;
    1e-05 below), never the "0%" a percent format gives a small probability."""
    positive = [float(v) for v in values if v and v > 0]
    low = math.floor(math.log10(min(positive))) if positive else -4
    powers = list(range(low, 1))
    step = max(1, math.ceil(len(powers) / 8))  # at most ~8 labels
    ticks = [10.0**k for k in powers[::-1][::step][::-1]]
    return ticks, [f"{v * 100:g}%" if v >= 1e-4 else f"{v:.0e}" for v in ticks]


def _logp(p: float) -> str:
    if p <= 0:
        return "-∞"
    text = f"{math.log(p):.2f}"
    return "0.00" if text == "-0.00" else text


def alternatives_table(rows, chosen: str | None = None) -> str:
    """HTML table of (token text, probability) rows with log-probabilities; the chosen token's
    row in bold."""
    body = "".join(
        f"<tr{' class=me' if text == chosen else ''}><td><code>{html.escape(readable(text))}"
        f'</code></td><td class="n">{fmt_prob(p)}</td><td class="n">{_logp(p)}</td></tr>'
        for text, p in rows
    )
    return f"<table><tr><th>top alternatives</th><th>p</th><th>log p</th></tr>{body}</table>"


def _head(text: str, p: float | None, extra: str = "") -> str:
    token = f"<code>{html.escape(readable(text))}</code>"
    if p is None:
        return f"<div>{token}{extra}</div>"
    bits = -math.log2(p) if p > 0 else float("inf")
    return (
        f"<div>{token} &nbsp;p = <b>{fmt_prob(p)}</b> · log p = {_logp(p)} "
        f"({bits:.2f} bits){extra}</div>"
    )


# --- legends -------------------------------------------------------------------------------------


def _gradient(colours: list[str]) -> str:
    return (
        f'<span class="bar" style="background:linear-gradient(90deg,{",".join(colours)})"></span>'
    )


def legend(kind: str, copies: bool = False) -> str:
    """The colour legend of a token view: kind 'prob', 'bits', 'delta' or 'plain'; with copies,
    the marks of copied spans too."""
    parts = []
    if kind == "prob":
        parts.append("probability 0%" + _gradient([prob_colour(x / 4) for x in range(5)]) + "100%")
    elif kind == "bits":
        parts.append(
            "surprise 0 bits"
            + _gradient([bits_colour(MAX_BITS * x / 4) for x in range(5)])
            + f"≥ {MAX_BITS:g} bits"
        )
    elif kind == "delta":
        parts.append(
            f"easier by {MAX_DELTA_BITS:g} bits"
            + _gradient([delta_colour(d) for d in (-MAX_DELTA_BITS, -2, 0, 2, MAX_DELTA_BITS)])
            + f"harder by {MAX_DELTA_BITS:g} bits"
        )
    if copies:
        parts.append(
            f'<span><span class="sw" style="border-bottom:3px solid {COPY_COLOUR}">'
            "</span>copied from the training text</span>"
        )
        parts.append(
            f'<span><span class="sw" style="border-bottom:3px dotted '
            f'{HELD_OUT_COLOUR}"></span>also in held-out text (not trained on)</span>'
        )
    parts.append("<span>click a token for details · ↵ is a newline</span>")
    return f'{CSS}<div class="tvl">{"".join(parts)}</div>'


# --- builders for each view ----------------------------------------------------------------------


@dataclass(frozen=True)
class SpanNote:
    """A copied span for the popovers of its tokens: its split and where it comes from."""

    split: str  # 'train' or 'val'
    length: int
    where: str  # "file line a-b, SPEAKER"
    context: str  # the source lines, numbered


def source_html(note: SpanNote) -> str:
    what = (
        "Copied from the training text"
        if note.split == "train"
        else "Also in held-out text (the val split, never trained on)"
    )
    return (
        f'<div class="src"><b>{what}</b>: {note.length} tokens, {html.escape(note.where)}'
        f"<pre>{html.escape(note.context)}</pre></div>"
    )


def generated_cells(
    events: list[dict], colour: bool = True, notes: dict[int, SpanNote] | None = None
) -> list[Cell]:
    """Cells for generated tokens (dicts with text, prob, top [(text, p)], eot), coloured by
    probability; `notes` maps a token's index to the copied span it lies in."""
    notes = notes or {}
    cells = []
    for i, e in enumerate(events):
        text = e["text"] if e["text"] else ("⟨end of text⟩" if e.get("eot") else "")
        if not text:
            continue  # part of a character that a later token completes
        note = notes.get(i)
        pop = _head(text, e["prob"]) + alternatives_table(e["top"], e["text"])
        if note:
            pop = source_html(note) + pop
        mark = "" if note is None else ("copy" if note.split == "train" else "held")
        cells.append(Cell(text, prob_colour(e["prob"]) if colour else NEUTRAL, pop, mark))
    return cells


def surprise_cells(tokens) -> list[Cell]:
    """Cells for core.inspect.surprise TokenSurprise rows, coloured by bits; the popover gives bits,
    probability, the rank of the actual token and the model's top alternatives there."""
    cells = []
    for t in tokens:
        if t.bits is None:
            pop = "<div><i>the first token: nothing before it to predict it from</i></div>"
        else:
            rank = f" · rank {t.rank:,}" if t.rank else ""
            pop = _head(t.text, t.prob, rank) + alternatives_table(
                [(text, p) for _, text, p in t.top], t.text
            )
        cells.append(Cell(t.text, bits_colour(t.bits), pop))
    return cells


def diff_cells(tokens, label_a: str, label_b: str) -> list[Cell]:
    """Cells for core.inspect.surprise TokenDelta rows, coloured by the change in bits from A to B."""
    cells = []
    for t in tokens:
        if t.delta_bits is None:
            pop = "<div><i>the first token is not scored</i></div>"
        else:
            word = "easier" if t.delta_bits < 0 else "harder"
            pop = (
                f"<div><code>{html.escape(readable(t.text))}</code></div>"
                f"<table><tr><td>{html.escape(label_a)}</td><td class=n>{t.bits_a:.2f} bits"
                f"</td></tr><tr><td>{html.escape(label_b)}</td><td class=n>{t.bits_b:.2f} "
                f"bits</td></tr><tr class=me><td>change</td><td class=n>{t.delta_bits:+.2f} "
                f"bits ({word})</td></tr></table>"
            )
        cells.append(Cell(t.text, delta_colour(t.delta_bits), pop))
    return cells
