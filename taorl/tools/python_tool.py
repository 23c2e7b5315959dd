"""The Python interpreter tool (spec §1): the first complete fenced Python block of a turn
(taorl.tools.parse), run in the sandbox (taorl.tools.sandbox), rendered as
"\\nCode execution result: ...\\n" (taorl.tools.observation)."""

from __future__ import annotations

from taorl.tools.base import Call
from taorl.tools.observation import format_observation
from taorl.tools.parse import first_code_block


class PythonTool:
    name = "python"
    stops_at_code_block = True

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox  # anything with run_many(list[str]) -> results (taorl.tools.Sandbox)

    def find_call(self, text: str) -> Call | None:
        block = first_code_block(text)
        return None if block is None else Call(code=block.code, start=block.start, end=block.end)

    def run_many(self, calls: list[Call]) -> list:
        return self.sandbox.run_many([c.code for c in calls])

    def render(self, result, max_chars: int) -> str:
        return format_observation(result, max_chars)

    def close(self) -> None:
        close = getattr(self.sandbox, "close", None)
        if close:
            close()


def as_tool(tool_or_sandbox):
    """A Tool as it is, anything else (a Sandbox) wrapped as the Python tool."""
    return tool_or_sandbox if hasattr(tool_or_sandbox, "find_call") else PythonTool(tool_or_sandbox)
