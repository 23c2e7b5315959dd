"""The Experiment page (`taorl dashboard runs/experiments/NAME`) under streamlit's AppTest, on an
experiment folder made here in the runner's layout: the experiment.yaml the runner writes (from a
real experiment file over configs/tiny.yaml), SYNTHETIC run directories (taorl.lab.synthetic, labelled
as such in their manifests and on the page) for the arms × seeds, one of them still running, and
held-out files with hand-picked values. Numbers on the page are checked against values worked out
here from the Parquet files and by hand."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path

import polars as pl
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from taorl.lab.synthetic import write_synthetic_run

ROOT = Path(__file__).parents[1]
APP = ROOT / "app" / "Home.py"
PAGE = "views/0_experiment.py"
# held-out avg@2 after 0, 3 and 6 steps, per arm and seed (tao seed 2 is still training: no step 6)
HELD = {("base", 0): [0.3, 0.4, 0.4], ("base", 1): [0.3, 0.5, 0.5], ("base", 2): [0.3, 0.6, 0.6],
        ("tao", 0): [0.3, 0.5, 0.5], ("tao", 1): [0.3, 0.6, 0.7], ("tao", 2): [0.3, 0.5]}


def _experiment(root: Path) -> tuple[Path, object]:
    from taorl.experiment.runner import write_spec
    from taorl.experiment.spec import heldout_file, load_experiment, run_dir

    exp = root / "mini.yaml"
    exp.write_text(f"name: mini\nconfig: {ROOT / 'configs' / 'tiny.yaml'}\nseeds: [0, 1, 2]\nbaseline: base\n"
                   "arms: {base: [algo.shaping.enabled=false], tao: []}\n"
                   "eval: {every: 3, problems: 2, n: 2, k: [2]}\nlabel: 'test fixture: synthetic runs'\n")
    spec = load_experiment(exp, steps=6)
    out = root / "experiments" / "mini"
    out.mkdir(parents=True)
    write_spec(spec, out)
    for (arm, seed), vals in HELD.items():
        running = (arm, seed) == ("tao", 2)
        d = run_dir(out, arm, seed)
        write_synthetic_run(d, steps=4 if running else 6, trajectories_per_step=16, token_trajectories=2,
                            group_size=4, seed=10 * seed + (arm == "tao"), shaping=arm == "tao",
                            finish=not running)
        if running:  # a run 4 steps into its 6 (the synthetic writer sets train.steps to what it wrote)
            cfg = yaml.safe_load((d / "config.yaml").read_text())
            cfg["train"]["steps"] = 6
            (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        for step, v in zip((0, 3, 6), vals):
            f = heldout_file(out, arm, seed, step)
            f.parent.mkdir(parents=True, exist_ok=True)
            pl.DataFrame({"arm": arm, "seed": seed, "step": step, "metric": ["heldout/avg@2", "heldout/tool_call_rate"],
                          "value": [v, 0.5], "n_problems": 2, "n_samples": 2, "seconds": 1.0}).write_parquet(f)
    return out, spec


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return _experiment(tmp_path_factory.mktemp("exp"))


def app(root: Path, monkeypatch, page: str | None = PAGE) -> AppTest:
    monkeypatch.setenv("TAORL_RUNS_DIR", str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    if page:
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _arr(v) -> list:
    """A plotly JSON array: a list, or numpy's typed-array encoding {dtype, bdata (base64)}."""
    import base64

    import numpy as np

    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def _metrics(run: Path) -> pl.DataFrame:
    files = sorted(run.glob("metrics/step=*/part-0.parquet"))
    return pl.concat([pl.read_parquet(f).with_columns(step=pl.lit(int(f.parent.name[5:]))) for f in files])


def test_opening_the_folder_shows_the_experiment(experiment, monkeypatch):
    out, _ = experiment
    at = app(out, monkeypatch, page=None)  # `taorl dashboard runs/experiments/mini`: the default page
    assert at.title[0].value == "Experiment · mini"
    assert any("test fixture: synthetic runs" in w.value for w in at.warning)
    assert any("Synthetic data" in w.value and "6 of these runs" in w.value for w in at.warning)
    assert any("2 arms × 3 seeds · 5 finished, 1 running, 0 failed, 0 not started" in c.value for c in at.caption)


def test_runs_table_state_step_eta(experiment, monkeypatch):
    out, _ = experiment
    at = app(out, monkeypatch)
    runs = next(d.value for d in at.dataframe if "ETA" in d.value.columns)
    assert len(runs) == 6 and list(runs["arm"]) == ["base"] * 3 + ["tao"] * 3
    row = runs.set_index(["arm", "seed"]).loc[("tao", 2)]
    assert row["state"] == "running" and row["step"] == "4 / 6"
    assert row["held-out"] == "2 / 3"  # after 0 and 3 steps of [0, 3, 6]
    # ETA: 2 steps left × the median gap between its published steps' wall times, + evaluations left
    wall = _metrics(out / "runs" / "tao" / "seed-2").group_by("step").agg(pl.col("wall_s").first()).sort("step")["wall_s"]
    pace = statistics.median([b - a for a, b in itertools.pairwise(wall)])
    assert row["s / step"] == f"{pace:.1f}"
    eta = 2 * pace + 1 * 1.0  # + its one evaluation to come, at the 1.0 s the held-out files record
    assert row["ETA"] == (f"{eta:.0f} s" if eta < 90 else f"{eta / 60:.0f} min" if eta < 5400 else f"{eta / 3600:.1f} h")
    done = runs.set_index(["arm", "seed"]).loc[("base", 1)]
    assert done["state"] == "finished" and done["step"] == "6 / 6" and done["ETA"] == "done"
    assert done["open"] == "overview?run=runs/base/seed-1"


