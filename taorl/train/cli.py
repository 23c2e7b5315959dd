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
RESUME_FREE_KEYS = ("logging.progress", "train.steps", "train.checkpoint_every", "train.keep_checkpoints")


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
                        f"(run: {old!r}, now: {new!r}); resume with the same config")


def train_main(args) -> int:
    cfg = load_config(args.config, args.overrides)
    if args.resume:
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            raise UserError(f"--resume {run_dir}: directory not found")
        check_resume_config(cfg, run_dir)
    else:
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(cfg, args.config)
        if (run_dir / "manifest.json").exists():
            raise UserError(f"--run-dir {run_dir}: already holds a run; use --resume {run_dir} to continue it")
    from taorl.train.trainer import Trainer

    trainer = Trainer(cfg, run_dir, resume=bool(args.resume))
    trainer.run()
    print(f"run directory: {run_dir}")
    return 0


def sft_main(args) -> int:
    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path(cfg.logging.runs_dir) / f"sft-{Path(args.config).stem}"
    from taorl.train.sft import run_sft

    report = run_sft(cfg, out)
    print(f"primed weights: {out}  (train from them with train.init_from={out})")
    for k in ("void_rate", "tool_call_rate", "tool_success_rate", "accuracy"):
        print(f"  {k:18s} before {report['before'][k]:.3f}  after {report['after'][k]:.3f}")
    return 0
