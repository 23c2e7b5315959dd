"""policy_loss and aggregation, hand-computed; shaping forms on single numbers."""

from __future__ import annotations

import math

import pytest
import torch

from taorl.algo import additive_shaping, agg_denominator, aggregate, multiplicative_shaping, policy_loss
from taorl.config import LossConfig

# one row of 6 trained tokens: advantages and ratios chosen to hit every branch
A = torch.tensor([[1.0, 1.0, -1.0, -1.0, -1.0, 1.0]])
RATIO = torch.tensor([[1.5, 0.5, 0.5, 5.0, 1.1, 1.2]])
OLD = torch.zeros(1, 6)


def run(cfg=None, gate=None, **kw):
    cfg = cfg or LossConfig()
    logp = torch.log(RATIO).requires_grad_(True)
    loss, diag = policy_loss(logp, OLD, A, torch.ones(1, 6), cfg, gate=gate, **kw)
    loss.backward()
    return loss, diag, logp.grad[0].tolist()


def test_clip_higher_and_dual_clip_by_hand():
    loss, diag, grad = run()
    # t0 A=+1 ρ=1.5: max(-1.5, -1.28) = -1.28 (clipped high, no gradient)
    # t1 A=+1 ρ=0.5: max(-0.5, -0.8)  = -0.5
    # t2 A=-1 ρ=0.5: max(0.5, 0.8)    = 0.8  (clipped low, no gradient)
    # t3 A=-1 ρ=5:   max(5, 1.28) = 5 -> dual clip min(5, 3) = 3 (no gradient)
    # t4 A=-1 ρ=1.1: 1.1;  t5 A=+1 ρ=1.2: -1.2
    # mean: (-1.28 - 0.5 + 0.8 + 3 + 1.1 - 1.2) / 6 = 1.92 / 6 = 0.32
    assert loss.item() == pytest.approx(0.32, abs=1e-6)
    # ∂l/∂logp = -A ρ where unclipped, / 6
    assert grad == pytest.approx([0.0, -0.5 / 6, 0.0, 0.0, 1.1 / 6, -1.2 / 6], abs=1e-6)
    assert diag["clip_ratio/high_mean"] == pytest.approx(1 / 6)
    assert diag["clip_ratio/low_mean"] == pytest.approx(1 / 6)
    assert diag["clip_ratio/dual"] == pytest.approx(1 / 6)
    assert diag["ratio_mean"] == pytest.approx((1.5 + 0.5 + 0.5 + 5 + 1.1 + 1.2) / 6)


def test_no_dual_clip():
    loss, diag, _ = run(LossConfig(dual_clip=None))
    # t3 keeps 5: (1.92 - 3 + 5) / 6
    assert loss.item() == pytest.approx(3.92 / 6, abs=1e-6)
    assert diag["clip_ratio/dual"] == 0.0


def test_anti_clip_keeps_gradient_on_gated_tokens():
    gate = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    loss, diag, grad = run(LossConfig(anti_clip=True), gate=gate)
    # t0: value still -1.28, gradient -A (1 + ε_high) = -1.28 -> -1.28 / 6; t3 (A < 0) unchanged
    assert loss.item() == pytest.approx(0.32, abs=1e-6)
    assert grad == pytest.approx([-1.28 / 6, -0.5 / 6, 0.0, 0.0, 1.1 / 6, -1.2 / 6], abs=1e-6)
    assert diag["tao/anti_clip_fraction"] == pytest.approx(2 / 6)  # t0 and t3 have ρ > 1.28
    # ungated: no anti-clip
    _, _, g2 = run(LossConfig(anti_clip=True), gate=torch.zeros(1, 6))
    assert g2[0] == 0.0


