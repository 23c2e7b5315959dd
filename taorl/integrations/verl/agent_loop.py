"""TaoTIRAgentLoop: verl agent loop `tao_tir_agent`, the spec §1 turn format (imports verl).

verl's stock `tool_agent` renders tool results as chat-template `role: tool` messages; TAO-RL (like
SimpleTIR) appends the raw observation "\\nCode execution result: ...\\n" to the assistant's own text
and cuts each turn after its first complete code block. This loop does exactly that through
taorl.integrations.verl.turns.run_episode with taorl's Python tool (taorl.tools.python_tool): the prompt comes from verl's Continuous Token builder
(the dataset's `raw_prompt` messages), every later token is either an id the server returned
(mask 1, its log-prob) or an observation id (mask 0), and the sandbox is taorl's.

Select it with `actor_rollout_ref.rollout.agent.default_agent_loop=tao_tir_agent` (or an
`agent_name` column). Settings come from the `tao:` block (rollout.max_turns, max_turn_tokens,
obs_max_chars, obs_max_tokens; tool.*), the budget is min(tao.rollout.max_response_tokens,
verl's rollout.response_length). The rollout's facts go to extra_fields["tao"] (n_call, n_ok,
void, truncated, turn_ok, statuses, ...) for TaoSyncTrainer's advantage and run directory.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register

from taorl.integrations.verl.settings import tao_config
from taorl.integrations.verl.turns import TurnFormat, run_episode
from taorl.integrations.verl.verl_tool import shared_sandbox
from taorl.tools.python_tool import PythonTool


@register("tao_tir_agent")
class TaoTIRAgentLoop(AgentLoopBase):
    def __init__(self, *args, tools=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tao = tao_config(self.config.get("tao", None))
        self.fmt = TurnFormat.from_config(self.tao, self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
        messages = list(kwargs["raw_prompt"])
        prompt_ids = await self.ct_build_initial_tokens(messages)
        request_id = uuid4().hex  # one sticky session per rollout (prefix cache across its turns)

        async def generate(ids: list[int], max_tokens: int):
            out = await self.server_manager.generate(request_id=request_id, prompt_ids=ids,
                                                     sampling_params={**sampling_params, "max_tokens": max_tokens})
            return out.token_ids, out.log_probs

        ep = await run_episode(generate, PythonTool(shared_sandbox(self.tao.tool)), self.tokenizer,
                               prompt_ids, self.fmt)
        return AgentLoopOutput(prompt_ids=prompt_ids, response_ids=ep.response_ids,
                               response_mask=ep.response_mask, response_logprobs=ep.response_logprobs,
                               num_turns=1 + ep.n_turns + len(ep.tool_calls),  # user + assistant + tool, as verl counts
                               metrics=AgentLoopMetrics(),
                               extra_fields={"tao": {**ep.flags(), "problem_id": _problem_id(kwargs)}})


def _problem_id(kwargs: dict) -> str | None:
    """The dataset's extra_info.problem_id (taorl.integrations.verl.data writes it), else None."""
    info = kwargs.get("extra_info") or {}
    pid = info.get("problem_id") if hasattr(info, "get") else None
    return None if pid is None else str(pid)
