"""Parameter counts of a GPT-2 model from its config alone: arithmetic, no torch.

Pages that list runs show each run's size; importing the model (and with it torch, seconds on a
small machine) just to count its parameters would make them slow to open. core/train/estimate.py
builds its estimates on these counts, and tests check them against GPT.num_params().
"""

from __future__ import annotations

from core.config import SHAPE_FIELDS


def model_shape(cfg) -> dict[str, int]:
    """The model fields of any config object with those names (TrainConfig, ModelConfig, a
    dict), as ints: the same values core.model.gpt.ModelConfig.of(cfg) takes."""
    get = cfg.get if isinstance(cfg, dict) else lambda name: getattr(cfg, name)
    return {name: int(get(name)) for name in SHAPE_FIELDS}


def param_counts(cfg) -> dict[str, int]:
    """Parameters by component; the tied token embedding / output head counts once, as in
    GPT.num_params()."""
    m = model_shape(cfg)
    L, C, V, P = m["n_layer"], m["n_embd"], m["vocab_size"], m["block_size"]
    return {
        "token embedding (wte, tied with lm_head)": V * C,
        "position embedding (wpe)": P * C,
        "attention (c_attn, c_proj)": L * (3 * C * C + 3 * C + C * C + C),
        "MLP (c_fc, c_proj)": L * (4 * C * C + 4 * C + 4 * C * C + C),
        "layer norms (ln_1, ln_2, ln_f)": L * 4 * C + 2 * C,
    }


def param_count(cfg) -> int:
    """Total parameters; equals GPT(ModelConfig.of(cfg)).num_params()."""
    return sum(param_counts(cfg).values())
