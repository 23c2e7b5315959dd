"""Group-relative advantages (spec §3), one scalar per rollout, then broadcast to its tokens.

    GRPO:     Â_i = (r_i - mean_g r) / (std_g r + eps)
    Dr.GRPO:  Â_i =  r_i - mean_g r

std_g is the unbiased sample std (divide by n - 1), as torch.std in verl's GRPO advantage, which
the released code uses. For a group of 4 rewards (1, 0, 0, 0): mean 0.25, unbiased std 0.5, so the
correct rollout gets 0.75 / 0.5 = 1.5 (the population std 0.433 would give 1.732).

mean and std are taken over the rollouts in `stats_mask` (baseline "exclude" leaves rollouts
flagged by criterion 1 out); every rollout of the group, counted or not, is centred and scaled by
those statistics. A group with fewer than two counted rollouts carries no comparison signal: all
its advantages are 0 (criterion 2 drops such groups anyway).

Estimators are registered by name (taorl.algo.registry): a new one is a function
fn(rewards [N, G] float64, stats_mask [N, G] bool, eps) -> [N, G] under @register_advantage.
"""

from __future__ import annotations

import torch
from torch import Tensor

from taorl.algo.filters import masked_group_stats
from taorl.algo.registry import ADVANTAGES, register_advantage


@register_advantage("grpo")
def grpo(rewards: Tensor, stats_mask: Tensor, eps: float) -> Tensor:
    """Â_i = (r_i - mean_g r) / (std_g r + eps), 0 in groups with fewer than two counted rollouts."""
    mean, std, n = masked_group_stats(rewards, stats_mask)
    adv = (rewards - mean[:, None]) / (std[:, None] + eps)
    return torch.where((n >= 2)[:, None], adv, torch.zeros_like(adv))


@register_advantage("drgrpo")
def drgrpo(rewards: Tensor, stats_mask: Tensor, eps: float) -> Tensor:
    """Â_i = r_i - mean_g r (Dr.GRPO: no std division), 0 in groups with fewer than two counted rollouts."""
    mean, _, n = masked_group_stats(rewards, stats_mask)
    adv = rewards - mean[:, None]
    return torch.where((n >= 2)[:, None], adv, torch.zeros_like(adv))


def group_advantages(rewards: Tensor, kind: str = "grpo", eps: float = 1e-6,
                     stats_mask: Tensor | None = None) -> Tensor:
    """[N, G] rewards -> [N, G] advantages (float32), by the registered estimator `kind`."""
    fn = ADVANTAGES.get(kind)
    mask = torch.ones_like(rewards, dtype=torch.bool) if stats_mask is None else stats_mask.bool()
    return fn(rewards.to(torch.float64), mask, eps).to(torch.float32)


def broadcast_to_tokens(adv: Tensor, loss_mask: Tensor) -> Tensor:
    """[B] per-rollout advantage -> [B, T] per-token advantage, zero off the loss mask."""
    return adv.to(torch.float32)[:, None] * loss_mask.to(torch.float32)
