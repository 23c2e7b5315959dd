"""Contract tests of the verl plugin (taorl.integrations.verl) against the real verl 0.9.1, on CPU.

They run in the verl venv (`make verl-venv`; `make test` runs them there) and are skipped in the
main .venv, which has no verl. What they pin down:

* the `verl.plugins` entry point loads the plugin at `import verl`, in a fresh process and in a Ray
  worker; a broken piece is reported on stderr (verl itself would swallow it) and `require()` fails;
* the advantage equals taorl's own trainer path on random batches (paper, code_compat, Dr.GRPO,
  window, requires_success, soft criterion 1 with baseline exclude), equals verl's built-in GRPO
  (an independent implementation), and equals Ã = Â(1 + a g Ĥ) computed by hand in numpy;
* a two-turn rollout of TaoTIRAgentLoop through taorl's real sandbox against a scripted model
  server: the turn is cut after the code block, the observation is the spec's text with mask 0,
  and the server receives exactly the ids so far (tokens in / tokens out);
* one verl step laid out as TransferQueue lays it out -> a taorl run directory read back by
  taorl.store with the values the advantage computed;
* loss time (tao.entropy_source=train_forward): tao_ppo_loss on a verl micro-batch has the loss and
  gradient of taorl's own training loss (paper, code_compat), reduces to verl's ppo_loss without
  shaping, and TaoSyncTrainer installs it (set_loss_fn) only then, refusing calculate_entropy=false.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

verl = pytest.importorskip(
    "verl", reason="verl is not installed in this environment: the verl contract tests run in the verl "
                   "venv (make verl-venv / make test-verl)")

from omegaconf import OmegaConf

from taorl.algo import TokenBatch, decide_rollouts, tao_loss
from taorl.config import load_config
from taorl.integrations.common.advantage import tao_advantage
from taorl.integrations.common.layout import turns_from_mask
from taorl.integrations.verl.advantage import grpo_estimator
from taorl.types import SEG_MODEL, SEG_TOOL, ToolCall, Trajectory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str, **env) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
    e.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=e, check=False)


# ------------------------------------------------------------------------------------ plugin loading
def test_entry_point_is_declared():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="verl.plugins")}
    assert eps.get("taorl") == "taorl.integrations.verl.plugin"


def test_import_verl_loads_the_plugin_and_registers_every_name():
    r = _run("""
        import sys
        import verl
        assert "taorl.integrations.verl.plugin" in sys.modules, "plugin not loaded by import verl"
        from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
        from verl.trainer.ppo.v1.trainer_base import get_trainer_cls
        from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
        from verl.experimental.agent_loop.tool_parser import ToolParser
        print(ADV_ESTIMATOR_REGISTRY["tao_grpo"].__module__, get_trainer_cls("tao_sync").__name__,
              _agent_loop_registry["tao_tir_agent"]["_target_"], ToolParser._registry["python_codeblock"].__name__)
        from taorl.integrations.verl.__main__ import main
        print("self-check", main())
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["taorl.integrations.verl.advantage", "TaoSyncTrainer",
                                "taorl.integrations.verl.agent_loop.TaoTIRAgentLoop", "CodeBlockParser"]
    assert "taorl plugin ready" in r.stdout and "MISSING" not in r.stdout and lines[-1] == "self-check 0"


def test_with_plugins_off_nothing_loads_it_and_the_self_check_fails():
    off = _run("""
        import sys
        from taorl.integrations.verl.__main__ import main
        sys.exit(main())
    """, VERL_USE_EXTERNAL_PLUGINS="none")
    assert off.returncode == 1 and "NOT loaded" in off.stderr


def test_a_broken_piece_is_loud_although_verl_swallows_it():
    r = _run("""
        import sys
        sys.modules["taorl.integrations.verl.agent_loop"] = None  # this piece cannot be imported
        import verl  # verl catches the plugin's error
        from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
        print("tao_sync" in TRAINER_REGISTRY)
        from taorl.integrations.verl.registry import require
        try:
            require()  # what TaoSyncTrainer calls at start
        except ImportError as e:
            print("require: ImportError", "failed to load" in str(e))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "taorl verl plugin: FAILED to register with verl" in r.stderr
    assert "taorl.integrations.verl.agent_loop" in r.stderr  # the traceback names the missing piece
    assert r.stdout.split() == ["False", "require:", "ImportError", "True"]


def test_plugin_is_loaded_in_ray_workers():
    r = _run("""
        import ray
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)

        @ray.remote(num_cpus=1)
        def probe():
            import sys
            import verl  # a worker imports verl itself: the entry point runs there too
            from taorl.integrations.verl.registry import registered
            return "taorl.integrations.verl.plugin" in sys.modules, registered()

        print(ray.get(probe.remote(), timeout=240))
        ray.shutdown()
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(True, {'adv_estimator': True, 'tool_parser': True, 'agent_loop': True, 'trainer': True})" in r.stdout


# ------------------------------------------------------------------------------------ advantage
def test_layout_of_the_probe_example():
    seg, turn, called = turns_from_mask(torch.tensor([[1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0]]), [10])
    assert seg.tolist() == [[1, 1, 2, 2, 1, 1, 2, 1, 1, 2, 0, 0]]
    assert turn.tolist() == [[0, 0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1]]
    assert called.tolist() == [[True, True, True]]


