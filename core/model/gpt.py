"""GPT-2: a decoder-only transformer, read top to bottom (after nanoGPT's model.py).

Pure math: no I/O, no printing; everything arrives through ModelConfig. Parameter names follow
GPT-2's checkpoints (wte, wpe, c_attn, c_proj, c_fc, ln_1, ln_2, ln_f, lm_head).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.model.fused_loss import linear_cross_entropy


@dataclass(frozen=True)
class ModelConfig:
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    vocab_size: int = 50304
    dropout: float = 0.0  # nanoGPT's: on embeddings, attention weights and residual branches

    @classmethod
    def of(cls, cfg) -> ModelConfig:
        """The model part of any config object with the same field names (TrainConfig, a dict);
        a field it lacks keeps its default."""
        get = cfg.get if isinstance(cfg, dict) else lambda k: getattr(cfg, k, None)
        values = {k: get(k) for k in cls.__dataclass_fields__}
        return cls(**{k: type(getattr(cls, k))(v) for k, v in values.items() if v is not None})


class KVCache:
    """Keys and values of every layer for the positions seen so far, for one-token decoding."""

    def __init__(self, config: ModelConfig, batch: int, device, dtype):
        shape = (batch, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0  # positions filled

    def reset(self) -> None:
        self.length = 0


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.c_proj.RESIDUAL_SCALE = True  # see GPT._init_weights
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # (B, nh, T, hs)
        if cache is None or cache.length == 0:
            if cache is not None:  # prefill: remember this prefix for the next tokens
                cache.k[layer][:, :, :T] = k
                cache.v[layer][:, :, :T] = v
            # Flash attention where the device has it: never materialises the (T, T) matrix.
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            start = cache.length
            cache.k[layer][:, :, start : start + T] = k
            cache.v[layer][:, :, start : start + T] = v
            k_all = cache.k[layer][:, :, : start + T]
            v_all = cache.v[layer][:, :, : start + T]
            # New query i sees every cached position and new positions up to itself.
            mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2 used the tanh approximation
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.c_proj.RESIDUAL_SCALE = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm block: the residual stream stays clean of normalisation (GPT-2, sec. 2.3)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0):
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: ModelConfig, fused_loss: bool = False):
        super().__init__()
        self.config = config
        # With targets, compute the loss without logits: same value and gradients, faster on a
        # CPU, less memory (see core/model/fused_loss.py); forward then returns (None, loss).
        self.fused_loss = fused_loss
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                ln_f=nn.LayerNorm(config.n_embd),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017): the output projection is the token embedding.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "RESIDUAL_SCALE", False):
                # Each block adds twice to the residual stream; scale so its variance stays put.
                std *= (2 * self.config.n_layer) ** -0.5
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        """Logits (B, T, vocab) and, with targets, the mean cross-entropy loss.

        With a cache, idx holds only the new tokens; their positions continue after cache.length.
        With targets and self.fused_loss, the logits are never formed and come back as None.
        """
        B, T = idx.size()
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(
                f"sequence of {start + T} tokens is longer than the context of "
                f"{self.config.block_size}; crop it from the left"
            )
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(
            self.transformer.wte(idx) + self.transformer.wpe(pos)
        )  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)
        x = self.transformer.ln_f(x)
        if cache is not None:
            cache.length = start + T
        if targets is not None and self.fused_loss:
            return None, linear_cross_entropy(x, self.lm_head.weight, targets)
        logits = self.lm_head(x)  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))
        return logits, loss

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, counting the tied embedding once; optionally without position embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n


def flops_per_token(config: ModelConfig, seq_len: int, n_params: int) -> int:
    """Training FLOPs per token: 6N for the matmuls forward and backward (Kaplan et al. 2020),
    plus 12 * L * H * Q * T for attention scores and values (PaLM, appendix B)."""
    L, H, Q = config.n_layer, config.n_head, config.n_embd // config.n_head
    return 6 * n_params + 12 * L * H * Q * seq_len
