"""Tools of the rollout loop: the Tool interface (base), and the Python tool: find the code block
of a turn, run it in a sandbox, render the observation.

Importing this package is light (no subprocess starts until a Sandbox is made).
"""

from taorl.tools.base import Call, Tool
from taorl.tools.observation import format_observation
from taorl.tools.parse import CodeBlock, complete_block_end, first_code_block
from taorl.tools.python_tool import PythonTool, as_tool
from taorl.tools.sandbox import LEVELS, Sandbox, SandboxUnavailable, ToolResult, classify, tool_python

__all__ = [
    "LEVELS",
    "Call",
    "CodeBlock",
    "PythonTool",
    "Sandbox",
    "SandboxUnavailable",
    "Tool",
    "ToolResult",
    "as_tool",
    "classify",
    "complete_block_end",
    "first_code_block",
    "format_observation",
    "tool_python",
]