def _random_step(gen: torch.Generator, N: int, G: int):
    """Random rollouts as taorl Trajectories (group order) and their verl rows (shuffled)."""
    trajs, flags = [], []
    for g in range(N):
        for i in range(G):
            n_turns = int(torch.randint(1, 5, (1,), generator=gen))
            seg, turn, calls = [], [], []
            for k in range(n_turns):
                m = int(torch.randint(1, 6, (1,), generator=gen))
                seg += [SEG_MODEL] * m
                turn += [k] * m
                if k < n_turns - 1 or bool(torch.rand(1, generator=gen) < 0.3):  # a call, then its observation
                    o = int(torch.randint(1, 4, (1,), generator=gen))
                    seg += [SEG_TOOL] * o
                    turn += [k] * o
                    calls.append(ToolCall(turn=k, code="", status="ok" if torch.rand(1, generator=gen) < 0.6
                                          else "runtime_error"))
            R = len(seg)
            t = Trajectory(group=g, index=i, problem_id=f"p{g}", problem="", answer="",
                           prompt_ids=[1] * int(torch.randint(2, 6, (1,), generator=gen)),
                           response_ids=[7] * R, segment=seg, turn=turn, sample_logprobs=[0.0] * R,
                           tool_calls=calls, n_turns=n_turns,
                           void=bool(torch.rand(1, generator=gen) < 0.15),
                           truncated=bool(torch.rand(1, generator=gen) < 0.1),
                           reward=float(torch.rand(1, generator=gen) < 0.5))
            trajs.append(t)
            turn_ok = [False] * n_turns
            for c in calls:
                turn_ok[c.turn] |= c.ok
            flags.append({"n_call": t.n_call, "n_ok": t.n_ok, "void": t.void, "truncated": t.truncated,
                          "turn_ok": turn_ok})
    return trajs, flags


def _taorl_path(trajs, cfg, N, G, entropy_resp):
    """What taorl's own trainer computes (taorl/train/trainer.py train_step, update), per rollout."""
    dec = decide_rollouts([trajs[g * G:(g + 1) * G] for g in range(N)], cfg.algo, N, 0)
    adv, w = dec.adv.reshape(-1), dec.weights.reshape(-1)
    batch = TokenBatch.from_trajectories(trajs, adv, w, pad_id=0)
    ent = torch.zeros(batch.loss_mask.shape)
    for j, t in enumerate(trajs):
        P, R = len(t.prompt_ids), len(t.response_ids)
        ent[j, P - 1:P - 1 + R] = entropy_resp[j][:R]
    _, _, per_tok = tao_loss(batch, torch.zeros_like(ent), ent * batch.loss_mask, cfg.algo)
    out = []
    for j in range(len(trajs)):
        rec = batch.response_slice(j, per_token=per_tok)
        out.append((adv[j].item(), w[j].item(), rec["shaped_advantage"], rec["gate"]))
    return out


@pytest.mark.parametrize("overrides", [
    [],
    ["preset=code_compat"],
    ["algo.adv=drgrpo", "algo.shaping.coef=0.2"],
    ["algo.shaping.window=2", "algo.shaping.requires_success=true", "algo.shaping.coef=0.3"],
    ["algo.filter.tool.strength=0.5", "algo.filter.tool.baseline=exclude", "algo.filter.group.min_n=2"],
    ["algo.shaping.form=additive"],
    ["algo.shaping.gate=entropy_quantile", "algo.shaping.quantile=0.5"],
    ["algo.filter.tool.strength=0.5", "algo.filter.tool.scale_advantage=true", "algo.shaping.norm_scope=batch"],
])
def test_advantage_equals_taorl_trainer_path_on_random_batches(overrides):
    cfg = load_config(None, ["algo.filter.group.min_n=3", *overrides])
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        N, G = 5, 4
        trajs, flags = _random_step(gen, N, G)
        ent = [torch.rand(len(t.response_ids), generator=gen) * 3 for t in trajs]
        want = _taorl_path(trajs, cfg, N, G, ent)
        # verl's rows: shuffled, groups identified by uid, response_mask = model tokens
        perm = torch.randperm(len(trajs), generator=gen).tolist()
        T = max(len(t.response_ids) for t in trajs) + 2
        mask = torch.zeros(len(trajs), T)
        entropy = torch.zeros(len(trajs), T)
        for r, j in enumerate(perm):
            R = len(trajs[j].response_ids)
            mask[r, :R] = torch.tensor([float(s == SEG_MODEL) for s in trajs[j].segment])
            entropy[r, :R] = ent[j]
        got = tao_advantage([trajs[j].reward for j in perm], [f"uid{trajs[j].group}" for j in perm], mask, cfg,
                            entropy=entropy, lengths=[len(trajs[j].response_ids) for j in perm],
                            flags=[flags[j] for j in perm])
        for r, j in enumerate(perm):
            a, w, shaped, gate = want[j]
            R = len(trajs[j].response_ids)
            assert got.rollout_adv[r].item() == pytest.approx(a, abs=1e-6)
            assert got.weight[r].item() == pytest.approx(w, abs=1e-6)
            np.testing.assert_allclose(got.advantages[r, :R].numpy(), shaped * w, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(got.per_token["gate"][r, :R].numpy(), gate)
            assert got.response_mask[r, :R].tolist() == (mask[r, :R] * (w > 0)).tolist()
            assert not got.advantages[r, R:].any()


def test_advantage_by_hand_paper_default():
    """Two groups of two; the shaping written out in numpy: Ã_t = Â (1 + a g_t Ĥ_t), Ĥ the population
    z-score of H over the trajectory's model tokens, g_t = 1 on the 2nd and later model runs."""
    cfg = load_config(None, ["algo.filter.group.min_n=2", "algo.shaping.coef=0.5"])
    mask = torch.tensor([[1, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0], [1, 0, 1, 1, 0, 0], [1, 1, 0, 0, 1, 0]],
                        dtype=torch.float32)
    H = torch.tensor([[0.1, 0.4, 0, 1.2, 0.7, 0], [0.5, 0.5, 0.2, 0, 0, 0], [0.3, 0, 0.9, 0.6, 0, 0],
                      [1.0, 0.2, 0, 0, 0.4, 0]])
    flags = [{"n_call": 1, "n_ok": 1}, None, {"n_call": 1, "n_ok": 1}, {"n_call": 1, "n_ok": 1}]
    got = tao_advantage([1.0, 0.0, 1.0, 0.0], ["x", "x", "y", "y"], mask, cfg, entropy=H,
                        lengths=[6, 3, 4, 5], flags=flags)
    A = 0.5 / np.sqrt(0.5)  # GRPO of (1, 0): (1 - mean 0.5) / unbiased std sqrt(0.5)
    assert got.rollout_adv.tolist() == pytest.approx([A, -A, A, -A], abs=1e-5)
    m = mask.numpy().astype(bool)
    gates = [[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0]]
    for r, sign in enumerate([1, -1, 1, -1]):
        h = H[r].numpy()[m[r]]
        z = np.zeros(6)
        z[m[r]] = (h - h.mean()) / (h.std() + 1e-8)
        want = sign * A * (1 + 0.5 * np.array(gates[r]) * z) * m[r]
        np.testing.assert_allclose(got.advantages[r].numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm", [True, False])
def test_tao_grpo_estimator_equals_verl_builtin_grpo(norm):
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_adv_estimator_fn

    assert get_adv_estimator_fn("tao_grpo") is grpo_estimator
    gen = torch.Generator().manual_seed(1)
    B, T = 24, 9
    scores = (torch.rand(B, generator=gen) < 0.5).float() + 0.1 * torch.rand(B, generator=gen)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    rewards = torch.zeros(B, T)
    rewards[torch.arange(B), lengths - 1] = scores
    index = np.array([f"u{b % 6}" for b in torch.randperm(B, generator=gen).tolist()], dtype=object)
    cfg = OmegaConf.create({"norm_adv_by_std_in_grpo": norm})
    got, ret = grpo_estimator(token_level_rewards=rewards, response_mask=mask, index=index, config=cfg)
    want, _ = compute_grpo_outcome_advantage(rewards, mask, index, epsilon=1e-6, norm_adv_by_std_in_grpo=norm)
    torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-5)
    assert torch.equal(got, ret)


def test_shaping_without_entropy_fails_clearly():
    cfg = load_config(None, [])
    with pytest.raises(ValueError, match="bypass_mode"):
        tao_advantage([1.0, 0.0], ["a", "a"], torch.ones(2, 3), cfg)
    with pytest.raises(ValueError, match="different sizes"):
        tao_advantage([1.0, 0.0, 1.0], ["a", "a", "b"], torch.ones(3, 3), load_config(None, [
            "algo.shaping.enabled=false"]))


# ------------------------------------------------------------------------------------ loss time (design L)
def _actor_config(**overrides):
    """verl's ActorConfig as its trainer builds it (Hydra ppo_trainer -> dataclass), with overrides."""
    from hydra import compose, initialize_config_dir
    from verl.utils.config import omega_conf_to_dataclass

    cdir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=cdir, version_base=None):
        cfg = compose("ppo_trainer", overrides=[f"actor_rollout_ref.actor.{k}={v}" for k, v in
                                                {"ppo_micro_batch_size_per_gpu": 4, **overrides}.items()])
    return omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


