"""The reference losses a run's val loss is judged against, and val loss in bits per character.

Two kinds: n-gram models of the run's own training split measured on its val split
(core.data.ngram), and, where the data is tiny shakespeare, figures published on the same text:

- nanoGPT's character-level model (karpathy/nanoGPT, `config/train_shakespeare_char.py`): val
  1.4697 nats per character on the last 10% of the characters; that text holds 3.093 characters
  per GPT-2 token, so about 4.55 nats per GPT-2 token.
- GPT-2 124M as released, without any fine-tuning: val 4.03 nats per token on nanoGPT's
  shakespeare split (karpathy/nanoGPT issue 210).

Bits per character divide the loss by the characters each token holds, so they do not depend on
the tokenizer (nanochat reports bits per byte for the same reason); the characters are counted
in the val split's own text.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass

import numpy as np

from core import atomic
from core.config import cache_dir

NANOGPT_CHAR_VAL = 1.4697  # nats per character, nanoGPT shakespeare_char
NANOGPT_CHARS_PER_TOKEN = 3.093  # characters per GPT-2 token in nanoGPT's val text
GPT2_UNTUNED_VAL = 4.03  # nats per GPT-2 token, nanoGPT issue 210
# data_key (the text's sha256, 32 hex digits) of karpathy/char-rnn's tinyshakespeare input.txt:
# a local copy of the file gets the published figures too.
TINYSHAKESPEARE_KEY = "86c4e6aa9db7c042ec79f339dcb96d42"
NGRAM_SOURCE = "counted on this run's training split, interpolated Kneser-Ney"


@dataclass(frozen=True)
class Reference:
    """One reference line: a short label, its loss in nats per GPT-2 token, where it is from."""

    name: str
    loss: float
    source: str


@dataclass(frozen=True)
class Baselines:
    """The references of one data set and val split, and the split's size in tokens and
    characters (for bits per character)."""

    references: tuple[Reference, ...]
    val_tokens: int
    val_chars: int
    published: bool  # the data is tiny shakespeare: the published figures are included

    @property
    def chars_per_token(self) -> float:
        return self.val_chars / self.val_tokens if self.val_tokens else float("nan")

    def bits_per_char(self, loss: float) -> float:
        """A val loss in nats per token as bits per character of the val split's text."""
        return bits_per_char(loss, self.val_tokens, self.val_chars)

    def split_note(self) -> str:
        """Where our val split differs from nanoGPT's, and by how much it moves the comparison
        (empty for data that is not tiny shakespeare)."""
        if not self.published:
            return ""
        ours = NANOGPT_CHAR_VAL * self.chars_per_token
        return (
            f"nanoGPT holds out the last 10% of the characters; this run holds out the last "
            f"{self.val_tokens:,} GPT-2 tokens ({self.val_chars:,} characters, "
            f"{self.chars_per_token:.3f} per token against 3.093 there). At this split's ratio "
            f"nanoGPT's 1.4697 nats per character is {ours:.3f} nats per token, "
            f"{ours - NANOGPT_CHAR_VAL * NANOGPT_CHARS_PER_TOKEN:+.3f} from the 4.55 drawn: "
            f"compare in bits per character ({NANOGPT_CHAR_VAL / math.log(2):.3f} for nanoGPT) "
            "where the difference matters."
        )


def bits_per_char(loss: float, tokens: int, chars: int) -> float:
    """A loss in nats per token over `tokens` tokens as bits per character of their `chars`
    characters."""
    return loss * tokens / chars / math.log(2) if chars else float("nan")


@functools.lru_cache(maxsize=64)
def cached_val_size(data: str, val_fraction: float) -> tuple[int, int]:
    """val_size, remembered for this process (tables ask for it on every refresh)."""
    return val_size(data, val_fraction)


def published_references() -> list[Reference]:
    return [
        Reference(
            "nanoGPT char-level",
            NANOGPT_CHAR_VAL * NANOGPT_CHARS_PER_TOKEN,
            "nanoGPT shakespeare_char: val 1.4697 nats/char x 3.093 chars per GPT-2 token",
        ),
        Reference("GPT-2 124M, no fine-tuning", GPT2_UNTUNED_VAL, "nanoGPT issue 210: val 4.03"),
    ]


def val_size(data: str, val_fraction: float) -> tuple[int, int]:
    """(tokens, characters) of a data set's val split; characters are counted in the decoded
    text (UTF-8 lead bytes, so a character split over two tokens counts once). Cached."""
    from core.data.corpus import data_key, source_files
    from core.data.dataset import get_tokenizer, load_tokens, split

    key = data_key(source_files(data))
    path = cache_dir() / "ngram" / f"gpt2-{key}-val{val_fraction:g}-size.json"
    try:
        tokens, chars = json.loads(path.read_text())
        return int(tokens), int(chars)
    except (OSError, ValueError, TypeError):
        pass
    _, val = split(load_tokens(data), val_fraction)
    raw = np.frombuffer(get_tokenizer().decode_bytes(val.tolist()), dtype=np.uint8)
    size = (len(val), int(np.count_nonzero(raw & 0xC0 != 0x80)))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(size))
    return size


def is_tinyshakespeare(data: str) -> bool:
    from core.data.corpus import data_key, source_files

    return data == "tinyshakespeare" or data_key(source_files(data)) == TINYSHAKESPEARE_KEY


def load_baselines(data: str, val_fraction: float) -> Baselines:
    """Every reference for a data set: its n-gram baselines (built once and cached, seconds)
    and, on tiny shakespeare, the published figures. Raises DataError when the data is gone."""
    from core.data.ngram import baseline_losses

    refs = [
        Reference(f"{name} model", loss, NGRAM_SOURCE)
        for name, loss in baseline_losses(data, val_fraction).items()
    ]
    published = is_tinyshakespeare(data)
    if published:
        refs += published_references()
    tokens, chars = val_size(data, val_fraction)
    return Baselines(tuple(refs), tokens, chars, published)
