"""The TAO-RL training loop (our own, not TRL). One step, top to bottom (`Trainer.train_step`):

    1. rollout    ceil(B * oversample) prompts from a deterministic, resumable data cursor;
                  G rollouts each through the engine + tool, seeded from (seed, step); graded
    2. decide     taorl.algo.step.decide: criterion 1 / void / overlong weights, criterion 2 (+ refill),
                  advantages A_i = (r_i - mean_g r) / (std_g r + eps)  (registered estimator algo.adv)
    3. update     `ppo_update`: for each PPO epoch, for each mini-batch of `mini_batch_prompts` kept groups:
                     for each micro-batch of `micro_batch_size` rollouts:
                        hidden -> chunked log-probs + entropy -> tao_loss -> backward (accumulate)
                     clip grad norm, AdamW step, Engine.sync
    4. log        metrics, groups, trajectories, tokens -> the run directory (published atomically);
                  the rows are built beside the step, in taorl.train.records.step_records
    then          a checkpoint every `checkpoint_every` steps and at the end (Trainer.run)

Gradient accumulation. tao_loss aggregates over the tensors it is given (one micro-batch). To get
the configured aggregation over the whole mini-batch, each micro-batch loss is rescaled by
(its denominator / the mini-batch denominator) before backward, so the summed gradient equals the
gradient of the mini-batch loss computed in one piece:
(N_tok counts trained tokens: model tokens of rollouts with weight > 0; S counts such rollouts;
see taorl.algo.loss.agg_denominator)
    token-mean:           L = sum_t w_t l_t / N_tok(mini)        scale = N_tok(micro) / N_tok(mini)
    seq-mean-token-mean:  L = (1/S) sum_i mean_t l_{i,t}         scale = S(micro) / S(mini)
    seq-mean-token-sum:   L = (1/S) sum_i sum_t l_{i,t}          scale = S(micro) / S(mini)
    micro-token-mean:     (*code*) the mean of per-micro-batch token means, scale = B(micro) / B(mini)
Statistics that span rollouts are taken once over the whole step's trained rollouts, before the
first update (`step_statistics`): the entropy_quantile gate and μ, σ of norm_scope=batch. So the
update does not depend on micro_batch_size (norm_scope=micro_batch and micro-token-mean are the
released code's micro-batch choices and do, by definition).

Old log-probs. With exactly one optimizer step per batch (one mini-batch, one PPO epoch) the policy
that sampled is the policy being updated, so old = logp.detach() and the ratio is exactly 1 (up to
the engine/trainer numerical mismatch, logged as sampling/logp_diff_*). With more than one update
per batch, old log-probs are recomputed by a no-grad forward of every trained rollout before the
first update, and the ratio moves away from 1 on later updates.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
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
from taorl.train.forward import batch_on, seed_everything, step_seed, token_logprobs_and_entropy
from taorl.train.metrics import Averager
from taorl.train.policy import build_policy
from taorl.train.records import OWN_ENTROPY_METRICS, record_tokens, step_records

__all__ = ["Trainer", "batch_on", "lr_at", "ppo_update", "release_engine", "seed_everything", "step_seed",
           "step_statistics", "token_logprobs_and_entropy"]


def release_engine(engine) -> None:
    """End of a generation phase: let the engine free its accelerator memory (a no-op for hf)."""
    release = getattr(engine, "release", None)
    if release is not None:
        release()


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


def group_grid(trajs, n: int, G: int) -> list[list]:
    """by_group[g][i] = rollout i of problem g."""
    by_group = [[None] * G for _ in range(n)]
    for t in trajs:
        by_group[t.group][t.index] = t
    return by_group


class Trainer:
    def __init__(self, cfg: Config, run_dir: str | Path, *, resume: bool = False):
        from taorl.data import load_train_set

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        # callbacks by event: "after_decide"(trainer, step) runs between the decision and the update
        self.callbacks: dict[str, list[Callable]] = {"after_decide": []}
        seed_everything(cfg.train.seed)
        # cheap inputs first, so a malformed data file fails before the model loads
        train_set = load_train_set(cfg.data)  # named set / file / hub, repeats and benchmark problems dropped
        self.problems, self.data_report = train_set.problems, train_set.report
        if cfg.data.train != "procedural":
            import logging

            logging.getLogger("taorl").info(train_set.summary())
        if not self.problems:
            raise UserError(f"data.train={cfg.data.train!r}: no problems")
        self.published = -1  # resume: the last step the run had published (taorl.train.resume checks it all)
        if resume:
            import logging

            from taorl.train.resume import check_resume

            self.published, notes = check_resume(self.run_dir)
            for level, note in notes:
                logging.getLogger("taorl").log(level, "resume: %s", note)
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
        from taorl import __version__
        from taorl.rollout.factory import build_engine
        from taorl.store import RunWriter
        from taorl.tools import Sandbox
        from taorl.train.faults import install_from_env

        self.engine = build_engine(cfg, self.policy)  # hf on CPU; vllm when rollout.engine=vllm
        self.sandbox = Sandbox(cfg.tool)
        # the run directory says "running" only once everything above has started; steps after the
        # checkpoint (possibly published before a crash) are rewritten
        try:
            self.writer = RunWriter(self.run_dir, cfg, resume=resume, from_step=self.start_step,
                                    extra={"model": cfg.model.name, "taorl": __version__,
                                           "backend": cfg.model.backend, "data": self.data_report,
                                           **run_environment(self.policy)})
        except BaseException:
            self.close()
            raise
        self._tok_text: dict[int, str] = {}
        self._last_write_s = 0.0
        install_from_env(self)  # crash tests only: TAORL_TEST_STALL_STEP (taorl.train.faults)

    def close(self) -> None:
        """Stop the tool workers (the engine and policy are freed with the trainer)."""
        close = getattr(getattr(self, "sandbox", None), "close", None)
        if close:
            close()

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
            self.close()

    def checkpoint(self, step: int) -> None:
        save_checkpoint(self.run_dir, step, self.policy, self.optimizer,
                        {"cursor": self.cursor.state(), "seed": self.cfg.train.seed},
                        keep=self.cfg.train.keep_checkpoints)

    # ---------------------------------------------------------------------------------------- step
    def train_step(self, step: int) -> dict[str, float]:
        from taorl.algo.step import decide_rollouts

        cfg, rc = self.cfg, self.cfg.rollout
        G, B = rc.group_size, rc.batch_prompts
        seed = step_seed(cfg.train.seed, step)
        torch.manual_seed(seed)
        timer = PhaseTimer()
        t_step = time.perf_counter()

        # 1. rollout: G rollouts of each problem, graded inside the rollout loop
        problems = [self.problems[i] for i in self.cursor.take(math.ceil(B * rc.oversample))]
        with timer("rollout"):
            trajs = self.rollout(problems, seed)
        by_group = group_grid(trajs, len(problems), G)

        # 2. decide: filters -> advantages -> weights, with a reason for every drop and mask
        dec = decide_rollouts(by_group, cfg.algo, B, seed)
        for fn in self.callbacks["after_decide"]:
            fn(self, step)

        # 3. update on the kept groups (each repeated 1 + duplicates times under a refill)
        with timer("train"):
            train_out = ppo_update(self.policy, self.optimizer, cfg, by_group, dec.train_groups, dec.adv,
                                   dec.weights, self.pad_id, lr=lr_at(cfg, step),
                                   after_step=lambda: self.engine.sync(self.policy.model))

        # 4. log: metrics and the groups / trajectories / tokens tables -> the run directory
        with timer("log"):
            m, tables = step_records(cfg, by_group, dec, train_out, getattr(trajs, "timings", {}),
                                     timer.s, self._token_text)
            m["lr"] = lr_at(cfg, step)
            for k in MISMATCH_METRICS:  # every step, NaN when no rollout was trained
                m.setdefault(k, float("nan"))
        evals = self.evaluate(step, timer)
        self.write(step, m, tables, evals, timer, t_step)
        return m

    # ------------------------------------------------------------------------- beside the step
    def rollout(self, problems: list, seed: int):
        """G graded rollouts of every problem (taorl.rollout.loop), engine released afterwards."""
        from taorl.rollout.loop import run_rollouts

        cfg = self.cfg
        self.policy.train_mode(False)
        trajs = run_rollouts(self.engine, self.sandbox, problems, cfg.rollout.group_size, cfg.rollout, cfg.data,
                             tool_enabled=cfg.tool.enabled, seed=seed, progress=cfg.logging.progress)
        release_engine(self.engine)  # vLLM sleeps through training (rollout.vllm.sleep_between_phases)
        if not cfg.tool.ok_requires_stdout:  # spec §1: n_ok's definition is configurable
            for t in trajs:
                for c in t.tool_calls:
                    c.no_output_ok = True
        return trajs

    def evaluate(self, step: int, timer: PhaseTimer) -> list | None:
        """Benchmark rows when an evaluation is due at this step (eval.every, eval.final), else None."""
        from taorl.eval.runner import due as eval_due
        from taorl.eval.runner import training_eval_rows

        if not eval_due(self.cfg, step):
            return None
        self.policy.train_mode(False)
        with timer("eval"):
            evals = training_eval_rows(self.engine, self.sandbox, self.cfg, progress=self.cfg.logging.progress)
            release_engine(self.engine)
        return evals

    def write(self, step: int, m: dict, tables: dict, evals, timer: PhaseTimer, t_step: float) -> None:
        """Publish the step. perf/log_s: building its rows; the Parquet write cannot time itself, so its
        duration is reported with the next step as perf/write_prev_s (0 for the first)."""
        m["perf/log_s"] = timer.s["log"]
        m["perf/write_prev_s"] = self._last_write_s
        if "eval" in timer.s:
            m["perf/eval_s"] = timer.s["eval"]
        m["perf/step_s"] = time.perf_counter() - t_step
        t_write = time.perf_counter()
        self.writer.write_step(step, metrics=m, evals=evals, **tables)
        self._last_write_s = time.perf_counter() - t_write

    def _token_text(self, token_id: int) -> str:
        s = self._tok_text.get(token_id)
        if s is None:
            s = self._tok_text[token_id] = self.tokenizer.decode([token_id])
        return s


# ------------------------------------------------------------------------------------------ update
def step_statistics(policy, cfg: Config, by_group, rows: list[tuple[int, int]], adv, weights, pad_id: int,
                    *, need_old: bool) -> tuple[dict, dict, tuple | None]:
    """One no-grad forward of the step's trained rollouts under the sampling weights, before any update.

    rows: (group, index) of every row of the training batch in order (a duplicated group twice).
    Returns (old log-probs by (g, i) when need_old, the entropy_quantile gate by row number, and
    (μ, σ) over the trained tokens for norm_scope=batch), each empty/None when not needed.
    """
    from taorl.algo import entropy_stats, shaping_gate

    sc = cfg.algo.shaping
    want_gate = sc.enabled and sc.gate == "entropy_quantile"
    want_stats = sc.enabled and sc.norm_scope == "batch"
    if not (need_old or want_gate or want_stats):
        return {}, {}, None
    keys = list(dict.fromkeys(rows))
    logp_of, ent_of = {}, {}
    policy.train_mode(False)
    for chunk in _chunks(keys, cfg.train.micro_batch_size):
        b = _make_batch(policy, by_group, chunk, adv, weights, pad_id)
        with torch.no_grad():
            hidden = policy.hidden_states(b.input_ids, b.attention_mask)
            logp, ent = token_logprobs_and_entropy(hidden, policy.lm_head_weight, b.targets, b.loss_mask,
                                                   cfg.rollout.temperature, cfg.algo.entropy_chunk)
        for j, k in enumerate(chunk):
            logp_of[k], ent_of[k] = logp[j], ent[j]
    old = logp_of if need_old else {}
    if not (want_gate or want_stats):
        return old, {}, None
    # the whole training batch in one piece (tensors only): its gate and entropy statistics
    full = _make_batch(policy, by_group, rows, adv, weights, pad_id)
    L = full.loss_mask.shape[1]
    H = torch.stack([_pad_to(ent_of[k], L) for k in rows])
    gate = {}
    if want_gate:
        g_full = shaping_gate(full, H, sc)
        gate = {r: g_full[r] for r in range(len(rows))}
    stats = entropy_stats(H, full.weight > 0) if want_stats else None
    return old, gate, stats


def _make_batch(policy, by_group, keys, adv, weights, pad_id):
    trajs = [by_group[g][i] for g, i in keys]
    a = torch.tensor([float(adv[g, i]) for g, i in keys])
    w = torch.tensor([float(weights[g, i]) for g, i in keys])
    return batch_on(policy, trajs, a, w, pad_id)


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
    G = cfg.rollout.group_size
    for pg in optimizer.param_groups:
        pg["lr"] = lr
    avg = Averager()
    tokens: dict[int, dict] = {}  # traj id -> per-token arrays (first forward of each rollout)
    minis = _chunks(list(range(len(train_groups))), cfg.train.mini_batch_prompts)  # positions in train_groups
    n_updates = len(minis) * cfg.train.ppo_epochs
    if not minis:
        return {"metrics": {"loss": 0.0, "grad_norm": 0.0, "train/n_updates": 0.0,
                            "train/trained_rollouts": 0.0}, "tokens": tokens}
    rows = [(g, i) for g in train_groups for i in range(G)]  # row r of the step's training batch
    # before the first update: old log-probs (several updates) and the step-wide gate / entropy statistics
    old, step_gate, stats = step_statistics(policy, cfg, by_group, rows, adv, weights, pad_id,
                                            need_old=n_updates > 1)

    policy.train_mode(True)
    losses, norms = [], []
    for epoch in range(cfg.train.ppo_epochs):
        for positions in minis:
            mini_rows = [r for p in positions for r in range(p * G, (p + 1) * G)]
            micro = [(rs, _make_batch(policy, by_group, [rows[r] for r in rs], adv, weights, pad_id))
                     for rs in _chunks(mini_rows, cfg.train.micro_batch_size)]
            denom_mini = sum(agg_denominator(b.weight, acfg.loss.agg) for _, b in micro)
            optimizer.zero_grad(set_to_none=True)
            mini_loss = 0.0
            for rs, b in micro:
                mk = [rows[r] for r in rs]
                with torch.enable_grad():
                    hidden = policy.hidden_states(b.input_ids, b.attention_mask)
                    logp, ent = token_logprobs_and_entropy(hidden, policy.lm_head_weight, b.targets, b.loss_mask,
                                                           cfg.rollout.temperature, acfg.entropy_chunk)
                samp_logp = b.old_logprobs  # the engine's sampling log-probs, before the overwrite
                L = logp.shape[1]
                b.old_logp = torch.stack([_pad_to(old[k], L) for k in mk]) if old else logp.detach()
                # mismatch metrics (first epoch) and truncated importance weights (algo.rollout_correction)
                b.weight = apply_rollout_correction(b, samp_logp, acfg.rollout_correction,
                                                    avg if epoch == 0 else None)
                ref = None
                if acfg.loss.kl_coef > 0:
                    ref = policy.reference_logprobs(b.input_ids, b.attention_mask, b.targets,
                                                    cfg.rollout.temperature, acfg.entropy_chunk)
                gate = torch.stack([_pad_to(step_gate[r], L) for r in rs]) if step_gate else None
                loss, diag, per_tok = tao_loss(b, logp, ent, acfg, ref_logp=ref, gate=gate, entropy_stats=stats)
                scale = agg_denominator(b.weight, acfg.loss.agg) / max(denom_mini, 1e-12)
                (loss * scale).backward()
                mini_loss += float(loss.detach()) * scale
                ntok = float((b.weight > 0).sum())  # diagnostics are means over trained tokens
                for name, v in diag.items():
                    if name not in OWN_ENTROPY_METRICS:  # these come from record_tokens
                        avg.add(name, float(v), ntok)
                if epoch == 0:
                    record_tokens(tokens, mk, [by_group[g][i] for g, i in mk], logp, ent, per_tok, old, G, avg)
            norm = torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.train.grad_clip)
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


def _pad_to(x: torch.Tensor, T: int) -> torch.Tensor:
    if x.shape[0] >= T:
        return x[:T]
    return torch.cat([x, x.new_zeros(T - x.shape[0])])
