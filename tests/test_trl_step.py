"""TaoGRPOTrainer's maths on a TRL-shaped batch equals taorl's own trainer path, computed independently.

The batch is laid out as TRL holds it after generation (completion-aligned, right padded, tool_mask 0
on tool-result tokens). The reference goes the other way through taorl: Trajectory objects ->
taorl.algo.step.decide_rollouts -> TokenBatch.from_trajectories (prompt-aligned) -> shape_advantage,
then back to completion columns. What TRL receives must be c·w·Ã on model tokens, the tool mask
zeroed on weight-0 rows and the token count Σ c·m of trained rows (taorl.integrations.trl.step).
No TRL import: this is plain taorl."""

import pytest
import torch

from taorl.algo import TokenBatch, shape_advantage
from taorl.algo.step import decide_rollouts
from taorl.integrations.trl.settings import tao_config, trl_loss_args
from taorl.integrations.trl.step import tao_trl_step
from taorl.types import SEG_MODEL, SEG_TOOL, ToolCall, Trajectory

G, T = 4, 14
# per rollout: (mask over the completion, its length, reward, call statuses per turn, void, truncated)
#   mask 1 = sampled token, 0 = tool result; a 0-run after a 1-run is that turn's observation
M2 = [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]                 # turn 0, observation, turn 1
M3 = [1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1]           # turns 0, 1, 2
M1 = [1] * 7                                         # one turn, no call
ROWS = [
    # group 0: spread, one rollout whose every call failed (criterion 1), one void
    (M2, 1.0, ["ok"]), (M3, 0.0, ["runtime_error", "syntax_error"]), (M1, 0.0, []), (M2, 1.0, ["no_output"]),
    # group 1: all correct -> dropped by criterion 2
    (M2, 1.0, ["ok"]), (M1, 1.0, []), (M3, 1.0, ["ok", "ok"]), (M2, 1.0, ["ok"]),
    # group 2: spread, one truncated rollout (overlong mask)
    (M3, 1.0, ["ok", "timeout"]), (M2, 0.0, ["ok"]), (M1, 0.0, []), (M2, 0.0, ["runtime_error"]),
]
VOID = {2}
TRUNC = {10}


def _turns(mask):
    seg, turn, k = [], [], -1
    for i, m in enumerate(mask):
        if m and (i == 0 or not mask[i - 1]):
            k += 1
        seg.append(SEG_MODEL if m else SEG_TOOL)
        turn.append(k)
    return seg, turn


def _batch():
    B = len(ROWS)
    cm = torch.zeros(B, T, dtype=torch.long)
    tm = torch.ones(B, T, dtype=torch.long)  # TRL pads tool_mask with 1
    trajs, flags = [], []
    for b, (mask, r, statuses) in enumerate(ROWS):
        n = len(mask)
        cm[b, :n] = 1
        tm[b, :n] = torch.tensor(mask)
        seg, turn = _turns(mask)
        calls = [ToolCall(turn=k, code="", status=s) for k, s in enumerate(statuses)]
        t = Trajectory(group=b // G, index=b % G, problem_id=str(b // G), problem="", answer="",
                       prompt_ids=[5, 6, 7], response_ids=list(range(100, 100 + n)), segment=seg, turn=turn,
                       sample_logprobs=[0.0] * n, tool_calls=calls, n_turns=max(turn) + 1,
                       void=b in VOID, truncated=b in TRUNC, reward=r)
        trajs.append(t)
        turn_ok = [False] * t.n_turns
        for c in calls:
            turn_ok[c.turn] |= c.ok
        flags.append({"n_call": t.n_call, "n_ok": t.n_ok, "void": t.void, "truncated": t.truncated,
                      "turn_ok": turn_ok})
    ent = torch.rand(B, T, generator=torch.Generator().manual_seed(3)) * 3
    return cm, tm, trajs, flags, ent


