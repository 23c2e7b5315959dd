"""ppo_update: gradient accumulation over micro-batches gives the same update as one forward over
the whole mini-batch (for every loss aggregation, every gate and entropy norm scope), old log-probs are recomputed only when there is
more than one optimizer step, and per-token records line up with the rollouts."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from taorl.algo import TokenBatch, logprobs_and_entropy_from_hidden, tao_loss
from taorl.config import load_config
from taorl.train.policy import HFPolicy
from taorl.train.trainer import ppo_update
from taorl.types import SEG_MODEL, SEG_TOOL, ToolCall, Trajectory

pytestmark = pytest.mark.usefixtures("one_thread")

G = 4


def _policy(seed=0):
    torch.manual_seed(seed)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                                     pad_token_id=0)).eval()
    mcfg = load_config(None, ["model.name=unit", "model.dtype=float32", "model.lora.enabled=false"]).model
    return HFPolicy(m, tokenizer=None, mcfg=mcfg)


def _rollouts(n_groups=2, seed=0):
    """Groups of G rollouts: model turn, observation, model turn (lengths vary), sampled log-probs."""
    g = torch.Generator().manual_seed(seed)
    by_group = []
    for grp in range(n_groups):
        row = []
        for i in range(G):
            P = 3 + (i % 3)
            m0, obs, m1 = 2 + i, 3, 1 + (grp + i) % 3
            seg = [SEG_MODEL] * m0 + [SEG_TOOL] * obs + [SEG_MODEL] * m1
            turn = [0] * (m0 + obs) + [1] * m1
            R = len(seg)
            row.append(Trajectory(
                group=grp, index=i, problem_id=f"p{grp}", problem="q", answer="1",
                prompt_ids=torch.randint(1, 61, (P,), generator=g).tolist(),
                response_ids=torch.randint(1, 61, (R,), generator=g).tolist(), segment=seg, turn=turn,
                sample_logprobs=(-torch.rand(R, generator=g) * 3).tolist(),
                tool_calls=[ToolCall(turn=0, code="print(1)", status="ok", stdout="1")], n_turns=2,
                reward=float((i + grp) % 2)))
        by_group.append(row)
    return by_group


def _cfg(*over):
    return load_config(None, ["rollout.group_size=4", "train.grad_clip=1e9", "algo.shaping.coef=0.5",
                              "algo.entropy_chunk=16", *over])


def _adv_weights(by_group):
    r = torch.tensor([[t.reward for t in row] for row in by_group])
    adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)
    w = torch.ones_like(r)
    w[0, 1] = 0.0  # a masked rollout: in the batch, but no loss and not in the denominators
    return adv, w


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_micro_batches_accumulate_to_the_mini_batch_gradient(agg):
    by_group = _rollouts()
    adv, w = _adv_weights(by_group)
    results = []
    for micro in (1, 3, 8):
        p = _policy()
        opt = torch.optim.SGD(p.trainable_parameters(), lr=1.0)
        cfg = _cfg(f"algo.loss.agg={agg}", "train.mini_batch_prompts=2", f"train.micro_batch_size={micro}")
        out = ppo_update(p, opt, cfg, by_group, [0, 1], adv, w, pad_id=0, lr=1.0)
        results.append((copy.deepcopy(p.model.state_dict()), out["metrics"]["loss"]))
    # independent reference: one forward over all 8 rollouts, tao_loss, one backward
    p = _policy()
    trajs = [t for row in by_group for t in row]
    b = TokenBatch.from_trajectories(trajs, adv.reshape(-1), w.reshape(-1), 0)
    hidden = p.hidden_states(b.input_ids, b.attention_mask)
    logp, ent = logprobs_and_entropy_from_hidden(hidden, p.lm_head_weight, b.targets, 1.0, 16)
    b.old_logp = logp.detach()
    loss, _, _ = tao_loss(b, logp, ent, _cfg(f"algo.loss.agg={agg}").algo)
    loss.backward()
    ref = {n: (q - q.grad).detach() for n, q in p.model.named_parameters()}
    for state, l in results:
        assert l == pytest.approx(float(loss.detach()), rel=1e-4, abs=2e-5)  # fp32 sums of O(1) terms that cancel
        for n, v in ref.items():
            err = (state[n] - v).abs().max()
            assert err <= 1e-4 * max(1.0, float(v.abs().max())), (n, float(err))


@pytest.mark.parametrize("scope", ["trajectory", "batch"])
@pytest.mark.parametrize("gate", ["post_tool", "all", "non_post_tool", "entropy_quantile"])
def test_every_gate_and_norm_scope_is_independent_of_micro_batch_size(gate, scope):
    """Statistics that span rollouts (the entropy_quantile gate, μ and σ of norm_scope=batch) are
    the whole step's: the update equals one forward of all 8 rollouts for every micro-batch size."""
    by_group = _rollouts()
    adv, w = _adv_weights(by_group)
    over = [f"algo.shaping.gate={gate}", f"algo.shaping.norm_scope={scope}", "algo.shaping.quantile=0.5"]
    p = _policy()
    trajs = [t for row in by_group for t in row]
    b = TokenBatch.from_trajectories(trajs, adv.reshape(-1), w.reshape(-1), 0)
    hidden = p.hidden_states(b.input_ids, b.attention_mask)
    logp, ent = logprobs_and_entropy_from_hidden(hidden, p.lm_head_weight, b.targets, 1.0, 16)
    b.old_logp = logp.detach()
    loss, _, pt = tao_loss(b, logp, ent, _cfg(*over).algo)
    loss.backward()
    ref = {n: (q - q.grad).detach() for n, q in p.model.named_parameters()}
    assert pt["gate"].sum() > 0 and (pt["factor"] != 1).any()  # the shaping is active in every case
    for micro in (1, 3, 8):
        p = _policy()
        opt = torch.optim.SGD(p.trainable_parameters(), lr=1.0)
        cfg = _cfg(*over, "train.mini_batch_prompts=2", f"train.micro_batch_size={micro}")
        out = ppo_update(p, opt, cfg, by_group, [0, 1], adv, w, pad_id=0, lr=1.0)
        assert out["metrics"]["loss"] == pytest.approx(float(loss.detach()), rel=1e-4, abs=2e-5)
        for n, v in ref.items():
            err = (p.model.state_dict()[n] - v).abs().max()
            assert err <= 1e-4 * max(1.0, float(v.abs().max())), (gate, scope, micro, n, float(err))
        for k, rec in out["tokens"].items():  # the gate each token got, as in one piece
            P, R = len(trajs[k].prompt_ids), trajs[k].length
            assert (rec["gate"] == pt["gate"][k, P - 1:P - 1 + R].numpy()).all(), (gate, scope, micro, k)


