"""`taorl eval MODEL --benchmarks ... [--k 16] [--limit N] [--no-tool]`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from taorl.config import apply_overrides, load_config
from taorl.errors import UserError

BENCHMARKS = ("aime24", "aime25", "math500", "olympiadbench", "amc23", "hmmt25", "minerva")


def _config_for(args):
    cfg = load_config(args.config, args.overrides)
    updates = [f"model.name={args.model}"]
    if args.k is not None:
        updates += [f"eval.n={args.k}", f"eval.k=[1,{args.k}]"]
    if args.limit is not None:
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
            cells.append(f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")
        cells.append(f"{r.seconds:.0f} s")
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for every column
        console = Console(width=160)
    console.print(table)


def eval_main(args) -> int:
    import polars as pl

    from taorl.eval.runner import evaluate
    from taorl.models import load_model
    from taorl.rollout.hf import HFEngine
    from taorl.tools import Sandbox

    cfg = _config_for(args)
    model, tokenizer = load_model(cfg.model)
    engine = HFEngine(model, tokenizer, gen_batch_size=cfg.rollout.gen_batch_size)
    out = Path(args.out or Path(cfg.logging.runs_dir) / f"eval-{Path(cfg.model.name).name}-{time.strftime('%Y%m%d-%H%M%S')}")
    with Sandbox(cfg.tool) as sandbox:
        results = evaluate(engine, sandbox, cfg, cfg.eval.benchmarks, seed=cfg.train.seed,
                           progress=cfg.logging.progress)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": cfg.model.name,
        "tool": cfg.eval.tool,
        "protocol": {"n": cfg.eval.n, "temperature": cfg.eval.temperature, "top_p": cfg.eval.top_p,
                     "max_turns": cfg.eval.max_turns, "limit": cfg.eval.limit},
        "results": {r.benchmark: {m: {"value": v, "ci_low": lo, "ci_high": hi}
                                  for m, (v, lo, hi) in r.metrics.items()} | {"n_problems": r.n_problems}
                    for r in results},
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    pl.concat([r.samples for r in results]).write_parquet(out / "samples.parquet", compression="zstd")
    mode = "tool" if cfg.eval.tool else "no tool"
    print_table(results, f"{cfg.model.name} ({mode}, n={cfg.eval.n}, T={cfg.eval.temperature}, top_p={cfg.eval.top_p})")
    print(f"results written to {out}/results.json and {out}/samples.parquet")
    return 0
