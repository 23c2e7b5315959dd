"""End to end on the tiny model: format priming (`taorl sft`) then 2 RL steps with G=4 fill a complete,
consistent run directory.

The tiny random model is first primed on the same few procedural problems it is then trained on,
so its rollouts contain real code blocks, real sandbox observations and sometimes the right
\\boxed answer: groups with mixed outcomes, post-tool gates and masks all occur for real.
"""

import json
from pathlib import Path

import polars as pl
import pytest

from taorl.config import load_config
from taorl.store.schema import TABLES

ROOT = Path(__file__).parents[1]
N_PROBLEMS = 4
pytestmark = pytest.mark.usefixtures("one_thread")


def read_table(run: Path, table: str) -> pl.DataFrame:
    last = json.loads((run / "manifest.json").read_text())["last_step"]
    files = list((run / table).glob("step=*/*.parquet"))
    if not files:
        return pl.DataFrame()
    return (pl.scan_parquet(str(run / table / "**" / "*.parquet"), hive_partitioning=True)
            .filter(pl.col("step") <= last).collect())


@pytest.fixture(scope="module")
def primed(tmp_path_factory):
    """Tiny model primed on N_PROBLEMS demonstrations; returns (weights dir, problems file, report)."""
    from taorl.data import write_problems
    from taorl.data.procedural import generate
    from taorl.train.sft import DEMO_SEED_OFFSET, run_sft

    d = tmp_path_factory.mktemp("primed")
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [
        f"sft.n_examples={N_PROBLEMS}", "sft.steps=120", "sft.lr=1e-2", "sft.batch_size=4",
        "sft.probe_problems=2", "rollout.group_size=2", "rollout.max_turn_tokens=40",
        "rollout.max_response_tokens=96", "model.lora.enabled=false", f"logging.runs_dir={d}"])
    report = run_sft(cfg, d / "weights")
    problems = generate(N_PROBLEMS, cfg.sft.difficulty, cfg.data.seed + DEMO_SEED_OFFSET)
    write_problems(problems, d / "problems.jsonl")
    return d / "weights", d / "problems.jsonl", report


def test_sft_report(primed):
    weights, _, _report = primed
    saved = json.loads((weights / "sft_report.json").read_text())
    assert saved["before"].keys() == saved["after"].keys()
    for k in ("void_rate", "tool_call_rate", "tool_success_rate", "accuracy"):
        assert 0.0 <= saved["after"][k] <= 1.0
    assert saved["loss_last"] < 0.5 * saved["loss_first"]  # it learned the demonstrations
    # a random model never writes a code block; the primed one does
    assert saved["before"]["tool_call_rate"] < saved["after"]["tool_call_rate"]
    assert (weights / "config.json").is_file() and (weights / "tokenizer.json").is_file()


@pytest.fixture(scope="module")
def run(primed, tmp_path_factory):
    from taorl.train.trainer import Trainer

    weights, problems, _report = primed
    out = tmp_path_factory.mktemp("run") / "run"
    cfg = load_config(ROOT / "configs" / "tiny.yaml", [
        f"train.init_from={weights}", f"data.train={problems}", "model.lora.enabled=false",
        "rollout.batch_prompts=2", "rollout.oversample=2.0", "rollout.group_size=4", "train.steps=2",
        "train.checkpoint_every=1", "rollout.max_turn_tokens=40", "rollout.max_response_tokens=96",
        "train.lr=1e-4"])
    Trainer(cfg, out).run()
    return out, cfg


def test_every_table_is_complete(run):
    out, _cfg = run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["last_step"] == 1 and manifest["status"] == "finished"
    for table in ("metrics", "groups", "trajectories", "tokens"):
        df = read_table(out, table)
        assert df.height > 0, table
        assert set(TABLES[table]) <= set(df.columns), table
        assert sorted(df["step"].unique().to_list()) == [0, 1], table
    groups = read_table(out, "groups")
    assert groups.group_by("step").len()["len"].to_list() == [4, 4]  # ceil(2 * 2.0) prompts per step
    trajs = read_table(out, "trajectories")
    assert trajs.group_by("step").len()["len"].to_list() == [16, 16]  # x G=4
    assert (out / "checkpoints" / "step=000001" / "state.json").is_file()


def test_metrics_present(run):
    out, _ = run
    names = set(read_table(out, "metrics")["name"].to_list())
    needed = {"reward", "accuracy", "entropy", "loss", "grad_norm", "lr", "tools/call_frequency",
              "tools/success_rate", "completions/mean_length", "completions/clipped_ratio",
              "tao/groups_kept", "tao/void_rate", "perf/step_s", "perf/gen_s", "perf/tool_s",
              "perf/reward_s", "perf/train_s", "perf/log_s", "perf/tokens_per_s",
              "sampling/logp_diff_mean", "sampling/logp_diff_max"}
    needed |= {f"tao/groups_dropped/{r}" for r in ("group_all_correct", "group_all_wrong", "too_few_untruncated")}
    needed |= {f"tao/traj_masked/{r}" for r in ("tools_all_failed", "void_turn", "truncated")}
    assert needed <= names, needed - names


