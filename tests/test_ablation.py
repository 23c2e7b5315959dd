"""taorl.lab.ablation and taorl.lab.walkthrough: decisions on a replayed batch worked out by hand, the
replay engine's log-probs against an independent forward, token_frame against the formulas and
an independent post-tool mask, run_arms / compare on real tiny runs."""

import math

import polars as pl
import pytest
import torch

from taorl.lab.ablation import ArmResults, compare, decide, profile_config, run_arms, summarize, token_frame
from taorl.errors import UserError

SHORT = ["rollout.max_turns=3", "rollout.max_turn_tokens=64", "rollout.max_response_tokens=256",
         "rollout.obs_max_tokens=32", "rollout.group_size=4", "rollout.batch_prompts=4", "tool.timeout_s=2"]


@pytest.fixture(scope="module")
def replayed():
    from taorl.data.procedural import generate
    from taorl.tools import Sandbox
    from taorl.train.policy import build_policy
    from taorl.lab.walkthrough import demo_scripts, replay_rollouts

    cfg = profile_config("tiny", SHORT + ["model.lora.enabled=false"])
    policy = build_policy(cfg)
    problems = generate(4, difficulty=0, seed=0)
    with Sandbox(cfg.tool) as sb:
        trajs = replay_rollouts(problems, demo_scripts(problems), policy.model, policy.tokenizer, cfg, sb)
    return cfg, policy, trajs


def test_replayed_batch_outcomes(replayed):
    _, _, trajs = replayed
    by = {(t.group, t.index): t for t in trajs}
    assert [c.status for c in by[0, 1].tool_calls] == ["syntax_error"]
    assert [c.status for c in by[3, 2].tool_calls] == ["no_output", "ok"]
    assert by[0, 2].void and by[0, 2].finish == "void"
    assert [[by[g, i].reward for i in range(4)] for g in range(4)] == [
        [1, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]]


def test_decide_by_hand(replayed):
    cfg, _, trajs = replayed
    d = decide(trajs, cfg)
    assert d.groups["reason"].to_list() == [None, "group_all_correct", "group_all_wrong", None]
    t = d.trajectories
    a = 0.5 / math.sqrt(1 / 3)  # r = [1,0,0,1]: mean 0.5, unbiased std sqrt(1/3)
    got = t.filter(pl.col("group") == 0)
    assert got["advantage"].to_list() == pytest.approx([a, -a, -a, a], abs=1e-5)
    # criterion 1 (s = 1) on the syntax error, the void mask on the void turn
    assert got["weight"].to_list() == [1.0, 0.0, 0.0, 1.0]
    assert got["reason"].to_list() == [None, "tools_all_failed", "void_turn", None]
    assert t.filter(pl.col("group") == 3)["weight"].to_list() == [0.0, 1.0, 1.0, 1.0]
    assert t.filter(pl.col("group").is_in([1, 2]))["weight"].to_list() == [0.0] * 8
    # exclude: group 3 without its flagged rollout 0 -> r = [0, 1, 0]: mean 1/3, std sqrt(1/3)
    ex = decide(trajs, profile_config("tiny", SHORT + ["algo.filter.tool.baseline=exclude"]))
    g3 = ex.trajectories.filter(pl.col("group") == 3)["advantage"].to_list()
    s = math.sqrt(1 / 3)
    assert g3[1:] == pytest.approx([-1 / 3 / s, 2 / 3 / s, -1 / 3 / s], abs=1e-5)


def test_replay_logprobs_match_an_independent_forward(replayed):
    _, policy, trajs = replayed
    t = next(x for x in trajs if x.n_call == 2)
    seq = torch.tensor([t.prompt_ids + t.response_ids])
    with torch.no_grad():
        logp = torch.log_softmax(policy.model(input_ids=seq).logits[0].float(), -1)
    P = len(t.prompt_ids)
    for r, (tok, seg) in enumerate(zip(t.response_ids, t.segment)):
        want = float(logp[P + r - 1, tok]) if seg == 1 else 0.0
        assert t.sample_logprobs[r] == pytest.approx(want, abs=1e-4)


def test_token_frame_gate_and_factor(replayed):
    from taorl.train.metrics import post_tool_mask

    cfg, policy, trajs = replayed
    d = decide(trajs, cfg)
    tf = token_frame(trajs, d, cfg, policy)
    assert tf.height == sum(t.length for t in trajs)
    expected = [m for t in trajs for m in post_tool_mask(t)]
    assert tf["post_tool"].cast(bool).to_list() == expected
    gated = tf.filter(pl.col("gate") == 1)
    assert gated.height > 0
    assert (gated["factor"] - (1 + cfg.algo.shaping.coef * gated["entropy_norm"])).abs().max() < 1e-6
    assert (gated["shaped_advantage"] - gated["advantage"] * gated["factor"]).abs().max() < 1e-6
    assert tf.filter(pl.col("segment") == "tool")["entropy"].null_count() == tf.filter(pl.col("segment") == "tool").height
    H = tf.filter(pl.col("segment") == "model")["entropy"]
    assert H.min() >= 0 and H.max() <= math.log(policy.lm_head_weight.shape[0]) + 1e-3


def test_summarize_by_hand():
    df = pl.DataFrame({"arm": ["a", "a", "b"], "seed": [0, 1, 0], "name": ["x", "x", "x"], "value": [1.0, 3.0, 5.0]})
    s = summarize(df).sort("arm")
    assert s["mean"].to_list() == [2.0, 5.0]
    assert s["std"].to_list() == pytest.approx([math.sqrt(2), 0.0])
    assert s["sem"].to_list() == pytest.approx([1.0, 0.0])


def test_bad_inputs():
    with pytest.raises(UserError, match="PROFILE='big'"):
        profile_config("big")
    with pytest.raises(UserError, match="arm 'x'.*algo.shapng"):
        run_arms(profile_config("tiny"), {"x": ["algo.shapng.coef=1"]}, runs_dir="/nonexistent")
    with pytest.raises(UserError, match="arm name"):
        run_arms(profile_config("tiny"), {"a/b": []}, runs_dir="/nonexistent")


def test_run_arms_and_compare(tmp_path):
    base = profile_config("tiny", ["train.steps=1", "rollout.batch_prompts=1", "rollout.group_size=2",
                                   "rollout.max_turn_tokens=8", "rollout.max_response_tokens=16",
                                   "train.checkpoint_every=0"])
    arms = {"c2": [], "no_c2": ["algo.filter.group.enabled=false"]}
    res = run_arms(base, arms, seeds=[0], runs_dir=tmp_path, verbose=False)
    assert isinstance(res, ArmResults) and set(res.runs) == {("c2", 0), ("no_c2", 0)}
    assert res.diff().rows() == [("no_c2", "algo.filter.group.enabled", "True", "False")]
    groups = res.table("groups")
    assert groups.filter(pl.col("arm") == "no_c2")["kept"].all()
    df, fig = compare(res, ["tao/groups_kept", "reward"], reduce="sum")
    assert df.height == 4 and set(df["arm"]) == set(arms)
    kept = dict(df.filter(pl.col("name") == "tao/groups_kept").select("arm", "value").rows())
    assert kept["no_c2"] == groups.filter(pl.col("arm") == "no_c2")["kept"].sum()
    assert len(fig.data) == 2
    again = run_arms(base, arms, seeds=[0], runs_dir=tmp_path, verbose=False)  # same configs: reused
    assert sorted(again.reused) == [("c2", 0), ("no_c2", 0)]
