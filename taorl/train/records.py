"""A training step's bookkeeping: its metrics and the rows of the run directory's groups /
trajectories / tokens tables (taorl/store/schema.py), built beside the step (Trainer.train_step).

Every column of the schema is filled. Dropped groups are logged too: their rollouts get weight 0,
advantage 0 and the group's drop reason; a rollout of a kept group carries its own mask reason
(tools_all_failed, void_turn, truncated) or null. Values with no meaning for a token (entropy and
training log-prob of rollouts that had no training forward) are null, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from taorl.store.schema import GROUPS, TOKENS, TRAJECTORIES
from taorl.train.metrics import filter_metrics, offsets_since_tool, post_tool_mask, rollout_metrics
from taorl.types import SEG_MODEL, SEGMENT_NAMES, Trajectory

# computed here over all model tokens of the trained rollouts (first forward), not taken from
# tao_loss's diagnostics (which average over weight > 0 tokens of each micro-batch)
OWN_ENTROPY_METRICS = ("entropy", "tao/post_tool_entropy", "tao/other_entropy")


def step_records(cfg, by_group: list[list[Trajectory]], dec, train_out: dict, rollout_timings: dict,
                 phase_s: dict[str, float], text: Callable[[int], str]) -> tuple[dict[str, float], dict]:
    """(metrics, {"groups", "trajectories", "tokens": rows}) of one step.

    dec: taorl.algo.step.StepDecision; train_out: ppo_update's output (its token records are
    completed here with the dropped groups' rollouts, up to logging.token_traj_per_step rollouts);
    phase_s: the step's phase wall times so far (rollout, train).
    """
    G = cfg.rollout.group_size
    n = len(by_group)
    limit = cfg.logging.token_traj_per_step
    room = None if limit is None else max(limit - len(set(dec.train_groups)) * G, 0)
    untrained = [(g, i) for g in range(n) if not dec.kept[g] for i in range(G)][:room]
    train_out["tokens"].update(describe_untrained(cfg, by_group, untrained))
    flat = [t for row in by_group for t in row]
    kept = dec.kept
    m: dict[str, float] = {}
    m.update(rollout_metrics(flat))
    m.update(filter_metrics(dec.group_reasons, dec.traj_reasons))
    m.update(train_out["metrics"])
    # the loop times its phases: generation, tool execution (wall, calls of a turn run
    # concurrently), grading; anything else in the rollout wall time is bookkeeping
    t_rollout = phase_s["rollout"]
    tim = dict(rollout_timings or {})
    gen_s = float(tim.get("gen_s", t_rollout))
    n_model = sum(sum(s == SEG_MODEL for s in t.segment) for t in flat)
    m.update({"perf/gen_s": gen_s, "perf/tool_s": float(tim.get("tool_s", 0.0)),
              "perf/reward_s": float(tim.get("reward_s", 0.0)), "perf/rollout_s": t_rollout,
              "perf/train_s": phase_s["train"], "perf/tokens_per_s": n_model / max(gen_s, 1e-9)})
    tok = train_out["tokens"]
    truncated = torch.tensor([[t.truncated for t in row] for row in by_group], dtype=torch.bool).view(n, G)
    groups = group_rows(by_group, kept, dec.groups, dec.rewards, truncated)
    traj_rows = trajectory_rows(flat, G, dec.adv, dec.weights, dec.traj.reasons, kept, dec.groups.reason,
                                has_tokens=set(tok))
    chosen = sorted(tok)[:limit] if limit is not None else sorted(tok)
    token_tbl = [r for k in chosen for r in token_rows(flat[k], k, tok[k], text)]
    chosen_set = set(chosen)
    for r in traj_rows:
        r["has_tokens"] = r["traj"] in chosen_set
    return m, {"groups": groups, "trajectories": traj_rows, "tokens": token_tbl}


def record_tokens(tokens: dict, keys, trajs, logp, ent, per_tok, old, G: int, avg) -> None:
    """Per-token arrays of each rollout (response positions only) + the entropy metrics.

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
        if avg is None:
            continue
        model = np.asarray(t.segment) == SEG_MODEL
        H = rec["entropy"].astype(np.float64)
        post = np.asarray(post_tool_mask(t), dtype=bool) & model
        other = model & ~post
        if post.any():
            avg.add("tao/post_tool_entropy", H[post].mean(), post.sum())
        if other.any():
            avg.add("tao/other_entropy", H[other].mean(), other.sum())
        if model.any():  # (the sampling/* mismatch metrics: taorl.algo.rollout_correction)
            avg.add("entropy", H[model].mean(), model.sum())


