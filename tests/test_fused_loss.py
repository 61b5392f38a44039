"""The fused output layer + cross-entropy: the same loss and gradients as the plain path (logits,
then F.cross_entropy), alone and inside a GPT whose lm_head is tied to its token embedding."""

import pytest
import torch
import torch.nn.functional as F

from core import device as devices
from core.model.fused_loss import linear_cross_entropy
from core.model.gpt import GPT, ModelConfig

CLOSE = dict(rtol=1e-5, atol=1e-6)


def plain_loss(x, weight, targets):
    """What GPT.forward computes without the fused path."""
    logits = F.linear(x, weight)
    return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))


def leaves(n, c, v, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, requires_grad=True)
    weight = (torch.randn(v, c, generator=g) * 0.5).requires_grad_()
    return x, weight, torch.randint(0, v, (n,), generator=g)


def loss_and_grads(fn, x, weight, targets, scale=1.0):
    x, weight = x.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    loss = fn(x, weight, targets)
    (loss * scale).backward()
    return loss.detach(), x.grad, weight.grad


# Chunks of one row, several with a ragged last one, exactly the rows, more than the rows.
@pytest.mark.parametrize(
    "n, c, v, chunk",
    [(37, 16, 101, 1), (37, 16, 101, 8), (64, 8, 50, 64), (5, 24, 300, 128), (100, 3, 7, 33)],
)
def test_loss_and_grads_match_the_plain_path(n, c, v, chunk):
    x, weight, targets = leaves(n, c, v, seed=n + chunk)
    chunked = lambda *a: linear_cross_entropy(*a, chunk_rows=chunk)  # noqa: E731
    fused = loss_and_grads(chunked, x, weight, targets)
    for got, want in zip(fused, loss_and_grads(plain_loss, x, weight, targets)):
        torch.testing.assert_close(got, want, **CLOSE)


def test_batched_input_and_a_scaled_loss():
    """(B, T, C) input as the model gives it, and a loss divided for gradient accumulation."""
    x, weight, targets = leaves(24, 12, 90)
    x, targets = x.detach().view(2, 12, 12), targets.view(2, 12)
    fused = loss_and_grads(
        lambda *a: linear_cross_entropy(*a, chunk_rows=5), x, weight, targets, scale=0.25
    )
    for got, want in zip(fused, loss_and_grads(plain_loss, x, weight, targets, scale=0.25)):
        torch.testing.assert_close(got, want, **CLOSE)


def test_a_target_far_below_the_top_logit_keeps_an_exact_loss():
    """p(target) underflows fp32 (a logit gap of ~400): the loss comes from the logits."""
    x, weight, targets = leaves(6, 4, 20)
    with torch.no_grad():
        weight[3] = 100.0
        x.copy_(x.abs() + 1)
        targets[:] = 5
        weight[5] = -1.0
    fused = loss_and_grads(lambda *a: linear_cross_entropy(*a, chunk_rows=4), x, weight, targets)
    plain = loss_and_grads(plain_loss, x, weight, targets)
    assert plain[0] > 300 and torch.isfinite(fused[0])
    for got, want in zip(fused, plain):
        torch.testing.assert_close(got, want, **CLOSE)


def test_without_grad_only_the_loss_is_computed():
    x, weight, targets = leaves(10, 6, 30)
    with torch.no_grad():
        loss = linear_cross_entropy(x, weight, targets, chunk_rows=3)
        want = plain_loss(x, weight, targets)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, want, **CLOSE)


def test_a_frozen_weight_gets_no_gradient():
    x, weight, targets = leaves(10, 6, 30)
    weight = weight.detach()
    linear_cross_entropy(x, weight, targets, chunk_rows=4).backward()
    want = torch.autograd.grad(plain_loss(x, weight, targets), x)[0]
    assert weight.grad is None
    torch.testing.assert_close(x.grad, want, **CLOSE)


def test_bf16_autocast_still_computes_in_fp32():
    x, weight, targets = leaves(10, 6, 30)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(x, weight, targets)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, plain_loss(x, weight, targets), **CLOSE)


