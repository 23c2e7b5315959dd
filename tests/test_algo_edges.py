"""Edge cases of the filters, advantages, gate and batch builder, hand-computed."""

from __future__ import annotations

import pytest
import torch

from taorl.algo import TokenBatch, filter_groups, group_advantages, make_gate, post_tool_gate, tool_offsets
from taorl.config import GroupFilterConfig
from taorl.types import ToolCall, Trajectory


def test_group_with_one_counted_rollout_gets_zero_advantage():
    r = torch.tensor([[1.0, 0.0, 0.0]])
    m = torch.tensor([[True, False, False]])
    assert group_advantages(r, "grpo", 1e-6, m).tolist() == [[0.0, 0.0, 0.0]]
    # unbiased std of (3, 1) is sqrt(2); Â = ±1 / (sqrt(2) + 1e-6)
    a = group_advantages(torch.tensor([[3.0, 1.0]]), "grpo", 1e-6)
    assert a.tolist()[0] == pytest.approx([1 / (2 ** 0.5 + 1e-6), -1 / (2 ** 0.5 + 1e-6)])
    with pytest.raises(ValueError, match="grpo"):
        group_advantages(r, "ppo")


def test_filter_reasons_precedence_and_disabled():
    rewards = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 1.0],
                            [1.0, 0.0, 1.0, 0.0]])
    trunc = torch.zeros(4, 4, dtype=torch.bool)
    trunc[3, :2] = True
    d = filter_groups(rewards, trunc, GroupFilterConfig(), 4, 0)
    # g2: ρ = 1/4 inside (0, 1), but std = 0.25 ≥ 1e-3: kept. g3: 2 untruncated < 4
    assert d.reason == ["group_all_correct", "group_all_wrong", None, "too_few_untruncated"]
    # a std threshold above 0.25 drops g2: low std with ρ = 1/4 < 1/2 -> group_all_wrong
    d = filter_groups(rewards, trunc, GroupFilterConfig(std_threshold=0.3), 4, 0)
    assert d.reason[2] == "group_all_wrong"
    off = filter_groups(rewards, trunc, GroupFilterConfig(enabled=False), 3, 0)
    assert off.n_valid == 4 and off.kept.sum() == 3 and off.reason.count("not_selected") == 1
    none = filter_groups(torch.ones(2, 4), torch.zeros(2, 4, dtype=torch.bool), GroupFilterConfig(refill="duplicate"), 4, 0)
    assert none.selected == [] and none.duplicates == [0, 0] and not none.kept.any()


def test_gate_offsets_on_hand_made_rows():
    # P prompt, M model, O observation (turns 0 0 0 | 0 | 1 1 | 1 | 2)
    seg = torch.tensor([[0, 1, 1, 2, 1, 1, 2, 1, 0]])
    turn = torch.tensor([[-1, 0, 0, 0, 1, 1, 1, 2, -1]])
    assert tool_offsets(seg).tolist() == [[-1, -1, -1, -1, 0, 1, -1, 0, -1]]
    called = torch.tensor([[True, False, False]])  # only turn 0 ran code (turn 1: hypothetical no call)
    ok = torch.tensor([[True, False, False]])
    # turn 1 follows a call -> gated; turn 2 follows turn 1, which had no call -> not gated
    assert post_tool_gate(seg, turn, called, ok).tolist() == [[0, 0, 0, 0, 1, 1, 0, 0, 0]]
    # turns beyond K and an empty K are handled
    assert post_tool_gate(seg, turn, torch.zeros(1, 0, dtype=torch.bool), torch.zeros(1, 0, dtype=torch.bool)).sum() == 0
    assert post_tool_gate(seg, turn + 5, called, ok).sum() == 0
    with pytest.raises(ValueError, match="post_tool"):
        make_gate("everything", seg, turn, called, ok)
    with pytest.raises(ValueError, match="entropy"):
        make_gate("entropy_quantile", seg, turn, called, ok)


def test_token_batch_checks_inputs():
    t = Trajectory(group=0, index=0, problem_id="p", problem="", answer="", prompt_ids=[],
                   response_ids=[4], segment=[1], turn=[0], sample_logprobs=[-1.0])
    with pytest.raises(ValueError, match="empty prompt"):
        TokenBatch.from_trajectories([t], [1.0], [1.0], 0)
    t.prompt_ids = [1]
    with pytest.raises(ValueError, match="2 advantages"):
        TokenBatch.from_trajectories([t], [1.0, 2.0], [1.0], 0)
    t.segment = [1, 1]
    with pytest.raises(ValueError, match="segment"):
        TokenBatch.from_trajectories([t], [1.0], [1.0], 0)


def test_token_batch_turn_ok_from_statuses():
    calls = [ToolCall(turn=0, code="", status="output_truncated"), ToolCall(turn=1, code="", status="no_output")]
    t = Trajectory(group=0, index=0, problem_id="p", problem="", answer="", prompt_ids=[1],
                   response_ids=[4, 5, 6, 7, 8], segment=[1, 2, 1, 2, 1], turn=[0, 0, 1, 1, 2],
                   sample_logprobs=[0.0] * 5, tool_calls=calls, n_turns=3)
    b = TokenBatch.from_trajectories([t], [1.0], [1.0], 0)
    # output_truncated counts as a success (types.OK_STATUSES), no_output does not
    assert b.turn_called.tolist() == [[True, True, False]] and b.turn_ok.tolist() == [[True, False, False]]


def test_chunked_logprobs_bf16_weights_upcast_per_chunk():
    """bf16 hidden/lm_head (the GPU path): logits in bf16 like the model's own head, softmax in fp32."""
    from taorl.algo import logprobs_and_entropy_from_hidden

    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 5, 16, generator=g)
    W = torch.randn(30, 16, generator=g) * 0.3
    y = torch.randint(0, 30, (2, 5), generator=g)
    hb, Wb = h.bfloat16().requires_grad_(True), W.bfloat16().requires_grad_(True)
    lp, H = logprobs_and_entropy_from_hidden(hb, Wb, y, 1.0, chunk=3)
    assert lp.dtype == torch.float32 and H.dtype == torch.float32
    # reference: the same bf16 logits, upcast, fp32 log_softmax
    ls = torch.log_softmax((hb.detach() @ Wb.detach().T).float(), -1)
    assert torch.allclose(lp, ls.gather(-1, y[..., None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(H, -(ls.exp() * ls).sum(-1), atol=1e-5)
    (lp.sum() + H.sum()).backward()
    assert hb.grad.dtype == torch.bfloat16 and Wb.grad.dtype == torch.bfloat16
    # gradients agree with the fp32 computation to bf16 precision
    h32, W32 = h.requires_grad_(True), W.requires_grad_(True)
    ls32 = torch.log_softmax(h32 @ W32.T, -1)
    (ls32.gather(-1, y[..., None]).sum() - (ls32.exp() * ls32).sum()).backward()
    assert torch.allclose(hb.grad.float(), h32.grad, atol=0.1, rtol=0.05)
    assert torch.allclose(Wb.grad.float(), W32.grad, atol=0.1, rtol=0.05)
