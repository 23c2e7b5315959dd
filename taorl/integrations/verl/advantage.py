"""`tao_grpo`, verl's advantage-estimator signature over taorl.algo.group_advantages (plain GRPO /
Dr.GRPO for verl's stock trainer; the plugin registers it as algorithm.adv_estimator=tao_grpo).

The TAO-RL advantage itself (criterion 1 / void / overlong weights, criterion 2, the estimator,
entropy-guided shaping) needs the rollouts' flags and entropy, so TaoSyncTrainer computes it with
taorl.integrations.common.advantage.tao_advantage, the step the TRL integration uses too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from taorl.algo import broadcast_to_tokens, group_advantages
from taorl.integrations.common.layout import groups_of


def grpo_estimator(token_level_rewards: Tensor, response_mask: Tensor, index, config=None,
                   **_: object) -> tuple[Tensor, Tensor]:
    """verl's estimator signature, plain GRPO / Dr.GRPO by taorl.algo.group_advantages.

    Registered as `tao_grpo` for the stock verl trainer (it sees no flags and no entropy: criterion 1
    and the shaping need TaoSyncTrainer). Dr.GRPO when algorithm.norm_adv_by_std_in_grpo is false."""
    norm = True if config is None else bool(config.get("norm_adv_by_std_in_grpo", True))
    eps = 1e-6
    scores = token_level_rewards.sum(-1).to(torch.float64)
    groups, _ = groups_of(list(index))
    adv = group_advantages(torch.stack([scores[rows] for rows in groups]), "grpo" if norm else "drgrpo", eps)
    row = torch.zeros(scores.shape[0])
    for g, rows in enumerate(groups):
        row[rows] = adv[g]
    out = broadcast_to_tokens(row, response_mask)
    return out, out
