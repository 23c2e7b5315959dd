"""taorl's Python sandbox as a verl tool, and the fenced-code-block tool parser (imports verl).

    PythonSandboxTool   verl BaseTool; `execute(instance_id, {"code": ...})` runs the code in taorl's
                        sandbox (taorl.tools.Sandbox, the same isolation and limits as `taorl train`)
                        and answers the spec §1 observation "\\nCode execution result: ...\\n".
                        Declared in a verl tool YAML (configs/verl/tools.yaml) with `type: native`
                        and taorl ToolConfig keys (timeout_s, workers, memory_mb, ...).
    CodeBlockParser     `multi_turn.format=python_codeblock`: the first complete ```python block of
                        a turn is one call of the tool named `python` (for verl's stock tool_agent
                        loop; TaoTIRAgentLoop does not need it).

One sandbox per process (`shared_sandbox`), closed at exit; the agent loop and the tool share it.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
from typing import Any

from verl.experimental.agent_loop.tool_parser import FunctionCall, ToolParser
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from taorl.config import ToolConfig
from taorl.tools.observation import format_observation
from taorl.tools.parse import first_code_block

TOOL_NAME = "python"
_lock = threading.Lock()
_sandboxes: dict[str, Any] = {}


def shared_sandbox(cfg: ToolConfig):
    """The process's sandbox for this tool config (started on first use, closed at exit)."""
    from taorl.tools.sandbox import Sandbox

    key = cfg.model_dump_json()
    with _lock:
        sb = _sandboxes.get(key)
        if sb is None:
            sb = _sandboxes[key] = Sandbox(cfg)
            atexit.register(sb.close)
        return sb


async def run_code(cfg: ToolConfig, code: str):
    """Run code in the shared sandbox off the event loop; a taorl.tools.ToolResult."""
    sb = shared_sandbox(cfg)
    return await asyncio.get_running_loop().run_in_executor(None, sb.run, code)


def default_tool_schema() -> OpenAIFunctionToolSchema:
    return OpenAIFunctionToolSchema.model_validate({
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Run Python code in a sandbox and return what it printed (or its last error line).",
            "parameters": {"type": "object", "properties": {"code": {"type": "string",
                                                                      "description": "Python source"}},
                           "required": ["code"]},
        },
    })


class PythonSandboxTool(BaseTool):
    """verl BaseTool over taorl's sandbox (see the module doc)."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None):
        config = dict(config or {})
        self.obs_max_chars = int(config.pop("obs_max_chars", 512))
        config.pop("type", None)
        self.tool_cfg = ToolConfig.model_validate(config)  # unknown keys fail here, naming the key
        super().__init__(config, tool_schema or default_tool_schema())

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs) -> tuple[ToolResponse, float, dict]:
        code = parameters.get("code") if isinstance(parameters, dict) else None
        if not isinstance(code, str):
            raise TypeError(f"tool {self.name!r}: parameters must be {{'code': str}}, got {parameters!r}")
        res = await run_code(self.tool_cfg, code)
        agent_data = kwargs.get("agent_data")
        if agent_data is not None:  # per-call outcomes for the advantage (stock tool_agent loop)
            calls = agent_data.extra_fields.setdefault("tao_calls", [])
            calls.append({"status": res.status, "ok": res.succeeded(self.tool_cfg.ok_requires_stdout)})
        return (ToolResponse(text=format_observation(res, self.obs_max_chars)), 0.0,
                {"status": res.status, "wall_ms": float(res.wall_ms)})


@ToolParser.register("python_codeblock")
class CodeBlockParser(ToolParser):
    """The first complete ```python block of a turn -> one call of the `python` tool."""

    async def extract_tool_calls(self, responses_ids: list[int], tools=None) -> tuple[str, list[FunctionCall]]:
        text = self.tokenizer.decode(responses_ids, skip_special_tokens=True)
        block = first_code_block(text)
        if block is None:
            return text, []
        return text[:block.start], [FunctionCall(name=TOOL_NAME, arguments=json.dumps({"code": block.code}))]
