"""Text to the ids a model reads, and ids back to text a page can show: shared by the
inspection views (surprise, logit lens, attention, batch)."""

from __future__ import annotations

import torch

from core.config import GPT2_VOCAB  # ids at or above it are padding (50304 = 50257 rounded up)


def encode_for_model(text: str, block_size: int, min_tokens: int = 1) -> tuple[list[int], int]:
    """Token ids of text cropped from the left to block_size, and how many were cropped.

    `<|endoftext|>` typed in the text is the end-of-text token (as in the Playground). Raises
    ValueError for empty text or text shorter than min_tokens tokens.
    """
    if not text or not text.strip():
        raise ValueError("text is empty: type or paste some text to inspect")
    ids, cropped = encode_prompt(text, block_size)
    if len(ids) < min_tokens:
        raise ValueError(
            f"text has {len(ids)} token(s); this view needs at least {min_tokens}: "
            "type a longer text"
        )
    return ids, cropped


def token_text(token_id: int) -> str:
    """The text of one token; a character split over several tokens shows as '�' in each."""
    from core.data.dataset import get_tokenizer

    if token_id >= GPT2_VOCAB:
        return f"<pad {token_id}>"
    data = get_tokenizer().decode_single_token_bytes(int(token_id))
    return data.decode("utf-8", errors="replace")


def token_texts(ids) -> list[str]:
    """token_text of each id (a list or a 1-D tensor)."""
    return [token_text(int(i)) for i in ids]


def token_chars(token_id: int) -> int:
    """Characters that start in this token's bytes (UTF-8 lead bytes), so that the counts of a
    sequence's tokens add up to the characters of its text even when a token splits one."""
    from core.data.dataset import get_tokenizer

    if token_id >= GPT2_VOCAB:
        return 0
    data = get_tokenizer().decode_single_token_bytes(int(token_id))
    return sum(1 for b in data if b & 0xC0 != 0x80)


def as_batch(ids, device: str | torch.device = "cpu") -> torch.Tensor:
    """Ids (a list or 1-D tensor) as a (1, T) long tensor on device."""
    return torch.as_tensor(ids, dtype=torch.long).reshape(1, -1).to(device)


def n_real(vocab_size: int) -> int:
    """How many of a model's output ids are real tokens (the rest is padding)."""
    return min(GPT2_VOCAB, vocab_size)


def top_tokens(
    logits: torch.Tensor, k: int, log_norm: torch.Tensor
) -> list[list[tuple[int, str, float]]]:
    """For each row of logits (T, vocab) with its log normaliser (T,) (the logsumexp of the
    distribution the probabilities belong to): the k most likely real tokens as
    (id, text, probability), most likely first; padding ids never appear."""
    if k < 1:
        return [[] for _ in range(logits.size(0))]
    values, order = torch.topk(logits[:, : n_real(logits.size(-1))], k, dim=-1)
    probs = (values.float() - log_norm[:, None]).exp().tolist()
    return [
        [(int(i), token_text(int(i)), p) for i, p in zip(row_ids, row_p)]
        for row_ids, row_p in zip(order.tolist(), probs)
    ]


def encode_prompt(text: str, block_size: int) -> tuple[list[int], int]:
    """Token ids of a prompt, cropped from the left to the context, and how many were dropped.

    `<|endoftext|>` typed in the prompt becomes the end-of-text token, so a person can start
    from nothing explicitly; an empty prompt is refused.
    """
    from core.data.dataset import get_tokenizer

    if not text or not text.strip():
        raise ValueError(
            "prompt is empty: type some text to continue (or <|endoftext|> to start from nothing)"
        )
    ids = get_tokenizer().encode(text, allowed_special={"<|endoftext|>"})
    dropped = max(0, len(ids) - block_size)
    return ids[dropped:], dropped