def test_old_logprobs_recomputed_only_for_several_updates():
    by_group = _rollouts()
    adv, w = _adv_weights(by_group)
    # one update: ratio is exactly 1, clip fractions 0
    p = _policy()
    opt = torch.optim.AdamW(p.trainable_parameters(), lr=1e-2)
    out = ppo_update(p, opt, _cfg("train.mini_batch_prompts=2", "train.micro_batch_size=4"), by_group,
                     [0, 1], adv, w, pad_id=0, lr=1e-2)
    assert out["metrics"]["train/n_updates"] == 1 and out["metrics"]["ratio_mean"] == pytest.approx(1.0)
    # two mini-batches x two epochs = 4 updates; the first mini-batch of epoch 0 still has ratio 1
    p = _policy()
    opt = torch.optim.AdamW(p.trainable_parameters(), lr=5e-2)
    calls = []
    out = ppo_update(p, opt, _cfg("train.mini_batch_prompts=1", "train.micro_batch_size=4", "train.ppo_epochs=2"),
                     by_group, [0, 1], adv, w, pad_id=0, lr=5e-2, after_step=lambda: calls.append(1))
    assert out["metrics"]["train/n_updates"] == 4 and len(calls) == 4
    assert out["metrics"]["ratio_mean"] != pytest.approx(1.0, abs=1e-6)  # later updates moved away


