"""Tool-aware trajectory filtering (spec §2): which groups train, and with what weight each rollout.

Two decisions, both pure functions of per-rollout facts laid out as [N groups, G rollouts]:

* `trajectory_weights` (criterion 1 + SimpleTIR masks) -> a loss weight w_i in [0, 1] per rollout
  and at most one reason:
      w_i = (1 - s · flagged_i) · (1 - void_i · void_mask) · (1 - truncated_i · overlong_mask)
      flagged_i = n_call_i > 0 and n_ok_i == 0          (tried the tool, every call failed)
  Reason precedence when several apply (first match wins): truncated > void_turn >
  tools_all_failed. The zero-weight masks come first because they decide the weight; a flagged
  rollout keeps reason tools_all_failed even when s = 0 (weight 1) so the flag stays visible.
  Rollouts that never call the tool are never flagged.

* `filter_groups` (criterion 2, DAPO dynamic sampling) -> keep group x iff
      n_untruncated(x) ≥ min_n  and  std_x(r) ≥ std_threshold  and  (binary groups) acc_low < ρ(x) < acc_high
  then B of the survivors at random (seeded). The test is the spread of the rewards (spec §2:
  std ≥ 1e-3), so non-binary rewards (partial credit, format terms) work: rewards
  [0.3, 0.4, 0.5, 0.6] have std 0.129 and train. ρ = share of rewards ≥ 1 (the pass rate). The
  band applies where the pass rate is the mean reward, i.e. to groups whose counted rewards are
  all 0 or 1; a group with any other reward is judged by its spread alone. For 0/1 rewards with
  the default band (0, 1), std ≥ 1e-3 ⟺ 0 < ρ < 1, so the band only matters when narrowed.
  ρ and std are taken over the rollouts of the group's statistics mask (baseline "exclude" leaves
  flagged rollouts out, which re-applies criterion 2 to the rest); std is the unbiased sample std
  (torch.std, as the GRPO advantage in advantages.py, verl), 0 with fewer than two rollouts.
  Drop reason precedence: too_few_untruncated > low spread (group_all_correct when ρ ≥ 1/2, else
  group_all_wrong) > band (group_all_correct when ρ ≥ acc_high, group_all_wrong when ρ ≤ acc_low).
  Valid groups beyond B: not_selected.

  rule="code" (the released code's conditions, *code*): std over all rollouts of the group
  < std_threshold -> drop; else, only when acc_low ≠ 0 (its script turns the band off at
  acc_low = 0), drop when the mean reward < acc_low or > acc_high (a closed band on the mean
  reward); then drop when no rollout is untruncated or fewer than min_n are (its remove_clip,
  on in its training script).

  refill (fewer than B survivors): "fewer" trains on fewer; "duplicate" deals extra copies
  round-robin over a random order of the survivors (copy counts differ by at most one);
  "replicate" (*code*) makes r = ceil(B / n_valid) copies of every survivor and keeps B of the
  n_valid·r copies at random (a survivor may then train 0 to r times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from taorl.config import FilterConfig, GroupFilterConfig


# ------------------------------------------------------------------------------------ criterion 1
@dataclass
class TrajDecision:
    weights: Tensor  # [N, G] float, loss weight of each rollout
    reasons: list[list[str | None]]  # [N][G], one of types.TRAJ_REASONS or None
    flagged: Tensor  # [N, G] bool, criterion 1 (tools_all_failed), whether or not it changes the weight
    stats_mask: Tensor  # [N, G] bool, rollouts counted in their group's reward mean/std


def tools_all_failed(n_call: Tensor, n_ok: Tensor) -> Tensor:
    """Criterion 1's flag: n_call > 0 and n_ok == 0."""
    return (n_call > 0) & (n_ok == 0)


def stats_mask(flagged: Tensor, cfg: FilterConfig) -> Tensor:
    """Rollouts that count in the group statistics: all ("keep", the released code) or the
    unflagged ones ("exclude": the group mean/std and criterion 2 are recomputed without them)."""
    if cfg.tool.enabled and cfg.tool.baseline == "exclude":
        return ~flagged
    return torch.ones_like(flagged, dtype=torch.bool)


def trajectory_weights(n_call: Tensor, n_ok: Tensor, void: Tensor, truncated: Tensor,
                       cfg: FilterConfig) -> TrajDecision:
    """Loss weight and reason per rollout; see the module docstring for the precedence."""
    void, truncated = void.bool(), truncated.bool()
    flagged = tools_all_failed(n_call, n_ok) if cfg.tool.enabled else torch.zeros_like(void)
    w = torch.ones(void.shape, dtype=torch.float32)
    w = torch.where(flagged, w * (1.0 - cfg.tool.strength), w)  # w = 1 - s on flagged rollouts
    void_hit = void & cfg.void_turn_mask
    trunc_hit = truncated & cfg.overlong_mask
    w = torch.where(void_hit | trunc_hit, torch.zeros_like(w), w)  # masks -> 0
    reasons: list[list[str | None]] = []
    for g in range(void.shape[0]):
        row: list[str | None] = []
        for i in range(void.shape[1]):
            if trunc_hit[g, i]:
                row.append("truncated")
            elif void_hit[g, i]:
                row.append("void_turn")
            elif flagged[g, i]:
                row.append("tools_all_failed")
            else:
                row.append(None)
        reasons.append(row)
    return TrajDecision(weights=w, reasons=reasons, flagged=flagged, stats_mask=stats_mask(flagged, cfg))