def test_a_second_backward_fails_instead_of_doubling_the_gradients():
    x, weight, targets = leaves(10, 6, 30)
    loss = linear_cross_entropy(x, weight, targets)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError):
        loss.backward()


def test_bad_arguments_are_named():
    x, weight, targets = leaves(10, 6, 30)
    with pytest.raises(ValueError, match="chunk_rows"):
        linear_cross_entropy(x, weight, targets, chunk_rows=0)
    with pytest.raises(ValueError, match="targets"):
        linear_cross_entropy(x, weight, targets[:5])


# --- inside the model -----------------------------------------------------------------------

TINY = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=83)


def tiny_pair(seed=0):
    """Two GPTs with the same weights, plain and fused, and a batch whose targets leave the
    last few vocabulary rows unused, as GPT-2's padded rows are."""
    torch.manual_seed(seed)
    plain = GPT(TINY)
    fused = GPT(TINY, fused_loss=True)
    fused.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 77, (3, 16), generator=g)
    targets = torch.randint(0, 77, (3, 16), generator=g)
    return plain, fused, idx, targets


def test_the_plain_path_is_the_default_and_unchanged():
    plain, _, idx, targets = tiny_pair()
    assert plain.fused_loss is False
    logits, loss = plain(idx, targets)
    assert logits.shape == (3, 16, TINY.vocab_size)
    want = F.cross_entropy(logits.view(-1, TINY.vocab_size), targets.view(-1))
    torch.testing.assert_close(loss, want)


def test_fused_forward_gives_the_same_loss_and_no_logits():
    plain, fused, idx, targets = tiny_pair()
    _, want = plain(idx, targets)
    logits, loss = fused(idx, targets)
    assert logits is None
    torch.testing.assert_close(loss, want, **CLOSE)
    # Without targets (generation, logit lens) the logits come back as before.
    torch.testing.assert_close(fused(idx)[0], plain(idx)[0])


def test_the_tied_embedding_gets_both_gradients():
    """lm_head.weight is wte.weight: its gradient sums the output layer's and the embedding's."""
    plain, fused, idx, targets = tiny_pair()
    assert fused.lm_head.weight is fused.transformer.wte.weight
    for model in (plain, fused):
        model(idx, targets)[1].backward()
    for (name, p), q in zip(plain.named_parameters(), fused.parameters()):
        torch.testing.assert_close(q.grad, p.grad, **CLOSE, msg=lambda m, name=name: f"{name}: {m}")


def test_one_optimizer_step_gives_the_same_weights():
    plain, fused, idx, targets = tiny_pair(seed=1)
    for model in (plain, fused):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        model(idx, targets)[1].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    # Adam's first step is ~lr * sign(grad): a gradient near its eps (1e-8) turns a 1e-10
    # difference into up to lr * 1e-2, hence 1e-5 here (1% of a step) rather than CLOSE.
    for (name, p), q in zip(plain.named_parameters(), fused.parameters()):
        torch.testing.assert_close(
            q, p, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}"
        )


# --- the device choice ----------------------------------------------------------------------


def test_choose_picks_the_fused_loss_on_cpu_and_says_why():
    choice = devices.choose("cpu")
    assert choice.loss == "fused" and "fused loss" in choice.why


def test_choose_keeps_the_plain_loss_off_cpu_and_says_why():
    loss, why = devices._loss_path("cuda")
    assert loss == "plain" and "plain loss" in why and "cuda" in why


def test_choose_honours_an_explicit_loss():
    for loss in ("plain", "fused"):
        choice = devices.choose("cpu", loss=loss)
        assert choice.loss == loss and "loss" not in choice.why
    assert devices.DeviceChoice("cpu", "float32", False, "x").loss == "plain"


def test_choose_refuses_an_unknown_loss():
    with pytest.raises(ValueError, match="loss.*auto, fused, plain"):
        devices.choose("cpu", loss="fast")
