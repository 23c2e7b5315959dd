"""taorl experiment: interval maths by hand, the experiment file's errors, and one end-to-end
experiment on the tiny model (2 arms x 2 seeds, real trainer, real sandbox, real Parquet), resumed."""

import json
import math
import shutil
from pathlib import Path

import polars as pl
import pytest

from taorl.errors import UserError
from taorl.experiment.spec import load_experiment
from taorl.experiment.stats import T975, mean_interval, paired_difference, t975

ROOT = Path(__file__).parents[1]


# ------------------------------------------------------------------------------------ statistics
def test_interval_by_hand():
    # x = 0.5, 0.7, 0.6: mean 0.6; s^2 = (0.01 + 0.01 + 0) / 2 = 0.01, s = 0.1;
    # half = t_{0.975,2} * 0.1 / sqrt(3) = 4.302652729749464 * 0.0577350269 = 0.248413...
    iv = mean_interval([0.5, 0.7, 0.6])
    assert iv.n == 3 and iv.mean == pytest.approx(0.6) and iv.std == pytest.approx(0.1)
    assert iv.low == pytest.approx(0.6 - 0.2484138) and iv.high == pytest.approx(0.6 + 0.2484138)
    # two seeds: s = |x1 - x2| / sqrt(2), half = 12.7062 * s / sqrt(2) = 12.7062 * |x1 - x2| / 2
    iv2 = mean_interval([1.0, 3.0])
    assert (iv2.low, iv2.high) == pytest.approx((2.0 - 12.706204736174707, 2.0 + 12.706204736174707))
    one = mean_interval([0.25])
    assert one.mean == 0.25 and one.n == 1 and math.isnan(one.low) and one.fmt() == "0.250 (n=1)"
    assert mean_interval([]).n == 0 and mean_interval([float("nan"), 2.0]).n == 1


def test_paired_difference_by_hand():
    # d = arm - base per shared seed: 0.1, 0.2, 0.0 (seed 3 has no partner) -> mean 0.1, s 0.1
    iv, d = paired_difference({0: 0.5, 1: 0.7, 2: 0.6, 3: 0.9}, {0: 0.4, 1: 0.5, 2: 0.6})
    assert d == pytest.approx({0: 0.1, 1: 0.2, 2: 0.0})
    assert iv.n == 3 and iv.mean == pytest.approx(0.1)
    assert iv.half == pytest.approx(4.302652729749464 * 0.1 / math.sqrt(3))


def test_t_table_against_the_density():
    # independent check: integrate Student's t density from 0 to t975(df) by Simpson's rule -> 0.475
    for df in (1, 2, 3, 5, 10, 30):
        t = t975(df)
        c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
        f = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)
        n = 20000
        h = t / n
        area = h / 3 * (f(0) + f(t) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, n)))
        assert area == pytest.approx(0.475, abs=1e-7), df
    assert t975(7) == T975[7] and t975(22) == T975[20] and t975(500) == pytest.approx(1.959964)
    with pytest.raises(ValueError):
        t975(0)


# --------------------------------------------------------------------------------- the file
def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


BASE = f"""
name: tiny-e2e
config: {ROOT / 'configs' / 'tiny.yaml'}
overrides: [train.steps=1, eval.max_turns=2, eval.max_response_tokens=24, rollout.max_turn_tokens=16,
            rollout.max_response_tokens=32, logging.progress=false, tool.workers=1]
seeds: [0, 1]
baseline: grpo
arms:
  grpo: [algo.filter.group.enabled=false, algo.filter.tool.enabled=false, algo.shaping.enabled=false]
  tao: []
eval: {{every: 1, problems: 2, difficulty: 0, n: 2, k: [2]}}
"""


@pytest.mark.parametrize("edit, message", [
    (("seeds: [0, 1]", "seeds: [0, 0]"), "repeated"),
    (("baseline: grpo", "baseline: nope"), "baseline 'nope' is not one of the arms"),
    (("  tao: []", "  tao: [algo.shaping.nope=1]"), "arm 'tao'"),
    (("name: tiny-e2e", "name: tiny-e2e\ncolour: red"), "colour"),
    (("problems: 2", "problems: 0"), "eval.problems"),
])
def test_bad_experiment_files(tmp_path, edit, message):
    p = _write(tmp_path, BASE.replace(*edit))
    with pytest.raises(UserError, match=message):
        load_experiment(p)


