"""The TAO-RL training loop (our own, not TRL). One step, top to bottom:

    1. problems   ceil(B * oversample) prompts from a deterministic, resumable data cursor
    2. rollouts   G per prompt through the engine + sandbox, seeded from (seed, step); graded
    3. filters    criterion 2 on groups (+ refill), criterion 1 / void / overlong weights on rollouts
    4. advantage  A_i = (r_i - mean_g r) / (std_g r + eps)   (Dr.GRPO: no division)
    5. update     for each PPO epoch, for each mini-batch of `mini_batch_prompts` kept groups:
                     for each micro-batch of `micro_batch_size` rollouts:
                        hidden -> chunked log-probs + entropy -> tao_loss -> backward (accumulate)
                     clip grad norm, AdamW step, Engine.sync
    6. log        metrics, groups, trajectories, tokens -> the run directory (published atomically)
    7. checkpoint every `checkpoint_every` steps and at the end

Gradient accumulation. tao_loss aggregates over the tensors it is given (one micro-batch). To get
the configured aggregation over the whole mini-batch, each micro-batch loss is rescaled by
(its denominator / the mini-batch denominator) before backward, so the summed gradient equals the
gradient of the mini-batch loss computed in one piece:
(N_tok counts trained tokens: model tokens of rollouts with weight > 0; S counts such rollouts;
see taorl.algo.loss.agg_denominator)
    token-mean:           L = sum_t w_t l_t / N_tok(mini)        scale = N_tok(micro) / N_tok(mini)
    seq-mean-token-mean:  L = (1/S) sum_i mean_t l_{i,t}         scale = S(micro) / S(mini)
    seq-mean-token-sum:   L = (1/S) sum_i sum_t l_{i,t}          scale = S(micro) / S(mini)
Shaping with norm_scope=batch normalises entropy over the micro-batch (like the released code).

Old log-probs. With exactly one optimizer step per batch (one mini-batch, one PPO epoch) the policy
that sampled is the policy being updated, so old = logp.detach() and the ratio is exactly 1 (up to
the engine/trainer numerical mismatch, logged as sampling/logp_diff_*). With more than one update
per batch, old log-probs are recomputed by a no-grad forward of every trained rollout before the
first update, and the ratio moves away from 1 on later updates.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from taorl.algo.rollout_correction import MISMATCH_METRICS
from taorl.config import Config
from taorl.errors import UserError
from taorl.gpu import run_environment
from taorl.train.checkpoint import clean_partial, latest_checkpoint, load_checkpoint, save_checkpoint
from taorl.train.cursor import DataCursor
from taorl.train.metrics import Averager, filter_metrics, post_tool_mask, rollout_metrics
from taorl.train.policy import build_policy
from taorl.train.records import group_rows, token_rows, trajectory_rows

# test hook: sleep this long in the middle of step TAORL_TEST_STALL_STEP (after rollouts, before
# the update), so a test can kill the process mid-step
STALL_STEP_ENV = "TAORL_TEST_STALL_STEP"

# computed here over all model tokens of the trained rollouts (first forward), not taken from
# tao_loss's diagnostics (which average over weight > 0 tokens of each micro-batch)
OWN_ENTROPY_METRICS = ("entropy", "tao/post_tool_entropy", "tao/other_entropy")


def token_logprobs_and_entropy(hidden: torch.Tensor, lm_head_weight: torch.Tensor, targets: torch.Tensor,
                               mask: torch.Tensor, temperature: float, chunk: int,
                               with_entropy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(target_t) and H_t at the positions where mask > 0 (zero elsewhere), [B, T] each.

    Only the loss positions (model tokens) go through the vocabulary projection: prompt and
    observation positions never need it, and with a 49k vocabulary it is the costliest matmul.
    """
    from taorl.algo import logprobs_and_entropy_from_hidden

    sel = mask > 0
    logp = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device)
    ent = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device)
    if not bool(sel.any()):
        return logp + 0.0 * hidden.sum(), ent  # keeps the graph connected for backward()
    lp, h = logprobs_and_entropy_from_hidden(hidden[sel][None], lm_head_weight, targets[sel][None],
                                             temperature, chunk, with_entropy=with_entropy)
    logp = logp.to(lp.dtype).masked_scatter(sel, lp[0])
    ent = ent.to(h.dtype).masked_scatter(sel, h[0])
    return logp, ent


