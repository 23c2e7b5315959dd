"""The `taorl` command. Each subcommand imports its module lazily, so `taorl --help` is instant."""

from __future__ import annotations

import argparse
import importlib
import sys

from taorl import __version__

# subcommand -> "module:function"; the function takes the parsed argparse.Namespace
COMMANDS = {
    "train": "taorl.train.cli:train_main",
    "sft": "taorl.train.cli:sft_main",
    "eval": "taorl.eval.cli:eval_main",
    "dashboard": "taorl.viz.launch:dashboard_main",
    "synth": "taorl.lab.synthetic:synth_main",
    "model": "taorl.models:model_main",
    "experiment": "taorl.experiment.cli:experiment_main",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="taorl",
        description="TAO-RL workbench: tool-aware agentic RL for LLMs that write Python while they reason.",
    )
    p.add_argument("--version", action="version", version=f"taorl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train with TAO-RL; fills a run directory")
    t.add_argument("config", help="YAML config, e.g. configs/default.yaml")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. algo.shaping.coef=0.02")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint")
    t.add_argument("--run-dir", metavar="DIR", help="write the run here (default: logging.runs_dir/<name>)")

    s = sub.add_parser("sft", help="format priming: supervised warm-up on generated TIR demonstrations")
    s.add_argument("config", help="YAML config (model, sft section)")
    s.add_argument("overrides", nargs="*")
    s.add_argument("--out", metavar="DIR", help="where to save the primed weights")

    e = sub.add_parser("eval", help="Avg@k / Pass@k on the benchmarks")
    e.add_argument("model", help="model name, local dir, checkpoint dir or hub id")
    e.add_argument("--benchmarks", default=None, help="comma list (default: the seven of the paper)")
    e.add_argument("--k", type=int, default=None, help="samples per problem (n = k)")
    e.add_argument("--limit", type=int, default=None, help="first N problems per benchmark")
    e.add_argument("--no-tool", action="store_true", help="plain chain-of-thought, tool disabled")
    e.add_argument("--config", default=None, help="YAML config for engine/tool settings")
    e.add_argument("--out", default=None, help="write results (JSON + Parquet) here")
    e.add_argument("overrides", nargs="*")

    d = sub.add_parser("dashboard", help="live Streamlit dashboard over run directories")
    d.add_argument("runs_dir", nargs="?", default="runs")
    d.add_argument("--port", type=int, default=8501)
    d.add_argument("--host", default="127.0.0.1")

    y = sub.add_parser("synth", help="write a synthetic run directory (demos, dashboard tests)")
    y.add_argument("out", help="run directory to create")
    y.add_argument("--steps", type=int, default=50)
    y.add_argument("--trajectories", type=int, default=64, help="trajectories per step")
    y.add_argument("--token-trajectories", type=int, default=16, help="trajectories with token rows per step")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--shaping", choices=["on", "off"], default="on")

    m = sub.add_parser("model", help="prepare or inspect the built-in models")
    m.add_argument("action", choices=["prepare", "path"])
    m.add_argument("name", nargs="?", default="smollm2-135m")

    x = sub.add_parser("experiment", help="arms x seeds with held-out evaluation and a report (resumable)")
    x.add_argument("experiment", help="experiment file, e.g. configs/experiments/cpu-smollm2.yaml")
    x.add_argument("--out", metavar="DIR", default=None, help="output folder (default: the file's out)")
    x.add_argument("--seeds", default=None, help="comma list replacing the file's seeds (a reduced run)")
    x.add_argument("--steps", type=int, default=None, help="train.steps of every run (a reduced run)")
    x.add_argument("--label", default=None, help="note at the top of the report")
    x.add_argument("--plan", action="store_true", help="only print what would be trained, resumed or skipped")
    x.add_argument("--report-only", action="store_true", help="only rewrite the report from what is on disk")
    x.add_argument("--no-png", action="store_true", help="do not draw the figures to PNG (Chromium)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # dotted overrides may come after options (`taorl eval M --k 4 eval.limit=2`): accept them there too
    args, extra = parser.parse_known_args(argv)
    stray = [x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    if not args.command:
        parser.print_help()
        return 0
    module, func = COMMANDS[args.command].split(":")
    fn = getattr(importlib.import_module(module), func)
    try:
        return int(fn(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line for the errors we raise on bad input
        from taorl.errors import UserError

        if isinstance(exc, UserError):
            print(f"taorl {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
