"""Every dashboard page under streamlit's AppTest on synthetic runs: no exception, and the key
numbers shown equal those computed here straight from the Parquet files with polars."""

import io
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from taorl.lab.synthetic import write_synthetic_run
from taorl.viz import ema

APP = Path(__file__).parents[1] / "app" / "Home.py"
PAGES = ["views/1_overview.py", "views/2_curves.py", "views/3_groups.py", "views/4_boundaries.py",
         "views/5_tokens.py", "views/6_browser.py", "views/7_group.py", "views/8_tools.py",
         "views/9_benchmarks.py", "views/10_ablation.py"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_synthetic_run(root / "on", steps=10, trajectories_per_step=32, token_trajectories=8, seed=0)
    write_synthetic_run(root / "off", steps=10, trajectories_per_step=32, token_trajectories=8, seed=1,
                        shaping=False)
    return root


def app(root: Path, monkeypatch, page: str | None = None, params: dict | None = None) -> AppTest:
    monkeypatch.setenv("TAORL_RUNS_DIR", str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    if page:
        at.switch_page(page)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.run()
    return at


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def parquet(root: Path, table: str) -> pl.DataFrame:
    """Read a table directly (independent of taorl.store): step from the partition name."""
    files = sorted(root.glob(f"{table}/step=*/part-*.parquet"))
    return pl.concat([pl.read_parquet(f).with_columns(step=pl.lit(int(f.parent.name[5:]))) for f in files])


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(runs, monkeypatch, page):
    at = app(runs, monkeypatch, page)
    no_errors(at)
    assert at.title, f"{page} shows no title"


def test_overview_numbers_match_parquet(runs, monkeypatch):
    at = app(runs, monkeypatch, "views/1_overview.py", {"run": "on"})
    no_errors(at)
    m = parquet(runs / "on", "metrics")
    last = int(m["step"].max())
    at_last = dict(m.filter(pl.col("step") == last).select("name", "value").iter_rows())
    assert metric(at, "step") == str(last) == "9"
    assert metric(at, "reward") == f"{at_last['reward']:.3f}"
    assert metric(at, "accuracy") == f"{at_last['accuracy']:.1%}"
    assert metric(at, "entropy") == f"{at_last['entropy']:.3f}"
    # dropped share from the groups table itself: not kept / all groups of the last step
    g = parquet(runs / "on", "groups").filter(pl.col("step") == last)
    assert metric(at, "groups dropped") == f"{(~g['kept']).sum() / len(g):.0%}"
    assert metric(at, "tokens/s") == f"{at_last['perf/tokens_per_s']:,.0f}"


def test_overview_of_the_other_run_via_query_param(runs, monkeypatch):
    at = app(runs, monkeypatch, "views/1_overview.py", {"run": "off"})
    no_errors(at)
    m = parquet(runs / "off", "metrics")
    r = m.filter((pl.col("step") == 9) & (pl.col("name") == "reward"))["value"][0]
    assert metric(at, "reward") == f"{r:.3f}"
    assert "off" in at.title[0].value


def test_tool_page_counts_match_parquet(runs, monkeypatch):
    at = app(runs, monkeypatch, "views/8_tools.py", {"run": "on"})
    no_errors(at)
    t = parquet(runs / "on", "trajectories")
    statuses = t["statuses"].explode().drop_nulls()
    ok = statuses.is_in(["ok", "output_truncated"]).sum()
    assert metric(at, "tool calls") == f"{len(statuses):,}"
    assert metric(at, "success rate") == f"{ok / len(statuses):.1%}"
    assert metric(at, "calls / rollout") == f"{len(statuses) / len(t):.2f}"


def test_token_page_deep_link(runs, monkeypatch):
    t = parquet(runs / "on", "trajectories").filter(pl.col("has_tokens") & (pl.col("step") == 3)).sort("traj")
    traj = int(t["traj"][1])
    row = t.row(1, named=True)
    at = app(runs, monkeypatch, "views/5_tokens.py", {"run": "on", "step": "3", "traj": str(traj)})
    no_errors(at)
    assert at.selectbox(key="tok_step").value == 3
    assert at.selectbox(key="tok_traj").value == traj
    assert metric(at, "advantage Â") == f"{row['advantage']:+.3f}"
    html = "".join(h.proto.body for h in at.get("html"))
    tok = parquet(runs / "on", "tokens").filter((pl.col("step") == 3) & (pl.col("traj") == traj))
    n_model = (tok["segment"] == "model").sum()
    assert html.count('class="t" style="background:') == n_model  # every model token coloured
    assert '<span class="tool">' in html or (tok["segment"] == "tool").sum() == 0
    assert metric(at, "trained") == ("yes" if row["weight"] > 0 else "no")
    # a weight's reason is shown whole (a metric cut names such as group_all_correct)
    masked = parquet(runs / "on", "trajectories").filter(pl.col("has_tokens") & pl.col("reason").is_not_null()).row(
        0, named=True)
    at = app(runs, monkeypatch, "views/5_tokens.py", {"run": "on", "step": str(masked["step"]),
                                                      "traj": str(masked["traj"])})
    no_errors(at)
    assert any(f"weight reason: `{masked['reason']}`" in c.value for c in at.caption)


def test_browser_filters_and_prev_next(runs, monkeypatch):
    at = app(runs, monkeypatch, "views/6_browser.py", {"run": "on"})
    no_errors(at)
    at.slider(key="br_steps").set_value((0, 9)).run()
    at.radio(key="br_kept").set_value("masked").run()
    t = parquet(runs / "on", "trajectories")
    n = (t["weight"] == 0).sum()
    assert any(f"**{n:,}** of {len(t):,}" in c.value for c in at.caption)
    assert "trajectory **1**" in at.markdown[-1].value or any("trajectory **1** of" in m.value for m in at.markdown)
    at.button(key="br_next").click().run()
    no_errors(at)
    assert any(f"trajectory **2** of {n}" in m.value for m in at.markdown)


def test_group_page_shows_divergence(runs, monkeypatch):
    at = app(runs, monkeypatch, "views/7_group.py", {"run": "on", "step": "2", "group": "1"})
    no_errors(at)
    texts = parquet(runs / "on", "trajectories").filter((pl.col("step") == 2) & (pl.col("group") == 1)).sort("index")["text"]
    k = 0
    while all(len(s) > k for s in texts) and len({s[k] for s in texts}) == 1:
        k += 1
    assert any(f"share their first **{k}** characters" in c.value for c in at.caption)


def test_benchmark_best_checkpoint(runs, monkeypatch):
    at = app(runs, monkeypatch, "views/9_benchmarks.py", {"run": "on"})
    no_errors(at)
    e = parquet(runs / "on", "evals").filter(pl.col("metric") == "avg@16")
    per = e.group_by("step").agg(pl.col("value").mean()).sort("value", descending=True)
    df = at.dataframe[0].value
    assert int(df["best step"][0]) == int(per["step"][0])
    assert abs(float(df["best mean avg@16"][0]) - float(per["value"][0])) < 1e-12


def test_ablation_config_diff(runs, monkeypatch):
    at = app(runs, monkeypatch, "views/10_ablation.py", {"run": "on"})
    at.multiselect(key="tao_compare").set_value([str(runs / "off")]).run()
    no_errors(at)
    diff = at.dataframe[0].value
    keys = set(diff["key"])
    assert "algo.shaping.enabled" in keys and "train.seed" in keys
    assert "rollout.group_size" not in keys  # only differences


# ----------------------------------------------------------------------------------- edge cases
def test_no_runs_yet(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    no_errors(at)
    assert any("No runs" in i.value for i in at.info)


def test_empty_run_before_its_first_step(tmp_path, monkeypatch):
    from taorl.store import RunWriter

    RunWriter(tmp_path / "fresh", {"algo": {}})
    for page in PAGES:
        at = app(tmp_path, monkeypatch, page)
        no_errors(at)
        assert at.info, page


def test_newer_schema_is_a_message(runs, tmp_path, monkeypatch):
    shutil.copytree(runs / "on", tmp_path / "future")
    mf = tmp_path / "future" / "manifest.json"
    m = json.loads(mf.read_text())
    m["schema_version"] = 99
    mf.write_text(json.dumps(m))
    at = app(tmp_path, monkeypatch, "views/1_overview.py")
    no_errors(at)
    assert any("newer" in w.value for w in [*at.warning, *at.info])


def test_half_written_dir_is_a_message(tmp_path, monkeypatch):
    (tmp_path / "half" / "metrics" / "step=000000").mkdir(parents=True)  # no manifest yet
    (tmp_path / "ok").mkdir()
    at = app(tmp_path, monkeypatch, "views/2_curves.py")
    no_errors(at)


def test_run_deleted_while_open(runs, tmp_path, monkeypatch):
    shutil.copytree(runs / "on", tmp_path / "gone")
    at = app(tmp_path, monkeypatch, "views/1_overview.py")
    no_errors(at)
    shutil.rmtree(tmp_path / "gone")
    at.run()
    no_errors(at)
    assert at.warning or at.info


# ------------------------------------------------------------------------------ synthetic banner
@pytest.mark.parametrize("page", PAGES)
def test_synthetic_runs_carry_a_banner(runs, monkeypatch, page):
    at = app(runs, monkeypatch, page, {"run": "on"})
    no_errors(at)
    assert any("Synthetic data" in w.value for w in at.warning), page


def test_no_banner_on_a_real_run(runs, tmp_path, monkeypatch):
    shutil.copytree(runs / "on", tmp_path / "real")
    mf = tmp_path / "real" / "manifest.json"
    m = json.loads(mf.read_text())
    m.pop("synthetic", None)
    m["extra"] = {k: v for k, v in (m.get("extra") or {}).items() if k != "synthetic"}
    mf.write_text(json.dumps(m))
    at = app(tmp_path, monkeypatch, "views/2_curves.py")
    no_errors(at)
    assert not any("Synthetic data" in w.value for w in at.warning)


# --------------------------------------------------------------------------- experiment reports
def _report(root: Path) -> Path:
    """An experiment report written from held-out files made here (three arms, three seeds)."""
    from taorl.experiment.report import write_report
    from taorl.experiment.spec import heldout_file, load_experiment

    exp = root / "exp.yaml"
    exp.write_text(f"name: hand\nconfig: {APP.parents[1] / 'configs' / 'tiny.yaml'}\nseeds: [0, 1, 2]\n"
                   "baseline: base\narms: {base: [algo.shaping.enabled=false], filt: [algo.shaping.enabled=false], tao: []}\n"
                   "eval: {every: 5, problems: 2, n: 2, k: [2]}\nlabel: hand-made numbers\n")
    spec = load_experiment(exp, steps=5)
    out = root / "experiments" / "hand"
    acc = {"base": [0.4, 0.5, 0.6], "filt": [0.45, 0.6, 0.6], "tao": [0.5, 0.7, 0.6]}
    for arm, vals in acc.items():
        for seed, v in enumerate(vals):
            for step in (0, 5):
                f = heldout_file(out, arm, seed, step)
                f.parent.mkdir(parents=True, exist_ok=True)
                pl.DataFrame({"arm": arm, "seed": seed, "step": step, "metric": ["heldout/avg@2"],
                              "value": [v if step else 0.3]}).write_parquet(f)
    write_report(spec, out, held_out=(2, 0), figures_png=False)
    return out


def test_ablation_page_reads_an_experiment_report(runs, tmp_path, monkeypatch):
    shutil.copytree(runs / "on", tmp_path / "on")
    _report(tmp_path)
    at = app(tmp_path, monkeypatch, "views/10_ablation.py")
    no_errors(at)
    assert any("hand-made numbers" in w.value for w in at.warning)
    held, paired = at.dataframe[0].value, at.dataframe[1].value
    # tao: mean 0.6, s 0.1, half = 4.3027 * 0.1 / sqrt(3) = 0.2484 -> "60.0 % [35.2, 84.8]"
    assert held.set_index("arm").loc["tao", "avg@2"] == "60.0 % [35.2, 84.8]"
    # paired d = 0.1, 0.2, 0.0: the same interval shifted to 10 %
    assert paired.set_index("comparison").loc["tao − base", "Δ avg@2"] == "10.0 % [-14.8, 34.8]"
    # the other arms pairwise: tao − filt, d = 0.05, 0.1, 0.0 -> 5 %, half 4.3027 * 0.05 / sqrt(3) = 12.4 %
    assert paired.set_index("comparison").loc["tao − filt", "Δ avg@2"] == "5.0 % [-7.4, 17.4]"
    md = (tmp_path / "experiments" / "hand" / "report" / "report.md").read_text()
    assert "## The other arms, pairwise, after 5 steps" in md
    assert "| tao − filt | 5.0 % [-7.4, 17.4] | 0: +5.0, 1: +10.0, 2: +0.0 | no difference detected" in md
    assert len(at.get("plotly_chart")) >= 3


def test_sidebar_names_the_runs_folder_as_a_person_reads_it(runs, monkeypatch):
    monkeypatch.chdir(runs.parent)  # inside the working directory: relative
    at = app(runs, monkeypatch)
    no_errors(at)
    assert f"runs: `{runs.name}`" in [c.value for c in at.sidebar.caption]
    monkeypatch.chdir("/")
    monkeypatch.setenv("HOME", str(runs.parent))  # outside it, under home: ~/...
    at = app(runs, monkeypatch)
    assert f"runs: `~/{runs.name}`" in [c.value for c in at.sidebar.caption]


# ------------------------------------------------------------------- health cards and bad files
def _zero_reward_run(path: Path, steps: int = 3) -> None:
    """A run whose every rollout got reward 0 and whose every group was dropped, first for being
    truncated (too_few_untruncated), as the filter checks that before the rewards' spread."""
    from taorl.store import RunWriter
    from taorl.store.bench import fake_tables
    from taorl.train.metrics import filter_metrics

    w = RunWriter(path, {"algo": {}})
    for s in range(steps):
        t = fake_tables(s, 2)
        groups = t["groups"].with_columns(rewards=pl.lit([0.0, 0.0, 0.0, 0.0]), pass_rate=pl.lit(0.0),
                                          reward_std=pl.lit(0.0), n_untruncated=pl.lit(0, pl.Int32),
                                          kept=pl.lit(False), reason=pl.lit("too_few_untruncated"))
        m = {"reward": 0.0, "accuracy": 0.0, "tools/success_rate": 0.0, "tools/call_frequency": 0.0,
             **filter_metrics(["too_few_untruncated"] * 2, [None] * 4)}
        w.write_step(s, metrics=m, groups=groups, trajectories=t["trajectories"].with_columns(reward=pl.lit(0.0)))
    w.finish()


def test_health_cards_agree_on_a_zero_reward_run(tmp_path, monkeypatch):
    _zero_reward_run(tmp_path / "zero")
    at = app(tmp_path, monkeypatch, "views/1_overview.py")
    no_errors(at)
    assert metric(at, "groups dropped") == "100%"
    cards = " ".join(m.value for m in at.markdown)
    # 2 groups x 3 steps, every reward 0: all-wrong, whatever the filter dropped them for
    assert "100% of groups (6 of 6) got the same reward in every rollout (0 all-correct, 6 all-wrong)" in cards
    assert " 0% of groups" not in cards and "\n0% of groups" not in cards
    assert "no tool calls" in cards and "of tool calls failed" not in cards  # success_rate 0 with no calls
    assert "too few untruncated 2" in next(m.help for m in at.metric if m.label == "groups dropped")


def test_unreadable_step_is_named(runs, tmp_path, monkeypatch):
    shutil.copytree(runs / "on", tmp_path / "cut")
    part = tmp_path / "cut" / "metrics" / "step=000000" / "part-0.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated
    at = app(tmp_path, monkeypatch, "views/1_overview.py")
    no_errors(at)
    warn = next(w.value for w in at.warning if "Unreadable" in w.value)
    assert "step 0 `metrics` (not a complete parquet file: `metrics/step=000000/part-0.parquet`)" in warn
    at = app(tmp_path, monkeypatch, "views/2_curves.py")  # every page says it
    assert any("step 0 `metrics`" in w.value for w in at.warning)


def test_entropy_page_draws_below_the_fold_on_demand(runs, monkeypatch):
    at = app(runs, monkeypatch, "views/4_boundaries.py", {"run": "on"})
    no_errors(at)
    # the profile, in Vega-Lite (its code loads in a third of plotly's time); the heatmap and the
    # post-tool figure wait until opened
    assert len(at.get("vega_lite_chart")) == 1 and len(at.get("plotly_chart")) == 0
    at.session_state["b_heat_open"] = True
    at.session_state["b_post_open"] = True
    at.run()
    no_errors(at)
    assert len(at.get("vega_lite_chart")) == 1 and len(at.get("plotly_chart")) == 2


def test_overview_curves_are_the_runs_metrics(runs, monkeypatch):
    """One Vega-Lite panel per headline metric; its data (moved by Streamlit into an Arrow table) is
    the run's metric, EMA-smoothed, step by step."""
    at = app(runs, monkeypatch, "views/1_overview.py", {"run": "on"})
    no_errors(at)
    charts = at.get("vega_lite_chart")
    titles = [json.loads(c.proto.spec)["title"]["text"] for c in charts]
    assert titles == ["reward (mean)", "entropy (nats/token)", "post-tool entropy (nats/token)", "tool success rate"]
    data = pl.read_ipc_stream(io.BytesIO(charts[0].proto.data.data))
    m = parquet(runs / "on", "metrics").filter(pl.col("name") == "reward").sort("step")
    assert data["x"].to_list() == m["step"].cast(pl.Float64).to_list()
    assert data["raw"].to_list() == pytest.approx(m["value"].to_list(), abs=1e-6)
    assert data["smooth"].to_list() == pytest.approx(list(ema(m["value"].to_list(), 0.6)), abs=1e-6)


def test_corrupt_step_is_named(runs, tmp_path, monkeypatch):
    shutil.copytree(runs / "on", tmp_path / "bad")
    part = tmp_path / "bad" / "metrics" / "step=000002" / "part-0.parquet"
    data = bytearray(part.read_bytes())
    data[4:-8] = bytes(len(data) - 12)  # 'PAR1' at both ends and a footer length, zeros between: does not decode
    part.write_bytes(bytes(data))
    at = app(tmp_path, monkeypatch, "views/2_curves.py")
    no_errors(at)
    warn = next(w.value for w in at.warning if "Unreadable" in w.value)
    assert "step 2 `metrics`" in warn and "metrics/step=000002/part-0.parquet" in warn


def test_ablation_page_shows_a_dose_response(runs, tmp_path, monkeypatch):
    """The published dose-response report (docs/results/cpu-smollm2-interpret, real runs): the dose
    table, its figures and the plain-words reading, read from report.json, not recomputed."""
    src = Path(__file__).resolve().parents[1] / "docs" / "results" / "cpu-smollm2-interpret"
    shutil.copytree(runs / "on", tmp_path / "on")
    shutil.copytree(src, tmp_path / "experiments" / "interpret" / "report")
    at = app(tmp_path, monkeypatch, "views/10_ablation.py")
    no_errors(at)
    dose = next(d.value for d in at.dataframe if "Δ vs a = 0" in d.value.columns).set_index("arm")
    assert list(dose["a"]) == [0.0, 0.01, 0.1, 0.3]
    # filters-only per seed 14/24, 16/24, 13/24 = 0.5833, 0.6667, 0.5417: mean 0.5972, s 0.06365,
    # half 4.3027 * s / sqrt(3) = 0.1581
    assert dose.loc["filters-only", "held-out"] == "59.7 % [43.9, 75.5]"
    assert dose.loc["filters-only", "Δ vs a = 0"] == "–"
    # tao-rl - filters-only per seed 0, -1/24, +1/24: mean 0, s 0.04167, half 4.3027 * s / sqrt(3) = 10.35 %
    assert dose.loc["tao-rl", "Δ vs a = 0"] == "0.0 % [-10.4, 10.4]"
    assert any("reading.md" in e.label for e in at.expander)
    assert len(at.get("plotly_chart")) >= 6  # heldout, reward, paired + dose, post_tool_entropy, calls
