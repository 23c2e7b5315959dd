"""A generated TRL batch -> the rows of one taorl run-directory step (the taorl.store schema).

TRL's completion-aligned batch has the layout of a verl batch (per row: prompt ids, response ids, a
model-token mask, a score), so the tables come from taorl.integrations.common.step_tables, which
builds them with taorl's own trainer functions (taorl.train.records / metrics): the Parquet schema is
the same by construction and `taorl dashboard` opens a TRL run beside a taorl or verl run.

For a plain GRPOTrainer (TAO-RL off) the step is recorded as what TRL trained on: TRL's own
advantages, weight 1 on every model token, every group kept (TRL drops none; its zero-spread groups
have advantage 0), the decision of taorl's GRPO-TIR baseline settings (filters and shaping off) for
everything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from taorl.config import Config, apply_overrides
from taorl.integrations.common.advantage import StepAdvantage, tao_advantage
from taorl.integrations.common.step_tables import StepRows, step_tables

# taorl's GRPO-TIR baseline: how a plain GRPOTrainer batch is described
BASELINE = ["algo.filter.group.enabled=false", "algo.filter.tool.enabled=false", "algo.filter.void_turn_mask=false",
            "algo.filter.overlong_mask=false", "algo.shaping.enabled=false"]


@dataclass
class BatchRecord:
    """One TRL generation batch on the CPU, unpadded per row."""

    group_size: int
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    model_mask: list[list[int]]  # 1 sampled token, 0 tool-result token
    rewards: Tensor  # [B] float64 (NaN: unscorable)
    trl_advantages: Tensor  # [B] TRL's own advantages
    flags: list[dict]
    problems: list[str]
    answers: list[str] | None
    sample_logprobs: list[list[float]] | None = None
    entropy: list[list[float]] | None = None  # the sampling policy's H_t per completion token
    step: StepAdvantage | None = None  # TAO-RL's decision (TaoGRPOTrainer), None for a plain trainer
    extra_metrics: dict[str, float] = field(default_factory=dict)

    def rows(self) -> StepRows:
        B = len(self.completion_ids)
        return StepRows(uids=[str(b // self.group_size) for b in range(B)], prompts=self.prompt_ids,
                        responses=self.completion_ids, response_mask=self.model_mask,
                        scores=torch.nan_to_num(self.rewards, nan=0.0).tolist(),
                        entropy=self.entropy, old_logprobs=None, sample_logprobs=self.sample_logprobs,
                        flags=self.flags, answers=self.answers, problems=self.problems)

    def advantage(self, cfg: Config) -> StepAdvantage:
        """TAO-RL's decision, or for a plain trainer TRL's advantages laid out as one."""
        if self.step is not None:
            return self.step
        rows = self.rows()
        base = apply_overrides(cfg, BASELINE)
        adv = tao_advantage(rows.scores, rows.uids, rows.padded(), base, lengths=rows.lengths, flags=rows.flags)
        mask = adv.response_mask.to(torch.float32) * (adv.segment == 1)
        trl = self.trl_advantages.to(torch.float32)
        adv.rollout_adv = trl.clone()
        tok = trl[:, None] * mask
        adv.per_token.update({"adv": tok, "shaped_adv": tok, "weight": mask})
        adv.advantages = tok
        return adv

    def tables(self, cfg: Config, decode, token_limit: int | None = None) -> dict:
        t = step_tables(self.rows(), self.advantage(cfg), decode, token_limit)
        t["metrics"].update(self.extra_metrics)
        return t


def prompt_text(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if m.get("role") == "user"]
    msg = users[-1] if users else prompt[-1]
    c = msg.get("content")
    return c if isinstance(c, str) else " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))


def row_flags(inputs: Sequence[Mapping], completion_ids: list[list[int]], eos_ids: set[int],
              environments: Sequence | None = None) -> list[dict]:
    """Per rollout: TaoRollout's `tao` facts, else a PythonEnvironment's, else none (n_call 0); a row
    without its own `truncated` is truncated when it does not end in eos (TRL's test)."""
    out = []
    for b, ids in enumerate(completion_ids):
        f = dict(inputs[b].get("tao") or {}) if b < len(inputs) else {}
        env = environments[b] if environments and b < len(environments) else None
        if not f and env is not None and hasattr(env, "tao_flags"):
            f = dict(env.tao_flags())
        if "truncated" not in f:
            f["truncated"] = bool(ids) and int(ids[-1]) not in eos_ids
        f.setdefault("void", False)
        f.setdefault("finish", "length" if f["truncated"] else "answer")
        out.append(f)
    return out


def unpad(ids: Tensor, mask: Tensor) -> list[list[int]]:
    return [row[m.bool()].tolist() for row, m in zip(ids.cpu(), mask.cpu())]


def record_batch(trainer, inputs: Sequence[Mapping], out: Mapping, rewards_per_func: Tensor | None) -> BatchRecord:
    """The BatchRecord of TRL's `_generate_and_score_completions` output (one process)."""
    cm = out["completion_mask"].cpu()
    comp = unpad(out["completion_ids"], cm)
    prompts = unpad(out["prompt_ids"], out["prompt_mask"])
    tm = out.get("tool_mask")
    mask = [[1] * len(c) for c in comp] if tm is None else unpad(tm, cm)
    B = len(comp)
    if rewards_per_func is not None:
        w = trainer.reward_weights.to(rewards_per_func.device)
        rewards = (rewards_per_func * w[None]).nansum(dim=1).double().cpu()
        rewards[torch.isnan(rewards_per_func).all(dim=1).cpu()] = float("nan")
        rewards = rewards[:B]
    else:
        rewards = torch.full((B,), float("nan"), dtype=torch.float64)
    adv = out["advantages"].detach().float().cpu()
    trl_adv = adv if adv.dim() == 1 else adv.sum(-1) / cm.sum(-1).clamp(min=1)
    eos = {int(i) for i in getattr(trainer, "eos_token_ids", [])} | {int(trainer._tokenizer.pad_token_id)}
    flags = row_flags(inputs, comp, eos, getattr(trainer, "environments", None))
    slp = out.get("sampling_per_token_logps")
    answers = [str(x.get("answer", "")) for x in inputs] if inputs and "answer" in inputs[0] else None
    return BatchRecord(group_size=int(trainer.num_generations), prompt_ids=prompts, completion_ids=comp,
                       model_mask=mask, rewards=rewards, trl_advantages=trl_adv, flags=flags,
                       problems=[prompt_text(x.get("prompt", "")) for x in inputs], answers=answers,
                       sample_logprobs=None if slp is None else unpad(slp.float(), cm))
