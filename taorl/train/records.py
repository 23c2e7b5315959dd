"""Rows of the run directory's groups / trajectories / tokens tables (taorl/store/schema.py).

Every column of the schema is filled. Dropped groups are logged too: their rollouts get weight 0,
advantage 0 and the group's drop reason; a rollout of a kept group carries its own mask reason
(tools_all_failed, void_turn, truncated) or null.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from taorl.store.schema import GROUPS, TOKENS, TRAJECTORIES
from taorl.train.metrics import offsets_since_tool
from taorl.types import SEGMENT_NAMES, Trajectory


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
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


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
