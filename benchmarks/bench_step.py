"""Where the time of one RL step goes on CPU: generation, tool execution, reward, training
forward/backward + optimizer, logging (row building + Parquet write). Read from the perf/ metrics
the trainer writes every step.

    python benchmarks/bench_step.py                      # trains configs/default.yaml (3 steps), then reports
    python benchmarks/bench_step.py runs/default-...     # reports an existing run directory
    python benchmarks/bench_step.py --config configs/tiny.yaml --steps 2

Step 0 includes warm-up (first generate, sandbox start), so it is reported apart from the mean of
the later steps. Shares are of perf/step_s; "other" is what the named phases do not cover
(filters, advantages, data).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

PHASES = [("generation", "perf/gen_s"), ("tool execution", "perf/tool_s"), ("reward", "perf/reward_s"),
          ("train fwd/bwd+opt", "perf/train_s"), ("logging", "logging_s")]


def read_perf(run: Path) -> pl.DataFrame:
    last = json.loads((run / "manifest.json").read_text())["last_step"]
    df = (pl.scan_parquet(str(run / "metrics" / "**" / "*.parquet"), hive_partitioning=True)
          .filter(pl.col("step") <= last).collect())
    wide = df.pivot(on="name", index="step", values="value").sort("step")
    # a step's Parquet write is reported by the next step (perf/write_prev_s); the last one is unknown,
    # so it is taken as the mean of the others. step_s is extended by the write accordingly.
    write = wide["perf/write_prev_s"].shift(-1) if "perf/write_prev_s" in wide.columns else None
    if write is not None:
        fill = write.drop_nulls().mean() or 0.0
        write = write.fill_null(fill)
        wide = wide.with_columns(logging_s=pl.col("perf/log_s") + write,
                                 **{"perf/step_s": pl.col("perf/step_s") + write})
    else:
        wide = wide.with_columns(logging_s=pl.col("perf/log_s"))
    return wide


def report(run: Path) -> None:
    wide = read_perf(run)
    rows = [("step 0 (warm-up)", wide.filter(pl.col("step") == 0))]
    if wide.height > 1:
        rows.append((f"steps 1..{wide['step'].max()} (mean)", wide.filter(pl.col("step") > 0)))
    print(f"run: {run}")
    for label, part in rows:
        step_s = float(part["perf/step_s"].mean())
        print(f"\n{label}: {step_s:.1f} s/step, "
              f"{float(part['perf/tokens_per_s'].mean()):.0f} generated tok/s")
        covered = 0.0
        for name, col in PHASES:
            v = float(part[col].mean()) if col in part.columns else 0.0
            covered += v
            print(f"  {name:20s} {v:8.2f} s  {100 * v / step_s:5.1f} %")
        print(f"  {'other':20s} {step_s - covered:8.2f} s  {100 * (step_s - covered) / step_s:5.1f} %")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="existing run directory (default: train a fresh one)")
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    if args.run:
        report(Path(args.run))
        return 0
    out = Path(tempfile.mkdtemp(prefix="bench-step-")) / "run"
    cmd = [sys.executable, "-m", "taorl.cli", "train", args.config, f"train.steps={args.steps}",
           "logging.progress=false", "--run-dir", str(out)]
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
