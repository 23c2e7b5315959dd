"""One step's decision (spec §2-§3): which groups train, each rollout's weight and advantage, and why.

A pure function of per-rollout facts laid out as [N groups, G rollouts], used alike by the
trainer, the ablation helpers (taorl.lab.ablation.decide) and the synthetic runs:

    1. criterion 1 / void / overlong   w_i = (1 - s·flagged_i)(1 - void_i)(1 - truncated_i)
                                       (filters.trajectory_weights; one reason per rollout)
    2. criterion 2                     keep groups with reward spread, B of them (+ refill)
                                       (filters.filter_groups; one reason per dropped group)
    3. advantages                      Â_i by the registered estimator (algo.adv) over the
                                       statistics mask (baseline keep | exclude)
    4. dropped groups                  w_i = 0 and Â_i = 0 on every rollout of a dropped group
       (*code*, filter.tool.scale_advantage: Â_i ·= 1 - s on flagged rollouts too)

`train_groups` lists the kept groups in order, each repeated once per copy (refill duplicate /
replicate), which is what the update iterates over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from taorl.algo.advantages import group_advantages
from taorl.algo.filters import GroupDecision, TrajDecision, filter_groups, trajectory_weights

if TYPE_CHECKING:
    from taorl.config import AlgoConfig
    from taorl.types import Trajectory


@dataclass
class StepDecision:
    traj: TrajDecision  # criterion 1 / void / overlong: weights before criterion 2, reasons, flags
    groups: GroupDecision  # criterion 2: kept groups, reasons, duplicates, pass rate, std
    rewards: Tensor  # [N, G] float64
    adv: Tensor  # [N, G] float32, 0 on dropped groups
    weights: Tensor  # [N, G] float32, 0 on dropped groups

    @property
    def kept(self) -> Tensor:
        return self.groups.kept

    @property
    def train_groups(self) -> list[int]:
        """Kept groups in index order, each repeated 1 + duplicates times."""
        return [g for g in range(len(self.groups.reason)) if self.groups.kept[g]
                for _ in range(1 + int(self.groups.duplicates[g]))]

    @property
    def group_reasons(self) -> list[str | None]:
        """Per group: None when kept, else its drop reason."""
        return [None if bool(self.groups.kept[g]) else self.groups.reason[g] for g in range(len(self.groups.reason))]

    @property
    def traj_reasons(self) -> list[str | None]:
        """Per rollout (flat, group-major): its own mask reason (tools_all_failed, void_turn, truncated)."""
        return [r for row in self.traj.reasons for r in row]


def decide(rewards: Tensor, n_call: Tensor, n_ok: Tensor, void: Tensor, truncated: Tensor,
           cfg: AlgoConfig, batch_prompts: int, generator: torch.Generator | int) -> StepDecision:
    """Filters -> advantages -> weights for one step; all inputs [N, G] (see the module docstring)."""
    rewards = rewards.to(torch.float64)
    fc = cfg.filter
    tdec = trajectory_weights(n_call, n_ok, void, truncated, fc)  # 1.
    gdec = filter_groups(rewards, truncated, fc.group, batch_prompts, generator,  # 2.
                         stats_mask=tdec.stats_mask)
    adv = group_advantages(rewards, cfg.adv, cfg.adv_eps, tdec.stats_mask)  # 3.
    if fc.tool.enabled and fc.tool.scale_advantage:
        adv = torch.where(tdec.flagged, adv * (1.0 - fc.tool.strength), adv)
    kept = gdec.kept[:, None]  # 4.
    weights = torch.where(kept, tdec.weights, torch.zeros_like(tdec.weights))
    adv = torch.where(kept, adv, torch.zeros_like(adv))
    return StepDecision(traj=tdec, groups=gdec, rewards=rewards, adv=adv, weights=weights)


def rollout_facts(by_group: Sequence[Sequence[Trajectory]]) -> dict[str, Tensor]:
    """The [N, G] inputs of `decide` from a grid of trajectories (by_group[g][i])."""
    def grid(f, dtype):
        return torch.tensor([[f(t) for t in row] for row in by_group], dtype=dtype)

    return {"rewards": grid(lambda t: t.reward, torch.float64),
            "n_call": grid(lambda t: t.n_call, torch.long), "n_ok": grid(lambda t: t.n_ok, torch.long),
            "void": grid(lambda t: t.void, torch.bool), "truncated": grid(lambda t: t.truncated, torch.bool)}


def decide_rollouts(by_group: Sequence[Sequence[Trajectory]], cfg: AlgoConfig, batch_prompts: int,
                    generator: torch.Generator | int) -> StepDecision:
    """`decide` on a grid of trajectories."""
    return decide(**rollout_facts(by_group), cfg=cfg, batch_prompts=batch_prompts, generator=generator)