def test_k3_kl_and_entropy_regulariser():
    logp = torch.zeros(1, 2, requires_grad=True)
    ref = torch.tensor([[math.log(2.0), 0.0]])
    cfg = LossConfig(kl_coef=0.5, entropy_coef=0.1)
    H = torch.tensor([[1.0, 3.0]])
    loss, diag = policy_loss(logp, torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), cfg,
                             ref_logp=ref, entropy=H)
    # k3 with q = log 2: 2 - log 2 - 1 = 0.306853; q = 0: 0. pg = 0 (A = 0)
    # L = (0.5 * 0.306853 - 0.1 * 1 - 0.1 * 3) / 2
    k3 = 2.0 - math.log(2.0) - 1.0
    assert loss.item() == pytest.approx((0.5 * k3 - 0.4) / 2, abs=1e-6)
    assert diag["kl"] == pytest.approx(k3 / 2) and diag["entropy"] == pytest.approx(2.0)
    loss.backward()
    # ∂k3/∂logp = -(e^q - 1) = -1 at q = log 2  ->  0.5 * -1 / 2
    assert logp.grad[0, 0].item() == pytest.approx(-0.25, abs=1e-6)


def test_aggregations_and_denominators():
    l = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0], [9.0, 9.0, 0.0, 0.0]])
    w = torch.tensor([[1.0, 1.0, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # trained tokens: 3 + 1 = 4 (row 2 has weight 0: left out, as if deleted)
    # token-mean: (1 + 2 + 1.5 + 4) / 4 = 2.125
    assert aggregate(l, w, "token-mean").item() == pytest.approx(2.125)
    # seq-mean-token-mean: (4.5 / 3 + 4 / 1) / 2 = 2.75
    assert aggregate(l, w, "seq-mean-token-mean").item() == pytest.approx(2.75)
    # seq-mean-token-sum: (4.5 + 4) / 2 = 4.25
    assert aggregate(l, w, "seq-mean-token-sum").item() == pytest.approx(4.25)
    assert agg_denominator(w, "token-mean") == 4.0 and agg_denominator(w, "seq-mean-token-sum") == 2.0
    with pytest.raises(ValueError, match="token-mean"):
        aggregate(l, w, "mean")


def test_all_masked_loss_zero_and_finite_gradient():
    logp = torch.tensor([[-1e30, 0.0]], requires_grad=True)  # garbage on masked positions
    loss, diag = policy_loss(logp, torch.tensor([[0.0, -500.0]]), torch.ones(1, 2), torch.zeros(1, 2),
                             LossConfig(kl_coef=0.1), ref_logp=torch.zeros(1, 2), entropy=torch.ones(1, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logp.grad, torch.zeros(1, 2))
    assert all(math.isfinite(v) for v in diag.values())


def test_shaping_forms_by_hand():
    adv = torch.tensor([1.5, 1.5, -0.5, 0.2, 0.0])
    gate = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0])
    hn = torch.tensor([2.0, 2.0, 2.0, -1.0, 1.0])
    shaped, factor = multiplicative_shaping(adv, gate, hn, 0.1)
    # 1 + 0.1 g Ĥ = 1.2, 1, 1.2, 0.9, 1.1
    assert factor.tolist() == pytest.approx([1.2, 1.0, 1.2, 0.9, 1.1])
    assert shaped.tolist() == pytest.approx([1.8, 1.5, -0.6, 0.18, 0.0])
    H = torch.tensor([2.0, 2.0, 1.0, 3.0, 5.0])
    shaped, bonus = additive_shaping(adv, gate, H, alpha=0.1, kappa=2.0)
    # bonus g min(0.1 H, |Â| / 2): min(0.2, 0.75) = 0.2; gate 0; min(0.1, 0.25) = 0.1;
    # min(0.3, 0.1) = 0.1; min(0.5, 0) = 0
    assert bonus.tolist() == pytest.approx([0.2, 0.0, 0.1, 0.1, 0.0])
    assert shaped.tolist() == pytest.approx([1.7, 1.5, -0.4, 0.3, 0.0])


def test_detach_switch_controls_gradient_through_entropy():
    hn = torch.tensor([0.5], requires_grad=True)
    shaped, _ = multiplicative_shaping(torch.tensor([2.0]), torch.ones(1), hn, 0.1, detach=True)
    assert not shaped.requires_grad
    shaped, _ = multiplicative_shaping(torch.tensor([2.0]), torch.ones(1), hn, 0.1, detach=False)
    shaped.sum().backward()
    assert hn.grad.item() == pytest.approx(0.2)  # ∂(Â (1 + a Ĥ))/∂Ĥ = a Â
