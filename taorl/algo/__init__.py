"""The TAO-RL maths (spec §2-§4): pure functions over torch tensors, no I/O, no model loading.

    step         decide(): filters -> advantages -> weights for one step, with reasons
    filters      criterion 1 weights, criterion 2 group selection       (data level)
    advantages   GRPO / Dr.GRPO group advantages
    gate         post-tool gate g_t and the ablation gates
    entropy      exact chunked token log-probs and entropies, normalised entropy Ĥ
    shaping      Ã = Â (1 + a g Ĥ)  and the additive form of Cheng et al.
    loss         PPO clip-higher + dual-clip (+ anti-clip, k3 KL, entropy regulariser)
    batch        TokenBatch (padded rollouts), shape_advantage (gate -> Ĥ -> Ã) and tao_loss (-> loss)
    registry     advantage estimators, gates and shaping forms by name (how to add one)
"""

from taorl.algo.advantages import broadcast_to_tokens, group_advantages
from taorl.algo.batch import TokenBatch, shape_advantage, shaping_gate, tao_loss
from taorl.algo.entropy import (
    entropy_from_logits,
    entropy_stats,
    logprobs_and_entropy_from_hidden,
    normalize_entropy,
)
from taorl.algo.filters import (
    GroupDecision,
    TrajDecision,
    filter_groups,
    masked_group_stats,
    stats_mask,
    tools_all_failed,
    trajectory_weights,
)
from taorl.algo.gate import (
    GATE_KINDS,
    GateInputs,
    entropy_quantile_gate,
    make_gate,
    post_tool_gate,
    tool_offsets,
)
from taorl.algo.loss import agg_denominator, aggregate, policy_loss, shaping_diagnostics
from taorl.algo.registry import register_advantage, register_gate, register_shaping
from taorl.algo.shaping import additive_shaping, multiplicative_shaping
from taorl.algo.step import StepDecision, decide, decide_rollouts, rollout_facts

__all__ = [
    "GATE_KINDS", "GateInputs", "GroupDecision", "StepDecision", "TokenBatch", "TrajDecision",
    "additive_shaping", "agg_denominator", "aggregate", "broadcast_to_tokens", "decide", "decide_rollouts",
    "entropy_from_logits", "entropy_quantile_gate", "entropy_stats", "filter_groups", "group_advantages",
    "logprobs_and_entropy_from_hidden", "make_gate", "masked_group_stats", "multiplicative_shaping",
    "normalize_entropy", "policy_loss", "post_tool_gate", "register_advantage", "register_gate",
    "register_shaping", "rollout_facts", "shape_advantage", "shaping_diagnostics", "shaping_gate", "stats_mask", "tao_loss",
    "tool_offsets", "tools_all_failed", "trajectory_weights",
]