def test_groups_trajectories_tokens_consistent(run):
    out, _cfg = run
    groups = read_table(out, "groups")
    trajs = read_table(out, "trajectories")
    tokens = read_table(out, "tokens")
    # metrics agree with the tables
    m = read_table(out, "metrics").pivot(on="name", index="step", values="value").sort("step")
    per_step = trajs.group_by("step").agg(pl.col("reward").mean(), pl.col("n_call").mean(),
                                          pl.col("void").mean()).sort("step")
    assert m["reward"].to_list() == pytest.approx(per_step["reward"].to_list())
    assert m["tools/call_frequency"].to_list() == pytest.approx(per_step["n_call"].to_list())
    kept = groups.group_by("step").agg(pl.col("kept").sum()).sort("step")["kept"].to_list()
    assert m["tao/groups_kept"].to_list() == pytest.approx(kept)
    # dropped groups: reason set, weights and advantages 0; kept groups: no reason
    j = trajs.join(groups.select("step", "group", "kept", pl.col("reason").alias("greason")), on=["step", "group"])
    dropped = j.filter(~pl.col("kept"))
    assert dropped["greason"].null_count() == 0
    assert (dropped["weight"] == 0).all() and (dropped["advantage"] == 0).all()
    assert (dropped["reason"] == dropped["greason"]).all()
    keptj = j.filter(pl.col("kept"))
    # weight 0 exactly where a mask reason says so (strength s=1, void and overlong masks on)
    assert ((keptj["weight"] == 0) == keptj["reason"].is_not_null()).all()
    flagged = keptj.filter(pl.col("reason") == "tools_all_failed")
    assert ((flagged["n_call"] > 0) & (flagged["n_ok"] == 0)).all()
    assert (keptj.filter(pl.col("reason") == "void_turn")["void"]).all()
    # group pass rate = mean of its rollouts' rewards
    pr = trajs.group_by("step", "group").agg(pl.col("reward").mean().alias("pr"))
    chk = groups.join(pr, on=["step", "group"])
    assert chk["pass_rate"].to_list() == pytest.approx(chk["pr"].to_list())
    # token rows: per trajectory, prompt + response rows; response rows sum to the trajectory length
    resp = tokens.filter(pl.col("segment") != "prompt").group_by("step", "traj").len()
    with_tok = trajs.filter(pl.col("has_tokens")).join(resp, on=["step", "traj"], how="left")
    assert with_tok.height > 0 and (with_tok["len"] == with_tok["length"]).all()
    model_rows = tokens.filter(pl.col("segment") == "model").group_by("step", "traj").len()
    mm = trajs.join(model_rows, on=["step", "traj"])
    assert (mm["len"] == mm["n_model_tokens"]).all()
    # positions are contiguous from 0
    pos = tokens.group_by("step", "traj").agg(pl.col("pos").min().alias("a"), pl.col("pos").max().alias("b"),
                                              pl.len().alias("n"))
    assert (pos["a"] == 0).all() and (pos["b"] == pos["n"] - 1).all()


def test_gates_only_after_code_blocks(run):
    out, cfg = run
    assert cfg.algo.shaping.gate == "post_tool" and cfg.algo.shaping.window is None
    trajs = read_table(out, "trajectories")
    tokens = read_table(out, "tokens")
    assert trajs["n_call"].sum() > 0, "the primed model should call the tool"
    # turn k+1 is gated iff turn k ran a code block; tool/prompt tokens never
    calls = trajs.select("step", "traj", "n_call")
    tok = tokens.join(calls, on=["step", "traj"])
    assert (tok.filter(pl.col("segment") != "model")["gate"] == 0).all()
    model = tok.filter(pl.col("segment") == "model")
    first_turn = model.filter(pl.col("turn") == 0)
    assert (first_turn["gate"] == 0).all()
    # a model token with a tool observation before it in the same trajectory: gated, offset set
    after_tool = model.filter(pl.col("offset").is_not_null())
    before_tool = model.filter(pl.col("offset").is_null())
    assert (before_tool["gate"] == 0).all()
    assert after_tool.height > 0 and (after_tool["gate"] == 1).all()
    # offsets count model tokens from 0 after each observation
    first = after_tool.group_by("step", "traj", "turn").agg(pl.col("offset").min())
    assert (first["offset"] == 0).all()
    # weights on tokens: 0 on prompt/tool rows, the trajectory weight on model rows
    w = model.join(trajs.select("step", "traj", pl.col("weight").alias("tw")), on=["step", "traj"])
    assert (w["weight"] == w["tw"]).all()
    ent = model.filter(pl.col("entropy").is_not_null())
    assert ent.height > 0 and (ent["entropy"] >= 0).all()