def _micro_batch(trajs, flags, adv, w, gen):
    """The step's rollouts as one verl micro-batch, laid out as the actor worker gets it from
    TransferQueue (list_of_dict_to_tensordict: jagged rows; the engine's dp_size / batch_num_tokens /
    global_batch_size), with `advantages` = w·Â and `tao_weight` = w as the advantage step writes them
    under train_forward. Returns (data, lp_flat, ent_flat, offsets): the leaves of the model output,
    one value per prompt+response token (verl's no-padding layout)."""
    from verl.utils import tensordict_utils as tu
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    items, lp, ent = [], [], []
    for j, t in enumerate(trajs):
        P, R = len(t.prompt_ids), len(t.response_ids)
        model = torch.tensor([float(x == SEG_MODEL) for x in t.segment]) * float(w[j] > 0)
        old = torch.tensor(t.sample_logprobs)
        row_lp = torch.randn(P + R, generator=gen) - 1.0
        row_lp[P - 1:P - 1 + R] = old + 0.6 * torch.randn(R, generator=gen)  # ratios beyond both clips
        lp.append(row_lp)
        ent.append(torch.rand(P + R, generator=gen) * 3)
        items.append({"prompts": torch.tensor(t.prompt_ids), "responses": torch.tensor(t.response_ids),
                      "response_mask": model, "loss_mask": model, "old_log_probs": old,
                      "advantages": model * float(adv[j] * w[j]), "tao_weight": torch.tensor(float(w[j])),
                      "extra_fields": {"tao": flags[j]}})
    data = list_of_dict_to_tensordict(items)
    assert data["prompts"].is_nested and data["tao_weight"].shape == (len(trajs),)
    tu.assign_non_tensor(data, dp_size=1, batch_num_tokens=int(data["loss_mask"].values().sum()),
                         global_batch_size=len(trajs))
    offsets = torch.tensor([0] + [len(x) for x in lp]).cumsum(0)
    return data, torch.cat(lp).requires_grad_(), torch.cat(ent).requires_grad_(), offsets


