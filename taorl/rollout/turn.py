"""What one turn of a tool-integrated rollout decides (spec §1), written once.

Both rollout drivers call these pure functions: taorl's own loop (taorl.rollout.loop, a batch of
trajectories through an Engine) and the verl agent loop (taorl.integrations.verl.turns, one
episode through a model server). The drivers own the tokens, masks, log-probs and records; this
module only decides.

    turn_cap             the most tokens turn k may write: max_turn_tokens, or what is left of
                         the response budget if less
    cut_after_first_block  keep a turn's ids up to the one that closes its first complete fenced
                         Python block (for a server that cannot stop there itself; taorl's
                         engines stop there on their own)
    after_model_turn     after the model's turn, in this order:
                           \\boxed{ in the turn's prose          -> End "answer" (truncated when the
                                                                   turn was cut at the budget)
                           (prose: the text outside the call's span, so a call that prints
                           \\boxed{ runs first)
                           a tool call                          -> run it (no End yet)
                           no call, turn cut at its token cap   -> End "length", truncated (cut,
                                                                   not void)
                           no call, turn ended by itself        -> End "void", void turn
    observation_tokens   the observation text tokenized alone (no special tokens), cut to
                         obs_max_tokens and then to the room left in the response budget
    after_observation    after the observation is appended:
                           \\boxed{ in the observation           -> End "answer" (final_answer(x)
                                                                   printed it; truncated when the
                                                                   budget cut the observation)
                           response budget reached              -> End "length", truncated
                           last turn                            -> End "max_turns"
                           otherwise                            -> None: the next turn
"""

from __future__ import annotations

from dataclasses import dataclass

from taorl.rollout.blockstop import backtick_ids, block_cut
from taorl.tools.parse import complete_block_end

BOXED = "\\boxed{"


@dataclass(frozen=True)
class End:
    """How an episode ends: `finish` (answer | length | void | max_turns) and its two flags."""

    finish: str
    truncated: bool = False
    void: bool = False

    def apply(self, record) -> None:
        """Write finish, truncated and void onto a record (a Trajectory, a verl Episode)."""
        record.finish, record.truncated, record.void = self.finish, self.truncated, self.void


def turn_cap(max_turn_tokens: int, budget: int, length: int) -> int:
    """The most tokens the next turn may write when the response already has `length` tokens."""
    return min(max_turn_tokens, budget - length)


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
    n = block_cut(tokenizer, ids, 0, backtick_ids(tokenizer, among=ids))
    if n is None:
        return list(ids), lps, False
    return list(ids[:n]), lps[:n], n < len(ids)


def after_model_turn(text: str, tool, *, cut: bool, at_budget: bool):
    """(call, end) after a model turn whose decoded text is `text`: exactly one of them is None.

    tool: a taorl.tools.base.Tool, or None when the tool is disabled (no call is looked for);
    cut: the turn stopped at its token cap; at_budget: the response has reached its budget.
    """
    call = tool.find_call(text) if tool is not None else None
    prose = call.prose(text) if call is not None else text  # \boxed{ inside the call is the tool's business
    if BOXED in prose:
        return None, End("answer", truncated=cut and at_budget)
    if call is not None:
        return call, None
    if cut:
        return None, End("length", truncated=True)
    return None, End("void", void=True)


def observation_tokens(tokenizer, text: str, max_tokens: int, room: int | None = None) -> tuple[list[int], bool]:
    """(ids, cut): `text` tokenized alone and cut to max_tokens, then to `room` tokens (None: no
    room limit); `cut` says the room cut it."""
    full = list(tokenizer.encode(text, add_special_tokens=False))[:max_tokens]
    ids = full if room is None else full[:max(room, 0)]
    return ids, len(ids) < len(full)


def after_observation(obs_text: str, *, cut: bool, at_budget: bool, last_turn: bool) -> End | None:
    """The End after an observation whose decoded text is `obs_text`, or None when the episode goes on.

    cut: the observation was cut by the response budget; at_budget: the response has reached its
    budget; last_turn: this was turn max_turns - 1.
    """
    if BOXED in obs_text:
        return End("answer", truncated=cut)
    if at_budget:
        return End("length", truncated=True)
    if last_turn:
        return End("max_turns")
    return None
