"""One worked example, checked number by number: 2 groups x 4 rollouts with tool failures, a void
turn and a truncation, through filters -> advantages -> TokenBatch -> gate -> Ĥ -> Ã -> loss.

    group 0 (rewards 1 0 0 1)                 group 1 (rewards 1 0 0 0)
      r0  reward 1, 2 calls, 1 ok               r0  reward 1, 1 call ok
      r1  reward 0, 1 call, 0 ok  -> flagged    r1  reward 0, 1 call failed, truncated
      r2  reward 0, void turn, no call          r2  reward 0, 3 calls, 0 ok -> flagged
      r3  reward 1, no call (never flagged)     r3  reward 0, no call
"""

from __future__ import annotations

import math

import pytest
import torch

from taorl.algo import (
    TokenBatch,
    filter_groups,
    group_advantages,
    logprobs_and_entropy_from_hidden,
    normalize_entropy,
    tao_loss,
    tool_offsets,
    trajectory_weights,
)
from taorl.algo.gate import make_gate, post_tool_gate
from taorl.config import AlgoConfig, FilterConfig, GroupFilterConfig, ToolFilterConfig
from taorl.types import ToolCall, Trajectory

REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
N_CALL = torch.tensor([[2, 1, 0, 0], [1, 1, 3, 0]])
N_OK = torch.tensor([[1, 0, 0, 0], [1, 0, 0, 0]])
VOID = torch.tensor([[False, False, True, False], [False, False, False, False]])
TRUNC = torch.tensor([[False, False, False, False], [False, True, False, False]])


# ------------------------------------------------------------------------------ criterion 1 (weights)
def test_trajectory_weights_default_strength_1():
    d = trajectory_weights(N_CALL, N_OK, VOID, TRUNC, FilterConfig())
    # g0: r1 flagged -> 1 - s = 0; r2 void -> 0; r3 no call -> never flagged
    # g1: r1 truncated (and flagged: truncated wins the reason); r2 flagged -> 0
    assert d.weights.tolist() == [[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]]
    assert d.reasons == [[None, "tools_all_failed", "void_turn", None],
                         [None, "truncated", "tools_all_failed", None]]
    assert d.flagged.tolist() == [[False, True, False, False], [False, True, True, False]]
    assert d.stats_mask.all()  # baseline keep: everyone counts in the group statistics


def test_trajectory_weights_half_strength_and_switches():
    cfg = FilterConfig(tool=ToolFilterConfig(strength=0.5), void_turn_mask=False, overlong_mask=False)
    d = trajectory_weights(N_CALL, N_OK, VOID, TRUNC, cfg)
    # flagged rollouts get 1 - 0.5 = 0.5; void and truncated are no longer masked
    assert d.weights.tolist() == [[1.0, 0.5, 1.0, 1.0], [1.0, 0.5, 0.5, 1.0]]
    assert d.reasons == [[None, "tools_all_failed", None, None],
                         [None, "tools_all_failed", "tools_all_failed", None]]
    off = trajectory_weights(N_CALL, N_OK, VOID, TRUNC, FilterConfig(tool=ToolFilterConfig(enabled=False)))
    assert off.weights.tolist() == [[1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 1.0]]
    assert not off.flagged.any()


# ------------------------------------------------------------------------------ criterion 2 (groups)
def test_filter_groups_default_min_n_drops_truncated_group():
    d = filter_groups(REWARDS, TRUNC, GroupFilterConfig(), batch_prompts=2, generator=0)
    # g0: ρ = 2/4 = 0.5, unbiased std = sqrt(4 * 0.25 / 3) = 0.57735, 4 untruncated -> kept
    # g1: 3 untruncated < min_n 4 -> too_few_untruncated
    assert d.kept.tolist() == [True, False]
    assert d.selected == [0]
    assert d.reason == [None, "too_few_untruncated"]
    assert d.pass_rate.tolist() == [0.5, 0.25]
    assert d.std[0].item() == pytest.approx(math.sqrt(1 / 3))
    # g1: mean 0.25, squares (0.75² + 3 * 0.25²) = 0.75, / 3 = 0.25 -> std 0.5
    assert d.std[1].item() == pytest.approx(0.5)
    assert d.n_untruncated.tolist() == [4, 3]
    assert d.duplicates == [0, 0] and d.n_valid == 1


def test_filter_groups_refill_duplicate():
    cfg = GroupFilterConfig(refill="duplicate")
    d = filter_groups(REWARDS, TRUNC, cfg, batch_prompts=3, generator=0)
    # one valid group, B = 3 -> two extra copies of group 0
    assert d.selected == [0] and d.duplicates == [2, 0]