def _reference(trajs, ent, cfg, seed):
    """taorl's own trainer path: decision, prompt-aligned TokenBatch, shaping; back to completion columns."""
    N = len(trajs) // G
    dec = decide_rollouts([trajs[g * G:(g + 1) * G] for g in range(N)], cfg.algo, N, seed)
    batch = TokenBatch.from_trajectories(trajs, dec.adv.reshape(-1), dec.weights.reshape(-1), pad_id=0)
    P = 3
    H = torch.zeros_like(batch.loss_mask)
    H[:, P - 1:P - 1 + T] = ent[:, :H.shape[1] - (P - 1)] if H.shape[1] - (P - 1) < T else ent
    H = H * batch.loss_mask
    shaped, _ = shape_advantage(batch, H, cfg.algo)
    copies = torch.tensor([1.0 + dec.groups.duplicates[b // G] for b in range(len(trajs))])
    out = torch.zeros(len(trajs), T)
    for b, t in enumerate(trajs):
        n = len(t.response_ids)
        out[b, :n] = (shaped * batch.weight)[b, P - 1:P - 1 + n]
    return dec, out * copies[:, None], copies


@pytest.mark.parametrize("preset", ["paper", "code_compat"])
def test_advantages_and_masks_equal_taorls_decision_and_shaping(preset):
    cfg = tao_config(preset, ["algo.filter.group.min_n=2", "algo.shaping.coef=0.5"])
    cm, tm, trajs, flags, ent = _batch()
    st = tao_trl_step([t.reward for t in trajs], cm, tm, G, cfg, entropy=ent, flags=flags, seed=11)
    dec, ref, copies = _reference(trajs, ent * (cm * tm), cfg, seed=11)

    torch.testing.assert_close(st.advantages, ref, rtol=1e-5, atol=1e-6)
    w = dec.weights.reshape(-1)
    assert torch.equal(st.tool_mask, tm * (w > 0).long()[:, None])  # weight-0 rows leave the loss
    model = (cm * tm).float()
    assert float(st.num_items) == pytest.approx(float((model * (w > 0)[:, None] * copies[:, None]).sum()))
    # group 1 (all correct) is dropped: no token of it trains
    assert st.advantage.group_reason[1] == "group_all_correct"
    assert not st.tool_mask[4:8].any() and not st.advantages[4:8].any()
    # the shaping moved some post-tool token, so the comparison saw Ã, not just Â
    plain = torch.tensor([float(st.advantage.rollout_adv[b] * st.advantage.weight[b]) for b in range(12)])
    assert (st.advantages - plain[:, None] * model * copies[:, None]).abs().max() > 1e-3


def test_paper_defaults_by_hand():
    """Group 0 of the batch under the paper's settings, worked by hand: rewards 1, 0, 0, 1 -> mean 1/2,
    unbiased std sqrt(1/3) -> Â = ±0.866; rollout 1 tried the tool twice, both failed -> w = 0
    (criterion 1, s = 1); rollout 2 had a void turn -> w = 0; rollout 3's call printed nothing
    (no_output is not a success) -> flagged too, w = 0; rollout 0 keeps w = 1."""
    cfg = tao_config("paper", ["algo.filter.group.min_n=2", "algo.shaping.enabled=false"])
    cm, tm, trajs, flags, _ = _batch()
    st = tao_trl_step([t.reward for t in trajs], cm, tm, G, cfg, flags=flags, seed=0)
    a = 0.5 / (1 / 3) ** 0.5
    assert st.advantage.rollout_adv[:4].tolist() == pytest.approx([a, -a, -a, a], rel=1e-5)
    assert st.advantage.weight[:4].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert st.advantage.reason[:4] == [None, "tools_all_failed", "void_turn", "tools_all_failed"]
    assert st.advantages[0, :10].tolist() == pytest.approx([a * m for m in M2], rel=1e-5)
    assert st.advantage.reason[10] == "truncated" and st.advantage.weight[10] == 0.0


def test_refill_duplicate_counts_a_group_twice():
    """refill=duplicate with B = 3 and 2 surviving groups: one survivor trains twice, so its
    advantages double (c = 2) and its tokens count twice in the dapo normaliser."""
    cfg = tao_config("paper", ["algo.filter.group.min_n=2", "algo.filter.group.refill=duplicate",
                               "algo.shaping.enabled=false"])
    cm, tm, trajs, flags, _ = _batch()
    st = tao_trl_step([t.reward for t in trajs], cm, tm, G, cfg, flags=flags, seed=0)
    assert sorted(st.copies.tolist()) == [1.0] * 8 + [2.0] * 4
    doubled = int(st.copies.argmax()) // G
    assert doubled in (0, 2) and st.advantage.gdec.duplicates[doubled] == 1
    rows = slice(doubled * G, doubled * G + G)
    base = tao_trl_step([t.reward for t in trajs], cm, tm, G,
                        tao_config("paper", ["algo.filter.group.min_n=2", "algo.shaping.enabled=false"]),
                        flags=flags, seed=0)
    torch.testing.assert_close(st.advantages[rows], 2 * base.advantages[rows])
    trained = (cm * st.tool_mask).float()
    assert float(st.num_items) == pytest.approx(float((trained * st.copies[:, None]).sum()))


def test_refill_copies_are_recorded_in_the_run_directory():
    """The groups table of a TRL step (common.step_tables through trl.record) says what TRL trained:
    the doubled group has duplicates 1, the others 0; verl's RunDump records 0 (its fixed batch
    trains no copies)."""
    from taorl.integrations.trl.record import BatchRecord

    cfg = tao_config("paper", ["algo.filter.group.min_n=2", "algo.filter.group.refill=duplicate",
                               "algo.shaping.enabled=false"])
    cm, tm, trajs, flags, _ = _batch()
    st = tao_trl_step([t.reward for t in trajs], cm, tm, G, cfg, flags=flags, seed=0)
    doubled = int(st.copies.argmax()) // G
    rec = BatchRecord(group_size=G, prompt_ids=[t.prompt_ids for t in trajs],
                      completion_ids=[t.response_ids for t in trajs],
                      model_mask=[[int(s == SEG_MODEL) for s in t.segment] for t in trajs],
                      rewards=torch.tensor([t.reward for t in trajs], dtype=torch.float64),
                      trl_advantages=torch.zeros(len(trajs)), flags=flags, problems=[""] * len(trajs),
                      answers=None, step=st.advantage)
    groups = rec.tables(cfg, lambda ids: " ".join(map(str, ids)))["groups"]
    assert [g["duplicates"] for g in groups] == [int(g == doubled) for g in range(3)]
    assert [g["kept"] for g in groups] == [True, False, True]


def test_loss_settings_map_to_grpoconfig():
    assert trl_loss_args(tao_config("paper").algo) == {"loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.28,
                                                       "delta": 3.0, "beta": 0.0, "entropy_coef": 0.0}
    code = trl_loss_args(tao_config("code_compat").algo)
    assert code["loss_type"] == "bnpo" and code["entropy_coef"] == 0.001


def test_ppo_clip_with_delta_is_taorls_dual_clip():
    """TRL's per-token loss with delta = c (ratio capped at c, then PPO clip) equals taorl's
    clip-higher + dual-clip policy loss, token by token, for both signs of A."""
    from taorl.algo.loss import policy_loss

    algo = tao_config("paper").algo
    ratio = torch.tensor([[0.5, 0.9, 1.0, 1.2, 1.5, 2.5, 4.0, 9.0]] * 2)
    A = torch.tensor([[1.0] * 8, [-1.0] * 8])
    logp, old = torch.log(ratio), torch.zeros_like(ratio)
    mask = torch.ones_like(ratio)
    args = trl_loss_args(algo)
    # TRL 1.16 _compute_loss, loss_type dapo: coef_1 = min(r, delta); -min(coef_1 A, clip(r) A)
    coef_1 = torch.clamp(ratio, max=args["delta"])
    coef_2 = torch.clamp(ratio, 1 - args["epsilon"], 1 + args["epsilon_high"])
    trl_tok = -torch.min(coef_1 * A, coef_2 * A)
    ours, _ = policy_loss(logp, old, A, mask, algo.loss)
    assert float(ours) == pytest.approx(float(trl_tok.sum() / mask.sum()), rel=1e-6)
    for b in range(2):  # row by row too (a sum could hide compensating errors)
        one, _ = policy_loss(logp[b:b + 1], old[b:b + 1], A[b:b + 1], mask[b:b + 1], algo.loss)
        assert float(one) == pytest.approx(float(trl_tok[b].mean()), rel=1e-6)


def test_callback_refuses_a_used_run_directory(tmp_path):
    """A run directory that already holds a run is refused when the callback is attached, before any
    training, and the run in it is left as it was."""
    from taorl.errors import UserError
    from taorl.integrations.trl.callback import TaoRunCallback
    from taorl.store import RunWriter

    RunWriter(tmp_path / "run", tao_config(None)).finish()
    before = (tmp_path / "run" / "manifest.json").read_bytes()
    with pytest.raises(UserError, match="already holds a run"):
        TaoRunCallback(tmp_path / "run").attach(object())
    assert (tmp_path / "run" / "manifest.json").read_bytes() == before