def test_curves_are_the_mean_over_seeds(experiment, monkeypatch):
    out, _ = experiment
    at = app(out, monkeypatch)
    at.slider(key="exp_smooth").set_value(0.0).run()
    fig = json.loads(next(c.proto.spec for c in at.get("plotly_chart") if "Reward" in c.proto.spec or
                          "reward" in c.proto.spec))
    mean = next(t for t in fig["data"] if t.get("name", "").startswith("tao (n="))
    rewards = {s: _metrics(out / "runs" / "tao" / f"seed-{s}").filter(pl.col("name") == "reward").sort("step")["value"]
               for s in (0, 1, 2)}
    # step 5: only seeds 0 and 1 have it; step 2: all three
    y, n = _arr(mean["y"]), _arr(mean["customdata"])
    assert y[5] == pytest.approx((rewards[0][5] + rewards[1][5]) / 2)
    assert y[2] == pytest.approx(sum(r[2] for r in rewards.values()) / 3)
    assert n[2] == 3 and n[5] == 2
    seeds = [t for t in fig["data"] if t.get("name", "").startswith("tao seed ")]
    assert len(seeds) == 3 and _arr(seeds[2]["y"]) == pytest.approx(list(rewards[2]))


def test_heldout_as_it_lands_then_the_reports_paired_differences(experiment, tmp_path, monkeypatch):
    import shutil

    from taorl.experiment.report import write_report

    out, spec = experiment
    at = app(out, monkeypatch)
    held = next(d.value for d in at.dataframe if "after step" in d.value.columns).set_index("after step")
    # tao after 6 steps: seeds 0, 1 only (0.5, 0.7): mean 0.6, s = 0.1414, half = 12.706 * 0.1414 / sqrt 2 = 1.27,
    # an interval shown clipped to a rate's range [0, 100] % (as report.md does)
    assert held.loc[6, "tao"] == "60.0 % [0.0, 100.0] (n=2)"
    # base after 3 steps: 0.4, 0.5, 0.6 -> 50.0 % ± 4.3027 * 0.1 / sqrt 3 = 24.84
    assert held.loc[3, "base"] == "50.0 % [25.2, 74.8] (n=3)"
    assert any("No report yet" in c.value for c in at.caption)

    copy = tmp_path / "mini"
    shutil.copytree(out, copy)
    spec.path = None
    write_report(spec, copy, held_out=(2, 0), figures_png=False)
    at = app(copy, monkeypatch)
    paired = next(d.value for d in at.dataframe if "comparison" in d.value.columns).set_index("comparison")
    # tao − base after 6 steps, seeds both have (0, 1): d = 0.1, 0.2 -> 15.0 % ± 12.706 * 0.0707 / sqrt 2 = 63.5
    assert paired.loc["tao − base", "Δ avg@2"] == "15.0 % [-48.5, 78.5]"
    assert paired.loc["tao − base", "per seed"] == "0: +10.0, 1: +20.0"
    assert "no difference detected" in paired.loc["tao − base", "reading"]
    held = next(d.value for d in at.dataframe if "after step" in d.value.columns).set_index("after step")
    assert held.loc[3, "base"] == "50.0 % [25.2, 74.8] (n=3)"  # now read from the report: the same
    assert any("Read from the report" in c.value for c in at.caption)
    assert math.isclose(json.loads((copy / "report" / "report.json").read_text())["paired"]["tao"]["heldout/avg@2"]["mean"],
                        0.15)


def test_experiment_picked_in_the_sidebar_of_a_runs_folder(experiment, monkeypatch):
    out, _ = experiment
    at = app(out.parents[1], monkeypatch)  # the folder holding experiments/mini
    assert at.sidebar.selectbox(key="tao_exp").value == str(out)
    assert at.title[0].value == "Experiment · mini"
    assert at.query_params["exp"] == ["experiments/mini"] or at.query_params["exp"] == "experiments/mini"


def test_layout_finds_experiments_and_paces_runs(experiment, tmp_path):
    from taorl.experiment.layout import eval_steps, experiment_runs, find_experiments, read_spec, step_time

    out, _ = experiment
    assert find_experiments(out) == [out]  # the folder itself
    assert find_experiments(out / "runs") == [out]  # its runs/ (what the runner tells users to open)
    assert find_experiments(out.parents[1]) == [out]  # a folder holding experiments/
    assert find_experiments(out / "runs" / "base" / "seed-0") == []  # a run is not an experiment
    runs = experiment_runs(out)
    assert [(r.arm, r.seed) for r in runs] == [(a, s) for a in ("base", "tao") for s in (0, 1, 2)]
    assert eval_steps(read_spec(out), 6) == [0, 3, 6] and eval_steps({"eval": {"every": 4}}, 6) == [0, 4, 6]
    # median of the last gaps: 10 -> 12 -> 15 -> 16 -> 30: gaps 2, 3, 1, 14 -> 2.5 s per step
    assert step_time([10.0, 12.0, 15.0, 16.0, 30.0]) == 2.5
    assert step_time([42.0]) == 42.0 and step_time([]) is None
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "x-seed-3-start.log").write_bytes(b"priming 1/4 probe\nLoading:  10%\rLoading: 100%\n\n")
    from taorl.experiment.layout import last_log_line

    assert last_log_line(tmp_path, "x", 3)[0] == "Loading: 100%" and last_log_line(tmp_path, "x", 4) is None
    (tmp_path / "runs" / "x" / "seed-3").mkdir(parents=True)  # no experiment.yaml: the folders say it
    assert find_experiments(tmp_path) == [tmp_path] and experiment_runs(tmp_path) == []