def test_filter_groups_min_n_3_keeps_both_and_selects_b():
    cfg = GroupFilterConfig(min_n=3)
    both = filter_groups(REWARDS, TRUNC, cfg, batch_prompts=2, generator=0)
    assert both.kept.tolist() == [True, True] and sorted(both.selected) == [0, 1]
    one = filter_groups(REWARDS, TRUNC, cfg, batch_prompts=1, generator=0)
    assert one.kept.sum() == 1 and one.n_valid == 2
    assert sorted(one.reason, key=str) == [None, "not_selected"]
    # the choice is torch.randperm(2, generator seeded 0): recompute it independently
    first = torch.randperm(2, generator=torch.Generator().manual_seed(0))[0].item()
    assert one.selected == [first]


def test_filter_groups_band():
    # acc band (0.3, 1): group 1 (ρ = 0.25) is too hard -> group_all_wrong
    cfg = GroupFilterConfig(min_n=3, acc_low=0.3)
    d = filter_groups(REWARDS, TRUNC, cfg, batch_prompts=2, generator=0)
    assert d.reason == [None, "group_all_wrong"]


# ------------------------------------------------------------------------------ advantages
def test_group_advantages_grpo_keep():
    adv = group_advantages(REWARDS, "grpo", 1e-6)
    # g0: mean 0.5, std sqrt(1/3) = 0.5773503 -> ±0.5 / (0.5773503 + 1e-6) = ±0.8660239
    a0 = 0.5 / (math.sqrt(1 / 3) + 1e-6)
    assert adv[0].tolist() == pytest.approx([a0, -a0, -a0, a0], abs=1e-6)
    # g1: mean 0.25, std 0.5 -> 0.75 / 0.5 = 1.5 and -0.25 / 0.5 = -0.5
    assert adv[1].tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-5)


def test_group_advantages_drgrpo():
    adv = group_advantages(REWARDS, "drgrpo")
    assert adv.tolist() == [[0.5, -0.5, -0.5, 0.5], [0.75, -0.25, -0.25, -0.25]]


def test_baseline_exclude_recomputes_stats_and_criterion_2():
    cfg = FilterConfig(tool=ToolFilterConfig(baseline="exclude"))
    d = trajectory_weights(N_CALL, N_OK, VOID, TRUNC, cfg)
    assert d.stats_mask.tolist() == [[True, False, True, True], [True, False, False, True]]
    adv = group_advantages(REWARDS, "grpo", 1e-6, d.stats_mask)
    # g0 without r1: rewards (1, 0, 1): mean 2/3, var ((1/3)² * 2 + (2/3)²) / 2 = 1/3, std 0.57735
    s0 = math.sqrt(1 / 3) + 1e-6
    assert adv[0].tolist() == pytest.approx([(1 / 3) / s0, (-2 / 3) / s0, (-2 / 3) / s0, (1 / 3) / s0], abs=1e-6)
    # g1 without r1, r2: rewards (1, 0): mean 0.5, std sqrt(0.5) = 0.70711
    s1 = math.sqrt(0.5) + 1e-6
    assert adv[1].tolist() == pytest.approx([0.5 / s1, -0.5 / s1, -0.5 / s1, -0.5 / s1], abs=1e-6)
    g = filter_groups(REWARDS, TRUNC, GroupFilterConfig(min_n=3), 2, 0, stats_mask=d.stats_mask)
    # ρ over the counted rollouts: g0 2/3, g1 1/2
    assert g.pass_rate.tolist() == pytest.approx([2 / 3, 0.5])
    # criterion 2 re-applied: if the only correct rollout of a group is flagged, the rest is all wrong
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    dd = trajectory_weights(torch.tensor([[1, 0, 0, 0]]), torch.tensor([[0, 0, 0, 0]]),
                            torch.zeros(1, 4, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.bool), cfg)
    keep = filter_groups(r, torch.zeros(1, 4, dtype=torch.bool), GroupFilterConfig(), 1, 0)
    excl = filter_groups(r, torch.zeros(1, 4, dtype=torch.bool), GroupFilterConfig(), 1, 0, stats_mask=dd.stats_mask)
    assert keep.reason == [None] and excl.reason == ["group_all_wrong"]


