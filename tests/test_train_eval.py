"""A training run with periodic evaluation: evals/ rows land in the run directory at the right steps
and the dashboard's queries read them (benchmark curves, best checkpoint, final table)."""

from pathlib import Path

import polars as pl
import pytest

from taorl.config import load_config

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared" / "benchmarks"
pytestmark = [pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/benchmarks not present"),
              pytest.mark.usefixtures("one_thread")]


def test_periodic_eval_rows_are_read_by_the_dashboard(tmp_path, monkeypatch):
    from taorl.store import open_run
    from taorl.store.queries import best_checkpoint, final_evals
    from taorl.train.trainer import Trainer

    monkeypatch.setenv("TAORL_DATA_DIR", str(SHARED))
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [
        "train.steps=3", "eval.every=2", "eval.final=true", "eval.benchmarks=[amc23,aime24]",
        "eval.limit=2", "eval.n=2", "eval.k=[1,2]", "eval.max_turns=1", "eval.max_response_tokens=16",
        "logging.progress=false", f"logging.runs_dir={tmp_path}"])
    Trainer(cfg, tmp_path / "run").run()

    run = open_run(tmp_path / "run")
    evals = run.evals()
    # every=2 -> after step 1; final -> after step 2 (the last of 3)
    assert sorted(evals["step"].unique().to_list()) == [1, 2]
    per_step = evals.group_by("step", "benchmark").agg(pl.col("metric"))
    assert per_step.height == 4
    for metrics in per_step["metric"]:
        assert {"avg@2", "pass@1", "pass@2", "tool_call_rate", "tool_success_rate"} <= set(metrics)
    avg = evals.filter(pl.col("metric") == "avg@2")
    assert ((avg["value"] >= 0) & (avg["value"] <= 1)).all()
    assert (avg["n_problems"] == 2).all() and (avg["n_samples"] == 2).all()
    # the dashboard's queries over the same rows
    final = final_evals(evals, metric="avg@2")
    assert sorted(final["benchmark"].to_list()) == ["aime24", "amc23"]
    best = best_checkpoint(evals, metric="avg@2")
    assert best is not None and best[0] in (1, 2)
    assert "perf/eval_s" in run.metrics().columns