def test_eval_steps_and_run_config(tmp_path):
    spec = load_experiment(_write(tmp_path, BASE), steps=7)
    spec.eval.every = 3
    assert spec.eval_steps(7) == [0, 3, 6, 7]
    cfg = spec.run_config("grpo", 1)
    assert cfg.train.seed == 1 and cfg.train.steps == 7 and cfg.train.checkpoint_every == 3
    assert cfg.train.keep_checkpoints >= 4 and not cfg.algo.shaping.enabled
    assert spec.run_config("tao", 1).algo.shaping.enabled


def test_start_evaluation_shared_only_between_algo_arms(tmp_path):
    from taorl.experiment.runner import RunPlan, start_source

    text = BASE.replace("  tao: []", "  tao: []\n  lr: [train.lr=3.0e-3]\n  late: [algo.shaping.coef=0.5]")
    spec = load_experiment(_write(tmp_path, text))

    def source(arm, seed=0):
        return start_source(spec, RunPlan(arm, seed, tmp_path, spec.run_config(arm, seed), "start"))

    # tao and late differ from grpo only in algo.*: one step-0 evaluation (grpo's) serves all three;
    # a different learning rate is not an algo.* key, so that arm is evaluated itself
    assert [source(a) for a in ("grpo", "tao", "late", "lr")] == ["grpo", "grpo", "grpo", "lr"]
    assert source("tao", seed=1) == "grpo"


def test_each_process_gets_the_share_of_the_cores_of_the_runs_under_way(tmp_path, monkeypatch):
    """--jobs 2 on 4 cores: 2 threads while two runs go on, 4 for the last run's step once it is alone."""
    import threading
    import time
    from types import SimpleNamespace

    from taorl.experiment import runner

    monkeypatch.setattr(runner.os, "cpu_count", lambda: 4)
    b_waits, b_returned, seen = threading.Event(), threading.Event(), []

    def fake(out, arm, seed, what, log, *, logfile=None, threads=None):
        seen.append((arm, what, threads))
        if arm == "b":  # the long run: ends once c's first step has started
            assert b_waits.wait(10)
            b_returned.set()
        if (arm, what) == ("c", "train"):
            b_waits.set()
            assert b_returned.wait(10)
            time.sleep(0.3)  # b's task leaves the count right after its process returns

    monkeypatch.setattr(runner, "_in_process", fake)
    tasks = [runner._Task(SimpleNamespace(arm=a, seed=0, dir=tmp_path / a), steps, f"run {a}")
             for a, steps in (("a", ["train"]), ("b", ["train"]), ("c", ["train", "eval"]))]
    runner._run_tasks(tasks, None, tmp_path, [], lambda m: None, True, 2, time.perf_counter())
    assert sorted(seen) == [("a", "train", 2), ("b", "train", 2), ("c", "eval", 4), ("c", "train", 2)]