@pytest.mark.parametrize("overrides", [
    [],
    ["preset=code_compat"],
    ["algo.filter.tool.strength=0.5", "algo.shaping.form=additive", "algo.shaping.requires_success=true"],
    ["algo.shaping.window=2", "algo.shaping.coef=0.3", "algo.shaping.clamp=1.5"],
])
def test_tao_ppo_loss_equals_taorl_training_loss(overrides):
    """tao_ppo_loss on a verl micro-batch (training-forward log-probs and entropy as nested tensors):
    loss and gradient (w.r.t. log π and H) equal taorl's own training loss on the same tokens
    (decide_rollouts -> TokenBatch -> tao_loss, taorl/train/trainer.py ppo_update, one micro-batch).
    code_compat: gate all, Ĥ over the micro-batch's trained tokens with gradient, micro-token-mean,
    entropy bonus 0.001; the third case has soft weights w = 0.5 (additive form, requires_success)."""
    from functools import partial

    from taorl.integrations.verl.loss import tao_ppo_loss

    cfg = load_config(None, ["algo.filter.group.min_n=2", "algo.shaping.coef=0.2", *overrides])
    algo = cfg.algo
    actor = _actor_config(clip_ratio_low=algo.loss.clip_low, clip_ratio_high=algo.loss.clip_high,
                          clip_ratio_c=algo.loss.dual_clip, loss_agg_mode="token-mean",
                          entropy_coeff=algo.loss.entropy_coef, calculate_entropy=True)
    for seed in range(3):
        gen = torch.Generator().manual_seed(100 + seed)
        N, G = 4, 4
        trajs, flags = _random_step(gen, N, G)
        for t in trajs:
            t.sample_logprobs = (-torch.rand(len(t.response_ids), generator=gen) * 2).tolist()
        dec = decide_rollouts([trajs[g * G:(g + 1) * G] for g in range(N)], algo, N, 0)
        adv, w = dec.adv.reshape(-1).float(), dec.weights.reshape(-1).float()
        data, lp_flat, ent_flat, offsets = _micro_batch(trajs, flags, adv, w, gen)

        # verl: what the engine hands the loss function (nested over prompt + response)
        loss_fn = partial(tao_ppo_loss, config=actor, algo=algo)
        got, metrics = loss_fn(model_output={"log_probs": torch.nested.nested_tensor_from_jagged(lp_flat, offsets),
                                             "entropy": torch.nested.nested_tensor_from_jagged(ent_flat, offsets)},
                               data=data)
        g_lp, g_ent = torch.autograd.grad(got, [lp_flat, ent_flat], allow_unused=True)

        # taorl: the same tokens through its own training loss (prediction-position layout)
        lp2, ent2 = lp_flat.detach().clone().requires_grad_(), ent_flat.detach().clone().requires_grad_()
        batch = TokenBatch.from_trajectories(trajs, adv, w, pad_id=0)
        spans = list(zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True))
        L = batch.loss_mask.shape[1]
        logp = torch.stack([torch.nn.functional.pad(lp2[a:b], (0, L - (b - a))) for a, b in spans])
        ent = torch.stack([torch.nn.functional.pad(ent2[a:b], (0, L - (b - a))) for a, b in spans])
        want, _, per_tok = tao_loss(batch, logp * batch.loss_mask, ent * batch.loss_mask, algo)
        w_lp, w_ent = torch.autograd.grad(want, [lp2, ent2], allow_unused=True)
        zero = torch.zeros_like(lp_flat)

        assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-5, abs=1e-7), overrides
        torch.testing.assert_close(g_lp, w_lp, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(zero if g_ent is None else g_ent, zero if w_ent is None else w_ent,
                                   rtol=1e-4, atol=1e-7)
        if not algo.shaping.detach:  # code_compat: the gradient really flows through Ĥ
            assert w_ent is not None and w_ent.abs().sum() > 0
        # shaping diagnostics of the training forward (verl reports them as actor/tao/...), over the
        # gated trained tokens (taorl's own diagnostics also count the tokens of rows with weight 0)
        gated = (per_tok["gate"] > 0) & (batch.weight > 0)
        if gated.any():
            assert metrics["tao/shaping_factor_mean"].values[0] == pytest.approx(
                float(per_tok["factor"][gated].mean()), rel=1e-5)


def test_tao_ppo_loss_without_shaping_is_verls_ppo_loss():
    """Shaping off: tao_ppo_loss is verl's own ppo_loss (same loss, gradient and verl metrics)."""
    from verl.workers.utils.losses import ppo_loss

    from taorl.integrations.verl.loss import tao_ppo_loss

    cfg = load_config(None, ["algo.filter.group.min_n=2", "algo.shaping.enabled=false"])
    actor = _actor_config(entropy_coeff=0.01, calculate_entropy=True, clip_ratio_c=3.0)
    gen = torch.Generator().manual_seed(7)
    trajs, flags = _random_step(gen, 3, 4)
    for t in trajs:
        t.sample_logprobs = (-torch.rand(len(t.response_ids), generator=gen)).tolist()
    dec = decide_rollouts([trajs[g * 4:(g + 1) * 4] for g in range(3)], cfg.algo, 3, 0)
    data, lp, ent, offsets = _micro_batch(trajs, flags, dec.adv.reshape(-1).float(), dec.weights.reshape(-1).float(),
                                          gen)
    out = {}
    for name, fn in (("tao", lambda **kw: tao_ppo_loss(actor, algo=cfg.algo, **kw)),
                     ("verl", lambda **kw: ppo_loss(actor, **kw))):
        lp_, ent_ = lp.detach().clone().requires_grad_(), ent.detach().clone().requires_grad_()
        mo = {"log_probs": torch.nested.nested_tensor_from_jagged(lp_, offsets),
              "entropy": torch.nested.nested_tensor_from_jagged(ent_, offsets)}
        loss, metrics = fn(model_output=mo, data=data.clone())
        out[name] = (loss, torch.autograd.grad(loss, [lp_, ent_]), metrics)
    (l1, g1, m1), (l2, g2, m2) = out["tao"], out["verl"]
    torch.testing.assert_close(l1, l2, rtol=1e-6, atol=1e-8)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    for k in ("actor/pg_loss", "actor/entropy_loss", "actor/pg_clipfrac", "actor/ppo_kl"):
        assert float(m1[k].values[0]) == pytest.approx(float(m2[k].values[0]), rel=1e-6, abs=1e-9), k


def test_unshaped_advantage_for_the_loss_and_plugin_option():
    """train_forward: the advantage step writes w·Â (no shaping) and keeps the rest; the option is the
    plugin's own key of the `tao:` block (taorl's Config never sees it) and is validated."""
    from taorl.config import ConfigError
    from taorl.integrations.verl.settings import plugin_options, tao_config

    cfg = load_config(None, ["algo.filter.group.min_n=2"])
    gen = torch.Generator().manual_seed(3)
    trajs, flags = _random_step(gen, 4, 4)
    T = max(len(t.response_ids) for t in trajs)
    mask, H = torch.zeros(16, T), torch.rand(16, T, generator=gen)
    for r, t in enumerate(trajs):
        mask[r, :len(t.segment)] = torch.tensor([float(x == SEG_MODEL) for x in t.segment])
    args = ([t.reward for t in trajs], [f"u{t.group}" for t in trajs], mask, cfg)
    kw = {"lengths": [len(t.response_ids) for t in trajs], "flags": flags}
    shaped = tao_advantage(*args, entropy=H, **kw)
    plain = tao_advantage(*args, entropy=H, shape=False, **kw)
    assert torch.equal(plain.advantages, (shaped.rollout_adv * shaped.weight)[:, None] * shaped.response_mask)
    assert torch.equal(plain.response_mask, shaped.response_mask) and torch.equal(plain.weight, shaped.weight)
    assert not torch.equal(plain.advantages, shaped.advantages)  # the default path shapes
    assert tao_advantage(*args, shape=False, **kw).advantages.equal(plain.advantages)  # no entropy needed

    assert plugin_options(None).entropy_source == "old_policy" and not plugin_options({}).loss_time
    block = OmegaConf.create({"entropy_source": "train_forward", "algo": {"shaping": {"coef": 0.02}}})
    assert plugin_options(block).loss_time and tao_config(block).algo.shaping.coef == 0.02
    with pytest.raises(ConfigError, match="tao.entropy_source"):
        plugin_options({"entropy_source": "training"})


class RecordingWorkerGroup:
    """Stands in for verl's actor worker group (a real one needs GPUs): records set_loss_fn."""

    def __init__(self):
        self.loss_fns = []

    def set_loss_fn(self, loss_fn):
        self.loss_fns.append(loss_fn)


def _hydra(overrides):
    from hydra import compose, initialize_config_dir

    cdir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=cdir, version_base=None):
        return compose("ppo_trainer", overrides=["trainer.v1.trainer_mode=tao_sync",
                                                 "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4", *overrides])


