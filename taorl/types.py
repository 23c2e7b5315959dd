"""Plain data shared by rollout, algo, trainer and store. No torch, no I/O.

A trajectory is the token sequence one rollout produced: the prompt ids, then per turn the ids the
engine returned (segment MODEL) and, after a turn with a code block, the rendered observation ids
(segment TOOL). Per response token we keep its segment, its turn index and its sampling logprob.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---- token segments (per token) -----------------------------------------------------------------
SEG_PROMPT = 0
SEG_MODEL = 1
SEG_TOOL = 2
SEGMENT_NAMES = {SEG_PROMPT: "prompt", SEG_MODEL: "model", SEG_TOOL: "tool"}

# ---- tool call statuses (spec §1) ---------------------------------------------------------------
TOOL_STATUSES = (
    "ok",
    "no_output",
    "syntax_error",
    "runtime_error",
    "timeout",
    "memory",
    "output_truncated",
    "sandbox_error",
)
# a call "succeeds" (counts in n_ok) when it exits without exception and prints something;
# output_truncated still ran fine and printed, so it counts as a success.
OK_STATUSES = frozenset({"ok", "output_truncated"})

# ---- why a group was dropped / a trajectory masked (spec §2) ------------------------------------
GROUP_REASONS = ("group_all_correct", "group_all_wrong", "too_few_untruncated", "not_selected")
TRAJ_REASONS = ("tools_all_failed", "void_turn", "truncated")

# ---- how an episode ended -----------------------------------------------------------------------
FINISH_REASONS = ("answer", "max_turns", "void", "length")


@dataclass
class ToolCall:
    turn: int  # the turn whose code block this call ran
    code: str
    status: str  # one of TOOL_STATUSES
    stdout: str = ""
    stderr_last: str = ""
    wall_ms: float = 0.0
    no_output_ok: bool = False  # tool.ok_requires_stdout=false: a clean run that printed nothing succeeds

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES or (self.no_output_ok and self.status == "no_output")


@dataclass
class Trajectory:
    """One rollout. Lists are per response token (everything after the prompt)."""

    group: int  # index of its group (prompt) within the step
    index: int  # index within its group, 0..G-1
    problem_id: str
    problem: str
    answer: str
    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    segment: list[int] = field(default_factory=list)  # SEG_MODEL | SEG_TOOL per response token
    turn: list[int] = field(default_factory=list)  # turn index per response token (tool tokens: the call's turn)
    sample_logprobs: list[float] = field(default_factory=list)  # 0.0 on tool tokens
    tool_calls: list[ToolCall] = field(default_factory=list)
    n_turns: int = 0
    void: bool = False  # some turn had neither a code block nor \boxed
    truncated: bool = False  # hit the response length limit
    finish: str = "answer"  # one of FINISH_REASONS
    reward: float = 0.0
    reward_info: str = ""  # extracted answer or why grading gave 0
    text: str = ""  # decoded response, for people (never re-encoded)

    @property
    def n_call(self) -> int:
        return len(self.tool_calls)

    @property
    def n_ok(self) -> int:
        return sum(c.ok for c in self.tool_calls)

    @property
    def tools_all_failed(self) -> bool:
        """Criterion 1's flag: tried the tool and every call failed."""
        return self.n_call > 0 and self.n_ok == 0

    @property
    def length(self) -> int:
        return len(self.response_ids)

    def check(self) -> None:
        n = len(self.response_ids)
        for name in ("segment", "turn", "sample_logprobs"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"trajectory {self.group}/{self.index}: {name} has "
                                 f"{len(getattr(self, name))} entries for {n} response tokens")
