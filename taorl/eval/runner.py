"""Benchmark evaluation: n samples per problem with the paper's protocol, Avg@n and unbiased Pass@k.

Protocol (spec §4): temperature 1.0, top_p 0.7, up to 10 turns, tool enabled (or disabled for a
plain chain-of-thought comparison). The rollouts go through the same loop as training, so what is
evaluated is exactly what is trained.

For a benchmark with problems p = 1..P, n samples each and c_p correct:
    Avg@n   = (1/P) Σ_p c_p / n
    Pass@k  = (1/P) Σ_p [1 − C(n − c_p, k) / C(n, k)]        (unbiased estimator, k ≤ n)
and a confidence interval over problems (taorl.eval.metrics).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import polars as pl

from taorl.config import Config
from taorl.data import load_benchmark
from taorl.eval.metrics import mean_ci, rate_ci, summarize
from taorl.rollout.loop import run_rollouts


@dataclass
class BenchmarkResult:
    benchmark: str
    n_problems: int
    n_samples: int
    metrics: dict[str, tuple[float | None, float | None, float | None]]  # name -> (value, ci_low, ci_high); None: undefined
    samples: pl.DataFrame = field(repr=False)  # one row per sample
    seconds: float = 0.0


def eval_rollout_config(cfg: Config):
    """The rollout settings of the evaluation protocol, derived from cfg.eval."""
    return cfg.rollout.model_copy(
        update={
            "temperature": cfg.eval.temperature,
            "top_p": cfg.eval.top_p,
            "max_turns": cfg.eval.max_turns,
            "max_response_tokens": cfg.eval.max_response_tokens,
        }
    )


def evaluate_benchmark(engine, sandbox, cfg: Config, name: str, *, seed: int = 0,
                       progress: bool = True) -> BenchmarkResult:
    t0 = time.perf_counter()
    problems = load_benchmark(name, limit=cfg.eval.limit)
    n = cfg.eval.n
    trajs = run_rollouts(
        engine, sandbox, problems, n, eval_rollout_config(cfg), cfg.data,
        tool_enabled=cfg.eval.tool, seed=seed, progress=progress,
    )
    samples = pl.DataFrame(
        {
            "benchmark": [name] * len(trajs),
            "problem_id": [t.problem_id for t in trajs],
            "sample": [t.index for t in trajs],
            "reward": [float(t.reward) for t in trajs],
            "extracted": [t.reward_info for t in trajs],
            "answer": [t.answer for t in trajs],
            "n_call": [t.n_call for t in trajs],
            "n_ok": [t.n_ok for t in trajs],
            "finish": [t.finish for t in trajs],
            "length": [t.length for t in trajs],
            "text": [t.text for t in trajs],
        }
    )
    per_problem = samples.group_by("problem_id", maintain_order=True).agg(pl.col("reward").sum().alias("c"))
    metrics = summarize([int(c) for c in per_problem["c"]], n, ks=[1, *cfg.eval.k])
    # tool usage over samples: share of samples with a call (with a CI), pooled success rate
    # share of samples with a call: per-problem shares, Wilson over problems (like the scores)
    called = samples.group_by("problem_id", maintain_order=True).agg((pl.col("n_call") > 0).mean().alias("f"))
    metrics["tool_call_rate"] = mean_ci(called["f"].to_list())
    # successful calls / calls, Wilson over the calls; None (null) when no call was made
    metrics["tool_success_rate"] = rate_ci(int(samples["n_ok"].sum()), int(samples["n_call"].sum()))
    return BenchmarkResult(name, len(problems), n, metrics, samples, time.perf_counter() - t0)


def evaluate(engine, sandbox, cfg: Config, benchmarks: list[str] | None = None, *, seed: int = 0,
             progress: bool = True) -> list[BenchmarkResult]:
    return [evaluate_benchmark(engine, sandbox, cfg, b, seed=seed, progress=progress)
            for b in (benchmarks or cfg.eval.benchmarks)]


def eval_rows(results: list[BenchmarkResult]) -> list[dict]:
    """Rows of the run directory's evals table (taorl.store.schema.EVALS)."""
    return [
        {"benchmark": r.benchmark, "metric": m, "value": v, "ci_low": lo, "ci_high": hi,
         "n_problems": r.n_problems, "n_samples": r.n_samples}
        for r in results for m, (v, lo, hi) in r.metrics.items()
    ]


def due(cfg: Config, step: int) -> bool:
    """Periodic evaluation during training: after every `eval.every`-th step, and after the last
    step when `eval.final` is set."""
    every = cfg.eval.every
    last = step == cfg.train.steps - 1
    return bool((every and (step + 1) % every == 0) or (cfg.eval.final and last))


def training_eval_rows(engine, sandbox, cfg: Config, *, progress: bool = False) -> list[dict]:
    """Evaluate the current policy (same seed every time, so curves compare like with like) and
    return rows for the run directory's evals table."""
    return eval_rows(evaluate(engine, sandbox, cfg, cfg.eval.benchmarks, seed=cfg.train.seed,
                              progress=progress))
