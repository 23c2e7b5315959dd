"""TaoSyncTrainer: verl's synchronous v1 trainer with TAO-RL's advantage and a taorl run directory
(imports verl). Select it with `trainer.v1.trainer_mode=tao_sync`.

Per step, after verl's own advantage step (which keeps KL-in-reward and rollout correction):

    _compute_advantage  reads uid, prompts, responses, response_mask, rm_scores, entropy (old policy),
                        old/rollout log-probs and extra_fields from TransferQueue; computes
                        common.advantage.tao_advantage (taorl.algo); writes back `advantages`/`returns`
                        (= w · Ã, as verl's GRPO sets returns = advantages) and zeroes `response_mask`
                        and `loss_mask` of rows with weight 0 (loss_mask is the token-mean denominator)
                        With tao.entropy_source=train_forward (design L): `advantages` = the
                        unshaped w · Â, plus `tao_weight` = w per row; the shaping happens in
                        loss.tao_ppo_loss, which _setup installs on the actor workers
    _compute_metrics    verl's metrics, then the step is written to the taorl run directory
                        (dump.RunDump) while its TransferQueue rows still exist

The trap this class defuses: verl compares `trainer.v1.trainer_mode` with "sync" to choose the replay
buffer and refill behaviour, so a registered name other than "sync" would silently get async
semantics. TaskRunnerV1 has resolved the class by the time __init__ runs, so it resets the mode to
"sync" before verl's __init__ reads it.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import partial

import torch
import transfer_queue as tq
import verl
from omegaconf import open_dict
from tensordict import TensorDict
from verl.trainer.distillation import is_distillation_enabled
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from taorl.integrations.common.step_tables import StepRows
from taorl.integrations.verl.dump import RunDump, default_run_dir
from taorl.integrations.verl.fields import row_lists as _rows
from taorl.integrations.verl.loss import WEIGHT_FIELD
from taorl.integrations.verl.loss_settings import reconcile
from taorl.integrations.verl.settings import block_keys, plugin_options, tao_config

log = logging.getLogger(__name__)
FIELDS = ["uid", "prompts", "responses", "response_mask", "rm_scores"]
OPTIONAL = ["entropy", "old_log_probs", "rollout_log_probs", "extra_fields", "reward_model"]


def rows_from_tq(data: TensorDict) -> StepRows:
    """The fields read from TransferQueue -> StepRows (plain lists)."""
    keys = set(data.keys())
    extra = _rows(data["extra_fields"]) if "extra_fields" in keys else None
    rm = data.get("reward_model", None) if "reward_model" in keys else None
    answers = [(x or {}).get("ground_truth") if isinstance(x, dict) else None for x in _rows(rm)] if rm is not None else None
    return StepRows(uids=[str(u) for u in _rows(data["uid"])], prompts=_rows(data["prompts"]),
                    responses=_rows(data["responses"]), response_mask=_rows(data["response_mask"]),
                    scores=[float(sum(r)) for r in _rows(data["rm_scores"])],
                    entropy=_rows(data["entropy"]) if "entropy" in keys else None,
                    old_logprobs=_rows(data["old_log_probs"]) if "old_log_probs" in keys else None,
                    sample_logprobs=_rows(data["rollout_log_probs"]) if "rollout_log_probs" in keys else None,
                    flags=[(e or {}).get("tao") if isinstance(e, dict) else None for e in extra] if extra else [],
                    answers=answers,
                    problems=[_user_text(e.get("raw_prompt")) if isinstance(e, dict) else None for e in extra]
                    if extra else None)


def _user_text(messages) -> str | None:
    """The last user message of a chat (verl keeps the dataset's raw_prompt in extra_fields)."""
    try:
        users = [m["content"] for m in list(messages) if m.get("role") == "user"]
    except (TypeError, AttributeError, KeyError):
        return None
    return str(users[-1]) if users else None


@register_trainer("tao_sync")
class TaoSyncTrainer(PPOTrainerSync):
    def __init__(self, config, *args, **kwargs):
        from taorl.integrations.verl.registry import require

        require()  # every piece registered, or a loud ImportError naming what is missing
        with open_dict(config):
            config.trainer.v1.trainer_mode = "sync"  # see the module doc: a behaviour switch in verl
        self.tao = tao_config(config.get("tao", None))
        self.tao_options = plugin_options(config.get("tao", None))
        if self.tao_options.loss_time:
            check_loss_time(config, self.tao)  # before any worker starts
        # verl's actor settings govern the loss: an explicit tao.algo.loss key that disagrees fails here,
        # other differences are printed, and the run directory records verl's values (loss_settings)
        squared = reconcile(config.actor_rollout_ref.actor, self.tao.algo.loss,
                            block_keys(config.get("tao", None), "algo.loss."))
        for note in squared.notes:
            print(f"taorl: {note}", file=sys.stderr)
        self.tao = self.tao.model_copy(update={"algo": self.tao.algo.model_copy(update={"loss": squared.loss})})
        self._tao_verl_loss = squared.verl
        if self.tao.algo.filter.group.refill == "duplicate":
            print("taorl: tao.algo.filter.group.refill=duplicate cannot add rows to a verl batch; dropped "
                  "groups are masked (enable algorithm.filter_groups for verl's DAPO refill)", file=sys.stderr)
        super().__init__(config, *args, **kwargs)
        self._tao_step = None
        self._tao_dump: RunDump | None = None

    # ------------------------------------------------------------------------------------ workers
    def _setup(self):
        super()._setup()
        if self.tao_options.loss_time:
            self._tao_install_loss()

    def _tao_install_loss(self) -> None:
        """tao.entropy_source=train_forward: TAO-RL's loss (loss.tao_ppo_loss) replaces verl's ppo_loss on
        every actor worker (set_loss_fn is ONE_TO_ALL); the partial is pickled by reference."""
        from verl.utils.config import omega_conf_to_dataclass

        from taorl.integrations.verl.loss import tao_ppo_loss

        actor = omega_conf_to_dataclass(self.config.actor_rollout_ref.actor)
        self.actor_rollout_wg.set_loss_fn(partial(tao_ppo_loss, config=actor, algo=self.tao.algo))
        print("taorl: entropy_source=train_forward: TAO-RL's loss (Ĥ from the training forward pass) "
              "installed on the actor workers", file=sys.stderr)

    # ------------------------------------------------------------------------------------ advantage
    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics)
        # a field that is not stored (entropy under bypass_mode, extra_fields of a stock loop) is simply
        # absent from the answer (TransferQueue 0.1.11); the advantage then says what it misses
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=FIELDS + OPTIONAL)
        missing = [f for f in FIELDS if f not in data.keys()]  # noqa: SIM118 (TensorDict forbids `in`)
        if missing:
            raise KeyError(f"TaoSyncTrainer: TransferQueue rows lack {missing} (verl {verl.__version__})")
        real = [i for i, tag in enumerate(batch.tags) if not tag.get("is_padding", False)]
        rows = rows_from_tq(data)
        sub = rows if len(real) == len(rows.uids) else _select(rows, real)
        loss_time = self.tao_options.loss_time
        adv = sub.advantage(self.tao, seed=int(self.global_steps), shape=not loss_time)

        B, T = len(rows.uids), max(rows.lengths + [1])
        advantages = torch.zeros(B, T)
        new_mask = torch.zeros(B, T)
        for j, r in enumerate(real):
            advantages[r, :adv.advantages.shape[1]] = adv.advantages[j]
            new_mask[r, :adv.response_mask.shape[1]] = adv.response_mask[j]
        dtype = data["response_mask"].dtype
        out = {"advantages": _jagged(advantages, rows.lengths), "returns": _jagged(advantages, rows.lengths)}
        m = _jagged(new_mask.to(dtype), rows.lengths)
        out["response_mask"], out["loss_mask"] = m, m
        if loss_time:  # w per row for the loss (0 on verl's padding rows)
            weight = torch.zeros(B)
            weight[real] = adv.weight
            out[WEIGHT_FIELD] = weight
        tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=TensorDict(out, batch_size=B))
        metrics.update(adv.metrics)
        self._tao_step = (sub, adv)
        return batch

    # ------------------------------------------------------------------------------------ run dir
    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        super()._compute_metrics(batch, metrics, timing_raw, global_steps=global_steps, epoch=epoch)
        self._tao_write(int(global_steps), metrics)

    def _tao_write(self, global_steps: int, metrics: dict) -> None:
        """The step kept by _compute_advantage -> the taorl run directory (with verl's metrics)."""
        if self._tao_step is None:
            return
        rows, adv = self._tao_step
        self._tao_step = None
        if self._tao_dump is None:
            run_dir = default_run_dir(self.tao, self.config.trainer.get("experiment_name", None))
            self._tao_dump = RunDump(run_dir, self.tao, resume=int(global_steps) > 1,
                                     extra={"verl_experiment": str(self.config.trainer.get("experiment_name", "")),
                                            "entropy_source": self.tao_options.entropy_source,
                                            "verl_actor_loss": getattr(self, "_tao_verl_loss", None),
                                            "pid": os.getpid()})
            print(f"taorl: verl steps go to {run_dir} (taorl dashboard {run_dir.parent})", file=sys.stderr)
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=False)
        self._tao_dump.write(int(global_steps), rows, adv, decode, metrics)
        if int(global_steps) >= int(self.total_training_steps):
            self._tao_dump.finish("finished")