# ----------------------------------------------------------------------------------- end to end
@pytest.mark.slow  # about 2 CPU-minutes: 5 trainings and 5 evaluations, each in its own process
def test_tiny_experiment_end_to_end_and_resume(tmp_path, capsys):
    from taorl.cli import main
    from taorl.experiment import load_report

    exp = _write(tmp_path, BASE)
    out = tmp_path / "out"
    # two runs at once, each worker's output in its own log file
    assert main(["experiment", str(exp), "--out", str(out), "--no-png", "--jobs", "2"]) == 0
    log = capsys.readouterr().out
    assert "[1/4] grpo seed 0: train 1 steps; evaluate after [0, 1] steps" in log
    assert "(2 runs at once; their logs in" in log and log.count("trained in") == 4
    assert {f.name for f in (out / "logs").iterdir()} >= {"grpo-seed-0-start.log", "tao-seed-1-train.log",
                                                          "tao-seed-1-eval.log"}
    # the initial weights are evaluated once per seed: the arms differ only in algo.*, so tao's
    # step-0 file is grpo's with the arm renamed (and says so in its worker's log)
    assert not (out / "logs" / "tao-seed-0-start.log").exists()
    for seed in (0, 1):
        g, t = (pl.read_parquet(out / "heldout" / a / f"seed-{seed}" / "step=000000.parquet") for a in ("grpo", "tao"))
        assert t["arm"].unique().to_list() == ["tao"]
        assert t.drop("arm").equals(g.drop("arm"))
        assert f"the same weights and sampling as grpo seed {seed}; its evaluation copied" in \
            (out / "logs" / f"tao-seed-{seed}-eval.log").read_text()
    rep = load_report(out)
    s = rep["summary"]
    assert s.columns[:5] == ["arm", "seed", "step", "metric", "value"]
    held = s.filter(pl.col("source") == "heldout")
    # 2 arms x 2 seeds x 2 evaluated steps, each with the same metric names
    assert held.group_by("arm", "seed", "step").len().height == 8
    assert {"heldout/avg@2", "heldout/pass@2", "heldout/tool_call_rate"} <= set(held["metric"])
    assert (s.filter(pl.col("source") == "train")["metric"] == "reward").any()

    # the report's intervals, recomputed by hand from the Parquet summary (two seeds: t = 12.7062,
    # half = t * |x0 - x1| / 2), for a metric that differs between seeds
    m = "heldout/response_tokens"
    for arm in ("grpo", "tao"):
        x = held.filter((pl.col("arm") == arm) & (pl.col("metric") == m) & (pl.col("step") == 1)).sort("seed")["value"]
        got = rep["arms"][arm]["final"][m]
        assert got["mean"] == pytest.approx((x[0] + x[1]) / 2)
        assert got["high"] - got["mean"] == pytest.approx(12.706204736174707 * abs(x[0] - x[1]) / 2)
    d = [held.filter((pl.col("arm") == a) & (pl.col("metric") == m) & (pl.col("step") == 1)).sort("seed")["value"]
         for a in ("tao", "grpo")]
    diffs = [d[0][i] - d[1][i] for i in range(2)]
    assert rep["paired"]["tao"][m]["mean"] == pytest.approx(sum(diffs) / 2)
    md = (out / "report" / "report.md").read_text()
    assert "## Paired differences with `grpo`" in md and "| tao |" in md
    # the Runs table: the time the steps took, from the run's own step times (a resumed run's first
    # start to last write would count the time between its launches)
    from taorl.store import open_run

    secs = float(open_run(out / "runs" / "tao" / "seed-1").metrics()["perf/step_s"].sum())
    assert f"| tao | 1 | `runs/tao/seed-1` | finished | 1 | {secs / 60:.1f} min |" in md
    assert set(rep["figures"]) >= {"heldout", "reward", "paired", "calls"}
    # what the runs did with the tool (taorl.experiment.calls), held-out and in training
    assert {"heldout/calls_per_rollout", "heldout/calls=0/share", "heldout/calls=1/accuracy"} <= set(held["metric"])
    assert "calls/calls_per_rollout" in set(s.filter(pl.col("source") == "train")["metric"])
    assert "## Held-out accuracy by number of tool calls" in md and "dose" not in rep["figures"]

    # a second call trains and evaluates nothing
    manifest = (out / "runs" / "tao" / "seed-1" / "manifest.json").read_text()
    assert main(["experiment", str(exp), "--out", str(out), "--no-png"]) == 0
    log = capsys.readouterr().out
    assert log.count("skipped; held-out evaluations done") == 4 and "trained in" not in log
    assert (out / "runs" / "tao" / "seed-1" / "manifest.json").read_text() == manifest
    # --report-only rewrites the report from those runs, and its first line says so and when they trained
    assert "--report-only" not in md and ", from runs trained 20" in md
    assert main(["experiment", str(exp), "--out", str(out), "--no-png", "--report-only"]) == 0
    assert capsys.readouterr().out.startswith("report: ")
    again = (out / "report" / "report.md").read_text()
    assert "--report-only` on " in again and ", from runs trained 20" in again

    # an interrupted run (one more step asked, a held-out file lost) resumes from its checkpoint
    (out / "heldout" / "grpo" / "seed-0" / "step=000001.parquet").unlink()
    assert main(["experiment", str(exp), "--out", str(out), "--no-png", "--steps", "2", "--seeds", "0"]) == 0
    log = capsys.readouterr().out
    assert "grpo seed 0: resume at step 1 of 2; evaluate after [1, 2] steps" in log
    assert json.loads((out / "runs" / "grpo" / "seed-0" / "manifest.json").read_text())["last_step"] == 1
    rep = load_report(out)
    assert rep["label"].startswith("reduced run") and rep["final_step"] == 2
    assert "reduced run" in (out / "report" / "report.md").read_text()

    # a changed config is refused, naming the key
    changed = _write(tmp_path, BASE.replace("  tao: []", "  tao: [algo.shaping.coef=0.5]"))
    with pytest.raises(UserError, match="algo.shaping.coef"):
        from taorl.experiment.runner import plan_experiment

        plan_experiment(load_experiment(changed), out)
    shutil.rmtree(out)


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiment_files_load(path):
    spec = load_experiment(path)
    assert path.read_text().startswith(f"# taorl experiment configs/experiments/{path.name}")
    # the three arms of every shipped comparison (the dose-response file adds arms with a larger a)
    assert spec.baseline_arm == "grpo-tir" and {"grpo-tir", "filters-only", "tao-rl"} <= set(spec.arms)
    base = spec.run_config("grpo-tir", 0)
    assert not base.algo.shaping.enabled and not base.algo.filter.group.enabled and not base.algo.filter.tool.enabled
    assert spec.run_config("tao-rl", 0).algo.shaping.enabled
    filters = spec.run_config("filters-only", 0)
    assert filters.algo.filter.group.enabled and not filters.algo.shaping.enabled
    # the training task and the held-out set are the same kind of problem (mixed outcomes for the primed model)
    assert base.data.difficulty == spec.eval.difficulty and base.data.kinds == spec.eval.kinds


