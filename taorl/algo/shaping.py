"""Entropy-guided advantage shaping on gated tokens (spec §3).

    multiplicative (TAO-RL):  Ã_t = Â_t · (1 + a · g_t · Ĥ_t)          a = 0.01
    additive (Cheng et al.):  Ã_t = Â_t + g_t · min(α · sg(H_t), |Â_t| / κ)   α = 0.1, κ = 2

Ĥ is the normalised entropy (entropy.normalize_entropy), detached by default (sg = stop-gradient);
with detach=False the gradient also flows through Ĥ (the released code). While |a·Ĥ_t| < 1 the
factor 1 + a·g·Ĥ is positive, so Ã_t keeps the sign of Â_t. The additive bonus is ≥ 0 and capped
at |Â_t|/κ, so it never flips a negative advantage either (κ > 1).

Forms are registered by name (taorl.algo.registry): a new one is
fn(adv, gate, entropy, h_norm, cfg: ShapingConfig) -> (Ã, factor Ã/Â) under @register_shaping.
"""

from __future__ import annotations

import torch
from torch import Tensor

from taorl.algo.registry import register_shaping


def multiplicative_shaping(adv_tok: Tensor, gate: Tensor, h_norm: Tensor, coef: float,
                           detach: bool = True) -> tuple[Tensor, Tensor]:
    """(Ã, factor) with factor_t = 1 + a · g_t · Ĥ_t and Ã_t = Â_t · factor_t."""
    h = h_norm.detach() if detach else h_norm
    factor = 1.0 + coef * gate * h
    return adv_tok * factor, factor


def additive_shaping(adv_tok: Tensor, gate: Tensor, entropy: Tensor, alpha: float,
                     kappa: float) -> tuple[Tensor, Tensor]:
    """(Ã, bonus) with bonus_t = g_t · min(α · sg(H_t), |Â_t| / κ) and Ã_t = Â_t + bonus_t."""
    bonus = gate * torch.minimum(alpha * entropy.detach(), adv_tok.abs() / kappa)
    return adv_tok + bonus, bonus


def ratio_factor(shaped: Tensor, adv_tok: Tensor) -> Tensor:
    """The equivalent factor Ã/Â (1 where Â = 0), for the same diagnostics as the multiplicative form."""
    nz = adv_tok != 0
    return torch.where(nz, shaped / torch.where(nz, adv_tok, torch.ones_like(adv_tok)), torch.ones_like(adv_tok))


@register_shaping("multiplicative")
def _multiplicative(adv_tok: Tensor, gate: Tensor, entropy: Tensor, h_norm: Tensor, cfg) -> tuple[Tensor, Tensor]:
    return multiplicative_shaping(adv_tok, gate, h_norm, cfg.coef, detach=cfg.detach)


@register_shaping("additive")
def _additive(adv_tok: Tensor, gate: Tensor, entropy: Tensor, h_norm: Tensor, cfg) -> tuple[Tensor, Tensor]:
    shaped, _bonus = additive_shaping(adv_tok, gate, entropy, cfg.alpha, cfg.kappa)
    return shaped, ratio_factor(shaped, adv_tok)
