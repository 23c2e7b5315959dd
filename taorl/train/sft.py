"""`taorl sft`: format priming on programmatic tool-integrated demonstrations.

A small instruct model rarely writes a fenced python block and \\boxed{} on its own, so RL has no
tool calls to learn from. Priming shows it the format on the procedural tasks:

    prompt (same chat template and system prompt as the rollouts)
    -> model turn 1:  a sentence + a ```python block holding the task's solution code
    -> observation:   the REAL sandbox output, rendered exactly as the rollout loop renders it
    -> model turn 2:  "The answer is \\boxed{<answer>}." + end of turn

The kinds of taorl.data.interpret (sft.kinds names them) get two calls before the answer: the
second turn is a sentence and code written from the first call's REAL output (interpret_turns).

The sequences are built as Trajectory objects (prompt ids, model ids, observation ids, segments) and
trained with the same policy backend, TokenBatch and chunked log-probs as RL; only model tokens
carry loss (observation and prompt tokens have mask 0):

    L = - sum_t m_t log pi(y_t | y_<t) / sum_t m_t

Before and after training, real rollouts on held-out procedural problems measure the void-turn
rate, tool-call rate, tool success rate and accuracy; they are printed and saved in
<out>/sft_report.json next to the primed weights (a plain transformers directory, LoRA merged).

`train.init_from: sft` in a training config means "the primed weights of this model under this
config's sft section": `primed_weights(cfg)` builds them on first use (so `make train` works on a
fresh machine) and caches them under $TAORL_CACHE/primed/<model>-<hash>, written atomically.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from taorl.config import Config
from taorl.train.forward import seed_everything
from taorl.train.metrics import rollout_metrics
from taorl.train.policy import build_policy
from taorl.train.primed import REPORT_FILE, is_primed, primed_dir
from taorl.types import SEG_MODEL, SEG_TOOL, Trajectory

# seeds of the three disjoint procedural pools: demonstrations, probes before, probes after (same)
DEMO_SEED_OFFSET, PROBE_SEED_OFFSET = 1_000, 2_000

TURN1 = "I will compute this with Python.\n```python\n{code}\n```"
TURN2 = "\nThe answer is \\boxed{{{answer}}}."


def build_demonstrations(cfg: Config, tokenizer, sandbox, n: int, seed: int) -> list[Trajectory]:
    """n demonstrations from the procedural generator (kinds: cfg.sft.kinds); every observation is
    what the sandbox printed. The kinds of taorl.data.interpret get multi-turn demonstrations
    (interpret_turns): code -> output -> a sentence and code written from that output -> output -> answer."""
    from taorl.data.interpret import is_interpret_kind
    from taorl.data.procedural import generate
    from taorl.rollout.loop import observation_ids, prompt_ids

    problems = generate(n, cfg.sft.difficulty, seed, kinds=cfg.sft.kinds)
    multi = [p for p in problems if is_interpret_kind(p.meta["kind"])]
    turns_of = dict(zip((p.id for p in multi), interpret_turns(multi, sandbox)))
    single = [p for p in problems if p.id not in turns_of]
    results = dict(zip((p.id for p in single), sandbox.run_many([p.meta["solution_code"] for p in single])))
    eos = tokenizer.eos_token_id
    demos = []
    for k, p in enumerate(problems):
        turns = turns_of.get(p.id) or [(TURN1.format(code=p.meta["solution_code"].strip()), results[p.id])]
        resp: list[int] = []
        seg: list[int] = []
        turn: list[int] = []
        for j, (text, res) in enumerate(turns):
            ids = tokenizer.encode(text, add_special_tokens=False)
            obs = observation_ids(tokenizer, res, cfg.rollout)
            resp += ids + obs
            seg += [SEG_MODEL] * len(ids) + [SEG_TOOL] * len(obs)
            turn += [j] * (len(ids) + len(obs))
        last = tokenizer.encode(TURN2.format(answer=p.answer), add_special_tokens=False) + [eos]
        resp += last
        seg += [SEG_MODEL] * len(last)
        turn += [len(turns)] * len(last)
        demos.append(Trajectory(group=k, index=0, problem_id=p.id, problem=p.problem, answer=p.answer,
                                prompt_ids=prompt_ids(tokenizer, p.problem, cfg.data), response_ids=resp,
                                segment=seg, turn=turn, sample_logprobs=[0.0] * len(resp),
                                n_turns=len(turns) + 1))
    return demos


def interpret_turns(problems: list, sandbox) -> list[list[tuple[str, object]]]:
    """Per problem, its model turns before the answer as (text, sandbox result): each step's code is
    written by taorl.data.interpret.reference_step from the real outputs of the steps before it. The
    last output must be the answer (else the demonstration would teach a wrong one: an error)."""
    from taorl.data.interpret import N_CALLS, reference_step
    from taorl.tools.observation import observation_body

    turns: list[list[tuple[str, object]]] = [[] for _ in problems]
    outs: list[list[str]] = [[] for _ in problems]
    for j in range(N_CALLS):  # one batch of sandbox calls per step
        steps = [reference_step(p.meta["kind"], p.meta["params"], o) for p, o in zip(problems, outs)]
        results = sandbox.run_many([code for _, code in steps])
        for i, ((sentence, code), res) in enumerate(zip(steps, results)):
            text = ("" if j == 0 else "\n") + sentence + f"\n```python\n{code.strip()}\n```"
            turns[i].append((text, res))
            outs[i].append(observation_body(res))
    for p, o in zip(problems, outs):
        if o[-1].strip() != p.answer:
            raise RuntimeError(f"{p.id} ({p.meta['kind']}): the reference's last output {o[-1]!r} is not the "
                               f"answer {p.answer!r}")
    return turns


def probe(policy, sandbox, cfg: Config, seed: int) -> dict[str, float]:
    """Real rollouts on held-out procedural problems: void / tool-call / success rate, accuracy."""
    from taorl.data.procedural import generate
    from taorl.rollout.factory import build_engine
    from taorl.rollout.loop import run_rollouts

    problems = generate(cfg.sft.probe_problems, cfg.sft.difficulty, seed, kinds=cfg.sft.kinds)
    policy.train_mode(False)
    engine = build_engine(cfg, policy)
    trajs = run_rollouts(engine, sandbox, problems, cfg.rollout.group_size, cfg.rollout, cfg.data,
                         tool_enabled=True, seed=seed, progress=cfg.logging.progress)
    m = rollout_metrics(trajs)
    return {"void_rate": m["tao/void_rate"], "tool_call_rate": m["tools/call_rate"],
            "tool_call_frequency": m["tools/call_frequency"], "tool_success_rate": m["tools/success_rate"],
            "accuracy": m["accuracy"], "n_rollouts": float(len(trajs))}


def sft_loss(policy, batch, cfg: Config) -> torch.Tensor:
    """Mean negative log-likelihood of the model tokens of the batch (loss_mask)."""
    from taorl.train.forward import token_logprobs_and_entropy

    hidden = policy.hidden_states(batch.input_ids, batch.attention_mask)
    # temperature 1: the plain next-token distribution; no entropy needed
    logp, _ = token_logprobs_and_entropy(hidden, policy.lm_head_weight, batch.targets, batch.loss_mask, 1.0,
                                         cfg.algo.entropy_chunk, with_entropy=False)
    mask = batch.loss_mask.to(logp.dtype)
    return -(logp * mask).sum() / mask.sum().clamp(min=1.0)


def run_sft(cfg: Config, out: str | Path) -> dict:
    """Prime the model named by cfg.model; save it to `out` with sft_report.json. Returns the report."""
    from taorl.tools import Sandbox
    from taorl.train.forward import batch_on

    out = Path(out)
    sc = cfg.sft
    seed_everything(cfg.train.seed)
    policy = build_policy(cfg, model_name=cfg.train.init_from)
    tok = policy.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    t0 = time.perf_counter()
    say = _say  # the phases are printed always (a line each); the bars only with logging.progress
    n_probe = sc.probe_problems * cfg.rollout.group_size
    with Sandbox(cfg.tool) as sandbox:
        say(f"1/4 probe before: {sc.probe_problems} problems x {cfg.rollout.group_size} rollouts")
        before = probe(policy, sandbox, cfg, cfg.data.seed + PROBE_SEED_OFFSET)
        t_probe = time.perf_counter() - t0
        say(f"2/4 {sc.n_examples} demonstrations (solution code run in the sandbox)")
        demos = build_demonstrations(cfg, tok, sandbox, sc.n_examples, cfg.data.seed + DEMO_SEED_OFFSET)
        opt = torch.optim.AdamW(policy.trainable_parameters(), lr=sc.lr, weight_decay=0.0)
        rng = np.random.default_rng(cfg.train.seed)
        order: list[int] = []
        losses = []
        policy.train_mode(True)
        bar = None
        say(f"3/4 {sc.steps} supervised steps of {sc.batch_size} demonstrations "
            f"(then 4/4 probe after, about {t_probe:.0f} s like the probe before)")
        if cfg.logging.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=sc.steps, desc="sft", unit="step")
        t_steps = time.perf_counter()
        for step in range(sc.steps):
            if len(order) < sc.batch_size:  # reshuffle per epoch
                order += rng.permutation(len(demos)).tolist()
            idx, order = order[:sc.batch_size], order[sc.batch_size:]
            trajs = [demos[i] for i in idx]
            ones = torch.ones(len(trajs))
            batch = batch_on(policy, trajs, ones, ones, pad)
            loss = sft_loss(policy, batch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.train.grad_clip)
            # cosine decay to 10 % keeps the last steps from undoing the format
            for g in opt.param_groups:
                g["lr"] = sc.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(sc.steps, 1))))
            opt.step()
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
                # what is left of the whole priming: the remaining steps at the mean step time so
                # far, plus a probe as long as the one before
                per_step = (time.perf_counter() - t_steps) / (step + 1)
                left = (sc.steps - step - 1) * per_step + t_probe
                bar.set_postfix(loss=f"{losses[-1]:.3f}", priming_left=_minutes(left))
        if bar is not None:
            bar.close()
        say(f"4/4 probe after: {n_probe} rollouts")
        after = probe(policy, sandbox, cfg, cfg.data.seed + PROBE_SEED_OFFSET)
    policy.export(out)
    report = {
        "model": cfg.model.name,
        "out": str(out),
        "n_examples": sc.n_examples,
        "steps": sc.steps,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "losses": losses,
        "before": before,
        "after": after,
        "seconds": time.perf_counter() - t0,
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=1))
    say(f"done in {_minutes(report['seconds'])}")
    return report


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _say(text: str) -> None:
    print(f"priming {text}", flush=True)


AUTO_SFT = "sft"  # train.init_from value: prime automatically (cached)


def primed_weights(cfg: Config) -> Path:
    """The cached primed weights for cfg (built with run_sft on first use, then reused)."""
    final = primed_dir(cfg)
    if is_primed(cfg):
        return final
    print(f"train.init_from=sft: priming {cfg.model.name} first (taorl sft; cached in {final})", flush=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    sft_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": None})})
    from taorl.train.checkpoint import rng_preserved

    # priming draws random numbers; the caller (the trainer, about to initialise LoRA) must see the
    # same random streams whether the cache was ready or built here, or the two runs differ
    with rng_preserved():
        report = run_sft(sft_cfg, tmp)
    try:
        tmp.rename(final)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    for k in ("void_rate", "tool_call_rate", "tool_success_rate", "accuracy"):
        print(f"  {k:18s} before {report['before'][k]:.3f}  after {report['after'][k]:.3f}", flush=True)
    return final