@pytest.mark.parametrize("source", ["old_policy", "train_forward"])
def test_trainer_installs_the_loss_only_for_train_forward(source, monkeypatch):
    import cloudpickle
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
    from verl.workers.config import ActorConfig

    from taorl.integrations.verl.loss import tao_ppo_loss
    from taorl.integrations.verl.settings import plugin_options, tao_config
    from taorl.integrations.verl.trainer import TaoSyncTrainer, check_loss_time

    cfg = _hydra([f"+tao.entropy_source={source}", "+tao.preset=code_compat",
                  "actor_rollout_ref.actor.calculate_entropy=true"])
    check_loss_time(cfg, tao_config(cfg.tao))
    wg = RecordingWorkerGroup()
    monkeypatch.setattr(PPOTrainerSync, "_setup", lambda self: setattr(self, "actor_rollout_wg", wg))
    tr = TaoSyncTrainer.__new__(TaoSyncTrainer)
    tr.config, tr.tao, tr.tao_options = cfg, tao_config(cfg.tao), plugin_options(cfg.tao)
    tr._setup()
    if source == "old_policy":
        assert wg.loss_fns == []  # verl's own ppo_loss stays
        return
    (fn,) = wg.loss_fns
    assert fn.func is tao_ppo_loss and isinstance(fn.keywords["config"], ActorConfig)
    assert fn.keywords["config"].calculate_entropy is True and fn.keywords["algo"] == tr.tao.algo
    assert fn.keywords["algo"].shaping.norm_scope == "micro_batch" and not fn.keywords["algo"].shaping.detach
    assert len(cloudpickle.dumps(fn)) < 50_000  # travels to the workers


def test_trainer_refuses_a_tao_loss_key_that_verl_overrides():
    from taorl.integrations.verl.trainer import TaoSyncTrainer

    # verl's default actor: clip_ratio_high 0.2; the block asks for 0.28 explicitly
    with pytest.raises(ValueError, match=r"tao.algo.loss.clip_high=0.28 but actor_rollout_ref.actor.clip_ratio_high=0.2"):
        TaoSyncTrainer(_hydra(["+tao.algo.loss.clip_high=0.28"]))


def test_train_forward_refuses_what_it_cannot_do():
    from taorl.integrations.verl.settings import tao_config
    from taorl.integrations.verl.trainer import TaoSyncTrainer, check_loss_time

    with pytest.raises(ValueError, match=r"actor_rollout_ref.actor.calculate_entropy=true"):
        TaoSyncTrainer(_hydra(["+tao.entropy_source=train_forward"]))  # calculate_entropy is off by default
    base = _hydra(["+tao.entropy_source=train_forward", "actor_rollout_ref.actor.calculate_entropy=true"])
    distill = OmegaConf.merge(base, {"distillation": {"enabled": True}})
    with pytest.raises(ValueError, match="distillation"):
        check_loss_time(distill, tao_config(None))
    for bad in (["algo.shaping.norm_scope=batch"], ["algo.shaping.gate=entropy_quantile"]):
        with pytest.raises(ValueError, match=bad[0].split("=")[0]):
            check_loss_time(base, load_config(None, bad))


# ------------------------------------------------------------------------------------ agent loop
class ScriptedServer:
    """verl's server_manager.generate, answering the scripted turns in order; records what it got."""

    def __init__(self, turns: list[list[int]]):
        self.turns, self.calls = list(turns), []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kw):
        from verl.workers.rollout.replica import TokenOutput

        self.calls.append((list(prompt_ids), dict(sampling_params)))
        ids = self.turns.pop(0)
        return TokenOutput(token_ids=ids, log_probs=[-0.01 * (i + 1) for i in range(len(ids))])


def _agent_loop(tokenizer, server, tao=None, response_length=512):
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap

    from taorl.integrations.verl.agent_loop import TaoTIRAgentLoop

    cfg = OmegaConf.create({"actor_rollout_ref": {"rollout": {"prompt_length": 256,
                                                              "response_length": response_length}},
                            "tao": tao or {"tool": {"workers": 1}}, "data": {}})
    return TaoTIRAgentLoop(trainer_config=DictConfigWrap(cfg), server_manager=server, tokenizer=tokenizer,
                           processor=None, dataset_cls=None, data_config=DictConfigWrap(cfg.data))


def _rollout(tokenizer, turns_text: list[str], question="What is 6*7?"):
    enc = [tokenizer.encode(t, add_special_tokens=False) for t in turns_text]
    server = ScriptedServer(enc)

    async def main():
        loop = _agent_loop(tokenizer, server)
        return await loop.run({"temperature": 1.0}, raw_prompt=[{"role": "user", "content": question}])
    return asyncio.run(main()), server, enc


