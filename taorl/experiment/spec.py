"""An experiment file: arms x seeds of one base config, and the held-out evaluation schedule.

    name: cpu-smollm2                 # the report's title and the default output folder name
    label: null                       # optional note printed at the top of the report, e.g. "reduced"
    config: ../default.yaml           # base config (relative to this file, else to the working dir)
    overrides: [train.steps=60]       # applied to every arm
    seeds: [0, 1, 2]                  # train.seed of each run
    baseline: grpo-tir                # paired differences are (arm - baseline), per seed
    arms:                             # name -> dotted overrides (empty: the base config itself)
      grpo-tir: [algo.shaping.enabled=false, ...]
      tao-rl: []
    eval:
      every: 20                       # evaluate after every 20 optimizer steps, and after the last
      at_start: true                  # and the initial weights (step 0)
      problems: 64                    # held-out procedural problems ...
      difficulty: 2                   # ... of this difficulty ...
      kinds: null                     # ... of these procedural kinds (null: every kind) ...
      seed: 1000                      # ... drawn with this seed; any that also appear in the
                                      #     training pool are dropped (the report says how many)
      n: 4                            # samples per problem (null: the config's eval.n)
      k: [1, 4]                       # Pass@k (null: the config's eval.k)
    out: runs/experiments/cpu-smollm2 # default output folder (--out overrides it)

The evaluation protocol (temperature, top_p, max_turns, max_response_tokens, tool) is the base
config's `eval` section, set like any other key through `overrides`.

The output folder: runs/<arm>/seed-<s>/ (run_dir: ordinary run directories),
heldout/<arm>/seed-<s>/step=<N>.parquet (heldout_file), logs/ (--jobs), report/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taorl.config import Config, apply_overrides, load_config
from taorl.errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeldOut(_Strict):
    every: int = Field(0, ge=0)
    at_start: bool = True
    problems: int = Field(64, ge=1)
    difficulty: int = Field(2, ge=0, le=5)
    kinds: list[str] | None = None
    seed: int = 1000
    n: int | None = Field(None, ge=1)
    k: list[int] | None = None


class ExperimentSpec(_Strict):
    name: str
    label: str | None = None
    config: str
    overrides: list[str] = []
    seeds: list[int] = Field(min_length=1)
    baseline: str | None = None
    arms: dict[str, list[str]] = Field(min_length=1)
    eval: HeldOut = HeldOut()
    out: str | None = None

    path: Path | None = None  # the file it was read from (set by load_experiment)

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, arms: dict[str, list[str]]) -> dict[str, list[str]]:
        for a in arms:
            if not _NAME.match(a):
                raise ValueError(f"arm name {a!r}: letters, digits, '_', '-', '.', '+' only")
        return {a: list(v or []) for a, v in arms.items()}

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {seeds}: repeated")
        return seeds

    # ------------------------------------------------------------------------------------- derived
    @property
    def baseline_arm(self) -> str:
        return self.baseline or next(iter(self.arms))

    def base_config_path(self) -> Path:
        p = Path(self.config)
        if not p.is_absolute() and self.path is not None and (self.path.parent / p).is_file():
            return self.path.parent / p
        return p

    def base_config(self) -> Config:
        p = self.base_config_path()
        if not p.is_file():
            raise UserError(f"{self.path or 'experiment'}: config {self.config!r}: file not found")
        return load_config(p, self.overrides)

    def eval_steps(self, steps: int) -> list[int]:
        """Optimizer steps after which the held-out set is evaluated (0 = the initial weights)."""
        every = self.eval.every
        out = [0] if self.eval.at_start else []
        if every:
            out += list(range(every, steps + 1, every))
        if steps and steps not in out:
            out.append(steps)
        return out

    def run_config(self, arm: str, seed: int) -> Config:
        """base <- the experiment's overrides <- the arm's overrides <- train.seed and checkpointing.

        A checkpoint is kept at every evaluated step (checkpoint_every = eval.every), so the held-out
        evaluation reads the weights the trainer saved, and an interrupted run resumes from them.
        """
        base = self.base_config()
        try:
            cfg = apply_overrides(base, self.arms[arm])
        except UserError as e:
            raise UserError(f"{self.path or 'experiment'}: arm {arm!r}: {e}") from None
        steps = cfg.train.steps
        n_ckpt = len(self.eval_steps(steps)) + 1
        every = self.eval.every or steps
        return apply_overrides(cfg, [f"train.seed={seed}", f"train.checkpoint_every={every}",
                                     f"train.keep_checkpoints={n_ckpt}", "logging.run_name=null"])

    def default_out(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / "experiments" / self.name


def load_experiment(path: str | Path, *, seeds: list[int] | None = None, steps: int | None = None,
                    label: str | None = None) -> ExperimentSpec:
    """Read and check an experiment file; `seeds`/`steps`/`label` override it (reduced runs)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: experiment file not found")
    try:
        raw: Any = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{p}: expected a mapping at the top level")
    if seeds is not None:
        raw["seeds"] = seeds
    if steps is not None:
        raw["overrides"] = [*(raw.get("overrides") or []), f"train.steps={steps}"]
    if label is not None:
        raw["label"] = label
    try:
        spec = ExperimentSpec(**raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise UserError(f"{p}: {where}: {err['msg']}") from None
    spec.path = p
    if spec.baseline is not None and spec.baseline not in spec.arms:
        raise UserError(f"{p}: baseline {spec.baseline!r} is not one of the arms ({', '.join(spec.arms)})")
    for arm in spec.arms:  # every arm's config must resolve before anything runs
        spec.run_config(arm, spec.seeds[0])
    return spec


# ------------------------------------------------------------------------------ the output folder
def run_dir(out: Path, arm: str, seed: int) -> Path:
    return Path(out) / "runs" / arm / f"seed-{seed}"


def heldout_file(out: Path, arm: str, seed: int, step: int) -> Path:
    return Path(out) / "heldout" / arm / f"seed-{seed}" / f"step={step:06d}.parquet"