# ------------------------------------------------------------------------------ tokens
def traj_a() -> Trajectory:
    """prompt (5, 6); turn 0: 3 model tokens + code, observation 2 tokens (ok); turn 1: 3 model
    tokens + code, observation 1 token (runtime_error); turn 2: 2 model tokens with the answer."""
    return Trajectory(
        group=1, index=0, problem_id="p1", problem="?", answer="1", prompt_ids=[5, 6],
        response_ids=[10, 11, 12, 20, 21, 13, 14, 15, 22, 16, 17],
        segment=[1, 1, 1, 2, 2, 1, 1, 1, 2, 1, 1],
        turn=[0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2],
        sample_logprobs=[-0.1, -0.2, -0.3, 0.0, 0.0, -0.4, -0.5, -0.6, 0.0, -0.7, -0.8],
        tool_calls=[ToolCall(turn=0, code="print(1)", status="ok", stdout="1"),
                    ToolCall(turn=1, code="1/0", status="runtime_error")],
        n_turns=3, reward=1.0)


def traj_b() -> Trajectory:
    """prompt (5, 6, 7); one turn of 2 model tokens, no tool."""
    return Trajectory(group=1, index=1, problem_id="p1", problem="?", answer="1", prompt_ids=[5, 6, 7],
                      response_ids=[30, 31], segment=[1, 1], turn=[0, 0], sample_logprobs=[-1.0, -2.0],
                      n_turns=1, reward=0.0)


PAD = 0


def batch() -> TokenBatch:
    return TokenBatch.from_trajectories([traj_a(), traj_b()], [1.5, -0.5], [1.0, 0.5], PAD)


def test_token_batch_layout():
    b = batch()
    # L = 2 + 11 = 13; column t describes input_ids[t + 1]
    assert b.input_ids[0].tolist() == [5, 6, 10, 11, 12, 20, 21, 13, 14, 15, 22, 16, 17]
    assert b.input_ids[1].tolist() == [5, 6, 7, 30, 31] + [PAD] * 8
    assert b.attention_mask.sum(-1).tolist() == [13, 5]
    assert b.targets[0].tolist() == [6, 10, 11, 12, 20, 21, 13, 14, 15, 22, 16, 17, PAD]
    # response token r of rollout 0 sits at column 2 - 1 + r = 1 + r
    assert b.loss_mask[0].tolist() == [0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0]
    assert b.loss_mask[1].tolist() == [0, 0, 1, 1] + [0] * 9
    assert b.segment[0].tolist() == [0, 1, 1, 1, 2, 2, 1, 1, 1, 2, 1, 1, 0]
    assert b.turn[0].tolist() == [-1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, -1]
    assert b.old_logprobs[0].tolist() == pytest.approx([0, -0.1, -0.2, -0.3, 0, 0, -0.4, -0.5, -0.6, 0, -0.7, -0.8, 0])
    assert b.old_logprobs[1].tolist() == pytest.approx([0, 0, -1.0, -2.0] + [0] * 9)
    assert b.adv[0].tolist() == [1.5 * m for m in b.loss_mask[0].tolist()]
    assert b.weight[1].tolist() == [0, 0, 0.5, 0.5] + [0] * 9
    assert b.turn_called.tolist() == [[True, True, False], [False, False, False]]
    assert b.turn_ok.tolist() == [[True, False, False], [False, False, False]]


