"""The synthetic run keeps the invariants of a real one (checked from the Parquet files directly)."""

import numpy as np
import polars as pl
import pytest

from taorl.store import open_run
from taorl.lab.synthetic import tokenize, write_synthetic_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn") / "r"
    write_synthetic_run(d, steps=8, trajectories_per_step=48, token_trajectories=6, group_size=6, seed=3)
    return open_run(d)


def test_tables_and_published_steps(run):
    assert run.last_step == 7 and run.status == "finished"
    assert len(run.trajectories()) == 8 * 48 and len(run.groups()) == 8 * 8
    assert run.evals()["benchmark"].n_unique() == 7


def test_grpo_advantage_from_the_group_rewards(run):
    g = run.groups()
    t = run.trajectories()
    for row in g.iter_rows(named=True):
        r = np.array(row["rewards"])
        adv = t.filter((pl.col("step") == row["step"]) & (pl.col("group") == row["group"])).sort("index")["advantage"]
        want = (r - r.mean()) / (r.std(ddof=1) + 1e-6) if row["kept"] else np.zeros_like(r)
        assert np.allclose(adv.to_numpy(), want, atol=1e-5)
        assert row["pass_rate"] == pytest.approx((r >= 1).mean())
        assert row["kept"] == (row["reason"] is None)


def test_weights_are_zero_exactly_where_a_reason_says_so(run):
    t = run.trajectories()
    assert (t.filter(pl.col("reason").is_not_null())["weight"] == 0).all()  # strength s = 1
    assert (t.filter(pl.col("reason").is_null())["weight"] == 1).all()
    flagged = t.filter(pl.col("group_kept") & (pl.col("n_call") > 0) & (pl.col("n_ok") == 0)
                       & ~pl.col("truncated") & ~pl.col("void"))
    assert (flagged["reason"] == "tools_all_failed").all()
    assert (t.filter(pl.col("group_kept") & pl.col("truncated"))["reason"] == "truncated").all()
    ok = t.explode("statuses").filter(pl.col("statuses").is_in(["ok", "output_truncated"]))
    n_ok = ok.group_by("step", "traj").len()
    joined = t.join(n_ok, on=["step", "traj"], how="left").with_columns(pl.col("len").fill_null(0))
    assert (joined["len"] == joined["n_ok"]).all()


def test_token_rows_consistent(run):
    t = run.trajectories()
    tok = run.tokens()
    has = t.filter(pl.col("has_tokens"))
    assert len(has) == 8 * 6 and has["group_kept"].all()
    resp = tok.filter(pl.col("segment") != "prompt")
    n = resp.group_by("step", "traj").agg(pl.len(), (pl.col("segment") == "model").sum().alias("m"))
    j = has.join(n, on=["step", "traj"])
    assert (j["length"] == j["len"]).all() and (j["n_model_tokens"] == j["m"]).all()
    # offsets count model tokens since the last tool output, 0 right after it
    one = resp.filter((pl.col("step") == 0) & (pl.col("traj") == has["traj"][0])).sort("pos")
    k, seen = 0, False
    for seg, off in zip(one["segment"], one["offset"]):
        if seg == "tool":
            seen, k = True, 0
            assert off is None
        else:
            assert off == (k if seen else None)
            k += 1
    # shaped advantage = Â (1 + a g Ĥ) with Ĥ over the trajectory's model tokens, a = 0.01
    m = tok.filter(pl.col("segment") == "model")
    for (step, traj), grp in m.group_by("step", "traj"):
        H = grp["entropy"].to_numpy().astype(float)
        h = (H - H.mean()) / (H.std() + 1e-8)
        want = grp["advantage"].to_numpy() * (1 + 0.01 * grp["gate"].to_numpy() * h)
        assert np.allclose(grp["shaped_advantage"].to_numpy(), want, atol=1e-5)
    # entropy spike right after a tool return
    after0 = m.filter(pl.col("offset") == 0)["entropy"].mean()
    far = m.filter(pl.col("offset") > 40)["entropy"].mean()
    assert after0 > 2 * far


def test_metrics_match_the_tables(run):
    m = run.metrics()
    t = run.trajectories()
    per = t.group_by("step").agg(pl.col("reward").mean().alias("r"), pl.col("truncated").mean().alias("tr")).sort("step")
    assert np.allclose(m["reward"].to_numpy(), per["r"].to_numpy())
    assert np.allclose(m["completions/clipped_ratio"].to_numpy(), per["tr"].to_numpy())
    g = run.groups().group_by("step").agg(pl.col("kept").sum()).sort("step")
    assert np.allclose(m["tao/groups_kept"].to_numpy(), g["kept"].to_numpy())
    assert (np.diff(m["wall_s"].to_numpy()) > 0).all()


def test_tokenize_keeps_all_text():
    s = "Let me compute 12345 * 7.\n```python\nprint(1)\n```"
    assert "".join(tokenize(s)) == s


def test_bad_arguments(tmp_path):
    from taorl.errors import UserError

    with pytest.raises(UserError, match="multiple of group_size"):
        write_synthetic_run(tmp_path / "x", steps=2, trajectories_per_step=10, group_size=4)


def test_synth_cli(tmp_path, capsys):
    from taorl.cli import main

    assert main(["synth", str(tmp_path / "c"), "--steps", "2", "--trajectories", "16"]) == 0
    assert str(tmp_path / "c") in capsys.readouterr().out
    assert open_run(tmp_path / "c").last_step == 1
    assert main(["synth", str(tmp_path / "c")]) == 2  # already a run: one-line error
