"""TaoRunCallback: every step of a GRPOTrainer (TAO-RL or not) as a taorl run directory.

    TaoRunCallback("runs/my-trl-run").attach(trainer)      # any trl.GRPOTrainer
    TaoGRPOTrainer(..., run_dir="runs/my-trl-run")          # the same, attached for you

Per optimizer step, after TRL has logged: metrics (TRL's own under their names: loss, reward,
entropy, clip_ratio/..., completions/...; taorl's rollout and filter metrics: tools/call_frequency,
tao/groups_dropped/<reason>, tao/shaping_factor_mean, ...), groups with pass rate, std and drop
reason, trajectories (reward, turns, calls, statuses, Â, weight, reason, text) and per-token rows
(entropy of the sampling policy, sampling log-prob, Â, Ã, weight, gate, segment model/tool), written
by taorl.store.RunWriter (manifest last, atomically). `taorl dashboard runs/` then shows it.

How it sees the batch: attach() wraps the trainer's `_generate_and_score_completions` (and
`_calculate_rewards`, for the rewards) on that instance; TaoGRPOTrainer hands over its own record.
One generation per optimizer step is recorded (TRL's default steps_per_generation); with
num_iterations > 1 the steps that reuse a batch are not written again. One process only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import TrainerCallback

from taorl.config import Config
from taorl.integrations.trl.settings import tao_config

log = logging.getLogger(__name__)


class TaoRunCallback(TrainerCallback):
    def __init__(self, run_dir: str | Path, tao: Config | str | dict | None = None, *,
                 token_traj_per_step: int | None = None, entropy: bool = True, extra: dict | None = None,
                 resume: bool = False):
        self.run_dir = Path(run_dir)
        self.resume = resume  # continue a run directory (also when TRL resumes from a checkpoint)
        self.cfg = tao_config(tao)
        self.token_limit = token_traj_per_step if token_traj_per_step is not None \
            else self.cfg.logging.token_traj_per_step
        self.entropy = entropy
        self.extra = dict(extra or {})
        self.trainer = None
        self.writer = None
        self._pending = None  # (step, record)
        self._seen = None  # the last record written or pending
        self.steps_written: list[int] = []

    # ---------------------------------------------------------------- wiring
    def attach(self, trainer) -> TaoRunCallback:
        """Record `trainer`'s batches and write its steps here. Returns self."""
        from taorl.errors import UserError
        from taorl.store._files import MANIFEST

        if (self.run_dir / MANIFEST).exists() and not self.resume:
            raise UserError(f"{self.run_dir}: already holds a run ({MANIFEST} exists); choose another run_dir "
                            "or pass resume=True (TaoRunCallback) to continue it")
        self.trainer = trainer
        trainer.add_callback(self)
        if not hasattr(trainer, "tao_last"):  # a plain GRPOTrainer: capture its batches ourselves
            _wrap_plain(trainer, self)
        return self

    def _open(self, from_step: int | None = None):
        if self.writer is None:
            from taorl.store import RunWriter

            tr = self.trainer
            extra = {"engine": "trl", "trl_loss_type": getattr(tr.args, "loss_type", None),
                     "tao_enabled": bool(getattr(tr, "tao_enabled", False)),
                     "model": getattr(getattr(tr.model, "config", None), "_name_or_path", None), **self.extra}
            cfg = self.cfg if extra["tao_enabled"] else _baseline(self.cfg)
            resume = self.resume or from_step is not None
            self.writer = RunWriter(self.run_dir, cfg, extra=extra, resume=resume, from_step=from_step)
        return self.writer

    # ---------------------------------------------------------------- events
    def on_train_begin(self, args, state, control, **kwargs):
        # TRL resumed from a checkpoint at step k: the run directory continues at step k + 1
        self._open(int(state.global_step) + 1 if state.global_step else None)
        print(f"taorl run directory: {self.run_dir}  (open it with: taorl dashboard {self.run_dir.parent})")

    def on_step_end(self, args, state, control, **kwargs):
        rec = getattr(self.trainer, "tao_last", None)
        if rec is None or rec is self._seen:
            return
        self._flush()
        self._seen = rec
        self._pending = (int(state.global_step), rec)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._pending is not None and self._pending[0] == int(state.global_step):
            self._flush(logs or {})

    def on_train_end(self, args, state, control, **kwargs):
        self._flush()
        if self.writer is not None:
            self.writer.finish("finished")
            print(f"taorl run directory: {self.run_dir} ({len(self.steps_written)} steps)")

    def fail(self) -> None:
        """Mark the run failed (TaoGRPOTrainer.train calls this when training raises)."""
        if self.writer is not None:
            self.writer.finish("failed")

    def _flush(self, logs: dict | None = None) -> None:
        if self._pending is None:
            return
        step, rec = self._pending
        self._pending = None
        tok = self.trainer.processing_class
        tok = getattr(tok, "tokenizer", tok)
        t = rec.tables(self.cfg, lambda ids: tok.decode(list(ids)), self.token_limit)
        metrics = dict(t["metrics"])
        for k, v in (logs or {}).items():
            try:
                metrics[str(k)] = float(v)
            except (TypeError, ValueError):
                continue
        self._open().write_step(step, metrics=metrics, groups=t["groups"], trajectories=t["trajectories"],
                                tokens=t["tokens"])
        self.steps_written.append(step)


def _baseline(cfg: Config) -> Config:
    from taorl.config import apply_overrides
    from taorl.integrations.trl.record import BASELINE

    return apply_overrides(cfg, BASELINE)


def _wrap_plain(trainer, cb: TaoRunCallback) -> None:
    """Capture a plain GRPOTrainer's rewards and generated batches on this instance."""
    from taorl.integrations.trl.entropy import completion_entropy
    from taorl.integrations.trl.record import record_batch, unpad

    calc, gen = trainer._calculate_rewards, trainer._generate_and_score_completions
    trainer.tao_last = None

    def _calculate_rewards(inputs, prompts, completions, completion_ids_list):
        r = calc(inputs, prompts, completions, completion_ids_list)
        trainer._tao_rewards = r
        return r

    def _generate_and_score_completions(inputs):
        out = gen(inputs)
        if trainer.model.training:
            rec = record_batch(trainer, inputs, out, getattr(trainer, "_tao_rewards", None))
            if cb.entropy:
                ent = completion_entropy(trainer.accelerator.unwrap_model(trainer.model), out["prompt_ids"],
                                         out["prompt_mask"], out["completion_ids"], out["completion_mask"],
                                         trainer.temperature, trainer.args.per_device_train_batch_size)
                rec.entropy = unpad(ent, out["completion_mask"])
            trainer.tao_last = rec
        return out

    trainer._calculate_rewards = _calculate_rewards
    trainer._generate_and_score_completions = _generate_and_score_completions
