"""TaoRollout: the spec §1 turn format as a TRL `rollout_func`, by taorl's own rollout loop.

TRL's built-in tool loop needs a chat template that emits JSON tool calls; the paper's models (base
models, SmolLM2) write a fenced Python block instead. `GRPOTrainer(..., rollout_func=TaoRollout(cfg))`
makes TRL's rollouts taorl's: each turn stops right after the first complete code block, the block
runs in taorl's sandbox (a clean private world per call), its observation "\\nCode execution
result: ...\\n" is tokenized alone and appended (env_mask 0, never trained on), up to
rollout.max_turns turns; void turns, the response budget and \\boxed{ end the episode
(taorl.rollout.loop.run_rollouts with taorl.rollout.hf.HFEngine on the trainer's own model; no
token is decoded and re-encoded).

Returned to TRL: prompt_ids, completion_ids, logprobs (sampling log-probs, 0 on observation tokens),
env_mask (TRL turns it into tool_mask) and `tao`, one dict per rollout with n_call, n_ok, void,
truncated, finish, n_turns, turn_ok, statuses, call_turns, call_ms and text: TRL merges it into the
inputs (reward functions see it as a keyword) and TaoGRPOTrainer / TaoRunCallback read it.

Sampling: TRL's temperature / top_p / top_k (so TRL's and taorl's T agree); response budget
min(rollout.max_response_tokens, max_completion_length). The reward is TRL's (reward_funcs):
taorl's grader needs the reference answer, which a rollout_func does not see; use
taorl.integrations.trl.rewards.boxed_answer_reward. With use_vllm the generation still runs on the
trainer's model (the HF engine): not yet run on a GPU (docs/trl.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from taorl.config import Config
from taorl.integrations.trl.settings import tao_config
from taorl.types import SEG_MODEL


@dataclass
class _Prompt:
    id: str
    problem: str
    answer: str = ""


def _no_grade(response: str, reference: str):
    from taorl.rewards.grader import GradeResult

    return GradeResult(reward=0.0, extracted=None, reason="graded by TRL's reward functions")


def _split_prompt(prompt) -> tuple[str | None, str]:
    """(system, problem) of a TRL prompt: a string, or messages [system?, user]."""
    if isinstance(prompt, str):
        return None, prompt
    msgs = list(prompt)
    roles = [m.get("role") for m in msgs]
    if roles not in (["user"], ["system", "user"]):
        raise ValueError(f"TaoRollout: a conversational prompt must be [system?, user] messages, got roles {roles}")
    content = msgs[-1]["content"]
    if not isinstance(content, str):
        raise TypeError("TaoRollout: the user message must be text")
    return (msgs[0]["content"] if len(msgs) == 2 else None), content


def trajectory_flags(t) -> dict:
    """A finished taorl Trajectory -> the `tao` facts of one rollout (as verl's agent loop keeps them)."""
    turn_ok = [False] * max(t.n_turns, 1)
    for c in t.tool_calls:
        turn_ok[c.turn] = turn_ok[c.turn] or c.ok
    return {"n_call": t.n_call, "n_ok": t.n_ok, "void": bool(t.void), "truncated": bool(t.truncated),
            "finish": t.finish, "n_turns": t.n_turns, "turn_ok": turn_ok,
            "statuses": [c.status for c in t.tool_calls], "call_turns": [c.turn for c in t.tool_calls],
            "call_ms": [float(c.wall_ms) for c in t.tool_calls], "text": t.text}


class TaoRollout:
    """A TRL rollout_func running taorl's multi-turn tool loop (see the module doc)."""

    def __init__(self, tao: Config | str | dict | None = None, *, sandbox=None, progress: bool = False):
        self.cfg = tao_config(tao)
        self._sandbox = sandbox
        self._own_sandbox = sandbox is None
        self._engine = None
        self.progress = progress
        self.calls = 0
        self.last: list = []  # the trajectories of the latest call (for inspection)

    @property
    def sandbox(self):
        if self._sandbox is None:
            from taorl.tools import Sandbox

            self._sandbox = Sandbox(self.cfg.tool)
        return self._sandbox

    def close(self) -> None:
        if self._own_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def __call__(self, prompts: list, trainer) -> dict:
        from taorl.rollout.hf import HFEngine
        from taorl.rollout.loop import run_rollouts

        args = trainer.args
        model = trainer.accelerator.unwrap_model(trainer.model)
        tok = trainer.processing_class
        tok = getattr(tok, "tokenizer", tok)
        if self._engine is None:
            self._engine = HFEngine(model, tok, gen_batch_size=self.cfg.rollout.gen_batch_size)
        self._engine.sync(model)
        split = [_split_prompt(p) for p in prompts]
        systems = {s for s, _ in split}
        if len(systems) > 1:
            raise ValueError(f"TaoRollout: one system prompt per batch expected, got {len(systems)}")
        system = systems.pop()
        data_cfg = self.cfg.data.model_copy(update={"system_prompt": system} if system is not None else {})
        rc = self.cfg.rollout.model_copy(update={
            "temperature": float(args.temperature), "top_p": float(args.top_p),
            "top_k": int(args.top_k or 0),
            "max_response_tokens": min(self.cfg.rollout.max_response_tokens, int(args.max_completion_length))})
        problems = [_Prompt(id=str(i), problem=text) for i, (_, text) in enumerate(split)]
        seed = int(args.seed) * 1_000_003 + int(trainer.state.global_step) * 7919 + self.calls
        self.calls += 1
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                trajs = run_rollouts(self._engine, self.sandbox, problems, 1, rc, data_cfg,
                                     tool_enabled=self.cfg.tool.enabled, seed=seed, grader=_no_grade,
                                     progress=self.progress)
        finally:
            model.train(was_training)
        self.last = list(trajs)
        return {"prompt_ids": [list(t.prompt_ids) for t in trajs],
                "completion_ids": [list(t.response_ids) for t in trajs],
                "logprobs": [list(t.sample_logprobs) for t in trajs],
                "env_mask": [[1 if s == SEG_MODEL else 0 for s in t.segment] for t in trajs],
                "tao": [trajectory_flags(t) for t in trajs]}
