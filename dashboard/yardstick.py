"""A yardstick for val loss on tiny shakespeare: what samples look like at a given val loss, from
measured runs, shown beside the Live page's samples so a number means something.

Each row names the run it was measured on. Val loss here is the engine's (nats per token on the
last 10% of the text); on other data the figures do not carry over, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mark:
    val_loss: float
    looks_like: str
    measured: str  # the run and where its figures are recorded


MARKS = (
    Mark(
        10.8,
        "random tokens from the whole GPT-2 vocabulary: ln 50,257 = 10.8 is the loss of a "
        "uniform guess",
        "any run at step 0",
    ),
    Mark(
        6.93,
        "newlines, punctuation and short common words with bits of names: 'COR IID to and, / "
        "S; have we:'",
        "nano, step 50 (its sample, run here 2026-12-03)",
    ),
    Mark(
        6.57,
        "real words strung without grammar: 'my the a life their I be is be the the- will.'",
        "nano, step 100 (its sample, run here 2026-12-03)",
    ),
    Mark(
        6.21,
        "phrases of a few words and invented speaker names: 'And him he thy grace to and to "
        "for his king a crown to the this a queen? / LUICHET'",
        "nano, step 200 (its sample, run here 2026-12-03)",
    ),
    Mark(
        5.93,
        "short lines, some words in order: 'That would have, aer, now. / LKEIO in in that you "
        "to be this the life of'",
        "nano, step 300, its end (run here 2026-12-03; README: 5.92)",
    ),
    Mark(
        5.30,
        "the play's form: 'ROMEO: / And I have your man, / I'll be a world.'",
        "micro, 10 minutes (README: Quality against time)",
    ),
    Mark(
        5.14,
        "speaker names with a colon, lines of verse, real words and names made of real "
        "ones' pieces; no sense yet",
        "mini, 15 minutes (README: Quality against time)",
    ),
)


def applies(data: str) -> bool:
    """Whether the marks were measured on this data setting (tiny shakespeare only)."""
    return data == "tinyshakespeare"


def place(val_loss: float | None) -> str:
    """Where a val loss sits among the marks, in one sentence."""
    if val_loss is None:
        return "No val loss yet: the first eval places this run on the yardstick."
    below = [m for m in MARKS if m.val_loss >= val_loss]
    above = [m for m in MARKS if m.val_loss < val_loss]
    if not above:
        return f"Val loss {val_loss:.2f} is below every measured mark: past {MARKS[-1].measured}."
    if not below:
        return f"Val loss {val_loss:.2f}: still at the start."
    near = min(MARKS, key=lambda m: abs(m.val_loss - val_loss))
    return f"Val loss {val_loss:.2f} is nearest {near.val_loss:.2f}: {near.looks_like}."
