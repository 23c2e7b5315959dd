"""Send each step's metrics to the trackers a user already watches: `logging.report_to`.

    logging:
      report_to: [tensorboard, wandb, trackio]   # any subset; default [] (none)
      offline: false                             # wandb: mode=offline (sync later with `wandb sync`)

The run directory's Parquet tables stay the record (the dashboard, resume and export read them);
trackers get a copy of the per-step metrics dict under the same names (TRL/verl names where they
exist: reward, entropy, completions/clipped_ratio, tools/call_frequency; tao/* for TAO-RL's own).

    tensorboard  <run>/tensorboard/ event files  (tensorboard --logdir <run>/tensorboard)
    wandb        <run>/wandb/                    project logging.project, run name = run directory name
    trackio      trackio's local database        project logging.project (trackio show)

All three work without a network (tensorboard and trackio are local; wandb with offline: true or
WANDB_MODE=offline). The packages are the `trackers` extra: pip install 'taorl[trackers]'.
Each tracker is registered by name in TRACKERS; its package is imported only when it is used.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping
from pathlib import Path

from taorl.errors import UserError

# tracker name -> the module it needs
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


def _scalars(metrics: Mapping[str, object]) -> dict[str, float]:
    """Finite numbers only (a step without tool calls has no success rate to plot)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


class Tracker:
    """log(step, metrics) after every step; close() at the end of the run."""

    def log(self, step: int, metrics: dict[str, float]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    def __init__(self, cfg, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.dir = run_dir / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.dir))

    def log(self, step, metrics):
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, global_step=step)
        self.writer.flush()

    def close(self):
        self.writer.close()


class WandbTracker(Tracker):
    def __init__(self, cfg, run_dir: Path) -> None:
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("offline" if cfg.logging.offline else "online")
        # the run directory's name is a stable id, so a resumed run continues the same wandb run
        self.run = wandb.init(project=cfg.logging.project, name=run_dir.name, id=_safe_id(run_dir.name),
                              dir=str(run_dir), mode=mode, config=cfg.to_dict(), resume="allow")

    def log(self, step, metrics):
        self.run.log(metrics, step=step)

    def close(self):
        self.run.finish()


class TrackioTracker(Tracker):
    def __init__(self, cfg, run_dir: Path) -> None:
        import trackio

        self.trackio = trackio
        self.run = trackio.init(project=cfg.logging.project, name=run_dir.name, config=cfg.to_dict(),
                                resume="allow", embed=False, auto_log_cpu=False, auto_log_gpu=False)

    def log(self, step, metrics):
        self.trackio.log(metrics, step=step)

    def close(self):
        self.trackio.finish()


TRACKERS: dict[str, type[Tracker]] = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker,
                                      "trackio": TrackioTracker}


def _safe_id(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64]


def check_trackers(names: list[str]) -> None:
    """Fail before training starts when a requested tracker's package is missing."""
    for name in names:
        if name not in TRACKERS:
            raise UserError(f"logging.report_to: unknown tracker {name!r} (known: {', '.join(TRACKERS)})")
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise UserError(f"logging.report_to: {name} is not installed; pip install 'taorl[trackers]' "
                            f"(or remove {name} from logging.report_to)")


class Trackers:
    """All trackers of a run; a tracker that fails is reported once and dropped, never the run."""

    def __init__(self, cfg, run_dir: str | Path) -> None:
        names = list(dict.fromkeys(cfg.logging.report_to))
        check_trackers(names)
        self.active = [(n, TRACKERS[n](cfg, Path(run_dir))) for n in names]

    def log(self, step: int, metrics: Mapping[str, object]) -> None:
        values = _scalars(metrics)
        for name, t in list(self.active):
            try:
                t.log(step, values)
            except Exception as e:  # noqa: BLE001 - a tracker must not kill a training run
                print(f"logging.report_to: {name} failed ({e}); continuing without it", flush=True)
                self.active.remove((name, t))

    def close(self) -> None:
        for name, t in self.active:
            try:
                t.close()
            except Exception as e:  # noqa: BLE001
                print(f"logging.report_to: closing {name} failed ({e})", flush=True)
        self.active = []