def test_rate_intervals_shown_inside_0_100():
    from taorl.experiment.report import _pct

    d = {"mean": 0.958, "low": 0.907, "high": 1.010, "n": 3}
    assert _pct(d, rate=True) == "95.8 % [90.7, 100.0]"          # a rate: clipped at 100 %
    assert _pct(d) == "95.8 % [90.7, 101.0]"                     # a difference: as computed
    assert _pct({"mean": 0.02, "low": -0.03, "high": 0.07, "n": 3}, rate=True) == "2.0 % [0.0, 7.0]"


def test_call_metrics_by_hand():
    from taorl.experiment.calls import call_metrics_from

    statuses = [[], ["ok"], ["runtime_error", "ok"], ["syntax_error", "runtime_error", "ok", "ok"], ["timeout"]]
    rewards = [0.0, 1.0, 1.0, 0.0, 0.0]
    m = call_metrics_from(statuses, rewards)
    assert m["calls_per_rollout"] == (0 + 1 + 2 + 4 + 1) / 5
    assert m["error_rollouts"] == 3 / 5
    assert m["calls_after_error"] == (1 + 3 + 0) / 3       # calls after each rollout's first failure
    assert m["recovered"] == 2 / 3                          # an ok call after it: rollouts 2 and 3
    assert m["calls=0/share"] == 0.2 and m["calls=0/accuracy"] == 0.0
    assert m["calls=1/share"] == 0.4 and m["calls=1/accuracy"] == 0.5
    assert m["calls=2/accuracy"] == 1.0 and m["calls=3+/accuracy"] == 0.0
    assert math.isnan(call_metrics_from([["ok"]], [1.0])["calls_after_error"])


def test_dose_rows_pair_each_arm_with_a_zero(tmp_path):
    from taorl.experiment.dose import arm_doses, dose_rows, is_dose_response

    exp = _write(tmp_path, BASE.replace("  tao: []", "  a0: [algo.shaping.enabled=false]\n  tao: []\n"
                                                     "  a3: [algo.shaping.coef=0.3]"))
    spec = load_experiment(exp)
    assert arm_doses(spec)["grpo"] == {"a": 0.0, "shaping": False, "filters": False}
    assert is_dose_response(spec) and [arm_doses(spec)[a]["a"] for a in ("a0", "tao", "a3")] == [0.0, 0.01, 0.3]
    held = pl.DataFrame({"arm": ["a0", "a0", "tao", "tao", "a3", "a3"], "seed": [0, 1] * 3, "step": [5] * 6,
                         "metric": ["heldout/avg@2"] * 6, "value": [0.5, 0.6, 0.55, 0.7, 0.4, 0.6]})
    rows = dose_rows(spec, held, "heldout/avg@2", 5)
    assert [r["arm"] for r in rows] == ["a0", "tao", "a3"] and rows[0]["delta"] is None
    assert rows[1]["delta"]["mean"] == pytest.approx((0.05 + 0.1) / 2)
    assert rows[2]["delta"]["per_seed"] == pytest.approx({0: -0.1, 1: 0.0})
