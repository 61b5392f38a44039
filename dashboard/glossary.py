"""One plain sentence for each term the pages use that a student may not know, with the paper or
tool it comes from: the pages show them as help and captions, so a term means the same
everywhere."""

from __future__ import annotations

MFU = (
    "MFU (model FLOPs utilisation, from Google's PaLM paper, Chowdhery et al. 2022) is the "
    "arithmetic training needs per second (6N + 12·L·H·Q·T FLOPs a token times tokens/s) as a "
    "share of the most the device can do, its peak."
)
NATS_BITS = (
    "A loss in nats uses the natural log (what PyTorch's cross-entropy returns); in bits it "
    "uses log base 2 (1 nat = 1.443 bits), the number of yes/no questions the model still needs "
    "to pin down each token."
)
PERPLEXITY = (
    "Perplexity is e to the loss in nats: the model is as unsure as if it picked evenly among "
    "that many tokens each time (50,257 for an untrained GPT-2, 1 for a perfect one)."
)
LOGIT_LENS = (
    "The logit lens (nostalgebraist, 2020) reads each layer's hidden state through the final "
    "layer norm and output layer as if it were the last, showing what the model would predict "
    "if it stopped at that layer."
)
INDUCTION = (
    "An induction head (Olsson et al., Anthropic 2022) attends to the token that followed an "
    "earlier occurrence of the current token, so the model can repeat a pattern it already saw "
    "in its context."
)
MICRO_BATCH = (
    "A micro batch is the group of sequences that goes through the model in one forward and "
    "backward pass; gradient accumulation adds up several micro batches' gradients before one "
    "optimizer step, so a step can hold more tokens than fit in memory at once."
)


def peak_text(peak_flops: float | None, source: str | None) -> str:
    """'45 GFLOP/s (fp32 matmul measured here ...)': the peak MFU divides by, in words."""
    if not peak_flops:
        return "no peak known for this device, so no MFU"
    value = (
        f"{peak_flops / 1e12:,.1f} TFLOP/s"
        if peak_flops >= 1e12
        else f"{peak_flops / 1e9:,.0f} GFLOP/s"
    )
    return f"{value} ({source})" if source else value
