"""taorl's sandbox as a TRL tool: `GRPOTrainer(..., environment_factory=PythonEnvironment.factory())`.

For models whose chat template emits JSON tool calls (Qwen2.5/3 instruct and the like), TRL's own
tool loop calls `python(code)` of the rollout's environment (one instance per rollout, reset before
each batch). The call runs in taorl's sandbox (taorl.tools.Sandbox: a clean private world per call,
the isolation level `tool.isolation` allows) and returns the observation text of taorl's own loop,
"\\nCode execution result: <stdout>\\n" (on error the last stderr line; at most rollout.obs_max_chars
characters). Each call's status (ok, no_output, syntax_error, runtime_error, timeout, memory,
output_truncated, sandbox_error) is recorded on the instance, so criterion 1 sees real statuses:
`tao_flags()` gives n_call, n_ok (tool.ok_requires_stdout as in taorl), statuses and turn_ok.

TRL counts a failure only when a tool raises; this tool never raises for the model's code (a failing
program is an observation, as in the paper), so TRL's `tools/failure_frequency` stays 0 and the
statuses live here. Call i is taken to be turn i's call (TRL runs one tool iteration per turn; two
calls in one turn are counted as two turns in turn_ok).
"""

from __future__ import annotations

import threading

from taorl.config import Config
from taorl.integrations.trl.settings import tao_config
from taorl.types import ToolCall

_SHARED: dict[int, object] = {}
_LOCK = threading.Lock()


def shared_sandbox(cfg: Config):
    """One Sandbox per tool config in this process (zygote pools are costly to start)."""
    from taorl.tools import Sandbox

    key = hash(cfg.tool.model_dump_json())
    with _LOCK:
        if key not in _SHARED:
            _SHARED[key] = Sandbox(cfg.tool)
        return _SHARED[key]


class PythonEnvironment:
    """One rollout's Python interpreter for TRL's environment_factory (see the module doc)."""

    def __init__(self, tao: Config | str | dict | None = None, *, sandbox=None):
        self._cfg = tao_config(tao)
        self._sandbox = sandbox
        self.calls: list[ToolCall] = []

    @classmethod
    def factory(cls, tao: Config | str | dict | None = None, *, sandbox=None):
        """A zero-argument factory for TRL (all instances share one sandbox)."""
        cfg = tao_config(tao)

        def make() -> PythonEnvironment:
            return cls(cfg, sandbox=sandbox if sandbox is not None else shared_sandbox(cfg))

        return make

    def reset(self, **kwargs) -> None:
        """A new rollout: forget the previous one's calls (TRL reuses instances across batches)."""
        self.calls = []

    def python(self, code: str) -> str:
        """Run Python code in a fresh sandbox and return what it printed.

        Args:
            code: The Python program to run. Print the values you need; `final_answer(x)` prints \\boxed{x}.
        """
        from taorl.tools.observation import format_observation

        if self._sandbox is None:
            self._sandbox = shared_sandbox(self._cfg)
        (res,) = self._sandbox.run_many([str(code)])
        self.calls.append(ToolCall(turn=len(self.calls), code=str(code), status=res.status, stdout=res.stdout,
                                   stderr_last=res.stderr_last, wall_ms=float(res.wall_ms),
                                   no_output_ok=not self._cfg.tool.ok_requires_stdout))
        return format_observation(res, self._cfg.rollout.obs_max_chars)

    def tao_flags(self) -> dict:
        """The facts criterion 1 and the run directory read (void and truncated are the trainer's)."""
        turn_ok = [c.ok for c in self.calls] + [False]
        return {"n_call": len(self.calls), "n_ok": sum(c.ok for c in self.calls), "turn_ok": turn_ok,
                "statuses": [c.status for c in self.calls], "call_turns": [c.turn for c in self.calls],
                "call_ms": [float(c.wall_ms) for c in self.calls], "n_turns": len(self.calls) + 1}