def test_token_records_line_up_with_rollouts():
    by_group = _rollouts()
    adv, w = _adv_weights(by_group)
    p = _policy()
    opt = torch.optim.SGD(p.trainable_parameters(), lr=0.0)
    out = ppo_update(p, opt, _cfg("train.mini_batch_prompts=2", "train.micro_batch_size=3"), by_group,
                     [0, 1], adv, w, pad_id=0, lr=0.0)
    toks = out["tokens"]
    assert sorted(toks) == list(range(8))
    for k, rec in toks.items():
        t = by_group[k // G][k % G]
        seg = torch.tensor(t.segment)
        assert len(rec["entropy"]) == t.length
        # gate: 1 exactly on the model tokens of turn 1 (after the code block of turn 0)
        expect_gate = ((seg == SEG_MODEL) & (torch.tensor(t.turn) == 1)).float().numpy()
        assert (rec["gate"] == expect_gate).all()
        # token weight = rollout weight on model tokens, 0 on observation tokens
        assert (rec["weight"] == float(w[k // G, k % G]) * (seg == SEG_MODEL).float().numpy()).all()
        assert (rec["advantage"][seg.numpy() == SEG_MODEL] == pytest.approx(float(adv[k // G, k % G])))
        # the trainer log-prob of each response token, recomputed independently from full logits
        ids = torch.tensor([t.prompt_ids + t.response_ids])
        with torch.no_grad():
            logits = p.model(input_ids=ids).logits[0, len(t.prompt_ids) - 1:-1]
        lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(t.response_ids)[:, None])[:, 0]
        model = seg == SEG_MODEL
        assert torch.allclose(torch.tensor(rec["logprob_train"])[model], lp[model], atol=1e-4)
    m = out["metrics"]
    assert {"tao/post_tool_entropy", "tao/other_entropy", "entropy", "sampling/logp_diff_mean",
            "sampling/logp_diff_max", "clip_ratio/high_mean", "tao/shaping_factor_mean"} <= set(m)


def test_code_compat_update_is_the_released_codes_micro_batch_rule():
    """preset code_compat against the released code's rule written out here, micro-batch by micro-batch:
    Ĥ from μ, σ of the micro-batch's weight > 0 tokens (population std, gradient kept), every
    trained token shaped (gate all), l_t = -Ã_t ρ_t - λ H_t (ratio 1 at the first update, inside the
    clip range), loss = Σ_t w_t l_t / Σ_t w_t per micro-batch, scaled by its rollout count / 8."""
    by_group = _rollouts()
    adv, w = _adv_weights(by_group)
    w[1, 2] = 0.5  # a fractional weight (criterion 1 with s = 0.5): Σ w differs from the token count
    over = ["preset=code_compat", "algo.shaping.coef=0.5", "train.mini_batch_prompts=2", "train.micro_batch_size=3"]
    p = _policy()
    opt = torch.optim.SGD(p.trainable_parameters(), lr=1.0)
    ppo_update(p, opt, _cfg(*over), by_group, [0, 1], adv, w, pad_id=0, lr=1.0)
    got = copy.deepcopy(p.model.state_dict())

    q = _policy()
    trajs = [t for row in by_group for t in row]
    a, wt = adv.reshape(-1), w.reshape(-1)
    total = 0.0
    for lo in range(0, 8, 3):
        idx = list(range(lo, min(lo + 3, 8)))
        b = TokenBatch.from_trajectories([trajs[i] for i in idx], a[idx], wt[idx], 0)
        hidden = q.hidden_states(b.input_ids, b.attention_mask)
        logp, H = logprobs_and_entropy_from_hidden(hidden, q.lm_head_weight, b.targets, 1.0, 16)
        tw = b.weight  # rollout weight x loss mask
        valid = H[tw > 0]
        mu, sd = valid.mean(), valid.std(unbiased=False)
        h_norm = (H - mu) / (sd + 1e-8)
        shaped = torch.where(tw > 0, b.adv * (1 + 0.5 * h_norm), b.adv)
        ratio = torch.exp(logp - logp.detach())
        per_tok = -shaped * ratio - 0.001 * H
        loss_mb = (tw * per_tok).sum() / tw.sum()
        total = total + loss_mb * len(idx) / 8
    total.backward()
    for n, v in q.model.named_parameters():
        ref = (v - v.grad).detach()
        err = (got[n] - ref).abs().max()
        assert err <= 1e-4 * max(1.0, float(ref.abs().max())), (n, float(err))
