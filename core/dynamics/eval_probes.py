"""What the engine measures at each eval on fixed probes (its one entry into core.dynamics):
induction heads and in-context learning, per-token losses on the val probe (stored by
core.store.token_curves), exact memorization on a train and a val probe; and extraction at
the end of the run. Rank 0 only; the model runs in eval mode without gradients, and nothing
here draws from the training RNG, so a run with probes trains exactly as one without."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from core.config import TrainConfig
from core.dynamics import induction
from core.dynamics.memorization_metrics import exact_memorization, extract
from core.dynamics.ngram_stages import BigramKL, probe_losses
from core.dynamics.probes import PROBE_TOKENS, context_icl, text_probe, token_pass
from core.model.gpt import GPT
from core.store import token_curves


class EvalProbes:
    """The probes of one run: built once from its splits, measured at every Nth eval."""

    def __init__(self, cfg: TrainConfig, curves_path: Path, train: np.ndarray, val: np.ndarray):
        self.every = cfg.dynamics_every
        self.eval_interval = cfg.eval_interval
        self.window = min(cfg.seq_len, PROBE_TOKENS)
        self.curves_path = curves_path
        self.train_tokens = train
        self.train_ids, self.val_ids = text_probe(train), text_probe(val)
        self.ngram_losses, self.kl = _ngram_baselines(cfg, self.val_ids)

    @classmethod
    def open(cls, cfg, curves_path: Path, train, val, resumed_at: int | None = None):
        """The run's probes, or None when switched off (dynamics_every 0, or no evals). On a
        resume the curves of evals past the checkpoint are dropped, as the metrics are."""
        if not cfg.dynamics_every or not cfg.eval_interval:
            return None
        if resumed_at is not None:
            token_curves.truncate_after(curves_path, resumed_at)
        return cls(cfg, curves_path, np.asarray(train), np.asarray(val))

    def due(self, step: int, final: bool) -> bool:
        """Every `every`-th eval (counted by step), and the last one of the run."""
        return final or (step // self.eval_interval) % self.every == 0

    @torch.no_grad()
    def measure(self, model: GPT, step: int, choice) -> dict:
        """The fields of a `dynamics` record; the val probe's losses go to the curves file."""
        began = time.perf_counter()
        device, autocast = choice.device, choice.autocast
        was = model.training
        model.eval()
        try:
            hook = self.kl.hook if self.kl else None
            val = token_pass(model, self.val_ids, self.window, device, autocast, hook)
            train = token_pass(model, self.train_ids, self.window, device, autocast)
            heads = _induction_fields(model, device, autocast)
        finally:
            model.train(was)
        token_curves.append(self.curves_path, self.val_ids, step, val.losses)
        icl = context_icl(val.losses, val.positions, self.window)
        kl = self.kl.result() if self.kl else None
        return dict(
            **heads,
            **self.ngram_losses,
            **({"bigram_kl": kl} if kl is not None else {}),
            probe_loss=float(val.losses.mean()),
            **({"context_icl": icl} if icl is not None else {}),
            train_exact=exact_memorization(train.correct),
            val_exact=exact_memorization(val.correct),
            probe_s=time.perf_counter() - began,
        )

    def extraction(self, model: GPT, choice) -> dict:
        """The fields of the end-of-run `extraction` record."""
        found = extract(model, self.train_tokens, choice.device, autocast=choice.autocast)
        return found.record()


def _induction_fields(model: GPT, device, autocast) -> dict:
    """Prefix-matching scores and repeat losses; nothing when the context is too short."""
    try:
        result = induction.measure(model, device, autocast=autocast)
    except ValueError:  # fewer than 5 positions of context
        return {}
    return dict(
        head_scores=[round(float(v), 5) for v in result.scores.reshape(-1)],
        n_layer=result.scores.shape[0],
        n_head=result.scores.shape[1],
        repeat_first_loss=result.first_loss,
        repeat_second_loss=result.second_loss,
    )


def _ngram_baselines(cfg: TrainConfig, val_ids: np.ndarray) -> tuple[dict, BigramKL | None]:
    """The n-gram models' losses on the val probe and the bigram KL meter; none (and a line in
    the log) when the models cannot be built."""
    from core.data.ngram import load_ngrams

    try:
        models = load_ngrams(cfg.data, cfg.val_fraction)
        return probe_losses(models, val_ids), BigramKL(models[2], val_ids)
    except (ValueError, OSError, MemoryError) as e:
        print(f"n-gram baselines off: {e}", flush=True)
        return {}, None
