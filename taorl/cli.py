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
    "model": "taorl.model_cli:model_main",
    "experiment": "taorl.experiment.cli:experiment_main",
    "export": "taorl.export:export_main",
    "data": "taorl.data_cli:data_main",
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" after each argument's help, unless the help already names its default
    or there is none to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.default == []:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="taorl",
        description="TAO-RL workbench: tool-aware agentic RL for LLMs that write Python while they reason.",
    )
    p.add_argument("--version", action="version", version=f"taorl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        # every argument's help shows its default
        return sub.add_parser(name, help=help, description=description or help,
                              formatter_class=_HelpFormatter)

    overrides_help = "dotted config overrides key=value, e.g. algo.shaping.coef=0.02 train.steps=40"

    t = command("train", "train with TAO-RL; fills a run directory",
                "Train with TAO-RL. Start a run: taorl train CONFIG [overrides]. Continue a killed or "
                "finished run with its own saved config: taorl train --resume RUN_DIR [train.steps=N].")
    t.add_argument("config", nargs="?", default=None,
                   help="YAML config, e.g. configs/default.yaml (not needed with --resume)")
    t.add_argument("overrides", nargs="*", help=overrides_help)
    t.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue this run from its last checkpoint, with the config saved in it")
    t.add_argument("--run-dir", metavar="DIR", default=None,
                   help="write the run here (default: logging.runs_dir/<config name>-<time>)")
    t.add_argument("--dry-run", action="store_true",
                   help="only print the plan: model and data resolved (nothing downloaded or loaded), steps, "
                        "tokens per step, an estimate of peak GPU memory and the checks that would stop the "
                        "run; exit status 1 when one would")
    t.add_argument("--gpu-gib", type=float, default=None, metavar="GIB",
                   help="with --dry-run: size the memory estimate for a GPU of this many GiB "
                        "(default: this machine's GPU, else 80, an H100)")

    s = command("sft", "format priming: supervised warm-up on generated TIR demonstrations")
    s.add_argument("config", help="YAML config (model and sft sections), e.g. configs/sft.yaml")
    s.add_argument("overrides", nargs="*", help=overrides_help)
    s.add_argument("--out", metavar="DIR", default=None,
                   help="where to save the primed weights (default: logging.runs_dir/sft-<config name>)")

    e = command("eval", "Avg@k / Pass@k on the benchmarks",
                "Evaluate a model on the benchmarks with the paper's protocol (Avg@n, unbiased Pass@k, "
                "95% intervals over problems, tool-call and tool-success rates).")
    e.add_argument("model", help="a run directory (its latest checkpoint, LoRA merged) or one of its "
                                 "checkpoints (RUN/checkpoints/step=N), a built-in name "
                                 "(smollm2-135m, smollm2-135m-primed, tiny), a model directory "
                                 "(e.g. from taorl export) or a hub id")
    e.add_argument("--step", type=int, default=None,
                   help="with a run directory: the checkpoint of this step (default: the latest)")
    e.add_argument("--benchmarks", default=None,
                   help="comma list (default: eval.benchmarks, the seven of the paper)")
    e.add_argument("--k", type=int, default=None, help="samples per problem n (>= 1); Pass@1 and Pass@k "
                                                       "are reported (default: eval.n)")
    e.add_argument("--limit", type=int, default=None, help="first N problems per benchmark (default: all)")
    e.add_argument("--no-tool", action="store_true", help="plain chain-of-thought, tool disabled")
    e.add_argument("--config", default=None,
                   help="YAML config for engine/tool/eval settings (default: the run's, else the built-in defaults)")
    e.add_argument("--out", default=None,
                   help="write results.json + samples.parquet here (default: logging.runs_dir/eval-<model>-<time>)")
    e.add_argument("overrides", nargs="*", help=overrides_help)

    x = command("export", "write a run's checkpoint as a plain Hugging Face model directory",
                "Export a run's checkpoint (LoRA merged) as a plain Hugging Face model directory that "
                "transformers, vLLM and taorl eval load.")
    x.add_argument("run_dir", help="a taorl run directory (holds config.yaml and checkpoints/), or one of its "
                                   "checkpoints (RUN/checkpoints/step=N)")
    x.add_argument("--step", type=int, default=None, help="the checkpoint of this step (default: the latest)")
    x.add_argument("--out", required=True, metavar="DIR", help="the model directory to create")

    dl = command("data", "training sets and benchmarks: what is here, and a few problems of one",
                 "List the problem sets (training sets by name, benchmarks) and where each would be read "
                 "from, or show a few problems of one with their answers as the grader reads them.")
    dl.add_argument("action", choices=["list", "show"], help="list: what is available; show: problems of NAME")
    dl.add_argument("name", nargs="?", default=None,
                    help="with show: a training set (simplelr_math_35, dapo_math_17k, deepscaler, math_train, "
                         "procedural), a benchmark, a .jsonl/.parquet file or a hub dataset ORG/NAME")
    dl.add_argument("--limit", type=int, default=5, help="problems to show")
    dl.add_argument("--split", default="train", help="split of a hub dataset")
    dl.add_argument("--problem-field", default=None, help="field holding the problem (as data.problem_field)")
    dl.add_argument("--answer-field", default=None, help="field holding the answer (as data.answer_field)")
    dl.add_argument("--difficulty", type=int, default=1, help="procedural generator's difficulty")
    dl.add_argument("--no-decontaminate", action="store_true",
                    help="keep problems that are also benchmark problems (shown by default as dropped)")
    dl.add_argument("--width", type=int, default=300, help="characters of each problem to print")

    d = command("dashboard", "live Streamlit dashboard over run directories")
    d.add_argument("runs_dir", nargs="?", default="runs", help="directory holding run directories")
    d.add_argument("--port", type=int, default=8501, help="port to serve on")
    d.add_argument("--host", default="127.0.0.1", help="address to bind")

    y = command("synth", "write a synthetic run directory (demos, dashboard tests)")
    y.add_argument("out", help="run directory to create")
    y.add_argument("--steps", type=int, default=50, help="training steps to simulate")
    y.add_argument("--trajectories", type=int, default=64, help="trajectories per step")
    y.add_argument("--token-trajectories", type=int, default=16, help="trajectories with token rows per step")
    y.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data")
    y.add_argument("--shaping", choices=["on", "off"], default="on", help="entropy shaping in the synthetic run")

    m = command("model", "prepare or inspect the built-in models")
    m.add_argument("action", choices=["prepare", "path"],
                   help="prepare: convert once into the cache; path: print where it lives")
    m.add_argument("name", nargs="?", default="smollm2-135m",
                   help="smollm2-135m, smollm2-135m-primed (format-primed by configs/default.yaml), tiny, tiny-qwen2")

    x = command("experiment", "arms x seeds with held-out evaluation and a report (resumable)")
    x.add_argument("experiment", help="experiment file, e.g. configs/experiments/cpu-smollm2.yaml")
    x.add_argument("--out", metavar="DIR", default=None, help="output folder (default: the file's out)")
    x.add_argument("--seeds", default=None, help="comma list replacing the file's seeds (a reduced run)")
    x.add_argument("--steps", type=int, default=None, help="train.steps of every run (a reduced run)")
    x.add_argument("--label", default=None, help="note at the top of the report")
    x.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once, each in its own process with cpu_count/JOBS threads (default: 1)")
    x.add_argument("--plan", action="store_true", help="only print what would be trained, resumed or skipped")
    x.add_argument("--report-only", action="store_true", help="only rewrite the report from what is on disk")
    x.add_argument("--no-png", action="store_true", help="do not draw the figures to PNG (Chromium)")
    return p


def _setup_logging() -> None:
    """taorl's own log lines (e.g. "sandbox: isolation=bwrap, 2 workers, ...") on stderr from INFO up;
    other libraries stay at their defaults."""
    import logging

    log = logging.getLogger("taorl")
    if not any(getattr(h, "_taorl", False) for h in log.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        h._taorl = True
        log.addHandler(h)
    log.setLevel(logging.INFO)
    log.propagate = False


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
    _setup_logging()
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