def test_gates_and_offsets():
    b = batch()
    a = lambda x: x[0].tolist()
    # model tokens of turn 1 (after call 0) and of turn 2 (after call 1)
    assert a(post_tool_gate(b.segment, b.turn, b.turn_called, b.turn_ok)) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0]
    # requires_success: call 1 failed -> turn 2 not gated
    assert a(post_tool_gate(b.segment, b.turn, b.turn_called, b.turn_ok, requires_success=True)) == \
        [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    # window 2: the first two model tokens after each observation
    assert a(post_tool_gate(b.segment, b.turn, b.turn_called, b.turn_ok, window=2)) == \
        [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0]
    assert a(tool_offsets(b.segment)) == [-1, -1, -1, -1, -1, -1, 0, 1, 2, -1, 0, 1, -1]
    assert post_tool_gate(b.segment, b.turn, b.turn_called, b.turn_ok)[1].sum() == 0  # no tool, no gate
    kw = {"loss_mask": b.loss_mask}
    assert a(make_gate("all", b.segment, b.turn, b.turn_called, b.turn_ok, **kw)) == a(b.loss_mask)
    assert a(make_gate("non_post_tool", b.segment, b.turn, b.turn_called, b.turn_ok, **kw)) == \
        [0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    # entropy_quantile q = 0.6 over the 10 loss tokens: round(0.4 * 10) = 4 highest entropies
    H = torch.zeros(2, 13)
    H[0, [1, 2, 3, 6, 7, 8, 10, 11]] = torch.tensor([0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.5])
    H[1, [2, 3]] = torch.tensor([0.6, 0.05])
    H[0, 4] = 9.0  # an observation token: never a candidate
    g = make_gate("entropy_quantile", b.segment, b.turn, b.turn_called, b.turn_ok, entropy=H, quantile=0.6, **kw)
    assert torch.nonzero(g).tolist() == [[0, 2], [0, 6], [0, 8], [1, 2]]  # 0.9, 0.8, 0.7, 0.6


# rollout 0's 8 loss tokens get entropies 1 3 1 3 1 3 1 3: μ = 2, population σ = 1, Ĥ = -1 +1 -1 ...
COLS_A = [1, 2, 3, 6, 7, 8, 10, 11]


def entropies() -> torch.Tensor:
    H = torch.zeros(2, 13)
    H[0, COLS_A] = torch.tensor([1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 3.0])
    H[1, [2, 3]] = torch.tensor([2.0, 2.0])  # σ = 0 (two tokens): Ĥ = 0 / (0 + 1e-8) = 0
    H[0, 4] = 50.0  # observation token: ignored by the normalisation
    return H


def test_normalize_entropy_trajectory_and_batch():
    b = batch()
    hn = normalize_entropy(entropies(), b.loss_mask, "trajectory")
    assert hn[0, COLS_A].tolist() == pytest.approx([-1, 1, -1, 1, -1, 1, -1, 1], abs=1e-6)
    assert hn[0, 4].item() == 0.0 and hn[1].abs().max().item() == 0.0
    # batch scope: 10 tokens, sum 16 + 4 = 20 -> μ = 2; Σ(H-μ)² = 8 -> σ = sqrt(0.8) = 0.894427
    hb = normalize_entropy(entropies(), b.loss_mask, "batch")
    assert hb[0, 2].item() == pytest.approx(1 / math.sqrt(0.8), abs=1e-6)
    assert hb[1, 2].item() == 0.0
    # σ := 1 with fewer than two tokens: one token 5.0 -> Ĥ = (5 - 5) / 1 = 0; clamp
    one = normalize_entropy(torch.tensor([[5.0, 7.0]]), torch.tensor([[1.0, 0.0]]))
    assert one.tolist() == [[0.0, 0.0]]
    clamped = normalize_entropy(entropies(), b.loss_mask, "trajectory", clamp=0.5)
    assert clamped[0, COLS_A].tolist() == pytest.approx([-0.5, 0.5] * 4, abs=1e-6)


def algo(**shaping) -> AlgoConfig:
    cfg = AlgoConfig()
    return cfg.model_copy(update={"shaping": cfg.shaping.model_copy(update=shaping)})


def test_tao_loss_multiplicative_by_hand():
    b = batch()
    logp = b.old_logprobs.clone().requires_grad_(True)  # ratio 1 everywhere: no clipping
    loss, diag, tok = tao_loss(b, logp, entropies(), algo(coef=0.1))
    # gated columns 6, 7, 8, 10, 11 carry Ĥ = +1, -1, +1, -1, +1 -> factor 1.1, 0.9, 1.1, 0.9, 1.1
    assert tok["factor"][0, [6, 7, 8, 10, 11]].tolist() == pytest.approx([1.1, 0.9, 1.1, 0.9, 1.1])
    assert tok["shaped_adv"][0, COLS_A].tolist() == pytest.approx([1.5, 1.5, 1.5, 1.65, 1.35, 1.65, 1.35, 1.65])
    # l_t = -Ã_t w_t: rollout 0: -(3 * 1.5 + 3 * 1.65 + 2 * 1.35) = -12.15; rollout 1 (w 0.5,
    # Â = -0.5, 2 tokens): +0.5 * 0.5 * 2 = 0.5; token-mean over the 10 trained tokens
    assert loss.item() == pytest.approx((-12.15 + 0.5) / 10, abs=1e-6)
    # ∂L/∂logp_t = -w_t Ã_t / 10
    loss.backward()
    assert logp.grad[0, 6].item() == pytest.approx(-1.65 / 10, abs=1e-6)
    assert logp.grad[1, 2].item() == pytest.approx(0.5 * 0.5 / 10, abs=1e-6)
    assert logp.grad[0, 4].item() == 0.0  # observation token
    # diagnostics: 5 of 10 trained tokens gated; factor mean (3 * 1.1 + 2 * 0.9) / 5 = 1.02
    assert diag["tao/gated_fraction"] == pytest.approx(0.5)
    assert diag["tao/shaping_factor_mean"] == pytest.approx(1.02)
    assert diag["tao/shaping_factor_min"] == pytest.approx(0.9)
    assert diag["tao/shaping_factor_max"] == pytest.approx(1.1)
    assert diag["tao/shaping_factor_std"] == pytest.approx(math.sqrt(0.6 * 0.4) * 0.2, abs=1e-6)
    # post-tool entropy: columns 6, 7, 8, 10, 11 -> (3 + 1 + 3 + 1 + 3) / 5 = 2.2;
    # other loss tokens: (1 + 3 + 1 + 2 + 2) / 5 = 1.8
    assert diag["tao/post_tool_entropy"] == pytest.approx(2.2)
    assert diag["tao/other_entropy"] == pytest.approx(1.8)
    assert diag["clip_ratio/high_mean"] == 0.0 and diag["ratio_mean"] == pytest.approx(1.0)


def test_tao_loss_seq_mean_token_mean_and_additive():
    b = batch()
    cfg = algo(coef=0.1)
    cfg = cfg.model_copy(update={"loss": cfg.loss.model_copy(update={"agg": "seq-mean-token-mean"})})
    loss, _, _ = tao_loss(b, b.old_logprobs.clone(), entropies(), cfg)
    # rollout 0: -12.15 / 8; rollout 1: 0.5 / 2; mean over 2 rollouts
    assert loss.item() == pytest.approx((-12.15 / 8 + 0.5 / 2) / 2, abs=1e-6)
    # Cheng additive, α 0.1, κ 2: gated Â = 1.5, bonus min(0.1 H, 0.75) = 0.3 (H 3) or 0.1 (H 1)
    loss, _, tok = tao_loss(b, b.old_logprobs.clone(), entropies(), algo(form="additive"))
    assert tok["shaped_adv"][0, [6, 7, 8, 10, 11]].tolist() == pytest.approx([1.8, 1.6, 1.8, 1.6, 1.8])
    assert loss.item() == pytest.approx((-(3 * 1.5 + 3 * 1.8 + 2 * 1.6) + 0.5) / 10, abs=1e-6)


def test_tao_loss_gate_switches_and_disabled():
    b = batch()
    H = entropies()
    # shaping off or a = 0: plain GRPO loss -(8 * 1.5) + 0.5 over 10 tokens
    for cfg in (algo(enabled=False), algo(coef=0.0)):
        loss, _, _ = tao_loss(b, b.old_logprobs.clone(), H, cfg)
        assert loss.item() == pytest.approx((-12.0 + 0.5) / 10, abs=1e-6)
    # gate "all" with batch-scope norm: every loss token shaped by 1 + 0.1 Ĥ, Ĥ = ±1/sqrt(0.8), 0
    loss, _, tok = tao_loss(b, b.old_logprobs.clone(), H, algo(coef=0.1, gate="all", norm_scope="batch"))
    k = 0.1 / math.sqrt(0.8)
    assert tok["factor"][0, COLS_A].tolist() == pytest.approx([1 - k, 1 + k] * 4, abs=1e-6)
    assert loss.item() == pytest.approx((-12.0 + 0.5) / 10, abs=1e-6)  # ±k cancel in rollout 0


def test_end_to_end_with_chunked_entropy_backward():
    """The trainer's path: hidden -> chunked log-probs/entropy on batch.targets -> tao_loss -> grad."""
    torch.manual_seed(0)
    b = batch()
    V, D = 40, 6
    W = torch.randn(V, D, requires_grad=True)
    emb = torch.randn(V, D)
    hidden = emb[b.input_ids].requires_grad_(True)
    logp, H = logprobs_and_entropy_from_hidden(hidden, W, b.targets, 0.7, chunk=5)
    # independent: full logits, log_softmax, gather at the next token
    z = (hidden @ W.T) / 0.7
    ls = torch.log_softmax(z, -1)
    assert torch.allclose(logp, ls.gather(-1, b.targets[..., None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(H, -(ls.exp() * ls).sum(-1), atol=1e-5)
    b.old_logp = logp.detach() - 0.05  # ratio e^0.05 = 1.051 on every trained token
    loss, diag, tok = tao_loss(b, logp, H, algo(detach=False))
    loss.backward()
    assert torch.isfinite(W.grad).all() and W.grad.abs().sum() > 0
    assert diag["ratio_mean"] == pytest.approx(math.exp(0.05), abs=1e-5)
    rec = b.response_slice(0, logp=logp, entropy=H, per_token=tok)
    assert len(rec["logprob_train"]) == 11 and rec["logprob_train"][0] == pytest.approx(logp[0, 1].item())
    assert rec["advantage"].tolist() == [1.5, 1.5, 1.5, 0, 0, 1.5, 1.5, 1.5, 0, 1.5, 1.5]
    assert rec["gate"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1]
