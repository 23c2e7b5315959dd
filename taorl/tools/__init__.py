"""The Python tool: find the code block of a turn, run it in a sandbox, render the observation.

Importing this package is light (no subprocess starts until a Sandbox is made).
"""

from taorl.tools.observation import format_observation
from taorl.tools.parse import CodeBlock, complete_block_end, first_code_block
from taorl.tools.sandbox import LEVELS, Sandbox, SandboxUnavailable, ToolResult, classify, tool_python

__all__ = [
    "LEVELS",
    "CodeBlock",
    "Sandbox",
    "SandboxUnavailable",
    "ToolResult",
    "classify",
    "complete_block_end",
    "first_code_block",
    "format_observation",
    "tool_python",
]
