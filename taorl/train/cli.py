"""`taorl train` and `taorl sft`: parse the config, check the user's input, run, print where it went.

Bad input (unknown key, wrong type, missing file, unknown model, a run directory that does not hold
a resumable run) raises UserError with one line naming the file/key; taorl.cli prints it.
"""

from __future__ import annotations

import time
from pathlib import Path

from taorl.config import Config, config_diff, load_config
from taorl.errors import UserError


def default_run_dir(cfg: Config, config_path: str) -> Path:
    name = cfg.logging.run_name or f"{Path(config_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.logging.runs_dir) / name


# keys that may differ between the original run and its resumption (they do not change the maths)
RESUME_FREE_KEYS = ("logging.progress", "train.steps", "train.checkpoint_every", "train.keep_checkpoints",
                    "logging.report_to", "logging.project", "logging.offline")


def check_resume_config(cfg: Config, run_dir: Path) -> None:
    """A resumed run must be the same experiment: compare with the run's saved config.yaml."""
    import yaml

    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        raise UserError(f"--resume {run_dir}: not a taorl run directory (no config.yaml)")
    saved = yaml.safe_load(saved_path.read_text()) or {}
    diff = {k: v for k, v in config_diff(saved, cfg.to_dict()).items() if k not in RESUME_FREE_KEYS}
    if diff:
        key, (old, new) = next(iter(diff.items()))
        raise UserError(f"--resume {run_dir}: config differs from the run's config.yaml at {key} "
                        f"(run: {old!r}, now: {new!r}); resume with the same config, or with "
                        f"`taorl train --resume {run_dir}` alone")


def split_config_arg(args) -> tuple[str | None, list[str]]:
    """`taorl train --resume RUN train.steps=80`: argparse takes the first override for the config."""
    config, overrides = args.config, list(args.overrides or [])
    if config and "=" in config and not Path(config).is_file():
        return None, [config, *overrides]
    return config, overrides


def resume_config(run_dir: Path, config: str | None, overrides: list[str]) -> Config:
    """The config of a resumed run: its saved config.yaml, plus overrides of the keys that may change
    (train.steps to extend it, checkpointing, progress). A config file given too must match it."""
    if not run_dir.is_dir():
        raise UserError(f"--resume {run_dir}: directory not found")
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise UserError(f"--resume {run_dir}: not a taorl run directory (no config.yaml)")
    # what the user asked for (the file given, or the run's own) must be the same experiment
    check_resume_config(load_config(config or saved, overrides), run_dir)
    return load_config(saved, overrides)


def resume_message(run_dir: Path, start_step: int, steps: int, published: int) -> str:
    """One line: where the resumed run continues and what (if anything) is redone."""
    if start_step >= steps:
        return (f"resume {run_dir}: already at its end (train.steps={steps}); "
                f"add train.steps=N to continue it further")
    redo = f"; steps {start_step}-{published} were logged after that checkpoint and are redone" \
        if published >= start_step else ""
    where = f"from step {start_step} (checkpoint step={start_step - 1:06d})" if start_step else \
        "from step 0 (no checkpoint yet)"
    return f"resuming {run_dir} {where} to step {steps - 1}{redo}"


def train_main(args) -> int:
    config, overrides = split_config_arg(args)
    if args.resume:
        run_dir = Path(args.resume)
        cfg = resume_config(run_dir, config, overrides)
        if getattr(args, "dry_run", False):
            from taorl.train.plan import dry_run

            return dry_run(cfg, f"--resume {run_dir}", getattr(args, "gpu_gib", None))
    else:
        if not config:
            raise UserError("no config: give a YAML config (e.g. taorl train configs/default.yaml), "
                            "or --resume RUN_DIR to continue a run")
        cfg = load_config(config, overrides)
        if getattr(args, "dry_run", False):  # the plan only: nothing loaded, downloaded or written
            from taorl.train.plan import dry_run

            return dry_run(cfg, " ".join([config, *overrides]), getattr(args, "gpu_gib", None))
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(cfg, config)
        if (run_dir / "manifest.json").exists():
            raise UserError(f"--run-dir {run_dir}: already holds a run; use --resume {run_dir} to continue it")
    from taorl.gpu import preflight

    preflight(cfg)  # before anything imports transformers: CUDA/package checks, Unsloth first
    from taorl.train.trackers import check_trackers
    from taorl.train.trainer import Trainer

    check_trackers(cfg.logging.report_to)  # a missing tracker package fails now, not after priming
    trainer = Trainer(cfg, run_dir, resume=bool(args.resume))
    if args.resume:
        print(resume_message(run_dir, trainer.start_step, cfg.train.steps, trainer.published), flush=True)
    trainer.run()
    from taorl.train.console import run_summary

    print(run_summary(run_dir), flush=True)
    print(f"run directory: {run_dir}")
    return 0


def sft_main(args) -> int:
    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path(cfg.logging.runs_dir) / f"sft-{Path(args.config).stem}"
    from taorl.gpu import preflight

    preflight(cfg)
    from taorl.train.sft import run_sft

    report = run_sft(cfg, out)
    print(f"primed weights: {out}  (train from them with train.init_from={out})")
    for k in ("void_rate", "tool_call_rate", "tool_success_rate", "accuracy"):
        print(f"  {k:18s} before {report['before'][k]:.3f}  after {report['after'][k]:.3f}")
    return 0
