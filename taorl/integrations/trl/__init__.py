"""TAO-RL inside TRL's GRPOTrainer (docs/trl.md). Importing this package does not import TRL; the
names below load their module (and TRL) on first use. `import unsloth` first when you use Unsloth:
TaoGRPOTrainer subclasses whatever `trl.GRPOTrainer` is when taorl.integrations.trl.trainer loads.

    settings   a taorl Config from a preset / YAML / dict; taorl's loss settings as GRPOConfig kwargs
    step       one generated batch -> what TRL trains on: per-token advantages c·w·Ã, the tool mask
               zeroed on weight-0 rows, the token count; computed by taorl.algo (no second copy)
    entropy    Ĥ's input H_t from a no-grad forward of the sampling policy (taorl.algo.entropy)
    rollout    TaoRollout, a TRL rollout_func: the spec §1 turn format (fenced code block -> sandbox
               -> "\\nCode execution result: ...\\n") by taorl's own rollout loop, statuses recorded
    tool       PythonEnvironment, taorl's sandbox as a TRL environment_factory (JSON tool calls)
    rewards    boxed_answer_reward, taorl's math-verify grader as a TRL reward function
    record     a generated TRL batch -> the rows of one taorl run-directory step
    callback   TaoRunCallback: any GRPOTrainer's steps as a taorl run directory (taorl dashboard)
    trainer    TaoGRPOTrainer (imports TRL)
"""

from __future__ import annotations

import importlib

_LAZY = {
    "TaoGRPOTrainer": "trainer", "TaoRunCallback": "callback", "TaoRollout": "rollout",
    "PythonEnvironment": "tool", "boxed_answer_reward": "rewards", "tao_config": "settings",
    "trl_loss_args": "settings", "tao_trl_step": "step", "TrlStep": "step",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PythonEnvironment", "TaoGRPOTrainer", "TaoRollout", "TaoRunCallback", "TrlStep", "boxed_answer_reward",
           "tao_config", "tao_trl_step", "trl_loss_args"]
