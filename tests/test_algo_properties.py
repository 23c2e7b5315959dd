"""Hypothesis properties of the TAO-RL maths (modest example counts: these run in seconds)."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taorl.algo import (
    entropy_from_logits,
    filter_groups,
    group_advantages,
    logprobs_and_entropy_from_hidden,
    multiplicative_shaping,
    policy_loss,
    tao_loss,
)
from taorl.algo.batch import TokenBatch
from taorl.config import AlgoConfig, GroupFilterConfig
from taorl.types import ToolCall, Trajectory

FAST = settings(max_examples=25, deadline=None)


def naive(hidden, W, targets, temperature):
    """Independent reference: full fp64 logits, log_softmax, gather; H = -Σ p log p."""
    ls = torch.log_softmax((hidden.double() @ W.double().T) / temperature, -1)
    return ls.gather(-1, targets[..., None]).squeeze(-1), -(ls.exp() * ls).sum(-1)


@FAST
@given(seed=st.integers(0, 10_000), B=st.integers(1, 3), T=st.integers(1, 9), V=st.integers(2, 50),
       chunk=st.integers(1, 12), temperature=st.floats(0.3, 2.0), scale=st.floats(0.1, 5.0))
def test_chunked_logprobs_entropy_match_naive(seed, B, T, V, chunk, temperature, scale):
    g = torch.Generator().manual_seed(seed)
    D = 5
    h = (torch.randn(B, T, D, generator=g) * scale).requires_grad_(True)
    W = torch.randn(V, D, generator=g).requires_grad_(True)
    y = torch.randint(0, V, (B, T), generator=g)
    lp, H = logprobs_and_entropy_from_hidden(h, W, y, temperature, chunk)
    lp_n, H_n = naive(h, W, y, temperature)
    assert torch.allclose(lp.double(), lp_n, atol=1e-5, rtol=1e-5)
    assert torch.allclose(H.double(), H_n, atol=1e-5, rtol=1e-5)
    # gradients of a random combination of log-probs and entropies vs the naive graph, in fp64
    # (the chunked function keeps fp64 inputs in fp64, so this checks the backward formula exactly)
    c1, c2 = torch.randn(B, T, generator=g).double(), torch.randn(B, T, generator=g).double()
    hd, Wd = h.detach().double().requires_grad_(True), W.detach().double().requires_grad_(True)
    lp_d, H_d = logprobs_and_entropy_from_hidden(hd, Wd, y, temperature, chunk)
    lp_n, H_n = naive(hd, Wd, y, temperature)
    got = torch.autograd.grad((lp_d * c1 + H_d * c2).sum(), [hd, Wd], retain_graph=True)
    want = torch.autograd.grad((lp_n * c1 + H_n * c2).sum(), [hd, Wd], retain_graph=True)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-7)
    # log-probs alone (entropy not computed: the plain-GRPO and detached-shaping path)
    lp2, _ = logprobs_and_entropy_from_hidden(hd, Wd, y, temperature, chunk, with_entropy=False)
    got = torch.autograd.grad((lp2 * c1).sum(), [hd, Wd])
    want = torch.autograd.grad((lp_n * c1).sum(), [hd, Wd])
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-7)
    # fp32 gradients agree up to fp32 rounding, which grows with the logits |s| = |h·W| / T (up to ~70
    # here): the bound is 2e-5 (1 + max|grad|)(1 + max|s|); 3,000 random draws reach at most 5e-6 of it
    s_max = (hd @ Wd.T / temperature).abs().max().item()
    g32 = torch.autograd.grad((lp * c1.float() + H * c2.float()).sum(), [h, W])
    for a, b in zip(g32, torch.autograd.grad((lp_d * c1 + H_d * c2).sum(), [hd, Wd])):
        tol = 2e-5 * (1.0 + b.abs().max().item()) * (1.0 + s_max)
        assert torch.allclose(a.double(), b, atol=tol, rtol=1e-3)


@FAST
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 20), V=st.integers(2, 300),
       chunk=st.integers(1, 8), scale=st.floats(0.01, 30.0))
def test_entropy_from_logits_matches_formula(seed, rows, V, chunk, scale):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(rows, V, generator=g) * scale).requires_grad_(True)
    H = entropy_from_logits(z, chunk)
    p = torch.softmax(z.double(), -1)
    ref = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    assert torch.allclose(H.double(), ref, atol=1e-5, rtol=1e-5)
    assert (H >= -1e-6).all() and (H <= math.log(V) + 1e-4).all()
    (gz,) = torch.autograd.grad(H.sum(), z)
    (gz_ref,) = torch.autograd.grad(-(torch.softmax(z, -1) * torch.log_softmax(z, -1)).sum(), z)
    assert torch.allclose(gz, gz_ref, atol=1e-4, rtol=1e-4)


def _random_batch(g: torch.Generator, n: int) -> TokenBatch:
    trajs = []
    for i in range(n):
        turns = int(torch.randint(1, 4, (1,), generator=g))
        seg, turn, calls = [], [], []
        for k in range(turns):
            m = int(torch.randint(1, 5, (1,), generator=g))
            seg += [1] * m
            turn += [k] * m
            if k < turns - 1:
                o = int(torch.randint(1, 3, (1,), generator=g))
                seg += [2] * o
                turn += [k] * o
                calls.append(ToolCall(turn=k, code="", status="ok" if torch.rand(1, generator=g) < 0.5 else "timeout"))
        R = len(seg)
        trajs.append(Trajectory(group=0, index=i, problem_id="p", problem="", answer="", prompt_ids=[1, 2],
                                response_ids=torch.randint(3, 30, (R,), generator=g).tolist(), segment=seg,
                                turn=turn, sample_logprobs=(-torch.rand(R, generator=g)).tolist(),
                                tool_calls=calls, n_turns=turns))
    adv = torch.randn(n, generator=g)
    w = (torch.rand(n, generator=g) < 0.8).float()
    return TokenBatch.from_trajectories(trajs, adv, w, 0)


def _algo(**shaping) -> AlgoConfig:
    c = AlgoConfig()
    return c.model_copy(update={"shaping": c.shaping.model_copy(update=shaping)})


@FAST
@given(seed=st.integers(0, 10_000), gate=st.sampled_from(["post_tool", "all", "non_post_tool", "entropy_quantile"]),
       scope=st.sampled_from(["trajectory", "batch"]), which=st.sampled_from(["a0", "g0"]))
def test_a_zero_or_no_gate_is_plain_grpo(seed, gate, scope, which):
    g = torch.Generator().manual_seed(seed)
    b = _random_batch(g, 4)
    L = b.input_ids.shape[1]
    H = torch.rand(4, L, generator=g) * 3
    base = b.old_logprobs + 0.3 * torch.randn(4, L, generator=g)
    cfg = _algo(coef=0.0 if which == "a0" else 0.05, gate=gate, norm_scope=scope, quantile=1.0, detach=False)
    if which == "g0" and gate != "entropy_quantile":
        b.turn_called.zero_()  # no tool call anywhere
        if gate in ("all", "non_post_tool"):
            return  # these gates are on every (non-post-tool) model token by definition
    lp1 = base.clone().requires_grad_(True)
    H1 = H.clone().requires_grad_(True)
    loss, _, tok = tao_loss(b, lp1, H1, cfg)
    lp2 = base.clone().requires_grad_(True)
    plain, _ = policy_loss(lp2, b.old_logprobs, b.adv, b.weight, cfg.loss)
    assert torch.equal(tok["shaped_adv"], b.adv)
    assert loss.item() == plain.item()
    loss.backward()
    plain.backward()
    assert torch.equal(lp1.grad, lp2.grad)
    assert H1.grad is None or not H1.grad.any()


@FAST
@given(adv=st.lists(st.floats(-5, 5), min_size=1, max_size=30), coef=st.one_of(st.just(0.0), st.floats(1e-3, 0.5)), seed=st.integers(0, 999))
def test_shaping_keeps_sign_while_factor_positive(adv, coef, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.tensor(adv)
    bound = 0.999 / coef if coef > 0 else 100.0
    hn = (torch.rand(len(adv), generator=g) * 2 - 1) * bound  # |a Ĥ| < 1
    gate = (torch.rand(len(adv), generator=g) < 0.5).float()
    shaped, factor = multiplicative_shaping(A, gate, hn, coef)
    assert (factor > 0).all()
    assert torch.equal(torch.sign(shaped), torch.sign(A))


@FAST
@given(seed=st.integers(0, 10_000), agg=st.sampled_from(["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]),
       anti=st.booleans())
def test_all_masked_batch_gives_zero_loss_and_finite_grads(seed, agg, anti):
    g = torch.Generator().manual_seed(seed)
    b = _random_batch(g, 3)
    b.weight.zero_()
    L = b.input_ids.shape[1]
    cfg = AlgoConfig()
    cfg = cfg.model_copy(update={"loss": cfg.loss.model_copy(update={"agg": agg, "anti_clip": anti,
                                                                     "kl_coef": 0.1, "entropy_coef": 0.01})})
    lp = (torch.randn(3, L, generator=g) * 50).requires_grad_(True)
    H = torch.rand(3, L, generator=g).requires_grad_(True)
    loss, diag, _ = tao_loss(b, lp, H, cfg, ref_logp=torch.randn(3, L, generator=g))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(lp.grad).all() and not lp.grad.any()
    assert all(math.isfinite(v) for v in diag.values())


@FAST
@given(seed=st.integers(0, 2**31), N=st.integers(1, 12), G=st.integers(2, 6), B=st.integers(1, 12),
       refill=st.sampled_from(["fewer", "duplicate"]))
def test_same_seed_same_group_selection(seed, N, G, B, refill):
    g = torch.Generator().manual_seed(seed % 1000)
    rewards = (torch.rand(N, G, generator=g) < 0.5).float()
    trunc = torch.rand(N, G, generator=g) < 0.1
    cfg = GroupFilterConfig(min_n=1, refill=refill)
    d1 = filter_groups(rewards, trunc, cfg, B, seed)
    d2 = filter_groups(rewards, trunc, cfg, B, torch.Generator().manual_seed(seed))
    assert d1.selected == d2.selected and d1.reason == d2.reason and d1.duplicates == d2.duplicates
    valid = [i for i in range(N) if 0 < rewards[i].mean() < 1 and (~trunc[i]).sum() >= 1]
    assert len(set(d1.selected)) == len(d1.selected) and set(d1.selected) <= set(valid)
    assert len(d1.selected) == min(B, len(valid)) and d1.n_valid == len(valid)
    assert sum(r == "not_selected" for r in d1.reason) == len(valid) - len(d1.selected)
    extra = sum(d1.duplicates)
    assert extra == (B - len(valid) if refill == "duplicate" and 0 < len(valid) < B else 0)


@FAST
@given(rewards=st.lists(st.sampled_from([0.0, 1.0]), min_size=2, max_size=16), kind=st.sampled_from(["grpo", "drgrpo"]))
def test_advantages_zero_mean_and_unit_unbiased_std(rewards, kind):
    r = torch.tensor([rewards])
    a = group_advantages(r, kind, eps=1e-6)
    assert abs(a.sum().item()) < 1e-4  # Σ (r_i - mean) = 0
    if kind == "grpo" and 0 < sum(rewards) < len(rewards):
        assert abs(a.std(unbiased=True).item() - 1.0) < 1e-4  # (std / (std + eps)) ≈ 1
