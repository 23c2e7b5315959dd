"""TaoGRPOTrainer: TRL's GRPOTrainer with TAO-RL's filters and entropy-guided advantage.

The one-line change to a TRL script (docs/trl.md):

    from taorl.integrations.trl import TaoGRPOTrainer as GRPOTrainer      # was: from trl import GRPOTrainer
    trainer = GRPOTrainer(model=..., reward_funcs=..., args=GRPOConfig(...), train_dataset=...,
                          tao="paper", run_dir="runs/my-run")             # optional: taorl settings, run dir

With Unsloth, `import unsloth` before this module: Unsloth replaces trl.GRPOTrainer with its patched
class at import, and TaoGRPOTrainer subclasses whatever trl.GRPOTrainer is when this module loads.

After TRL has generated and scored a batch (`_generate_and_score_completions`), the subclass:

    1. reads each rollout's reward (TRL's weighted sum over reward_funcs) and facts (n_call, n_ok,
       void, truncated, turn_ok: TaoRollout / PythonEnvironment record them; other rollouts have no
       tool facts and are truncated when they do not end in eos)
    2. Ĥ's input: H_t of the sampling policy by a no-grad forward (entropy.py), only when shaping is on
    3. taorl.integrations.trl.step.tao_trl_step: taorl.algo's decision and shaping -> per-token
       advantages c·w·Ã, the tool mask zeroed on weight-0 rows (dropped groups, masked rollouts),
       the token count for loss_type dapo
    4. hands them to TRL in place of its own (B,) advantages; TRL's loss, unchanged, trains on them

tao_enabled=False leaves TRL's batch untouched (the subclass is then plain GRPOTrainer). One
process only (the decision needs every group of the batch; multi-GPU is not implemented).
"""

from __future__ import annotations

import logging
from pathlib import Path

import trl

from taorl.config import Config
from taorl.integrations.trl.entropy import completion_entropy
from taorl.integrations.trl.record import record_batch, unpad
from taorl.integrations.trl.settings import loss_differences, tao_config
from taorl.integrations.trl.step import tao_trl_step

log = logging.getLogger(__name__)


class TaoGRPOTrainer(trl.GRPOTrainer):
    """trl.GRPOTrainer (Unsloth's when `import unsloth` came first) with TAO-RL; see the module doc."""

    def __init__(self, *args, tao: Config | str | dict | Path | None = None, tao_enabled: bool = True,
                 run_dir: str | Path | None = None, **kwargs):
        self.tao = tao_config(tao)
        self.tao_enabled = bool(tao_enabled)
        self.tao_last = None  # BatchRecord of the latest generated batch (the run directory's input)
        self.tao_step = None  # TrlStep of the latest batch
        self._tao_rewards = None
        super().__init__(*args, **kwargs)
        if self.tao_enabled:
            for line in loss_differences(self.tao.algo, self.args):
                log.warning("TAO-RL: %s (taorl.integrations.trl.trl_loss_args gives taorl's loss)", line)
        self.tao_run = None
        if run_dir is not None:
            from taorl.integrations.trl.callback import TaoRunCallback

            self.tao_run = TaoRunCallback(run_dir, self.tao).attach(self)

    def train(self, *args, **kwargs):
        try:
            return super().train(*args, **kwargs)
        except BaseException:
            if self.tao_run is not None:
                self.tao_run.fail()  # the run directory says so; its written steps stay readable
            raise

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._tao_rewards = rewards
        return rewards

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return out
        rec = record_batch(self, inputs, out, self._tao_rewards)
        entropy = None
        if self.tao_enabled or self.tao_run is not None:
            if self.accelerator.num_processes > 1:
                raise NotImplementedError("TaoGRPOTrainer runs in one process: TAO-RL's step decision needs "
                                          "every group of the batch (multi-process gathering is not implemented)")
            if self.tao.algo.shaping.enabled or self.tao_run is not None:
                entropy = completion_entropy(self.accelerator.unwrap_model(self.model), out["prompt_ids"],
                                             out["prompt_mask"], out["completion_ids"], out["completion_mask"],
                                             self.temperature, self.args.per_device_train_batch_size,
                                             self.tao.algo.entropy_chunk)
                rec.entropy = unpad(entropy, out["completion_mask"])
        if self.tao_enabled:
            step = tao_trl_step(rec.rewards, out["completion_mask"], out.get("tool_mask"), self.num_generations,
                                self.tao, entropy=entropy if self.tao.algo.shaping.enabled else None,
                                flags=rec.flags, seed=int(self.args.seed) * 1_000_003 + int(self.state.global_step))
            dev = out["completion_mask"].device
            out["advantages"] = step.advantages.to(dev)
            out["tool_mask"] = step.tool_mask.to(dev)
            out["num_items_in_batch"] = step.num_items.to(dev)
            for k, v in step.metrics.items():
                self._metrics["train"][k].append(float(v))
            rec.step = step.advantage
            self.tao_step = step
        self.tao_last = rec
        return out
