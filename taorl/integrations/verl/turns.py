"""The spec §1 turn format for one rollout, tokens in / tokens out, behind a callable and a Tool.

    generate(ids, max_tokens) -> (token_ids, log_probs)     the model server (verl's server_manager)
    tool                                                     a taorl.tools.base.Tool, the interface of
                                                             taorl's own rollout loop (find_call,
                                                             run_many, render): PythonTool + sandbox

Turn k: the server continues prompt + response so far; its ids are cut right after the token with
which the first complete fenced Python block closes (taorl.tools.parse.complete_block_end, the rule
of taorl's hf and vLLM engines, for a tool that stops_at_code_block; a server cannot stop there by
itself, so later ids are dropped with their log-probs) and appended with mask 1. Then, as in
taorl.rollout.loop (only the turn's prose, outside the call's span, can end the episode):

    \\boxed{ in the turn's prose      -> finish "answer"
    a call (tool.find_call)           -> run it; tool.render: "\\nCode execution result: ...\\n"
                                         (≤ obs_max_chars chars) is tokenized alone, cut to
                                         obs_max_tokens, appended with mask 0 and log-prob 0
    \\boxed{ in the observation       -> finish "answer" (final_answer(x) printed it)
    response budget reached           -> truncated, finish "length"
    neither call nor \\boxed          -> void turn, finish "void"
    last turn                         -> finish "max_turns"

The model's ids are never decoded and re-encoded; decoding is for parsing and display only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from taorl.tools.parse import complete_block_end
from taorl.types import ToolCall

BOXED = "\\boxed{"


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


def cut_after_first_block(tokenizer, ids: list[int], logprobs: list[float] | None,
                          stops: bool = True) -> tuple[list[int], list[float], bool]:
    """Keep ids up to and including the one with which the first complete Python block closes
    (nothing is cut when `stops` is False: a tool whose calls are not code blocks).

    Only prefixes ending in a token whose text holds a backtick can close a block, so only those are
    decoded. Returns (ids, logprobs, cut)."""
    lps = list(logprobs) if logprobs is not None else [0.0] * len(ids)
    if len(lps) != len(ids):
        raise ValueError(f"model server returned {len(ids)} ids but {len(lps)} log-probs")
    if not stops or complete_block_end(tokenizer.decode(ids)) is None:
        return list(ids), lps, False
    for n in range(1, len(ids) + 1):
        if "`" in tokenizer.decode(ids[n - 1:n]) and complete_block_end(tokenizer.decode(ids[:n])) is not None:
            return list(ids[:n]), lps[:n], n < len(ids)
    return list(ids), lps, False


async def run_episode(generate: Callable[[list[int], int], Awaitable[tuple[list[int], list[float] | None]]],
                      tool, tokenizer, prompt_ids: list[int], fmt: TurnFormat) -> Episode:
    """One rollout in the spec §1 format (see the module doc)."""
    ep = Episode()
    budget = fmt.max_response_tokens
    for k in range(fmt.max_turns):
        cap = min(fmt.max_turn_tokens, budget - len(ep.response_ids))
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
        call = tool.find_call(text)
        prose = call.prose(text) if call is not None else text  # \boxed{ inside the call is the tool's business
        if BOXED in prose:
            ep.finish = "answer"
            ep.truncated = len(ep.response_ids) >= budget
            break
        if call is None:
            if len(ep.response_ids) >= budget:
                ep.truncated, ep.finish = True, "length"
            else:
                ep.void, ep.finish = True, "void"
            break
        (res,) = await asyncio.get_running_loop().run_in_executor(None, tool.run_many, [call])
        ep.tool_calls.append(ToolCall(turn=k, code=call.code, status=res.status, stdout=res.stdout,
                                      stderr_last=res.stderr_last, wall_ms=float(res.wall_ms),
                                      no_output_ok=not fmt.ok_requires_stdout))
        full = list(tokenizer.encode(tool.render(res, fmt.obs_max_chars), add_special_tokens=False))
        full = full[:fmt.obs_max_tokens]
        obs = full[:max(budget - len(ep.response_ids), 0)]
        ep.response_ids += obs
        ep.response_mask += [0] * len(obs)
        ep.response_logprobs += [0.0] * len(obs)
        obs_text = tokenizer.decode(obs)
        ep.pieces.append(obs_text)
        if BOXED in obs_text:
            ep.finish, ep.truncated = "answer", len(obs) < len(full)
            break
        if len(ep.response_ids) >= budget:
            ep.truncated, ep.finish = True, "length"
            break
        if k == fmt.max_turns - 1:
            ep.finish = "max_turns"
    return ep
