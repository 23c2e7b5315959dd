"""The `verl.plugins` entry point (pyproject: taorl = "taorl.integrations.verl.plugin").

verl imports it at every `import verl`, in the driver and in every Ray worker, and swallows any
import error (logged at DEBUG only). So this module registers every piece and, if one fails, prints
the traceback to stderr before re-raising; TaoSyncTrainer calls `require()` at start, so a run never
goes on without the plugin (registry.py holds the names and that check). Without the entry point (e.g. taorl not installed on a worker node), set
VERL_USE_EXTERNAL_MODULES=taorl.integrations.verl.plugin (ray_kwargs.ray_init.runtime_env.env_vars).

Registered names:
    advantage estimator   tao_grpo            (algorithm.adv_estimator; GRPO / Dr.GRPO via taorl.algo)
    tool parser           python_codeblock    (actor_rollout_ref.rollout.multi_turn.format)
    agent loop            tao_tir_agent       (actor_rollout_ref.rollout.agent.default_agent_loop)
    trainer               tao_sync            (trainer.v1.trainer_mode)
    tool class            taorl.integrations.verl.verl_tool.PythonSandboxTool (tool YAML class_name)
"""

from __future__ import annotations

import importlib.util
import sys
import traceback

from taorl.integrations.verl.registry import NAMES, record_failure, registered, require  # noqa: F401 (re-exported)


def _register() -> None:
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

    from taorl.integrations.verl import agent_loop, verl_tool  # noqa: F401  (register on import)
    from taorl.integrations.verl.advantage import grpo_estimator

    # verl's v1 trainer needs TransferQueue (the verl-core extra); without it only tao_sync is missing
    if importlib.util.find_spec("transfer_queue") is not None:
        from taorl.integrations.verl import trainer  # noqa: F401
    else:
        print("taorl verl plugin: transfer_queue is not installed, so trainer 'tao_sync' is not registered "
              "(pip install 'verl[verl-core]==0.9.1')", file=sys.stderr)

    if ADV_ESTIMATOR_REGISTRY.get(NAMES["adv_estimator"]) is not grpo_estimator:
        register_adv_est(NAMES["adv_estimator"])(grpo_estimator)


try:
    _register()
except BaseException as e:  # verl would hide this: say it loudly, then fail as verl expects
    record_failure(e)
    print("taorl verl plugin: FAILED to register with verl (TAO-RL names will be missing):", file=sys.stderr)
    traceback.print_exc()
    raise