def batch_on(policy, trajs, adv, weights, pad_id: int):
    """TokenBatch of these rollouts, its tensors on the policy's device (cpu unless a GPU backend)."""
    import dataclasses

    from taorl.algo import TokenBatch

    b = TokenBatch.from_trajectories(trajs, adv, weights, pad_id)
    device = getattr(policy, "device", None)
    if device is not None and str(device) != "cpu":
        for f in dataclasses.fields(b):
            v = getattr(b, f.name)
            if isinstance(v, torch.Tensor):
                setattr(b, f.name, v.to(device))
    return b


def release_engine(engine) -> None:
    """End of a generation phase: let the engine free its accelerator memory (a no-op for hf)."""
    release = getattr(engine, "release", None)
    if release is not None:
        release()


def step_seed(seed: int, step: int) -> int:
    """A well-mixed 63-bit seed for step `step` of a run seeded with `seed`."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class PhaseTimer:
    """Wall seconds per named phase: with timer("gen"): ..."""

    def __init__(self) -> None:
        self.s: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.s[name] = self.s.get(name, 0.0) + time.perf_counter() - t0


def lr_at(cfg: Config, step: int) -> float:
    """Linear warm-up over train.warmup_steps, then constant."""
    w = cfg.train.warmup_steps
    return cfg.train.lr * min(1.0, (step + 1) / w) if w > 0 else cfg.train.lr


def _chunks(seq: list, size: int) -> list[list]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


class Trainer:
    def __init__(self, cfg: Config, run_dir: str | Path, *, resume: bool = False):
        from taorl.data import load_train_problems

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        seed_everything(cfg.train.seed)
        # cheap inputs first, so a malformed data file fails before the model loads
        self.problems = load_train_problems(cfg.data)
        if not self.problems:
            raise UserError(f"data.train={cfg.data.train!r}: no problems")
        init_from = cfg.train.init_from
        if init_from == "sft":  # format priming first (cached): taorl.train.sft.primed_weights
            from taorl.train.sft import primed_weights

            init_from = str(primed_weights(cfg))
        elif init_from and not Path(init_from).exists():
            raise UserError(f"train.init_from={init_from!r}: no such directory (or 'sft' to prime first)")
        self.policy = build_policy(cfg, model_name=init_from)
        self.tokenizer = self.policy.tokenizer
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.cursor = DataCursor(len(self.problems), seed=cfg.data.seed, shuffle=cfg.data.shuffle)
        self.optimizer = torch.optim.AdamW(self.policy.trainable_parameters(), lr=cfg.train.lr,
                                           weight_decay=cfg.train.weight_decay)
        self.start_step = 0
        if resume:
            clean_partial(self.run_dir)
            ckpt = latest_checkpoint(self.run_dir)
            if ckpt is not None:
                state = load_checkpoint(ckpt, self.policy, self.optimizer)
                self.cursor.restore(state["cursor"])
                self.start_step = ckpt.step + 1
        # steps after the checkpoint (possibly published before the crash) are rewritten
        from taorl import __version__
        from taorl.rollout.factory import build_engine
        from taorl.store import RunWriter
        from taorl.tools import Sandbox

        self.writer = RunWriter(self.run_dir, cfg, resume=resume, from_step=self.start_step,
                                extra={"model": cfg.model.name, "taorl": __version__, "backend": cfg.model.backend,
                                       **run_environment(self.policy)})
        self.engine = build_engine(cfg, self.policy)  # hf on CPU; vllm when rollout.engine=vllm
        self.sandbox = Sandbox(cfg.tool)
        self._tok_text: dict[int, str] = {}
        self._last_write_s = 0.0

    # ----------------------------------------------------------------------------------------- run
    def run(self) -> None:
        cfg = self.cfg
        steps = range(self.start_step, cfg.train.steps)
        bar = None
        if cfg.logging.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.train.steps, initial=self.start_step, desc="steps", unit="step")
        from taorl.train.console import StepReport

        report = StepReport(cfg, self.run_dir, bar)  # console line + logging.report_to trackers
        try:
            for step in steps:
                metrics = self.train_step(step)
                report(step, metrics)
                every = cfg.train.checkpoint_every
                if (every and (step + 1) % every == 0) or step == cfg.train.steps - 1:
                    self.checkpoint(step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(reward=f"{metrics['reward']:.3f}", loss=f"{metrics['loss']:.4f}")
            self.writer.finish()
        except BaseException:
            with contextlib.suppress(Exception):  # the original error matters more
                self.writer.finish(status="failed")
            raise
        finally:
            report.close()
            if bar is not None:
                bar.close()
            close = getattr(self.sandbox, "close", None)
            if close:
                close()

    def checkpoint(self, step: int) -> None:
        save_checkpoint(self.run_dir, step, self.policy, self.optimizer,
                        {"cursor": self.cursor.state(), "seed": self.cfg.train.seed},
                        keep=self.cfg.train.keep_checkpoints)

    # ---------------------------------------------------------------------------------------- step
    def train_step(self, step: int) -> dict[str, float]:
        from taorl.algo import filter_groups, group_advantages, trajectory_weights
        from taorl.eval.runner import due as eval_due
        from taorl.eval.runner import training_eval_rows
        from taorl.rollout.loop import run_rollouts

        cfg, rc = self.cfg, self.cfg.rollout
        timer = PhaseTimer()
        t_step = time.perf_counter()
        seed = step_seed(cfg.train.seed, step)
        torch.manual_seed(seed)
        G, B = rc.group_size, rc.batch_prompts

        # 1-2. problems and rollouts (graded inside the rollout loop; tool and reward time reported)
        problems = [self.problems[i] for i in self.cursor.take(math.ceil(B * rc.oversample))]
        self.policy.train_mode(False)
        with timer("rollout"):
            trajs = run_rollouts(self.engine, self.sandbox, problems, G, rc, cfg.data,
                                 tool_enabled=cfg.tool.enabled, seed=seed, progress=cfg.logging.progress)
            release_engine(self.engine)  # vLLM sleeps through training (rollout.vllm.sleep_between_phases)
        if not cfg.tool.ok_requires_stdout:  # spec §1: n_ok's definition is configurable
            for t in trajs:
                for c in t.tool_calls:
                    c.no_output_ok = True
        n = len(problems)
        by_group = [[None] * G for _ in range(n)]
        for t in trajs:
            by_group[t.group][t.index] = t
        flat = [by_group[g][i] for g in range(n) for i in range(G)]

        # 3. filters. Criterion 1 / void / overlong -> weights; criterion 2 -> kept groups.
        def grid(f, dtype=torch.float64):
            return torch.tensor([[f(by_group[g][i]) for i in range(G)] for g in range(n)], dtype=dtype)

        rewards = grid(lambda t: t.reward)
        truncated = grid(lambda t: t.truncated, torch.bool)
        tdec = trajectory_weights(grid(lambda t: t.n_call, torch.long), grid(lambda t: t.n_ok, torch.long),
                                  grid(lambda t: t.void, torch.bool), truncated, cfg.algo.filter)
        stats_mask = tdec.stats_mask  # rollouts counted in the group statistics (baseline keep|exclude)
        gen = torch.Generator().manual_seed(seed)
        gdec = filter_groups(rewards, truncated, cfg.algo.filter.group, B, gen, stats_mask=stats_mask)

        # 4. advantages, broadcast to tokens inside TokenBatch
        adv = group_advantages(rewards, cfg.algo.adv, cfg.algo.adv_eps, stats_mask)
        weights = tdec.weights.clone()
        kept = gdec.kept
        weights[~kept] = 0.0
        adv = torch.where(kept[:, None], adv, torch.zeros_like(adv))

        if os.environ.get(STALL_STEP_ENV) == str(step):
            time.sleep(float(os.environ.get("TAORL_TEST_STALL_S", "600")))

        # 5. update on the kept groups (each repeated 1 + duplicates times under refill=duplicate);
        # the rollouts of dropped groups get token rows too (without entropy: no forward for them)
        train_groups = [g for g in range(n) if kept[g] for _ in range(1 + int(gdec.duplicates[g]))]
        limit = cfg.logging.token_traj_per_step
        n_trained = len({g for g in train_groups}) * G
        room = None if limit is None else max(limit - n_trained, 0)
        untrained = [(g, i) for g in range(n) if not kept[g] for i in range(G)][:room]
        with timer("train"):
            inspected = describe_untrained(cfg, by_group, untrained)
            train_out = self._update(step, by_group, train_groups, adv, weights)
        train_out["tokens"].update(inspected)

        # 6. metrics and tables
        with timer("log"):
            traj_reasons = [tdec.reasons[g][i] for g in range(n) for i in range(G)]
            group_reason = [None if kept[g] else gdec.reason[g] for g in range(n)]
            m = {}
            m.update(rollout_metrics(flat))
            m.update(filter_metrics(group_reason, traj_reasons))
            m.update(train_out["metrics"])
            for k in MISMATCH_METRICS:  # every step, NaN when no rollout was trained
                m.setdefault(k, float("nan"))
            m["lr"] = lr_at(cfg, step)
            t_rollout = timer.s["rollout"]
            # the loop times its phases: generation, tool execution (wall, calls of a turn run
            # concurrently), grading; anything else in the rollout wall time is bookkeeping
            tim = dict(getattr(trajs, "timings", {}) or {})
            gen_s = float(tim.get("gen_s", t_rollout))
            tool_s = float(tim.get("tool_s", 0.0))
            reward_s = float(tim.get("reward_s", 0.0))
            n_model = sum(sum(s == 1 for s in t.segment) for t in flat)
            m.update({"perf/gen_s": gen_s, "perf/tool_s": tool_s, "perf/reward_s": reward_s,
                      "perf/rollout_s": t_rollout, "perf/train_s": timer.s["train"],
                      "perf/tokens_per_s": n_model / max(gen_s, 1e-9)})
            tok = train_out["tokens"]
            groups = group_rows(by_group, kept, gdec, rewards, truncated)
            traj_rows = trajectory_rows(flat, G, adv, weights, tdec.reasons, kept, gdec.reason,
                                        has_tokens=set(tok))
            chosen = sorted(tok)[:limit] if limit is not None else sorted(tok)
            token_tbl = [r for k in chosen for r in token_rows(flat[k], k, tok[k], self._token_text)]
            for r in traj_rows:
                r["has_tokens"] = r["traj"] in set(chosen)
        # perf/log_s: building this step's rows; the Parquet write that follows cannot time itself,
        # so its duration is reported with the next step as perf/write_prev_s (0 for the first)
        m["perf/log_s"] = timer.s["log"]
        m["perf/write_prev_s"] = self._last_write_s
        m["perf/step_s"] = time.perf_counter() - t_step
        evals = None
        if eval_due(cfg, step):  # periodic / final benchmark evaluation -> the run's evals/ table
            self.policy.train_mode(False)
            with timer("eval"):
                evals = training_eval_rows(self.engine, self.sandbox, cfg, progress=cfg.logging.progress)
                release_engine(self.engine)
            m["perf/eval_s"] = timer.s["eval"]
        t_write = time.perf_counter()
        self.writer.write_step(step, metrics=m, groups=groups, trajectories=traj_rows, tokens=token_tbl,
                               evals=evals)
        self._last_write_s = time.perf_counter() - t_write
        return m

    def _token_text(self, token_id: int) -> str:
        s = self._tok_text.get(token_id)
        if s is None:
            s = self._tok_text[token_id] = self.tokenizer.decode([token_id])
        return s

    # -------------------------------------------------------------------------------------- update

    def _update(self, step, by_group, train_groups, adv, weights) -> dict:
        return ppo_update(self.policy, self.optimizer, self.cfg, by_group, train_groups, adv, weights,
                          self.pad_id, lr=lr_at(self.cfg, step),
                          after_step=lambda: self.engine.sync(self.policy.model))


def ppo_update(policy, optimizer, cfg: Config, by_group, train_groups: list[int], adv, weights, pad_id: int,
               *, lr: float, after_step=None) -> dict:
    """PPO epochs over mini-batches of kept groups (see the module docstring).

    by_group[g][i]: rollout i of group g; train_groups: group indices to train, a group repeated
    once per copy; adv, weights: [N, G]. after_step() runs after every optimizer step (engine sync).
    Returns {"metrics": {...}, "tokens": {traj id: per-response-token arrays}}.
    """
    from taorl.algo import agg_denominator, tao_loss
    from taorl.algo.rollout_correction import apply_rollout_correction

    acfg = cfg.algo
    temp = cfg.rollout.temperature
    G = cfg.rollout.group_size
    for pg in optimizer.param_groups:
        pg["lr"] = lr
    avg = Averager()
    tokens: dict[int, dict] = {}  # traj id -> per-token arrays (first forward of each rollout)
    minis = _chunks(train_groups, cfg.train.mini_batch_prompts)
    n_updates = len(minis) * cfg.train.ppo_epochs
    if not minis:
        return {"metrics": {"loss": 0.0, "grad_norm": 0.0, "train/n_updates": 0.0,
                            "train/trained_rollouts": 0.0}, "tokens": tokens}

    def make_batch(keys):
        trajs = [by_group[g][i] for g, i in keys]
        a = torch.tensor([float(adv[g, i]) for g, i in keys])
        w = torch.tensor([float(weights[g, i]) for g, i in keys])
        return batch_on(policy, trajs, a, w, pad_id)

    def forward(batch, grad: bool):
        with torch.set_grad_enabled(grad):
            hidden = policy.hidden_states(batch.input_ids, batch.attention_mask)
            return token_logprobs_and_entropy(hidden, policy.lm_head_weight, batch.targets, batch.loss_mask,
                                              temp, acfg.entropy_chunk)

    # old log-probs: recomputed under the sampling weights when there is more than one update
    old: dict[tuple[int, int], torch.Tensor] = {}
    if n_updates > 1:
        policy.train_mode(False)
        keys_all = list(dict.fromkeys((g, i) for g in train_groups for i in range(G)))
        for keys in _chunks(keys_all, cfg.train.micro_batch_size):
            b = make_batch(keys)
            logp, _ = forward(b, grad=False)
            for j, k in enumerate(keys):
                old[k] = logp[j]

    policy.train_mode(True)
    losses, norms = [], []
    for epoch in range(cfg.train.ppo_epochs):
        for groups in minis:
            keys = [(g, i) for g in groups for i in range(G)]
            micro = [(mk, make_batch(mk)) for mk in _chunks(keys, cfg.train.micro_batch_size)]
            denom_mini = sum(agg_denominator(b.weight, acfg.loss.agg) for _, b in micro)
            optimizer.zero_grad(set_to_none=True)
            mini_loss = 0.0
            for mk, b in micro:
                logp, ent = forward(b, grad=True)
                samp_logp = b.old_logprobs  # the engine's sampling log-probs, before the overwrite
                if old:
                    b.old_logp = torch.stack([_pad_to(old[k], logp.shape[1]) for k in mk])
                else:
                    b.old_logp = logp.detach()
                # mismatch metrics (first epoch) and truncated importance weights (algo.rollout_correction)
                b.weight = apply_rollout_correction(b, samp_logp, acfg.rollout_correction,
                                                    avg if epoch == 0 else None)
                ref = None
                if acfg.loss.kl_coef > 0:
                    ref = policy.reference_logprobs(b.input_ids, b.attention_mask, b.targets,
                                                         temp, acfg.entropy_chunk)
                loss, diag, per_tok = tao_loss(b, logp, ent, acfg, ref_logp=ref)
                scale = agg_denominator(b.weight, acfg.loss.agg) / max(denom_mini, 1e-12)
                (loss * scale).backward()
                mini_loss += float(loss.detach()) * scale
                ntok = float((b.weight > 0).sum())  # diagnostics are means over trained tokens
                for name, v in diag.items():
                    if name not in OWN_ENTROPY_METRICS:
                        avg.add(name, float(v), ntok)
                if epoch == 0:
                    _record_tokens(tokens, mk, [by_group[g][i] for g, i in mk], logp, ent, per_tok, old, G, avg)
            params = policy.trainable_parameters()
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
            optimizer.step()
            if after_step is not None:
                after_step()
            losses.append(mini_loss)
            norms.append(float(norm))
    policy.train_mode(False)
    out = avg.means()
    out.update({"loss": float(np.mean(losses)), "grad_norm": float(np.mean(norms)),
                "grad_norm_max": float(np.max(norms)), "train/n_updates": float(n_updates),
                "train/trained_rollouts": float(len(train_groups) * G)})
    return {"metrics": out, "tokens": tokens}

def _record_tokens(tokens, keys, trajs, logp, ent, per_tok, old, G, avg) -> None:
    """Per-token arrays of each rollout (response positions only) + entropy/mismatch metrics.

    Layout (TokenBatch): row j = prompt ids + response ids, right-padded; the per-position
    tensors are aligned with targets, so response token r of a prompt of length P sits at P-1+r.
    """
    for j, (g, i) in enumerate(keys):
        k = g * G + i
        if k in tokens:
            continue  # a duplicated group: record its first copy
        t = trajs[j]
        P, L = len(t.prompt_ids), len(t.response_ids)
        sl = slice(P - 1, P - 1 + L)

        def view(x, j=j, sl=sl):
            return x[j, sl].detach().float().cpu().numpy()

        # the trainer's log-prob under the sampling weights: the recomputed old log-prob when
        # there is one (several updates), else this first forward (one update, not yet applied)
        lp_train = old[(g, i)][sl].float().cpu().numpy() if (g, i) in old else view(logp)
        rec = {"entropy": view(ent), "logprob_train": lp_train, "advantage": view(per_tok["adv"]),
               "shaped_advantage": view(per_tok["shaped_adv"]), "weight": view(per_tok["weight"]),
               "gate": view(per_tok["gate"])}
        tokens[k] = rec
        seg = np.asarray(t.segment)
        model = seg == 1
        H = rec["entropy"].astype(np.float64)
        post = np.asarray(post_tool_mask(t), dtype=bool) & model
        other = model & ~post
        if avg is None:
            continue
        if post.any():
            avg.add("tao/post_tool_entropy", H[post].mean(), post.sum())
        if other.any():
            avg.add("tao/other_entropy", H[other].mean(), other.sum())
        if model.any():  # (the sampling/* mismatch metrics: taorl.algo.rollout_correction)
            avg.add("entropy", H[model].mean(), model.sum())


def describe_untrained(cfg: Config, by_group, keys: list[tuple[int, int]]) -> dict[int, dict]:
    """Per-token records of rollouts that are not trained this step (dropped groups), so the token
    table covers them too, without a model forward (with a 49k vocabulary that forward costs about
    a quarter of a CPU step): entropy and logprob_train are null, advantage and weight 0 (as logged),
    gate = the configured gate (0 for entropy_quantile, which needs the entropy)."""
    from taorl.algo import TokenBatch, make_gate

    sc = cfg.algo.shaping
    G = cfg.rollout.group_size
    tokens: dict[int, dict] = {}
    for mk in _chunks(keys, 64):
        trajs = [by_group[g][i] for g, i in mk]
        zeros = [0.0] * len(trajs)
        b = TokenBatch.from_trajectories(trajs, zeros, zeros, 0)
        if sc.enabled and sc.gate != "entropy_quantile":
            gate = make_gate(sc.gate, b.segment, b.turn, b.turn_called, b.turn_ok, loss_mask=b.loss_mask,
                             window=sc.window, requires_success=sc.requires_success)
        else:
            gate = torch.zeros_like(b.loss_mask)
        for j, (g, i) in enumerate(mk):
            P, L = b.prompt_len[j], b.response_len[j]
            nan = np.full(L, np.nan, dtype=np.float32)
            tokens[g * G + i] = {"entropy": nan, "logprob_train": nan, "advantage": np.zeros(L, np.float32),
                                 "shaped_advantage": np.zeros(L, np.float32), "weight": np.zeros(L, np.float32),
                                 "gate": gate[j, P - 1:P - 1 + L].numpy()}
    return tokens


def _pad_to(x: torch.Tensor, T: int) -> torch.Tensor:
    if x.shape[0] >= T:
        return x[:T]
    return torch.cat([x, x.new_zeros(T - x.shape[0])])
