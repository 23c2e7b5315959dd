"""Per-step metrics: rollout statistics, filter outcomes, and averages of training diagnostics.

Names follow TRL/verl where they exist and use tao/ for ours (see taorl/store/schema.py):

    reward, accuracy                     mean reward / fraction correct over all rollouts of the step
    tools/call_frequency                 mean tool calls per rollout
    tools/call_rate                      fraction of rollouts with at least one call
    tools/success_rate                   sum n_ok / sum n_call
    completions/mean_length, max_length  response tokens (model + observation)
    completions/clipped_ratio            fraction truncated at the length limit
    tao/groups_kept, tao/groups_dropped/<reason>
    tao/traj_masked/<reason>             rollouts (all groups) whose weight the reason lowered
    tao/void_rate                        fraction of rollouts with a void turn
    tao/post_tool_entropy, tao/other_entropy   mean H_t over model tokens right after a tool return
                                         (the turn after a code block) vs all other model tokens
"""

from __future__ import annotations

from collections import defaultdict

from taorl.types import GROUP_REASONS, TRAJ_REASONS, Trajectory


def _turn_facts(t: Trajectory):
    """[1, R] segment and turn of the response tokens, [1, K] turn_called / turn_ok (taorl.algo.gate inputs)."""
    import torch

    K = max([t.n_turns, 1] + [x + 1 for x in t.turn] + [c.turn + 1 for c in t.tool_calls])
    called = torch.zeros(1, K, dtype=torch.bool)
    ok = torch.zeros(1, K, dtype=torch.bool)
    for c in t.tool_calls:
        called[0, c.turn] = True
        ok[0, c.turn] |= c.ok
    seg = torch.tensor([list(t.segment)], dtype=torch.long).view(1, -1)
    turn = torch.tensor([list(t.turn)], dtype=torch.long).view(1, -1)
    return seg, turn, called, ok


def post_tool_mask(t: Trajectory) -> list[bool]:
    """Per response token: the post-tool gate (taorl.algo.gate.post_tool_gate, whole turn)."""
    from taorl.algo.gate import post_tool_gate

    seg, turn, called, ok = _turn_facts(t)
    return [bool(x) for x in post_tool_gate(seg, turn, called, ok)[0].tolist()]


def offsets_since_tool(t: Trajectory) -> list[int | None]:
    """Per response token: model tokens since the last tool return (0 = first one), None before any
    and on observation tokens (taorl.algo.gate.tool_offsets)."""
    from taorl.algo.gate import tool_offsets

    seg, _, _, _ = _turn_facts(t)
    return [None if o < 0 else int(o) for o in tool_offsets(seg)[0].tolist()]


def rollout_metrics(trajs: list[Trajectory]) -> dict[str, float]:
    n = max(len(trajs), 1)
    calls = sum(t.n_call for t in trajs)
    ok = sum(t.n_ok for t in trajs)
    lengths = [t.length for t in trajs] or [0]
    return {
        "reward": sum(t.reward for t in trajs) / n,
        "accuracy": sum(t.reward >= 1.0 for t in trajs) / n,
        "tools/call_frequency": calls / n,
        "tools/call_rate": sum(t.n_call > 0 for t in trajs) / n,
        "tools/success_rate": ok / calls if calls else 0.0,
        "completions/mean_length": sum(lengths) / n,
        "completions/max_length": float(max(lengths)),
        "completions/mean_model_tokens": sum(sum(s == 1 for s in t.segment) for t in trajs) / n,
        "completions/clipped_ratio": sum(t.truncated for t in trajs) / n,
        "tao/void_rate": sum(t.void for t in trajs) / n,
        "turns/mean": sum(t.n_turns for t in trajs) / n,
    }


def filter_metrics(group_reasons: list[str | None], traj_reasons: list[str | None]) -> dict[str, float]:
    out = {"tao/groups_kept": float(sum(r is None for r in group_reasons))}
    for r in GROUP_REASONS:
        out[f"tao/groups_dropped/{r}"] = float(sum(x == r for x in group_reasons))
    for r in TRAJ_REASONS:
        out[f"tao/traj_masked/{r}"] = float(sum(x == r for x in traj_reasons))
    return out


class Averager:
    """Weighted means of diagnostics over micro-batches: add(name, value, weight), then means()."""

    def __init__(self) -> None:
        self.sum: dict[str, float] = defaultdict(float)
        self.w: dict[str, float] = defaultdict(float)
        self.max: dict[str, float] = {}
        self.min: dict[str, float] = {}

    def add(self, name: str, value: float, weight: float = 1.0) -> None:
        if weight <= 0:
            return
        self.sum[name] += float(value) * weight
        self.w[name] += weight

    def add_max(self, name: str, value: float) -> None:
        self.max[name] = max(self.max.get(name, float("-inf")), float(value))

    def add_min(self, name: str, value: float) -> None:
        self.min[name] = min(self.min.get(name, float("inf")), float(value))

    def means(self) -> dict[str, float]:
        out = {k: self.sum[k] / self.w[k] for k in self.sum if self.w[k] > 0}
        out.update(self.max)
        out.update(self.min)
        return out