# ------------------------------------------------------------------------------------ criterion 2
@dataclass
class GroupDecision:
    kept: Tensor  # [N] bool, group trains this step
    selected: list[int]  # kept group indices, in selection order
    reason: list[str | None]  # [N], one of types.GROUP_REASONS, None for kept groups
    duplicates: list[int]  # [N], extra copies of each kept group (refill="duplicate"), else 0
    pass_rate: Tensor  # [N] ρ over the statistics mask
    std: Tensor  # [N] unbiased reward std over the statistics mask
    n_untruncated: Tensor  # [N] long
    n_valid: int  # groups passing criterion 2, before the random selection of B


def masked_group_stats(rewards: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(mean, unbiased std, count) of each row over mask; std := 0 when count < 2, mean := 0 when 0.

        mean = Σ m r / n,   std = sqrt(Σ m (r - mean)² / (n - 1))
    """
    m = mask.to(torch.float64)
    r = rewards.to(torch.float64)
    n = m.sum(-1)
    mean = (m * r).sum(-1) / n.clamp(min=1.0)
    var = (m * (r - mean[:, None]) ** 2).sum(-1) / (n - 1.0).clamp(min=1.0)
    std = torch.where(n >= 2, var.sqrt(), torch.zeros_like(var))
    return mean, std, n


def _as_generator(generator: torch.Generator | int) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(int(generator))


def _is_binary(rewards: Tensor, mask: Tensor) -> Tensor:
    """[N] bool: every counted reward of the group is 0 or 1."""
    return ((rewards == 0) | (rewards == 1) | ~mask).all(-1)


def _paper_reason(cfg: GroupFilterConfig, rho: float, std: float, binary: bool, n_untrunc: int) -> str | None:
    if n_untrunc < cfg.min_n:
        return "too_few_untruncated"
    if std < cfg.std_threshold:
        return "group_all_correct" if rho >= 0.5 else "group_all_wrong"
    if binary and rho >= cfg.acc_high:
        return "group_all_correct"
    if binary and rho <= cfg.acc_low:
        return "group_all_wrong"
    return None


def _code_reason(cfg: GroupFilterConfig, rho: float, std_all: float, mean_all: float, n_untrunc: int) -> str | None:
    if std_all < cfg.std_threshold:
        return "group_all_correct" if rho >= 0.5 else "group_all_wrong"
    if cfg.acc_low != 0.0 and (mean_all < cfg.acc_low or mean_all > cfg.acc_high):
        return "group_all_wrong" if mean_all < cfg.acc_low else "group_all_correct"
    if n_untrunc == 0 or n_untrunc < cfg.min_n:
        return "too_few_untruncated"
    return None


def filter_groups(rewards: Tensor, truncated: Tensor, cfg: GroupFilterConfig, batch_prompts: int,
                  generator: torch.Generator | int, stats_mask: Tensor | None = None) -> GroupDecision:
    """Criterion 2 on every group, then a seeded random choice of `batch_prompts` survivors.

    With cfg.enabled False every group is valid (the selection of B still applies). See the module
    docstring for the rules (cfg.rule) and the refill modes (cfg.refill).
    """
    N, G = rewards.shape
    rewards = rewards.to(torch.float64)
    mask = torch.ones(N, G, dtype=torch.bool) if stats_mask is None else stats_mask.bool()
    correct = (rewards >= 1.0) & mask
    n_stats = mask.sum(-1)
    pass_rate = correct.sum(-1).double() / n_stats.clamp(min=1).double()
    _, std, _ = masked_group_stats(rewards, mask)
    mean_all, std_all, _ = masked_group_stats(rewards, torch.ones_like(mask))
    binary = _is_binary(rewards, mask)
    n_untrunc = (~truncated.bool()).sum(-1)
    rule = getattr(cfg, "rule", "paper")

    reason: list[str | None] = []
    for g in range(N):
        if not cfg.enabled:
            reason.append(None)
        elif rule == "code":
            reason.append(_code_reason(cfg, float(pass_rate[g]), float(std_all[g]), float(mean_all[g]),
                                       int(n_untrunc[g])))
        else:
            reason.append(_paper_reason(cfg, float(pass_rate[g]), float(std[g]), bool(binary[g]),
                                        int(n_untrunc[g])))

    valid = [g for g in range(N) if reason[g] is None]
    gen = _as_generator(generator)
    duplicates = [0] * N
    if cfg.refill == "replicate" and 0 < len(valid) < batch_prompts:
        r = -(-batch_prompts // len(valid))  # ceil(B / n_valid) copies of each survivor
        copies = [g for g in valid for _ in range(r)]
        chosen = [copies[j] for j in torch.randperm(len(copies), generator=gen).tolist()[:batch_prompts]]
        selected = list(dict.fromkeys(chosen))
        for g in chosen:
            duplicates[g] += 1
        for g in selected:
            duplicates[g] -= 1
        for g in valid:
            if g not in selected:
                reason[g] = "not_selected"
    else:
        order = [valid[j] for j in torch.randperm(len(valid), generator=gen).tolist()]
        selected = order[:batch_prompts]
        for g in order[batch_prompts:]:
            reason[g] = "not_selected"
        if cfg.refill == "duplicate" and 0 < len(selected) < batch_prompts:
            for k in range(batch_prompts - len(selected)):
                duplicates[selected[k % len(selected)]] += 1
    kept = torch.zeros(N, dtype=torch.bool)
    kept[selected] = True
    return GroupDecision(kept=kept, selected=selected, reason=reason, duplicates=duplicates,
                         pass_rate=pass_rate, std=std, n_untruncated=n_untrunc, n_valid=len(valid))
