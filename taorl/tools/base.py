"""The tool interface of the rollout loop: find the call in a model turn, run it, render the result.

The loop (taorl.rollout.loop) talks to one `Tool` and never to Python specifically:

    call = tool.find_call(turn_text)        the first complete call the turn makes, or None
    results = tool.run_many([call, ...])    all calls of one turn together, in order
    text = tool.render(result, max_chars)   the observation appended to the context

A call carries what was asked (`code`: the payload, recorded per call in the trajectory) and where
it sits in the turn (`start`, `end`: character span), so the loop can tell the turn's prose from
the call: `\\boxed{` written inside a call (print("\\boxed{...}")) is the tool's business, and
only `\\boxed{` in the prose ends the episode as an answer.

A result needs `status` (one of taorl.types.TOOL_STATUSES), `stdout`, `stderr_last`, `wall_ms`
(taorl.tools.sandbox.ToolResult has them).

`stops_at_code_block` says whether the engines may stop a turn's generation right after the first
complete fenced Python block (SamplingParams.stop_at_code_block, the spec's turn rule); a tool
whose calls look different sets it False and the turn runs to eos or its token cap, after which
`find_call` still picks the first call.

A second tool is one new module: a class with these methods (see taorl.tools.python_tool).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Call:
    code: str  # what the tool runs (for the Python tool: the dedented code of the block)
    start: int  # index of the call's first character in the turn's text
    end: int  # index right after its last character

    def prose(self, text: str) -> str:
        """The turn's text without this call."""
        return text[:self.start] + text[self.end:]


@runtime_checkable
class Tool(Protocol):
    name: str
    stops_at_code_block: bool

    def find_call(self, text: str) -> Call | None: ...

    def run_many(self, calls: list[Call]) -> list[Any]: ...

    def render(self, result: Any, max_chars: int) -> str: ...
