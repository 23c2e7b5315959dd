"""`taorl eval MODEL --benchmarks ... [--k 16] [--limit N] [--no-tool]`."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from taorl.config import apply_overrides, load_config
from taorl.errors import UserError

BENCHMARKS = ("aime24", "aime25", "math500", "olympiadbench", "amc23", "hmmt25", "minerva")


def _config_for(args, model: str | None = None, run_config: Path | None = None):
    """The eval config: --config (else the run's own config for a run directory, else the defaults),
    the overrides, then the options; model.name = `model` (default: the MODEL argument)."""
    cfg = load_config(args.config or run_config, args.overrides)
    updates = [f"model.name={model or args.model}"]
    if args.k is not None:
        if args.k < 1:
            raise UserError(f"--k {args.k}: need at least 1 sample per problem")
        updates += [f"eval.n={args.k}", f"eval.k=[1,{args.k}]"]
    if args.limit is not None:
        if args.limit < 1:
            raise UserError(f"--limit {args.limit}: need at least 1 problem per benchmark")
        updates.append(f"eval.limit={args.limit}")
    if args.no_tool:
        updates.append("eval.tool=false")
    if args.benchmarks:
        names = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
        unknown = [b for b in names if b not in BENCHMARKS + ("gsm8k",)]
        if unknown:
            raise UserError(f"--benchmarks: unknown {', '.join(unknown)} (known: {', '.join(BENCHMARKS)}, gsm8k)")
        updates.append(f"eval.benchmarks=[{','.join(names)}]")
    return apply_overrides(cfg, updates)


def json_safe(x):
    """The same structure with NaN / inf floats as None, so the file is valid JSON (null, never NaN)."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def print_table(results, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    cols = ["benchmark", "problems", "n"]
    metric_names = list(results[0].metrics) if results else []
    for c in cols + metric_names + ["time"]:
        table.add_column(c, justify="right" if c != "benchmark" else "left")
    for r in results:
        cells = [r.benchmark, str(r.n_problems), str(r.n_samples)]
        for m in metric_names:
            v, lo, hi = r.metrics[m]
            cells.append("-" if v is None else f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")
        cells.append(f"{r.seconds:.0f} s")
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for every column
        console = Console(width=160)
    console.print(table)


def eval_main(args) -> int:
    import polars as pl

    from taorl.eval.runner import evaluate
    from taorl.export import exported_model_dir, find_checkpoint, locate_run
    from taorl.rollout.factory import build_eval_engine
    from taorl.tools import Sandbox

    # a run directory, or one of its checkpoints (RUN/checkpoints/step=N[/policy])
    run_dir, step = locate_run(args.model, getattr(args, "step", None))
    run = find_checkpoint(run_dir, step) if run_dir else None
    if step is not None and run is None:
        raise UserError(f"--step {step}: only with a run directory, and {args.model} is not one")
    if run:  # the run's checkpoint, LoRA merged (exported once into the run directory)
        cfg = _config_for(args, str(exported_model_dir(run)), run.run_dir / "config.yaml")
        label, stem = f"{run.run_dir} step {run.step}", f"{run.run_dir.name}-step{run.step}"
    else:
        cfg = _config_for(args)
        label, stem = cfg.model.name, Path(cfg.model.name).name
    engine = build_eval_engine(cfg)  # vLLM on a GPU machine with vllm, else hf (GPU or CPU)
    out = Path(args.out or Path(cfg.logging.runs_dir) / f"eval-{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    with Sandbox(cfg.tool) as sandbox:
        results = evaluate(engine, sandbox, cfg, cfg.eval.benchmarks, seed=cfg.train.seed,
                           progress=cfg.logging.progress)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": label,
        "tool": cfg.eval.tool,
        "protocol": {"n": cfg.eval.n, "temperature": cfg.eval.temperature, "top_p": cfg.eval.top_p,
                     "max_turns": cfg.eval.max_turns, "limit": cfg.eval.limit},
        "results": {r.benchmark: {m: {"value": v, "ci_low": lo, "ci_high": hi}
                                  for m, (v, lo, hi) in r.metrics.items()} | {"n_problems": r.n_problems}
                    for r in results},
    }
    (out / "results.json").write_text(json.dumps(json_safe(summary), indent=2, allow_nan=False))
    pl.concat([r.samples for r in results]).write_parquet(out / "samples.parquet", compression="zstd")
    mode = "tool" if cfg.eval.tool else "no tool"
    print_table(results, f"{label} ({mode}, n={cfg.eval.n}, T={cfg.eval.temperature}, top_p={cfg.eval.top_p})")
    print(f"results written to {out}/results.json and {out}/samples.parquet")
    return 0
