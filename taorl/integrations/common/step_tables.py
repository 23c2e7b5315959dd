"""One training step's rollout rows -> the tables of one step of a taorl run directory, so `taorl
dashboard` shows a verl or TRL run; shared by the verl integration (verl/dump.RunDump,
TaoSyncTrainer) and the TRL one (trl/record.py, TaoRunCallback).

StepRows holds one step as plain per-row lists (verl: read from TransferQueue; TRL: a generated
batch). Its rows become taorl `Trajectory` objects (prompt ids, response ids, segment and turn from
the response mask, sampling log-probs, tool calls from the rollout's facts), and the tables are then
built by the same functions as taorl's own trainer (taorl.train.records, taorl.train.metrics), so the
Parquet schema is the same by construction:

    metrics       taorl's rollout and filter metrics (tools/call_frequency, tao/groups_dropped/...)
                  + the shaping diagnostics (tao/shaping_factor_mean, tao/post_tool_entropy, ...);
                  the caller adds its stack's own scalars (verl: actor/pg_loss, timing_s/...)
    groups        one row per group: rewards, pass rate, std, kept / drop reason
    trajectories  one row per rollout: reward, turns, calls, statuses, Â, weight, reason, text
    tokens        per token of at most logging.token_traj_per_step rollouts: entropy (the sampling
                  policy's; verl: the old policy's from its log-prob recompute), logprob_sample (the
                  sampler's), logprob_train (verl's recomputed old log-prob), Â, Ã, weight, gate

Rows with no rollout facts (verl's stock loops, a plain TRL rollout) have n_call = 0, no statuses and
finish "answer". Plain torch: imports neither verl nor TRL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from taorl.integrations.common.advantage import StepAdvantage, tao_advantage
from taorl.types import SEG_MODEL, ToolCall, Trajectory


@dataclass
class StepRows:
    """One step as plain per-row lists, response-aligned (verl: what TaoSyncTrainer reads from
    TransferQueue; TRL: trl/record.BatchRecord.rows). uids: the group id of each row."""

    uids: list[str]
    prompts: list[list[int]]
    responses: list[list[int]]
    response_mask: list[list[int]]
    scores: list[float]
    entropy: list[list[float]] | None = None  # the sampling policy's H_t (verl: old policy), response-aligned
    old_logprobs: list[list[float]] | None = None  # verl's recomputed old log-probs
    sample_logprobs: list[list[float]] | None = None  # the sampler's (verl: the rollout server's)
    flags: list[dict | None] = field(default_factory=list)  # the rollout's facts per row (verl: extra_fields["tao"])
    answers: list[str] | None = None  # ground truth per row (verl: reward_model.ground_truth)
    problems: list[str | None] | None = None  # the user message per row (else the decoded prompt is shown)

    def __post_init__(self):
        B = len(self.uids)
        for name in ("prompts", "responses", "response_mask", "scores"):
            if len(getattr(self, name)) != B:
                raise ValueError(f"StepRows.{name}: {len(getattr(self, name))} rows, expected {B} (one per uid)")
        for r, (ids, m) in enumerate(zip(self.responses, self.response_mask)):
            if len(ids) != len(m):
                raise ValueError(f"row {r}: {len(ids)} response ids but {len(m)} mask entries")
        if not self.flags:
            self.flags = [None] * B

    def padded(self, rows: list[list[float]] | None = None) -> torch.Tensor:
        """Right-padded [B, T] float tensor of per-response-token rows (default: the response mask)."""
        rows = self.response_mask if rows is None else rows
        T = max([len(x) for x in self.responses] + [1])
        out = torch.zeros(len(self.uids), T)
        for r, x in enumerate(rows):
            out[r, :len(x)] = torch.as_tensor(list(x), dtype=torch.float32)[:T]
        return out

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.responses]

    def advantage(self, cfg, seed: int = 0, shape: bool = True) -> StepAdvantage:
        """taorl's advantage of this step (advantage.tao_advantage; shape=False: unshaped, the loss shapes)."""
        ent = self.padded(self.entropy) if self.entropy is not None else None
        return tao_advantage(self.scores, self.uids, self.padded(), cfg, entropy=ent, lengths=self.lengths,
                             flags=self.flags, seed=seed, shape=shape)


