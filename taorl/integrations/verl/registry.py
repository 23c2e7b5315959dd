"""The names the plugin registers with verl, and the check that they are there.

plugin.py registers them (and records here why it failed, if it did); TaoSyncTrainer and
`python -m taorl.integrations.verl` ask `require()` / `registered()`. Kept apart from plugin.py so
that the pieces it registers can check the registration without importing the plugin again.
"""

from __future__ import annotations

NAMES = {"adv_estimator": "tao_grpo", "tool_parser": "python_codeblock", "agent_loop": "tao_tir_agent",
         "trainer": "tao_sync"}
_error: BaseException | None = None  # why plugin.py failed to register (set by it)


def record_failure(e: BaseException) -> None:
    global _error
    _error = e


def registered() -> dict[str, bool]:
    """Which of NAMES verl's registries hold right now."""
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
    from verl.experimental.agent_loop.tool_parser import ToolParser
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

    regs = {"adv_estimator": ADV_ESTIMATOR_REGISTRY, "tool_parser": ToolParser._registry,
            "agent_loop": _agent_loop_registry, "trainer": TRAINER_REGISTRY}
    return {kind: NAMES[kind] in regs[kind] for kind in NAMES}


def require() -> None:
    """Raise ImportError naming what is missing (a failed plugin import, an unregistered name)."""
    if _error is not None:
        raise ImportError(f"taorl verl plugin failed to load: {type(_error).__name__}: {_error}") from _error
    missing = [f"{k} {NAMES[k]!r}" for k, ok in registered().items() if not ok]
    if missing:
        raise ImportError("taorl verl plugin: not registered with verl: " + ", ".join(missing))
