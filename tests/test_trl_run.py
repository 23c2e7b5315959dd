"""Real TRL GRPOTrainer runs on the tiny model (CPU): TaoGRPOTrainer and TaoRollout through TRL 1.16.

    - on one generated batch, what TaoGRPOTrainer hands TRL equals taorl's decision + shaping on the
      same rollouts, recomputed independently (Ĥ from full logits, prompt-aligned TokenBatch)
    - the no-grad entropy the shaping uses equals TRL's own
    - tao_enabled=False trains exactly as plain GRPOTrainer (same parameters after a step)
    - a 2-step run writes a run directory the taorl.store readers and the dashboard read back
The reward is a real reward function of the text (its parity), so that groups have a spread."""

import copy

import pytest
import torch

trl = pytest.importorskip("trl", reason="the [trl] extra")

from datasets import Dataset

from taorl.integrations.trl import TaoGRPOTrainer, TaoRollout, tao_config, trl_loss_args
from taorl.tools import Sandbox
from taorl.types import SEG_MODEL, SEG_TOOL

G, N = 4, 2
OVERRIDES = ["rollout.max_turns=2", "rollout.max_turn_tokens=12", "rollout.obs_max_tokens=12", "tool.workers=1",
             "algo.entropy_chunk=64", "algo.filter.group.min_n=0", "algo.filter.overlong_mask=false",
             "algo.shaping.coef=0.5"]


def parity_reward(completions, **kwargs):
    return [float(len(c) % 2) for c in completions]


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(tao_config(None, ["tool.workers=1"]).tool)
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def data():
    from taorl.data import load_problems

    return Dataset.from_list([{"prompt": p.problem, "answer": p.answer}
                              for p in load_problems("procedural", n=8, difficulty=0, seed=0)])


def make(model, tok, data, sandbox, tmp, *, cls=TaoGRPOTrainer, steps=1, optim="adamw_torch", **kw):
    cfg = tao_config("paper", OVERRIDES)
    args = trl.GRPOConfig(output_dir=str(tmp), max_steps=steps, learning_rate=1e-2, seed=0,
                          per_device_train_batch_size=N * G, num_generations=G, max_completion_length=24,
                          logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, bf16=False,
                          disable_tqdm=True, optim=optim, **trl_loss_args(cfg.algo))
    extra = {"tao": cfg, **kw} if cls is TaoGRPOTrainer else {}
    m = copy.deepcopy(model).train()
    return cls(model=m, processing_class=tok, reward_funcs=[parity_reward], args=args, train_dataset=data,
               rollout_func=TaoRollout(cfg, sandbox=sandbox), **extra)


def test_generated_batch_parity_and_entropy(tiny_model, tiny_tokenizer, data, sandbox, tmp_path):
    from taorl.algo import TokenBatch, entropy_from_logits, shape_advantage
    from taorl.algo.step import decide_rollouts

    tr = make(tiny_model, tiny_tokenizer, data, sandbox, tmp_path)
    inputs = [dict(data[i]) for i in range(N) for _ in range(G)]
    out = tr._generate_and_score_completions(inputs)
    rec, trajs = tr.tao_last, tr.rollout_func.last
    assert len(trajs) == N * G and out["advantages"].shape == out["completion_ids"].shape
    # TRL's own entropy of the completion tokens (its forward) = the one the shaping used
    C = out["completion_ids"].shape[1]
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], 1)
    att = torch.cat([out["prompt_mask"], out["completion_mask"]], 1)
    with torch.no_grad():
        _, trl_ent, _ = tr._get_per_token_logps_and_entropies(tr.model, ids, att, C, compute_entropy=True)
    cm = out["completion_mask"].bool()
    ours = torch.zeros(N * G, C)
    for b, row in enumerate(rec.entropy):
        ours[b, :len(row)] = torch.tensor(row)
    torch.testing.assert_close(ours[cm], trl_ent[cm].float(), rtol=1e-4, atol=1e-4)

    # independent: rewards onto the trajectories, taorl's decision, prompt-aligned batch, H from logits
    for t, r in zip(trajs, rec.rewards.tolist()):
        t.reward = r
    cfg = tr.tao
    by_group = [trajs[g * G:(g + 1) * G] for g in range(N)]
    for g, row in enumerate(by_group):
        for i, t in enumerate(row):
            t.group, t.index = g, i
    dec = decide_rollouts(by_group, cfg.algo, N, tr.args.seed * 1_000_003 + 0)
    batch = TokenBatch.from_trajectories(trajs, dec.adv.reshape(-1), dec.weights.reshape(-1),
                                         pad_id=tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        logits = tr.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    H = entropy_from_logits(logits, temperature=tr.args.temperature) * batch.loss_mask
    shaped, _ = shape_advantage(batch, H, cfg.algo)
    want = torch.zeros(N * G, C)
    for b, t in enumerate(trajs):
        p, n = len(t.prompt_ids), len(t.response_ids)
        want[b, :n] = (shaped * batch.weight)[b, p - 1:p - 1 + n]
    torch.testing.assert_close(out["advantages"].float(), want, rtol=1e-4, atol=1e-5)
    trained = dec.weights.reshape(-1) > 0
    assert trained.any(), "no group with reward spread: the parity saw only zeros"
    assert torch.equal(out["tool_mask"].bool().any(-1), trained & cm.any(-1))
    assert float(out["num_items_in_batch"]) == float((cm.float() * out["tool_mask"]).sum())


def test_tao_off_trains_as_plain_grpotrainer(tiny_model, tiny_tokenizer, data, sandbox, tmp_path):
    # SGD: Adam would turn float-noise-sized gradients (1e-12) into full lr-sized steps
    plain = make(tiny_model, tiny_tokenizer, data, sandbox, tmp_path / "a", cls=trl.GRPOTrainer, optim="sgd")
    off = make(tiny_model, tiny_tokenizer, data, sandbox, tmp_path / "b", tao_enabled=False, optim="sgd")
    plain.train()
    off.train()
    lp, lo = plain.state.log_history[0], off.state.log_history[0]
    assert lp["loss"] == lo["loss"] and lp["reward"] == lo["reward"]
    moved = False
    for (name, p), (_, q) in zip(plain.model.named_parameters(), off.model.named_parameters()):
        # equal up to float summation order (CPU backward of the embedding is not bit-reproducible)
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7, msg=name)
        moved |= not torch.equal(p, dict(tiny_model.named_parameters())[name])
    assert moved, "the step changed no weight: the comparison would be empty"


