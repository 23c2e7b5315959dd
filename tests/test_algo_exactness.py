"""Exactness of the core maths, hand-computed: Ĥ of equal entropies, criterion 2 on the spread of
non-binary rewards, the step decision, the released code's choices (code_compat), null token values."""

from __future__ import annotations

import math

import pytest
import torch

from taorl.algo import TokenBatch, decide, filter_groups, normalize_entropy, tao_loss
from taorl.algo.loss import aggregate
from taorl.config import GroupFilterConfig, load_config
from taorl.types import SEG_MODEL, SEG_TOOL, ToolCall, Trajectory


# ------------------------------------------------------------------------------------------ Ĥ
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scope", ["trajectory", "batch", "micro_batch"])
def test_equal_entropies_normalise_to_exactly_zero(dtype, scope):
    # H = 0.1 on 7 tokens: μ = 0.1, σ = 0, so Ĥ = 0 / (0 + 1e-8) = 0 exactly (was -0.427 in fp64)
    H = torch.full((2, 7), 0.1, dtype=dtype)
    m = torch.ones(2, 7)
    m[1, 5:] = 0
    h = normalize_entropy(H, m, scope)
    assert h.dtype == dtype and torch.equal(h, torch.zeros_like(h))


def test_normalised_entropy_hand_computed():
    # row (1, 2, 3) with a padded 4th token: μ = 2, σ = sqrt(2/3), Ĥ = ±1 / (sqrt(2/3) + 1e-8)
    H = torch.tensor([[1.0, 2.0, 3.0, 9.0]], dtype=torch.float64)
    m = torch.tensor([[1, 1, 1, 0]])
    s = math.sqrt(2 / 3) + 1e-8
    assert normalize_entropy(H, m)[0].tolist() == pytest.approx([-1 / s, 0.0, 1 / s, 0.0], abs=1e-15)


def _trajectory(i, seg, turn, calls=(), reward=1.0):
    R = len(seg)
    return Trajectory(group=0, index=i, problem_id="p", problem="q", answer="1", prompt_ids=[5, 6],
                      response_ids=list(range(10, 10 + R)), segment=list(seg), turn=list(turn),
                      sample_logprobs=[-0.5] * R, tool_calls=list(calls), n_turns=max(turn) + 1, reward=reward)


def _two_turn(i):
    seg = [SEG_MODEL] * 3 + [SEG_TOOL] * 2 + [SEG_MODEL] * 4
    turn = [0] * 5 + [1] * 4
    return _trajectory(i, seg, turn, [ToolCall(turn=0, code="print(1)", status="ok", stdout="1")])


def test_shaped_advantage_is_the_advantage_when_entropies_are_equal():
    b = TokenBatch.from_trajectories([_two_turn(0), _two_turn(1)], [1.0, -0.5], [1.0, 1.0], 0)
    ent = torch.where(b.loss_mask > 0, torch.tensor(0.1), torch.tensor(0.0)).double()
    logp = torch.zeros_like(ent)
    b.old_logp = logp
    for scope in ("trajectory", "batch"):
        cfg = load_config(None, [f"algo.shaping.norm_scope={scope}", "algo.shaping.gate=all"]).algo
        _, _, pt = tao_loss(b, logp, ent, cfg)
        assert torch.equal(pt["factor"][b.loss_mask > 0], torch.ones(int(b.loss_mask.sum()), dtype=pt["factor"].dtype))
        assert torch.equal(pt["shaped_adv"], b.adv.to(pt["shaped_adv"].dtype))  # Ã = Â · 1 exactly


# ---------------------------------------------------------------------------------- criterion 2
def test_criterion2_keeps_non_binary_rewards_with_spread():
    rewards = torch.tensor([[0.3, 0.4, 0.5, 0.6],  # std = sqrt(0.05 / 3) = 0.129: kept (was all_wrong)
                            [0.5, 0.5, 0.5, 0.5],  # no spread: dropped, ρ = 0 -> group_all_wrong
                            [1.2, 1.2, 1.2, 1.2],  # no spread, ρ = 1 -> group_all_correct
                            [1.0, 1.0, 1.0, 0.0]])  # binary, ρ = 3/4: kept under the default band
    trunc = torch.zeros(4, 4, dtype=torch.bool)
    d = filter_groups(rewards, trunc, GroupFilterConfig(), 4, 0)
    assert d.reason == [None, "group_all_wrong", "group_all_correct", None]
    assert float(d.std[0]) == pytest.approx(math.sqrt(0.05 / 3))
    # a narrowed band judges the binary group by its pass rate (3/4 ≥ 0.7 -> all_correct); the
    # partial-credit group has no pass rate in that sense and is judged by its spread alone
    d = filter_groups(rewards, trunc, GroupFilterConfig(acc_high=0.7), 4, 0)
    assert d.reason == [None, "group_all_wrong", "group_all_correct", "group_all_correct"]