def test_two_turn_rollout_through_the_sandbox(tiny_tokenizer):
    tok = tiny_tokenizer
    t1 = "Let me compute.\n```python\nprint(6*7)\n```\nand a tail the server wrote after the block"
    t2 = "So the answer is \\boxed{42}."
    out, server, (ids1, ids2) = _rollout(tok, [t1, t2])
    # turn 1 is cut right after the token that closes the block: the tail is gone with its log-probs
    cut = next(n for n in range(1, len(ids1) + 1) if tok.decode(ids1[:n]).endswith("```")
               and tok.decode(ids1[:n]).count("```") == 2)
    assert cut < len(ids1)
    obs = tok.encode("\nCode execution result: 42\n", add_special_tokens=False)
    assert out.response_ids == ids1[:cut] + obs + ids2
    assert out.response_mask == [1] * cut + [0] * len(obs) + [1] * len(ids2)
    assert out.response_logprobs == pytest.approx([-0.01 * (i + 1) for i in range(cut)] + [0.0] * len(obs)
                                                  + [-0.01 * (i + 1) for i in range(len(ids2))])
    # tokens in: the second call continues exactly prompt + turn 1 (cut) + observation ids
    p1, sp1 = server.calls[0]
    p2, sp2 = server.calls[1]
    assert p1 == out.prompt_ids and p2 == out.prompt_ids + ids1[:cut] + obs
    assert sp1["max_tokens"] == 512 and sp2["max_tokens"] == 512 - cut - len(obs)
    f = out.extra_fields["tao"]
    assert (f["n_call"], f["n_ok"], f["statuses"], f["finish"], f["void"], f["n_turns"]) == \
        (1, 1, ["ok"], "answer", False, 2)
    assert out.num_turns == 4  # user, assistant, tool, assistant
    assert tok.decode(out.response_ids) == "Let me compute.\n```python\nprint(6*7)\n```\nCode execution result: 42\n" \
                                           "So the answer is \\boxed{42}."


def test_failing_call_and_void_turn(tiny_tokenizer):
    out, _, _ = _rollout(tiny_tokenizer, ["```python\nprint(1/0)\n```", "I give up."])
    f = out.extra_fields["tao"]
    assert (f["n_call"], f["n_ok"], f["statuses"], f["void"], f["finish"]) == (1, 0, ["runtime_error"], True, "void")
    assert "Code execution result: ZeroDivisionError: division by zero" in f["text"]


def test_turn_cut_at_its_token_cap_is_truncated_not_void(tiny_tokenizer):
    """As in taorl's loop: a turn that used all max_turn_tokens without a call was cut, not void."""
    tok = tiny_tokenizer
    prose = "Let me think about this step by step, slowly and at length, before I write anything."
    server = ScriptedServer([tok.encode(prose, add_special_tokens=False)])

    async def main():
        loop = _agent_loop(tok, server, tao={"tool": {"workers": 1}, "rollout": {"max_turn_tokens": 8}})
        return await loop.run({"temperature": 1.0}, raw_prompt=[{"role": "user", "content": "6*7?"}])
    out = asyncio.run(main())
    f = out.extra_fields["tao"]
    assert server.calls[0][1]["max_tokens"] == 8 and len(out.response_ids) == 8
    assert (f["finish"], f["truncated"], f["void"], f["n_turns"]) == ("length", True, False, 1)


def test_sandbox_tool_and_codeblock_parser(tiny_tokenizer):
    from verl.experimental.agent_loop.tool_parser import ToolParser

    from taorl.integrations.verl.verl_tool import PythonSandboxTool

    tool = PythonSandboxTool({"type": "native", "workers": 1})
    parser = ToolParser.get_tool_parser("python_codeblock", tiny_tokenizer)
    ids = tiny_tokenizer.encode("Try:\n```python\nx = 3\nprint(x ** 2)\n```", add_special_tokens=False)
    content, calls = asyncio.run(parser.extract_tool_calls(ids))
    assert content == "Try:\n" and [c.name for c in calls] == ["python"]
    import json

    resp, reward, metrics = asyncio.run(tool.execute("i0", json.loads(calls[0].arguments)))
    assert resp.text == "\nCode execution result: 9\n" and reward == 0.0 and metrics["status"] == "ok"
    with pytest.raises(Exception, match="unknown|extra|Extra"):
        PythonSandboxTool({"type": "native", "timeout": 5})