def describe_untrained(cfg, by_group, keys: list[tuple[int, int]]) -> dict[int, dict]:
    """Per-token records of rollouts that are not trained this step (dropped groups), so the token
    table covers them too, without a model forward (with a 49k vocabulary that forward costs about
    a quarter of a CPU step): entropy and logprob_train are null, advantage and weight 0 (as logged),
    gate = the configured gate (0 for entropy_quantile, which needs the entropy)."""
    from taorl.algo import TokenBatch, shaping_gate

    sc = cfg.algo.shaping
    G = cfg.rollout.group_size
    tokens: dict[int, dict] = {}
    for a in range(0, len(keys), 64):
        mk = keys[a:a + 64]
        trajs = [by_group[g][i] for g, i in mk]
        zeros = [0.0] * len(trajs)
        b = TokenBatch.from_trajectories(trajs, zeros, zeros, 0)
        if sc.enabled and sc.gate != "entropy_quantile":
            gate = shaping_gate(b, None, sc)  # the configured (registered) gate, without entropy
        else:
            gate = torch.zeros_like(b.loss_mask)
        for j, (g, i) in enumerate(mk):
            P, L = b.prompt_len[j], b.response_len[j]
            none = np.full(L, None, dtype=object)  # no training forward: null in the token table
            tokens[g * G + i] = {"entropy": none, "logprob_train": none, "advantage": np.zeros(L, np.float32),
                                 "shaped_advantage": np.zeros(L, np.float32), "weight": np.zeros(L, np.float32),
                                 "gate": gate[j, P - 1:P - 1 + L].numpy()}
    return tokens


def group_rows(by_group: list[list[Trajectory]], kept, gdec, rewards, truncated) -> list[dict]:
    rows = []
    for g, trajs in enumerate(by_group):
        r = [float(x) for x in rewards[g].tolist()]
        t0 = trajs[0]
        rows.append({
            "group": g,
            "problem_id": t0.problem_id,
            "problem": t0.problem,
            "answer": t0.answer,
            "rewards": r,
            # pass rate and (unbiased) std as criterion 2 saw them: over the rollouts counted in the
            # group statistics (all of them unless algo.filter.tool.baseline=exclude)
            "pass_rate": float(gdec.pass_rate[g]),
            "reward_std": float(gdec.std[g]),
            "n_untruncated": int((~truncated[g].bool()).sum()),
            "kept": bool(kept[g]),
            "reason": None if bool(kept[g]) else str(gdec.reason[g]),
            "duplicates": int(gdec.duplicates[g]) if bool(kept[g]) else 0,
        })
    assert not rows or set(rows[0]) == set(GROUPS)
    return rows


def trajectory_rows(flat: list[Trajectory], G: int, adv, weights, traj_reasons, kept, group_reason,
                    has_tokens: set[int]) -> list[dict]:
    rows = []
    for k, t in enumerate(flat):
        g, i = divmod(k, G)
        reason = traj_reasons[g][i] if bool(kept[g]) else group_reason[g]
        rows.append({
            "traj": k,
            "group": g,
            "index": i,
            "problem_id": t.problem_id,
            "reward": float(t.reward),
            "reward_info": t.reward_info,
            "n_turns": int(t.n_turns),
            "n_call": int(t.n_call),
            "n_ok": int(t.n_ok),
            "statuses": [c.status for c in t.tool_calls],
            "call_ms": [float(c.wall_ms) for c in t.tool_calls],
            "void": bool(t.void),
            "truncated": bool(t.truncated),
            "finish": t.finish,
            "length": int(t.length),
            "n_model_tokens": int(sum(s == 1 for s in t.segment)),
            "advantage": float(adv[g, i]),
            "weight": float(weights[g, i]),
            "reason": None if reason is None else str(reason),
            "group_kept": bool(kept[g]),
            "has_tokens": k in has_tokens,
            "text": t.text,
        })
    assert not rows or set(rows[0]) == set(TRAJECTORIES)
    return rows


def _f(x) -> float | None:
    """A finite float, or None for a missing value (None, or NaN of any float type)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def token_rows(t: Trajectory, traj_id: int, rec: dict[str, np.ndarray], text: Callable[[int], str]) -> list[dict]:
    """Prompt rows (segment prompt, no training values) then one row per response token.

    rec holds response-length arrays from the training forward pass: entropy, logprob_train,
    advantage, shaped_advantage, weight (trajectory weight x loss mask), gate.
    """
    rows = []
    P = len(t.prompt_ids)
    for p, tid in enumerate(t.prompt_ids):
        rows.append({"traj": traj_id, "pos": p, "turn": -1, "token_id": int(tid), "token": text(int(tid)),
                     "segment": "prompt", "offset": None, "entropy": None, "logprob_sample": None,
                     "logprob_train": None, "advantage": None, "shaped_advantage": None, "weight": 0.0,
                     "gate": 0.0})
    offs = offsets_since_tool(t)
    for r, tid in enumerate(t.response_ids):
        model = t.segment[r] == 1
        rows.append({
            "traj": traj_id,
            "pos": P + r,
            "turn": int(t.turn[r]),
            "token_id": int(tid),
            "token": text(int(tid)),
            "segment": SEGMENT_NAMES[t.segment[r]],
            "offset": offs[r],
            "entropy": _f(rec["entropy"][r]) if model else None,
            "logprob_sample": float(t.sample_logprobs[r]) if model else None,
            "logprob_train": _f(rec["logprob_train"][r]) if model else None,
            "advantage": _f(rec["advantage"][r]),
            "shaped_advantage": _f(rec["shaped_advantage"][r]),
            "weight": float(rec["weight"][r]),
            "gate": float(rec["gate"][r]),
        })
    assert not rows or set(rows[0]) == set(TOKENS)
    return rows