def test_code_rule_band_on_mean_reward_only_when_acc_low_is_set():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0],   # mean 0.25
                            [1.0, 1.0, 0.0, 0.0],   # mean 0.5
                            [1.0, 1.0, 1.0, 0.0]])  # mean 0.75
    trunc = torch.zeros(3, 4, dtype=torch.bool)
    off = filter_groups(rewards, trunc, GroupFilterConfig(rule="code", acc_high=0.6), 3, 0)
    assert off.reason == [None, None, None]  # acc_low = 0: the released script turns the band off
    on = filter_groups(rewards, trunc, GroupFilterConfig(rule="code", acc_low=0.5, acc_high=0.6), 3, 0)
    # closed band on the mean: 0.25 < 0.5 dropped, 0.5 = acc_low kept, 0.75 > 0.6 dropped
    assert on.reason == ["group_all_wrong", None, "group_all_correct"]
    trunc[1, :3] = True  # one untruncated rollout < min_n = 4
    assert filter_groups(rewards, trunc, GroupFilterConfig(rule="code"), 3, 0).reason[1] == "too_few_untruncated"


def test_replicate_refill_makes_ceil_copies_then_keeps_b_of_them():
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cfg = GroupFilterConfig(refill="replicate", min_n=0)
    for seed in range(6):
        d = filter_groups(rewards, torch.zeros(3, 2, dtype=torch.bool), cfg, 5, seed)
        # 2 valid groups, B = 5: r = ceil(5 / 2) = 3 copies each, 5 of the 6 copies trained
        copies = [1 + d.duplicates[g] if d.kept[g] else 0 for g in range(3)]
        assert sum(copies) == 5 and sorted(copies[:2]) == [2, 3] and copies[2] == 0
        assert d.reason[2] == "group_all_correct"


# -------------------------------------------------------------------------------- step decision
def test_decide_hand_computed_with_code_advantage_scaling():
    # one group of 4: rewards (1, 0, 0, 1); rollout 1 tried the tool and every call failed
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    n_call = torch.tensor([[1, 2, 0, 0]])
    n_ok = torch.tensor([[1, 0, 0, 0]])
    no = torch.zeros(1, 4, dtype=torch.bool)
    paper = load_config(None, ["algo.filter.tool.strength=0.5"]).algo
    d = decide(rewards, n_call, n_ok, no, no, paper, 1, 0)
    # mean 0.5, unbiased std sqrt(1/3): Â = ±0.5 / (sqrt(1/3) + 1e-6); weight of the flagged one 1 - s
    a = 0.5 / (math.sqrt(1 / 3) + 1e-6)
    assert d.adv.tolist()[0] == pytest.approx([a, -a, -a, a], rel=1e-6)
    assert d.weights.tolist() == [[1.0, 0.5, 1.0, 1.0]] and d.traj.reasons[0][1] == "tools_all_failed"
    assert d.train_groups == [0] and d.group_reasons == [None]
    code = load_config(None, ["preset=code_compat", "algo.filter.tool.strength=0.5"]).algo
    d = decide(rewards, n_call, n_ok, no, no, code, 1, 0)
    assert d.adv.tolist()[0] == pytest.approx([a, -a / 2, -a, a], rel=1e-6)  # Â · (1 - s) as well
    assert d.weights.tolist() == [[1.0, 0.5, 1.0, 1.0]]


def test_micro_token_mean_divides_by_the_sum_of_weights():
    per_token = torch.tensor([[1.0, 2.0], [3.0, 7.0]])
    w = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    # Σ w l = 0.5 + 1 + 3 = 4.5 over Σ w = 2 (token-mean would divide by the 3 trained tokens)
    assert float(aggregate(per_token, w, "micro-token-mean")) == pytest.approx(2.25)
    assert float(aggregate(per_token, w, "token-mean")) == pytest.approx(1.5)


