"""One generated TRL batch -> what TRL trains on, decided by taorl.algo (no second copy of the maths).

TRL's batch after `_generate_and_score_completions`: B = N·G rollouts, the G rollouts of a prompt
contiguous (TRL's RepeatSampler), completion-aligned [B, T] tensors (right padded):

    completion_mask   1 on the completion's tokens
    tool_mask         1 on tokens the model sampled, 0 on tool-result tokens (None without tools)

and, per rollout, its reward r (TRL's weighted sum over the reward functions) and the facts the
rollout recorded (n_call, n_ok, void, truncated, turn_ok; TaoRollout and PythonEnvironment keep
them). The model-token mask m = completion_mask · tool_mask has exactly the layout of verl's
response_mask, so the advantage is the step the verl plugin uses too
(taorl.integrations.common.advantage.tao_advantage, which calls taorl.algo.step.decide and
taorl.algo.batch.tao_loss):

    1-3. decide: criterion 1 / void / overlong weights w_i and reasons, criterion 2 with its refill
         (B = N: every group of TRL's batch is a candidate), Â_i by algo.adv
    4.   post-tool gate from the turns of m (a run of 1s after tool tokens is a post-tool turn),
         Ĥ from H_t (entropy.py), Ã_t = Â_i (1 + a g_t Ĥ_t)

What TRL receives, per row b of group x:

    advantages[b, t] = c_x · w_b · Ã_bt     on model tokens (0 elsewhere), [B, T]
    tool_mask[b, t]  = tool_mask[b, t] · 1[w_b > 0]
    num_items        = Σ_b c_x · Σ_t m_bt · 1[w_b > 0]

with c_x = 1 + duplicates_x, the copies criterion 2's refill deals to a kept group (0 < c_x;
dropped groups have w = 0). Why this is taorl's loss (docs/trl.md): every TRL policy loss is
positively homogeneous in A per token (PPO clip with TRL's δ, CISPO, SAPO, VESPO), so
w·c·l(A) = l(w·c·A) for w·c > 0; rows with w = 0 leave TRL's token sums through the tool mask; and
with loss_type "dapo" the normaliser is num_items, the token count with each duplicated group
counted c_x times, exactly the taorl loss on the refilled batch. KL (beta) and entropy-bonus terms
are not multiplied by w·c (taorl's defaults have both 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from taorl.config import Config
from taorl.integrations.common.advantage import StepAdvantage, tao_advantage


@dataclass
class TrlStep:
    advantage: StepAdvantage  # taorl's decision: Â, w, reasons, groups, gate, Ĥ, Ã, metrics
    advantages: Tensor  # [B, T] c · w · Ã on model tokens of trained rows
    tool_mask: Tensor  # [B, T] long, the input tool mask (ones without tools) zeroed on w = 0 rows
    copies: Tensor  # [B] c of the row's group (1 + refill duplicates)
    num_items: Tensor  # scalar, Σ c · (model tokens of trained rows)
    model_mask: Tensor  # [B, T] float, completion_mask · tool_mask (before the weights)

    @property
    def metrics(self) -> dict[str, float]:
        return self.advantage.metrics


def model_token_mask(completion_mask: Tensor, tool_mask: Tensor | None) -> Tensor:
    m = completion_mask.to(torch.float32)
    return m if tool_mask is None else m * tool_mask.to(torch.float32)


def tao_trl_step(rewards: Tensor | Sequence[float], completion_mask: Tensor, tool_mask: Tensor | None,
                 group_size: int, cfg: Config, *, entropy: Tensor | None = None,
                 flags: Sequence[Mapping | None] | None = None, seed: int = 0) -> TrlStep:
    """The TAO-RL advantages and masks of one TRL batch (see the module doc). rewards [B]; masks and
    entropy [B, T] completion-aligned; flags[b]: n_call, n_ok, void, truncated, turn_ok, or None."""
    B, T = completion_mask.shape
    if group_size < 1 or B % group_size:
        raise ValueError(f"TRL batch of {B} rollouts is not a whole number of groups of {group_size} "
                         "(num_generations)")
    rewards = torch.as_tensor(rewards, dtype=torch.float64).reshape(-1).cpu()
    if rewards.numel() != B:
        raise ValueError(f"{rewards.numel()} rewards for {B} completions")
    if bool(torch.isnan(rewards).any()):
        # TRL's "unscorable" rows (every reward function returned None): taorl has no such state
        rewards = torch.nan_to_num(rewards, nan=0.0)
    cm = completion_mask.detach().cpu()
    tm = None if tool_mask is None else tool_mask.detach().cpu()
    m = model_token_mask(cm, tm)
    lengths = cm.sum(-1).long()
    uids = [str(b // group_size) for b in range(B)]
    ent = None if entropy is None else entropy.detach().float().cpu() * m
    adv = tao_advantage(rewards, uids, m, cfg, entropy=ent, lengths=lengths, flags=flags, seed=seed)
    copies = torch.ones(B)
    for g, rows in enumerate(adv.groups):
        copies[rows] = 1.0 + float(adv.gdec.duplicates[g])
    trained = (adv.weight > 0).to(torch.float32)
    advantages = adv.advantages * copies[:, None]
    out_tool = (torch.ones(B, T, dtype=torch.long) if tm is None else tm.long()) * trained[:, None].long()
    num_items = (m * trained[:, None] * copies[:, None]).sum()
    metrics = adv.metrics
    metrics["tao/refill_copies"] = float(sum(adv.gdec.duplicates))
    return TrlStep(advantage=adv, advantages=advantages, tool_mask=out_tool, copies=copies,
                   num_items=num_items, model_mask=m)