def check_loss_time(config, tao) -> None:
    """tao.entropy_source=train_forward needs verl to compute the entropy in the training forward pass and
    its loss to be the one installed; raises ValueError naming the setting to change."""
    from taorl.integrations.verl.loss import unsupported

    actor = config.actor_rollout_ref.actor
    if not bool(actor.get("calculate_entropy", False)):
        raise ValueError("tao.entropy_source=train_forward shapes with the entropy of the training forward pass: "
                         "set actor_rollout_ref.actor.calculate_entropy=true (it is off, so verl would not "
                         "compute it)")
    if is_distillation_enabled(config.get("distillation", None)):
        raise ValueError("tao.entropy_source=train_forward replaces verl's actor loss, so the distillation "
                         "loss (distillation.enabled=true) would be dropped: turn one of them off")
    bad = unsupported(tao.algo)
    if bad:
        raise ValueError(f"tao.entropy_source=train_forward shapes per micro-batch and cannot honour "
                         f"{', '.join(bad)}; use tao.entropy_source=old_policy for it")


def _jagged(padded: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """[B, T] right-padded -> a jagged nested tensor of rows cut to `lengths` (TransferQueue's layout)."""
    return torch.nested.as_nested_tensor([padded[r, :n] for r, n in enumerate(lengths)], layout=torch.jagged)


def _select(rows: StepRows, idx: list[int]) -> StepRows:
    """The rows idx of a StepRows (verl's DP padding rows left out)."""
    def pick(x):
        return None if x is None else [x[i] for i in idx]
    return StepRows(uids=pick(rows.uids), prompts=pick(rows.prompts), responses=pick(rows.responses),
                    response_mask=pick(rows.response_mask), scores=pick(rows.scores), entropy=pick(rows.entropy),
                    old_logprobs=pick(rows.old_logprobs), sample_logprobs=pick(rows.sample_logprobs),
                    flags=pick(rows.flags), answers=pick(rows.answers),
                    problems=pick(rows.problems))