def test_code_compat_normalises_over_trained_tokens_and_falls_back_to_all():
    # rollout 0: one model turn (no tool call, so no post-tool token anywhere); rollout 1 weight 0
    t0 = _trajectory(0, [SEG_MODEL] * 4, [0] * 4)
    t1 = _trajectory(1, [SEG_MODEL] * 4, [0] * 4)
    b = TokenBatch.from_trajectories([t0, t1], [1.0, 1.0], [1.0, 0.0], 0)
    ent = torch.zeros_like(b.loss_mask)
    ent[0][b.loss_mask[0] > 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    ent[1][b.loss_mask[1] > 0] = torch.tensor([50.0, 60.0, 70.0, 80.0])  # weight 0: not in μ, σ
    logp = torch.zeros_like(ent)
    b.old_logp = logp
    cfg = load_config(None, ["preset=code_compat", "algo.shaping.gate=post_tool", "algo.shaping.coef=0.1"]).algo
    _, _, pt = tao_loss(b, logp, ent, cfg)
    # μ = 2.5, σ = sqrt(1.25) over the 4 trained tokens only; no post-tool token -> every trained token gated
    s = math.sqrt(1.25) + 1e-8
    expect = [1 + 0.1 * (h - 2.5) / s for h in (1.0, 2.0, 3.0, 4.0)]
    m0 = b.loss_mask[0] > 0
    assert pt["factor"][0][m0].tolist() == pytest.approx(expect, rel=1e-6)
    assert pt["gate"][0][m0].tolist() == [1.0] * 4 and pt["gate"][1].sum() == 0
    paper = load_config(None, ["algo.shaping.coef=0.1"]).algo  # post_tool, no fallback: nothing shaped
    _, _, pt = tao_loss(b, logp, ent, paper)
    assert pt["gate"].sum() == 0 and torch.equal(pt["shaped_adv"], b.adv)


# ---------------------------------------------------------------------------------- token tables
def test_untrained_rollouts_have_null_entropy_and_logprob():
    from taorl.train.records import describe_untrained, token_rows

    cfg = load_config(None, ["rollout.group_size=2"])
    t = _two_turn(0)
    rec = describe_untrained(cfg, [[t, _two_turn(1)]], [(0, 0)])[0]
    rows = token_rows(t, 0, rec, str)
    model = [r for r in rows if r["segment"] == "model"]
    assert len(model) == 7 and all(r["entropy"] is None and r["logprob_train"] is None for r in model)
    assert all(r["logprob_sample"] == -0.5 and r["weight"] == 0.0 for r in model)
    # a NaN of any float type is written as null too
    rec["entropy"] = torch.full((t.length,), float("nan")).numpy()
    assert all(r["entropy"] is None for r in token_rows(t, 0, rec, str))


def test_a_registered_advantage_estimator_is_used_by_the_step_decision():
    from taorl.algo import register_advantage
    from taorl.algo.filters import masked_group_stats

    @register_advantage("test_rloo")
    def rloo(rewards, stats_mask, eps):
        """Leave-one-out baseline: Â_i = r_i - (Σ_g r - r_i) / (n - 1)."""
        _, _, n = masked_group_stats(rewards, stats_mask)
        total = (rewards * stats_mask).sum(-1, keepdim=True)
        return rewards - (total - rewards) / (n[:, None] - 1).clamp(min=1)

    cfg = load_config(None, ["algo.adv=test_rloo"]).algo
    no = torch.zeros(1, 4, dtype=torch.bool)
    d = decide(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), torch.zeros(1, 4, dtype=torch.long),
               torch.zeros(1, 4, dtype=torch.long), no, no, cfg, 1, 0)
    # r = 1: 1 - (1 + 0 + 0) / 3 = 2/3; r = 0: 0 - 2/3
    assert d.adv.tolist()[0] == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])


def test_metric_masks_are_the_gate_on_one_trajectory():
    from taorl.train.metrics import offsets_since_tool, post_tool_mask

    M, T = SEG_MODEL, SEG_TOOL
    t = _trajectory(0, [M, M, T, T, M, M, T, M], [0, 0, 0, 0, 1, 1, 1, 2],
                    [ToolCall(turn=0, code="x", status="ok", stdout="1"),
                     ToolCall(turn=1, code="y", status="runtime_error", stdout="")])
    # turn 1 follows turn 0's call, turn 2 follows turn 1's (failed) call: both are post-tool
    assert post_tool_mask(t) == [False, False, False, False, True, True, False, True]
    assert offsets_since_tool(t) == [None, None, None, None, 0, 1, None, 0]