def to_trajectories(rows: StepRows, adv: StepAdvantage, decode: Callable[[list[int]], str]) -> list[Trajectory]:
    """Trajectories in group order (traj = group * G + index, as taorl's trainer numbers them)."""
    out = []
    for g, members in enumerate(adv.groups):
        for i, r in enumerate(members):
            n = rows.lengths[r]
            f = rows.flags[r] or {}
            seg = adv.segment[r, :n].tolist()
            turn = adv.turn[r, :n].tolist()
            lp = rows.sample_logprobs[r] if rows.sample_logprobs is not None else [0.0] * n
            calls = [ToolCall(turn=int(k), code="", status=str(s), wall_ms=float(ms))
                     for k, s, ms in zip(f.get("call_turns", []), f.get("statuses", []), f.get("call_ms", []))]
            problem = (rows.problems[r] if rows.problems else None) or decode(rows.prompts[r])
            t = Trajectory(group=g, index=i, problem_id=str(f.get("problem_id") or rows.uids[r]), problem=problem,
                           answer="" if rows.answers is None else str(rows.answers[r] or ""),
                           prompt_ids=list(rows.prompts[r]), response_ids=list(rows.responses[r]),
                           segment=seg, turn=turn,
                           sample_logprobs=[float(x) if s == SEG_MODEL else 0.0 for x, s in zip(lp, seg)],
                           tool_calls=calls, n_turns=int(f.get("n_turns", max(turn + [0]) + 1 if n else 0)),
                           void=bool(f.get("void", False)), truncated=bool(f.get("truncated", False)),
                           finish=str(f.get("finish", "answer")), reward=float(rows.scores[r]),
                           text=str(f.get("text", "")) or decode(rows.responses[r]))
            out.append(t)
    return out


def step_tables(rows: StepRows, adv: StepAdvantage, decode: Callable[[list[int]], str],
                token_limit: int | None = None) -> dict:
    """{metrics, groups, trajectories, tokens} of one step, built by taorl.train.records / metrics."""
    from taorl.train.metrics import filter_metrics, rollout_metrics
    from taorl.train.records import group_rows, token_rows, trajectory_rows

    flat = to_trajectories(rows, adv, decode)
    N, G = len(adv.groups), len(adv.groups[0])
    by_group = [flat[g * G:(g + 1) * G] for g in range(N)]
    order = [r for members in adv.groups for r in members]  # flat index -> row
    grid = lambda v: torch.tensor([[float(v[r]) for r in members] for members in adv.groups])
    rewards = grid(rows.scores)
    truncated = torch.tensor([[t.truncated for t in ts] for ts in by_group])
    tdec = adv.tdec
    traj_reasons = tdec.reasons
    chosen = list(range(len(flat)))[:token_limit] if token_limit is not None else list(range(len(flat)))
    pt = adv.per_token
    ent = rows.padded(rows.entropy) if rows.entropy is not None else None
    old = rows.padded(rows.old_logprobs) if rows.old_logprobs is not None else None
    tokens = []
    for k in chosen:
        r, n = order[k], rows.lengths[order[k]]

        def take(x, r=r, n=n):
            return np.full(n, np.nan) if x is None else x[r, :n].detach().float().numpy()
        rec = {"entropy": take(ent), "logprob_train": take(old), "advantage": take(pt["adv"]),
               "shaped_advantage": take(pt["shaped_adv"] * pt["weight"].gt(0)),
               "weight": take(pt["weight"]), "gate": take(pt["gate"])}
        tokens += token_rows(flat[k], k, rec, lambda i: decode([i]))
    traj = trajectory_rows(flat, G, grid(adv.rollout_adv), grid(adv.weight), traj_reasons, adv.kept,
                           adv.gdec.reason, has_tokens=set(chosen))
    groups = group_rows(by_group, adv.kept, adv.gdec, rewards, truncated)  # duplicates: refill copies dealt
    metrics = {**rollout_metrics(flat), **filter_metrics(adv.group_reason, [x for row in traj_reasons for x in row]),
               **adv.metrics}
    if ent is not None:  # mean entropy over the model tokens of trained rollouts (old policy)
        trained = pt["weight"] > 0
        if bool(trained.any()):
            metrics["entropy"] = float(ent[trained].mean())
    return {"metrics": metrics, "groups": groups, "trajectories": traj, "tokens": tokens}


__all__ = ["StepRows", "step_tables", "to_trajectories"]
