"""One verl step -> one step of a taorl run directory, so `taorl dashboard` shows a verl run.

The rows of a verl batch become taorl `Trajectory` objects (prompt ids, response ids, segment and
turn from the response mask, sampling log-probs, tool calls from the agent loop's facts), and the
tables are then built by the same functions as taorl's own trainer (taorl.train.records,
taorl.train.metrics), so the Parquet schema is the same by construction:

    metrics       verl's scalar metrics of the step (actor/pg_loss, critic/score/mean, timing_s/...)
                  + taorl's rollout and filter metrics (tools/call_frequency, tao/groups_dropped/...)
                  + the shaping diagnostics (tao/shaping_factor_mean, tao/post_tool_entropy, ...)
    groups        one row per uid group: rewards, pass rate, std, kept / drop reason
    trajectories  one row per rollout: reward, turns, calls, statuses, Â, weight, reason, text
    tokens        per token of at most logging.token_traj_per_step rollouts: entropy (the old
                  policy's, from verl's log-prob recompute), logprob_sample (the server's),
                  logprob_train (verl's recomputed old log-prob), Â, Ã, weight, gate

Numbering: verl's global step (from 1). Rows with no agent-loop facts (verl's stock loops) have
n_call = 0, no statuses and finish "answer".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from taorl.integrations.verl.advantage import StepAdvantage, tao_advantage
from taorl.types import SEG_MODEL, ToolCall, Trajectory


@dataclass
class VerlRows:
    """One verl step as plain per-row lists (what the trainer reads from TransferQueue)."""

    uids: list[str]
    prompts: list[list[int]]
    responses: list[list[int]]
    response_mask: list[list[int]]
    scores: list[float]
    entropy: list[list[float]] | None = None  # old policy, response-aligned
    old_logprobs: list[list[float]] | None = None  # verl's recomputed log-probs
    sample_logprobs: list[list[float]] | None = None  # the rollout server's
    flags: list[dict | None] = field(default_factory=list)  # extra_fields["tao"] per row
    answers: list[str] | None = None  # ground truth per row (reward_model.ground_truth)
    problems: list[str | None] | None = None  # the user message per row (else the decoded prompt is shown)

    def __post_init__(self):
        B = len(self.uids)
        for name in ("prompts", "responses", "response_mask", "scores"):
            if len(getattr(self, name)) != B:
                raise ValueError(f"VerlRows.{name}: {len(getattr(self, name))} rows, expected {B} (one per uid)")
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


def to_trajectories(rows: VerlRows, adv: StepAdvantage, decode: Callable[[list[int]], str]) -> list[Trajectory]:
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


def step_tables(rows: VerlRows, adv: StepAdvantage, decode: Callable[[list[int]], str],
                token_limit: int | None = None) -> dict:
    """{metrics, groups, trajectories, tokens} of one step, built by taorl.train.records / metrics."""
    from taorl.train.metrics import filter_metrics, rollout_metrics
    from taorl.train.records import group_rows, token_rows, trajectory_rows

    flat = to_trajectories(rows, adv, decode)
    N, G = len(adv.groups), len(adv.groups[0])
    by_group = [flat[g * G:(g + 1) * G] for g in range(N)]
    order = [r for members in adv.groups for r in members]  # flat index -> verl row
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
    groups = group_rows(by_group, adv.kept, adv.gdec, rewards, truncated)
    for g in groups:
        g["duplicates"] = 0  # verl's batch is fixed: no refill by duplication
    metrics = {**rollout_metrics(flat), **filter_metrics(adv.group_reason, [x for row in traj_reasons for x in row]),
               **adv.metrics}
    if ent is not None:  # mean entropy over the model tokens of trained rollouts (old policy)
        trained = pt["weight"] > 0
        if bool(trained.any()):
            metrics["entropy"] = float(ent[trained].mean())
    return {"metrics": metrics, "groups": groups, "trajectories": traj, "tokens": tokens}


class RunDump:
    """A taorl run directory fed one verl step at a time (RunWriter underneath)."""

    def __init__(self, run_dir: str | Path, cfg, *, extra: Mapping | None = None, resume: bool = False):
        from taorl.store import RunWriter

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.writer = RunWriter(self.run_dir, cfg, resume=resume, extra={"engine": "verl", **dict(extra or {})})

    def write(self, step: int, rows: VerlRows, adv: StepAdvantage, decode: Callable[[list[int]], str],
              verl_metrics: Mapping | None = None) -> None:
        t = step_tables(rows, adv, decode, self.cfg.logging.token_traj_per_step)
        m = dict(t["metrics"])
        for k, v in (verl_metrics or {}).items():  # verl's own scalars, under their verl names
            try:
                m[str(k)] = float(v)
            except (TypeError, ValueError):
                continue
        self.writer.write_step(step, metrics=m, groups=t["groups"], trajectories=t["trajectories"],
                               tokens=t["tokens"])

    def finish(self, status: str = "finished") -> None:
        self.writer.finish(status)


def default_run_dir(cfg, name: str | None = None) -> Path:
    """runs_dir / (logging.run_name or `name`)."""
    return Path(cfg.logging.runs_dir) / (cfg.logging.run_name or name or "verl")


__all__ = ["RunDump", "VerlRows", "default_run_dir", "step_tables", "to_trajectories"]