# ------------------------------------------------------------------------------------ run directory
def test_verl_step_to_taorl_run_directory(tiny_tokenizer, tmp_path):
    """Four rollouts of two prompts through the agent loop, stored the TransferQueue way, advantage,
    then one step of a taorl run directory, read back by taorl.store."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from taorl.integrations.verl.dump import RunDump
    from taorl.integrations.verl.trainer import rows_from_tq
    from taorl.store import list_runs, open_run

    tok = tiny_tokenizer
    scripts = {("u0", 0): (["```python\nprint(6*7)\n```", "\\boxed{42}"], 1.0),
               ("u0", 1): (["```python\nprint(6*8)\n```", "\\boxed{48}"], 0.0),
               ("u1", 0): (["```python\nprint(2+2)\n```", "\\boxed{4}"], 1.0),
               ("u1", 1): (["```python\nimport nosuchmodule\n```", "hmm"], 0.0)}
    items = []
    for (uid, _), (turns, score) in scripts.items():
        out, _, _ = _rollout(tok, turns)
        d = out.as_dict()
        d["loss_mask"] = d["response_mask"]
        d["uid"] = uid
        n = d["responses"].shape[0]
        d["rm_scores"] = torch.zeros(n).index_fill_(0, torch.tensor([n - 1]), score)
        d["entropy"] = torch.linspace(0.1, 2.0, n)
        d["old_log_probs"] = d["rollout_log_probs"] - 0.001
        d["reward_model"] = {"ground_truth": "42" if uid == "u0" else "4"}
        d["extra_fields"]["raw_prompt"] = [{"role": "user", "content": f"problem of {uid}"}]  # as verl adds it
        items.append(d)
    td = list_of_dict_to_tensordict(items)
    rows = rows_from_tq(td)
    cfg = load_config(None, ["algo.filter.group.min_n=2", "logging.token_traj_per_step=3"])
    adv = rows.advantage(cfg)
    # u1: rollout 1's only call failed -> criterion 1 (s = 1) masks it; rollout 1 is also a void turn
    assert adv.weight.tolist() == [1.0, 1.0, 1.0, 0.0]
    assert adv.reason == [None, None, None, "void_turn"]
    assert adv.response_mask[3].sum() == 0 and adv.advantages[3].abs().sum() == 0

    dump = RunDump(tmp_path / "verl-run", cfg, extra={"verl_experiment": "test"})
    dump.write(1, rows, adv, lambda ids: tok.decode(ids), {"actor/pg_loss": 0.25, "timing_s/step": 3.0,
                                                           "not_a_number": "x"})
    dump.finish()
    run = open_run(tmp_path / "verl-run")
    assert run.last_step == 1 and run.status == "finished" and run.manifest["extra"]["engine"] == "verl"
    m = run.metrics(wide=True)
    assert m["actor/pg_loss"].to_list() == [0.25] and "not_a_number" not in m.columns
    assert m["tao/traj_masked/void_turn"].to_list() == [1.0] and m["tools/call_frequency"].to_list() == [1.0]
    tr = run.trajectories().sort("traj")
    assert tr["problem_id"].to_list() == ["u0", "u0", "u1", "u1"]
    assert tr["advantage"].to_list() == pytest.approx(adv.rollout_adv.tolist(), abs=1e-6)
    assert tr["statuses"].to_list() == [["ok"], ["ok"], ["ok"], ["runtime_error"]]
    assert tr["finish"].to_list() == ["answer", "answer", "answer", "void"]
    assert tr["has_tokens"].to_list() == [True, True, True, False]
    g = run.groups().sort("group")
    assert g["problem"].to_list() == ["problem of u0", "problem of u1"] and g["answer"].to_list() == ["42", "4"]
    assert g["rewards"].to_list() == [[1.0, 0.0], [1.0, 0.0]] and g["kept"].to_list() == [True, True]
    tk = run.tokens(traj=0)
    model = tk.filter(segment="model")
    assert model["gate"].sum() == float(adv.per_token["gate"][0].sum()) > 0
    assert set(tk["segment"].unique().to_list()) == {"prompt", "model", "tool"}
    n0 = rows.lengths[0]
    np.testing.assert_allclose(model["shaped_advantage"].to_numpy(),
                               adv.advantages[0, :n0][adv.response_mask[0, :n0] > 0].numpy(), rtol=1e-6)
    assert [r.run_id for r in list_runs(tmp_path)] == ["verl-run"]


# ------------------------------------------------------------------------------------ trainer
@pytest.mark.parametrize("source", ["old_policy", "train_forward"])
def test_trainer_against_a_real_transfer_queue(tmp_path, source):
    """TaoSyncTrainer as verl builds it (Hydra config, trainer_mode trap), then its advantage step and
    run-directory write on rows put in a real TransferQueue (local Ray, 4 logical CPUs: with the
    default on 2 cores TransferQueue's actors wait forever). train_forward: the unshaped w·Â and the
    per-row weight the loss reads (`tao_weight`) go back instead."""
    r = _run(f"""
        import json, os
        from hydra import compose, initialize_config_dir
        import verl
        from verl.trainer.ppo.v1.trainer_base import get_trainer_cls
        cdir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
        with initialize_config_dir(config_dir=cdir, version_base=None):
            cfg = compose("ppo_trainer", overrides=["trainer.v1.trainer_mode=tao_sync", "+tao.algo.shaping.coef=0.02",
                                                    "algorithm.filter_groups.enable=true"])
        cls = get_trainer_cls(cfg.trainer.v1.trainer_mode)
        t = cls(cfg)
        out = {{"init": [cls.__name__, t.trainer_mode, type(t.replay_buffer).__name__, t.tao.algo.shaping.coef,
                         t.replay_buffer.filter_groups_metric]}}

        import ray, torch
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
        import transfer_queue as tq
        tq.init()
        from omegaconf import OmegaConf
        from verl.utils.tensordict_utils import list_of_dict_to_tensordict
        from taorl.integrations.verl.settings import plugin_options, tao_config
        from taorl.models import load_tokenizer
        spec = [("u0", 1.0, [1, 1, 0, 0, 1, 1], {{"n_call": 1, "n_ok": 1}}),
                ("u0", 0.0, [1, 1, 0, 1], {{"n_call": 1, "n_ok": 1}}),
                ("u1", 1.0, [1, 1, 1], None),
                ("u1", 0.0, [1, 0, 1, 1, 1], {{"n_call": 1, "n_ok": 0, "void": True}})]
        rows, keys = [], []
        for s, (uid, score, mask, flags) in enumerate(spec):
            n = len(mask)
            rows.append({{"prompts": torch.tensor([5, 6, 7]), "responses": torch.arange(10, 10 + n),
                         "response_mask": torch.tensor(mask), "loss_mask": torch.tensor(mask),
                         "rm_scores": torch.zeros(n).index_fill_(0, torch.tensor([n - 1]), score),
                         "entropy": torch.linspace(0.2, 1.5, n), "old_log_probs": -torch.ones(n),
                         "rollout_log_probs": -torch.ones(n) * 1.1, "uid": uid,
                         "extra_fields": {{"tao": flags}} if flags else {{}}}})
            keys.append(f"{{uid}}_{{s % 2}}_0")
        meta = tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(rows),
                               tags=[{{"global_steps": 1, "status": "success"}}] * len(keys))
        tr = cls.__new__(cls)
        tr.config = OmegaConf.create({{"algorithm": {{"use_kl_in_reward": False, "adv_estimator": "grpo",
                                                     "gamma": 1.0, "lam": 1.0, "norm_adv_by_std_in_grpo": True}},
                                      "actor_rollout_ref": {{"rollout": {{"n": 2}}}},
                                      "trainer": {{"experiment_name": "tq"}}}})
        tr.tao = tao_config({{"algo": {{"filter": {{"group": {{"min_n": 2}}}}}},
                              "logging": {{"runs_dir": {str(tmp_path)!r}, "run_name": "tq-run"}}}})
        tr.tao_options = plugin_options({{"entropy_source": {source!r}}})
        tr.global_steps, tr.total_training_steps, tr._tao_step, tr._tao_dump = 1, 1, None, None
        tr.tokenizer = load_tokenizer("tiny")
        metrics = {{}}
        tr._compute_advantage(meta, metrics)
        got = tq.kv_batch_get(keys=keys, partition_id="train",
                              select_fields=["advantages", "returns", "response_mask", "loss_mask"])
        for f in ("advantages", "returns", "response_mask", "loss_mask"):
            out[f] = [x.tolist() for x in got[f].unbind()]
        out["metrics"] = sorted(k for k in metrics if k.startswith("tao/"))
        if tr.tao_options.loss_time:
            out["tao_weight"] = tq.kv_batch_get(keys=keys, partition_id="train",
                                                select_fields=["tao_weight"])["tao_weight"].tolist()
        tr._tao_write(1, {{"actor/pg_loss": 0.5}})
        ray.shutdown()
        print("RESULT " + json.dumps(out))
    """)
    assert r.returncode == 0, r.stderr[-4000:]
    import json

    out = json.loads(r.stdout.split("RESULT ", 1)[1])
    # the trap: the registered name is reset to "sync" before verl reads it -> the sync replay buffer
    assert out["init"] == ["TaoSyncTrainer", "sync", "ReplayBuffer", 0.02, "reward"]
    A = 0.5 / np.sqrt(0.5)
    assert out["response_mask"] == out["loss_mask"] == [[1, 1, 0, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1], [0, 0, 0, 0, 0]]
    adv = out["advantages"]
    assert adv == out["returns"]
    assert adv[0][:4] == pytest.approx([A, A, 0, 0], abs=1e-5) and adv[2] == pytest.approx([A] * 3, abs=1e-5)
    assert adv[1][:3] == pytest.approx([-A, -A, 0], abs=1e-5) and adv[3] == [0.0] * 5
    if source == "old_policy":  # post-tool tokens: shaped here, no weight field
        assert adv[0][4] != pytest.approx(A, abs=1e-4) and adv[1][3] != pytest.approx(-A, abs=1e-4)
        assert "tao_weight" not in out
    else:  # unshaped w·Â: the loss shapes with the training forward's entropy
        assert adv[0][4:] == pytest.approx([A, A], abs=1e-5) and adv[1][3] == pytest.approx(-A, abs=1e-5)
        assert out["tao_weight"] == [1.0, 1.0, 1.0, 0.0]
    assert "tao/post_tool_entropy" in out["metrics"] and "tao/shaping_factor_mean" in out["metrics"]
    from taorl.store import open_run

    run = open_run(tmp_path / "tq-run")
    assert run.manifest["extra"]["entropy_source"] == source
    assert run.status == "finished" and run.metrics(wide=True)["actor/pg_loss"].to_list() == [0.5]
    assert run.trajectories().sort("traj")["weight"].to_list() == [1.0, 1.0, 1.0, 0.0]


# ------------------------------------------------------------------------------------ configs
def test_configs_compose_and_validate_with_verl():
    """configs/verl/tao_rl.yaml through Hydra and verl's own checks; its `tao:` block through taorl's;
    configs/verl/tools.yaml through verl's tool registry."""
    r = _run("""
        import os
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import omega_conf_to_dataclass, validate_config
        from verl.tools.tool_registry import initialize_tools_from_config
        from taorl.integrations.verl.settings import tao_config
        with initialize_config_dir(config_dir=os.path.abspath("configs/verl"), version_base=None):
            cfg = compose("tao_rl", overrides=["data.train_files=x.parquet", "data.val_files=y.parquet"])
        OmegaConf.resolve(cfg)
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
        rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
        omega_conf_to_dataclass(cfg.algorithm)
        tao = tao_config(cfg.tao)
        from taorl.integrations.verl.loss_settings import reconcile
        print("LOSS NOTES", reconcile(cfg.actor_rollout_ref.actor, tao.algo.loss, set()).notes)
        print("RESULT", cfg.trainer.v1.trainer_mode, rollout.agent.default_agent_loop, rollout.n,
              rollout.response_length, actor.clip_ratio_high, actor.optim.lr, tao.algo.shaping.coef,
              tao.rollout.max_turns, cfg.algorithm.filter_groups.enable)
        tools = initialize_tools_from_config("configs/verl/tools.yaml")
        print("TOOLS", [type(t).__name__ for t in tools], tools[0].name, tools[0].tool_cfg.workers)
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("RESULT ")[1].split("\n")[0].split() == [
        "tao_sync", "tao_tir_agent", "16", "4000", "0.28", "1e-06", "0.01", "5", "True"]
    assert "TOOLS ['PythonSandboxTool'] python 8" in r.stdout
    assert "LOSS NOTES []" in r.stdout  # verl's actor loss is the paper's, as tao.algo.loss says
    from pathlib import Path

    head = Path(ROOT, "configs", "verl", "tao_rl.yaml").read_text().split("\nhydra:")[0]
    assert "python -m verl.trainer.main_ppo --config-path=$PWD/configs/verl --config-name=tao_rl" in head
    assert "Several nodes" in head and "trainer.nnodes" in head


def test_reward_and_data_files(tmp_path):
    import pyarrow.parquet as pq

    from taorl.integrations.verl.data import main as data_main
    from taorl.integrations.verl.reward import compute_score

    assert compute_score("procedural", "x = 6*7\n\\boxed{42}", "42")["score"] == 1.0
    assert compute_score("procedural", "\\boxed{41}", "42")["score"] == 0.0
    assert data_main([str(tmp_path), "--n", "5", "--difficulty", "1"]) == 0
    rows = pq.read_table(tmp_path / "train.parquet").to_pylist()
    assert len(rows) == 5 and rows[0]["agent_name"] == "tao_tir_agent"
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]
    assert rows[0]["reward_model"]["style"] == "rule" and rows[0]["extra_info"]["problem_id"]
