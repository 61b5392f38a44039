"""GPT-2's tokenizer files for a Hugging Face folder, written from the local tiktoken data.

`transformers.AutoTokenizer.from_pretrained(folder)` needs vocab.json and merges.txt (the
format of OpenAI's GPT-2 release). tiktoken keeps the same tokenizer as ranks of byte strings
(rank = token id), so both files follow from it without the network: the vocabulary maps each
token's bytes through GPT-2's printable byte alphabet (`bytes_to_unicode`, from OpenAI's
encoder.py), and each merge is the pair that byte-pair encoding, stopped just below the
token's own rank, leaves of it.
"""

from __future__ import annotations

import functools
import json

EOT = "<|endoftext|>"


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map of the 256 byte values to printable characters (OpenAI's encoder.py): bytes
    that are printable stay themselves, the rest move to code points from 256 up."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _as_text(token: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def _split(ranks: dict[bytes, int], token: bytes, below: int) -> list[bytes]:
    """Byte-pair encode token using only merges ranked below `below` (the lowest first)."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        pairs = [(ranks.get(a + b, below), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        rank, i = min(pairs)
        if rank >= below:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


@functools.cache
def gpt2_files() -> dict[str, str]:
    """{file name: text} of GPT-2's tokenizer for a Hugging Face folder: vocab.json,
    merges.txt, tokenizer_config.json and special_tokens_map.json."""
    from core.data.dataset import get_tokenizer

    enc = get_tokenizer()
    ranks: dict[bytes, int] = enc._mergeable_ranks  # tiktoken's own table: bytes -> token id
    vocab = {_as_text(token): rank for token, rank in ranks.items()}
    vocab[EOT] = enc.eot_token
    merges = ["#version: 0.2"]
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue  # the 256 single bytes are the alphabet, not merges
        left, right = _split(ranks, token, rank)
        merges.append(f"{_as_text(left)} {_as_text(right)}")
    special = {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT}
    config = {**special, "tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False}
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "\n".join(merges) + "\n",
        "tokenizer_config.json": json.dumps({**config, "model_max_length": 1024}, indent=2),
        "special_tokens_map.json": json.dumps(special, indent=2),
    }


def files_for(block_size: int) -> dict[str, str]:
    """gpt2_files with the model's context length as the tokenizer's model_max_length."""
    files = dict(gpt2_files())
    config = json.loads(files["tokenizer_config.json"])
    files["tokenizer_config.json"] = json.dumps(
        {**config, "model_max_length": block_size}, indent=2
    )
    return files