def _chain(tok, *pieces):
    return [tok.convert_tokens_to_ids(x) for x in pieces]


def random_reward(completions, **kwargs):
    """SYNTHETIC: a coin flip per completion (seeded), so that identical rollouts still have a spread."""
    g = torch.Generator().manual_seed(len(completions))
    return torch.randint(0, 2, (len(completions),), generator=g).float().tolist()


@pytest.mark.parametrize("code, ok", [(("print", "(", "6", "*", "7", ")"), True),
                                      (("print", "(", "1", "/", "0", ")"), False)])
def test_tool_turns_through_trl(code, ok, chain_lm, tiny_tokenizer, data, sandbox, tmp_path):
    """A real model that writes `print(...)` in a fenced block every turn, through TRL: TaoRollout runs
    each block in the sandbox, TRL turns env_mask into tool_mask, and TaoGRPOTrainer reads the turns
    back: the call statuses reach criterion 1 (all failed -> weight 0, reason tools_all_failed), and
    the second turn's model tokens are post-tool (gate 1) and shaped; the advantages still equal
    taorl's own path on the same rollouts."""
    from taorl.algo import TokenBatch, entropy_from_logits, shape_advantage
    from taorl.algo.step import decide_rollouts

    tok = tiny_tokenizer
    model = chain_lm(tok, _chain(tok, "Ċ", *code, "ĊĊ", "```", "python", "Ċ"))
    cfg = tao_config("paper", [*OVERRIDES, "rollout.max_turn_tokens=24", "rollout.obs_max_tokens=32"])
    args = trl.GRPOConfig(output_dir=str(tmp_path), max_steps=1, seed=0, per_device_train_batch_size=N * G,
                          num_generations=G, max_completion_length=64, report_to=[], use_cpu=True,
                          disable_tqdm=True, save_strategy="no", **trl_loss_args(cfg.algo))
    tr = TaoGRPOTrainer(model=model.train(), processing_class=tok, reward_funcs=[random_reward], args=args,
                        train_dataset=data, rollout_func=TaoRollout(cfg, sandbox=sandbox), tao=cfg)
    inputs = [dict(data[i]) for i in range(N) for _ in range(G)]
    out = tr._generate_and_score_completions(inputs)
    step, trajs = tr.tao_step, tr.rollout_func.last
    status = "ok" if ok else "runtime_error"
    for t, f in zip(trajs, tr.tao_last.flags):
        assert [c.status for c in t.tool_calls] == [status] * 2 and t.n_turns == 2, (t.text, t.finish)
        assert (f["n_call"], f["n_ok"]) == (2, 2 if ok else 0)
    for b, t in enumerate(trajs):  # observation tokens are never in TRL's loss mask
        seg = torch.tensor(t.segment)
        assert (seg == SEG_TOOL).any() and not out["tool_mask"][b, :len(seg)][seg == SEG_TOOL].any()
    adv = step.advantage
    gate = adv.per_token["gate"]
    turn1 = (adv.turn == 1) & (adv.segment == SEG_MODEL)
    assert turn1.any() and torch.equal(gate.bool(), turn1)  # post-tool gate: exactly turn 1's model tokens
    if ok:
        assert all(r is None or r.startswith("group_") for r in adv.reason)
        assert float(step.metrics["tao/gated_fraction"]) > 0
    else:
        assert set(adv.reason) == {"tools_all_failed"} and not out["advantages"].any()
        assert not out["tool_mask"].any() and float(out["num_items_in_batch"]) == 0
    # parity with taorl's own path on these rollouts (tool turns included)
    for t, r in zip(trajs, tr.tao_last.rewards.tolist()):
        t.reward = r
    by_group = [trajs[g * G:(g + 1) * G] for g in range(N)]
    for g, row in enumerate(by_group):
        for i, t in enumerate(row):
            t.group, t.index = g, i
    dec = decide_rollouts(by_group, cfg.algo, N, 0)
    batch = TokenBatch.from_trajectories(trajs, dec.adv.reshape(-1), dec.weights.reshape(-1), pad_id=tok.pad_token_id)
    with torch.no_grad():
        logits = tr.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    H = entropy_from_logits(logits, temperature=tr.args.temperature) * batch.loss_mask
    shaped, _ = shape_advantage(batch, H, cfg.algo)
    C = out["completion_ids"].shape[1]
    want = torch.zeros(N * G, C)
    for b, t in enumerate(trajs):
        p, n = len(t.prompt_ids), len(t.response_ids)
        want[b, :n] = (shaped * batch.weight)[b, p - 1:p - 1 + n]
    torch.testing.assert_close(out["advantages"].float(), want, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def trl_run(tiny_model, tiny_tokenizer, data, sandbox, tmp_path_factory):
    root = tmp_path_factory.mktemp("trl-runs")
    tr = make(tiny_model, tiny_tokenizer, data, sandbox, root / "work", steps=2, run_dir=root / "trl-tiny")
    tr.train()
    return root, tr


def test_two_step_run_reads_back(trl_run):
    from taorl.store import open_run

    root, tr = trl_run
    run = open_run(root / "trl-tiny")
    assert run.manifest["status"] == "finished" and run.manifest["last_step"] == 2
    assert run.manifest["extra"]["engine"] == "trl" and run.manifest["extra"]["tao_enabled"] is True
    m = run.metrics()
    assert m["step"].to_list() == [1, 2]
    assert {"loss", "reward", "tao/groups_kept", "tools/call_frequency", "tao/shaping_factor_mean"} <= set(m.columns)
    g = run.groups()
    assert g.height == 2 * N
    for row in g.iter_rows(named=True):  # kept exactly when the rewards spread (criterion 2)
        spread = len(set(row["rewards"])) > 1
        assert row["kept"] == spread and (row["reason"] is None) == spread
    tj = run.trajectories()
    assert tj.height == 2 * N * G
    last = tr.tao_last
    assert tj.filter(tj["step"] == 2)["reward"].to_list() == pytest.approx(last.rewards.tolist())
    tok = run.tokens()
    assert tok.height > 0 and tok["entropy"].is_not_nan().all()
    segs = set(tok["segment"].unique().to_list())
    assert "model" in segs and segs <= {"prompt", "model", "tool"}


def _page(root, monkeypatch, view, **params):
    from pathlib import Path

    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    monkeypatch.setenv("TAORL_RUNS_DIR", str(root))
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app" / "Home.py"), default_timeout=60)
    at.switch_page(view)
    for k, v in {"run": "trl-tiny", **params}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_trl_run_opens_in_the_dashboard(trl_run, monkeypatch):
    root, _ = trl_run
    shown = {m.label: m.value for m in _page(root, monkeypatch, "views/1_overview.py").metric}
    assert shown["step"] == "2" and shown["entropy"] != "–"


@pytest.mark.parametrize("view", ["views/2_curves.py", "views/3_groups.py", "views/6_browser.py"])
def test_dashboard_views_render_the_trl_run(trl_run, monkeypatch, view):
    _page(trl_run[0], monkeypatch, view)


def test_token_view_of_a_trl_rollout(trl_run, monkeypatch):
    from taorl.store import open_run

    root, _ = trl_run
    tj = open_run(root / "trl-tiny").trajectories(2)
    row = tj.row(0, named=True)
    at = _page(root, monkeypatch, "views/5_tokens.py", step="2", traj=str(row["traj"]))
    shown = {m.label: m.value for m in at.metric}
    assert shown["weight"] == f"{row['weight']:.2f}"


@pytest.mark.slow
def test_example_script_on_smollm2(tmp_path):
    """examples/trl_tao_grpo.py as a user runs it, on the real SmolLM2-135M (CPU, a few minutes)."""
    import importlib.util
    from pathlib import Path

    from taorl.store import open_run

    path = Path(__file__).parents[1] / "examples" / "trl_tao_grpo.py"
    spec = importlib.util.spec_from_file_location("trl_tao_grpo", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--model", "smollm2", "--steps", "1", "--max-completion", "128", "--out", str(tmp_path / "run")])
    run = open_run(out)
    assert run.last_step == 1 and run.status == "finished"
    assert run.trajectories().height == 8 and run.tokens()["entropy"].is_not_nan().all()
