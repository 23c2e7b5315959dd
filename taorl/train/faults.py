"""Fault injection for crash/resume tests, kept out of the training step.

TAORL_TEST_STALL_STEP=N makes step N sleep TAORL_TEST_STALL_S seconds (default 600) after its
decision and before its update, so a test can kill the process in the middle of a step. It is an
"after_decide" callback of the Trainer; nothing is installed when the variable is unset.
"""

from __future__ import annotations

import os
import time

STALL_STEP_ENV = "TAORL_TEST_STALL_STEP"
STALL_S_ENV = "TAORL_TEST_STALL_S"


def install_from_env(trainer) -> None:
    step = os.environ.get(STALL_STEP_ENV)
    if step is None:
        return
    seconds = float(os.environ.get(STALL_S_ENV, "600"))

    def stall(_trainer, s: int) -> None:
        if str(s) == step:
            time.sleep(seconds)

    trainer.callbacks["after_decide"].append(stall)
