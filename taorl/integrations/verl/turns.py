"""The spec §1 turn format for one rollout, tokens in / tokens out, behind a callable and a Tool.

    generate(ids, max_tokens) -> (token_ids, log_probs)     the model server (verl's server_manager)
    tool                                                     a taorl.tools.base.Tool, the interface of
                                                             taorl's own rollout loop (find_call,
                                                             run_many, render): PythonTool + sandbox

Turn k: the server continues prompt + response so far (at most taorl.rollout.turn.turn_cap new
tokens); its ids are cut right after the token with which the first complete fenced Python block
closes (taorl.rollout.turn.cut_after_first_block, for a tool that stops_at_code_block: a server
cannot stop there by itself, so later ids are dropped with their log-probs) and appended with
mask 1. What follows is decided as in taorl.rollout.loop, by the same functions
(taorl.rollout.turn.after_model_turn, after_observation): an answer, a void turn, the response
budget, or a tool call whose observation "\\nCode execution result: ...\\n" is tokenized alone,
cut to obs_max_tokens and appended with mask 0 and log-prob 0; after it, \\boxed{ in the
observation, the budget or the last turn end the episode. The server reports no finish reason,
so a turn counts as cut at its token cap when it returned all `cap` ids it was allowed (as in the
taorl loop, such a turn without a call is truncated, not void).

The model's ids are never decoded and re-encoded; decoding is for parsing and display only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from taorl.rollout.turn import (
    after_model_turn,
    after_observation,
    cut_after_first_block,
    observation_tokens,
    turn_cap,
)
from taorl.types import ToolCall


@dataclass(frozen=True)
class TurnFormat:
    max_turns: int = 5
    max_turn_tokens: int = 1024
    max_response_tokens: int = 4000
    obs_max_chars: int = 512
    obs_max_tokens: int = 256
    ok_requires_stdout: bool = True

    @classmethod
    def from_config(cls, cfg, response_length: int | None = None) -> TurnFormat:
        """From a taorl Config (rollout + tool sections); verl's rollout.response_length caps the budget."""
        rc = cfg.rollout
        budget = rc.max_response_tokens if response_length is None else min(rc.max_response_tokens,
                                                                               int(response_length))
        return cls(max_turns=rc.max_turns, max_turn_tokens=rc.max_turn_tokens, max_response_tokens=budget,
                   obs_max_chars=rc.obs_max_chars, obs_max_tokens=rc.obs_max_tokens,
                   ok_requires_stdout=cfg.tool.ok_requires_stdout)


@dataclass
class Episode:
    response_ids: list[int] = field(default_factory=list)
    response_mask: list[int] = field(default_factory=list)  # 1 model token, 0 observation token
    response_logprobs: list[float] = field(default_factory=list)  # 0.0 on observation tokens
    tool_calls: list[ToolCall] = field(default_factory=list)
    n_turns: int = 0
    void: bool = False
    truncated: bool = False
    finish: str = "answer"
    pieces: list[str] = field(default_factory=list)  # decoded turns and observations, for display

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def flags(self) -> dict:
        """What the advantage and the dump need, as plain values (verl stores them in extra_fields)."""
        turn_ok = [False] * max(self.n_turns, 1)
        for c in self.tool_calls:
            turn_ok[c.turn] = turn_ok[c.turn] or c.ok
        return {"n_call": len(self.tool_calls), "n_ok": sum(c.ok for c in self.tool_calls),
                "void": self.void, "truncated": self.truncated, "finish": self.finish, "n_turns": self.n_turns,
                "turn_ok": turn_ok, "statuses": [c.status for c in self.tool_calls],
                "call_ms": [float(c.wall_ms) for c in self.tool_calls],
                "call_turns": [c.turn for c in self.tool_calls], "text": self.text}


async def run_episode(generate: Callable[[list[int], int], Awaitable[tuple[list[int], list[float] | None]]],
                      tool, tokenizer, prompt_ids: list[int], fmt: TurnFormat) -> Episode:
    """One rollout in the spec §1 format (see the module doc)."""
    ep = Episode()
    budget = fmt.max_response_tokens
    for k in range(fmt.max_turns):
        cap = turn_cap(fmt.max_turn_tokens, budget, len(ep.response_ids))
        if cap <= 0:
            ep.truncated, ep.finish = True, "length"
            break
        raw_ids, raw_lps = await generate(list(prompt_ids) + ep.response_ids, cap)
        ids, lps, _ = cut_after_first_block(tokenizer, list(raw_ids)[:cap],
                                            None if raw_lps is None else list(raw_lps)[:cap],
                                            tool.stops_at_code_block)
        ep.response_ids += ids
        ep.response_mask += [1] * len(ids)
        ep.response_logprobs += [float(x) for x in lps]
        ep.n_turns = k + 1
        text = tokenizer.decode(ids)
        ep.pieces.append(text)
        at_budget = len(ep.response_ids) >= budget
        cut = len(raw_ids) >= cap  # no finish reason from the server: all `cap` ids means it was cut
        call, end = after_model_turn(text, tool, cut=cut, at_budget=at_budget)
        if end is not None:
            end.apply(ep)
            break
        (res,) = await asyncio.get_running_loop().run_in_executor(None, tool.run_many, [call])
        ep.tool_calls.append(ToolCall(turn=k, code=call.code, status=res.status, stdout=res.stdout,
                                      stderr_last=res.stderr_last, wall_ms=float(res.wall_ms),
                                      no_output_ok=not fmt.ok_requires_stdout))
        obs, obs_cut = observation_tokens(tokenizer, tool.render(res, fmt.obs_max_chars), fmt.obs_max_tokens,
                                          room=budget - len(ep.response_ids))
        ep.response_ids += obs
        ep.response_mask += [0] * len(obs)
        ep.response_logprobs += [0.0] * len(obs)
        obs_text = tokenizer.decode(obs)
        ep.pieces.append(obs_text)
        end = after_observation(obs_text, cut=obs_cut, at_budget=len(ep.response_ids) >= budget,
                                last_turn=k == fmt.max_turns - 1)
        if end is not None:
            end.apply(ep)
            break
    return ep
