"""One verl step -> one step of a taorl run directory, so `taorl dashboard` shows a verl run.

RunDump feeds taorl.store.RunWriter one verl step at a time: the tables come from
taorl.integrations.common.step_tables (shared with the TRL integration; taorl's own trainer
functions build them, so the Parquet schema is the same by construction), plus verl's scalar
metrics of the step under their verl names (actor/pg_loss, critic/score/mean, timing_s/...).

Numbering: verl's global step (from 1). verl's batch is fixed, so criterion 2's refill by
duplication is never trained there: every group is recorded with duplicates 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from taorl.integrations.common.advantage import StepAdvantage
from taorl.integrations.common.step_tables import StepRows, step_tables


class RunDump:
    """A taorl run directory fed one verl step at a time (RunWriter underneath)."""

    def __init__(self, run_dir: str | Path, cfg, *, extra: Mapping | None = None, resume: bool = False):
        from taorl.store import RunWriter

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.writer = RunWriter(self.run_dir, cfg, resume=resume, extra={"engine": "verl", **dict(extra or {})})

    def write(self, step: int, rows: StepRows, adv: StepAdvantage, decode: Callable[[list[int]], str],
              verl_metrics: Mapping | None = None) -> None:
        t = step_tables(rows, adv, decode, self.cfg.logging.token_traj_per_step)
        for g in t["groups"]:
            g["duplicates"] = 0  # verl's batch is fixed: no refill by duplication
        m = dict(t["metrics"])
        for k, v in (verl_metrics or {}).items():  # verl's own scalars, under their verl names
            try:
                m[str(k)] = float(v)
            except (TypeError, ValueError):
                continue
        self.writer.write_step(step, metrics=m, groups=t["groups"], trajectories=t["trajectories"],
                               tokens=t["tokens"])

    def finish(self, status: str = "finished") -> None:
        self.writer.finish(status)


def default_run_dir(cfg, name: str | None = None) -> Path:
    """runs_dir / (logging.run_name or `name`)."""
    return Path(cfg.logging.runs_dir) / (cfg.logging.run_name or name or "verl")


__all__ = ["RunDump", "default_run_dir"]
