"""taorl.viz figures/token HTML and taorl.store.queries on small hand-made frames."""

import math

import polars as pl
import pytest

from taorl.store.queries import (
    best_checkpoint,
    boundary_offsets,
    boundary_profile,
    boundary_stats,
    filter_trajectories,
    first_divergence,
    health_flags,
    step_buckets,
)
from taorl.viz import boundary_profile_figure, curves_figure, ema, token_html


def test_ema_by_hand():
    # w = 0.5: m1 = 0.5·2 = 1 -> 1/(1-0.5) = 2; m2 = 0.5·1 + 0.5·4 = 2.5 -> 2.5/0.75 = 3.333…
    out = ema([2.0, None, 4.0], 0.5)
    assert out[0] == 2.0 and math.isnan(out[1]) and out[2] == pytest.approx(10 / 3)
    assert list(ema([1.0, 5.0], 0.0)) == [1.0, 5.0]


def tokens_frame():
    # prompt, m m [tool tool] m m m [tool] m
    seg = ["prompt", "model", "model", "tool", "tool", "model", "model", "model", "tool", "model"]
    off = [None, None, None, None, None, 0, 1, 2, None, 0]
    H = [None, 0.1, 0.2, None, None, 2.0, 1.0, 0.5, None, 3.0]
    return pl.DataFrame({"step": [0] * 10, "traj": [0] * 10, "pos": list(range(10)), "segment": seg,
                         "offset": off, "entropy": H, "token": list("abcdefghij"), "token_id": list(range(10))},
                        schema_overrides={"offset": pl.Int32, "entropy": pl.Float32})


def test_boundary_offsets_worked_example():
    b = boundary_offsets(tokens_frame())
    assert b["pos"].to_list() == [1, 2, 5, 6, 7, 9]
    assert b["before"].to_list() == [-2, -1, -3, -2, -1, None]
    assert b["after"].to_list() == [None, None, 0, 1, 2, 0]
    s = boundary_stats(tokens_frame(), before=2, after=2)
    got = {r["rel"]: (r["n"], r["s"]) for r in s.iter_rows(named=True)}
    # rel 0: H 2.0 and 3.0; rel 1: 1.0; rel -1: 0.2 and 0.5; rel -2: 0.1 and 1.0 (rel -3 out of window)
    assert got[0] == (2, pytest.approx(5.0)) and got[1] == (1, pytest.approx(1.0))
    assert got[-1] == (2, pytest.approx(0.7, abs=1e-6)) and got[-2] == (2, pytest.approx(1.1, abs=1e-6))
    assert set(got) == {-2, -1, 0, 1}
    prof = boundary_profile(s, buckets=1)
    row = prof.filter(pl.col("rel") == 0).row(0, named=True)
    assert row["mean"] == pytest.approx(2.5) and row["std"] == pytest.approx(0.5)
    assert row["hi"] - row["mean"] == pytest.approx(1.96 * 0.5 / math.sqrt(2))
    fig = boundary_profile_figure({"a": prof}, {"a": (True, 4)})
    assert len(fig.layout.shapes) == 2  # shaded window + tool-output line


def test_step_buckets_cover_all_steps():
    assert step_buckets(0, 9, 4) == [(0, 1), (2, 4), (5, 6), (7, 9)]
    assert step_buckets(3, 4, 4) == [(3, 3), (4, 4)]


def test_first_divergence_and_browser_filters():
    assert first_divergence(["abcX", "abcY", "abZ"]) == 2
    df = pl.DataFrame({"step": [0, 0, 1], "reward": [1.0, 0.0, 0.0], "weight": [1.0, 0.0, 0.0],
                       "reason": [None, "truncated", "group_all_wrong"], "n_call": [1, 0, 2],
                       "statuses": [["ok"], [], ["timeout", "ok"]], "length": [10, 50, 20],
                       "text": ["Foo", "bar", "BAZ foo"]})
    assert len(filter_trajectories(df, kept="masked")) == 2
    assert filter_trajectories(df, reasons=["none", "truncated"])["length"].to_list() == [10, 50]
    assert filter_trajectories(df, statuses=["timeout"])["step"].to_list() == [1]
    assert len(filter_trajectories(df, text="foo")) == 2


def test_token_html_escapes_and_boxes_tool_output():
    df = tokens_frame().with_columns(
        token=pl.Series(["<s>", "a<b", " &", "\nout", "put", "x\n", "y", "z", "t", "w"]),
        turn=pl.lit(0), logprob_sample=pl.lit(None, pl.Float32), logprob_train=pl.lit(-0.1, pl.Float32),
        advantage=pl.lit(0.5, pl.Float32), shaped_advantage=pl.lit(0.5, pl.Float32),
        gate=pl.lit(0.0, pl.Float32), weight=pl.lit(1.0, pl.Float32))
    html = token_html(df, "entropy", (0.0, 3.0))
    assert "a&lt;b" in html and "<s>" not in html and "&amp;" in html
    assert html.count('<span class="tool">') == 2  # two tool outputs, each boxed once
    assert "↵" in html and "·" in html
    assert html.count('class="t" style="background:') == 6  # the model tokens


def test_health_flags_and_best_checkpoint():
    m = pl.DataFrame({"step": list(range(20)), "entropy": [1.0] * 10 + [0.1] * 10,
                      "tools/success_rate": [0.2] * 20, "tao/groups_kept": [1.0] * 20,
                      "tao/groups_dropped/group_all_correct": [9.0] * 20})
    flags = {f.name: f for f in health_flags(m)}
    assert not flags["entropy collapse"].ok and flags["entropy collapse"].value == pytest.approx(0.1)
    assert not flags["tool failures"].ok and not flags["zero-variance groups"].ok
    assert flags["truncation"].ok and flags["truncation"].value is None
    ev = pl.DataFrame({"step": [0, 0, 5, 5], "benchmark": ["a", "b", "a", "b"], "metric": ["avg@16"] * 4,
                       "value": [0.1, 0.3, 0.4, 0.2]})
    assert best_checkpoint(ev) == (5, pytest.approx(0.3))
    fig = curves_figure({"r": m}, ["entropy"], smoothing=0.5)
    assert len(fig.data) == 2


def test_long_curves_are_thinned_after_smoothing():
    import numpy as np

    from taorl.viz.figures import thin

    assert list(thin(5, 10)) == [0, 1, 2, 3, 4]
    idx = thin(1000, 600)
    assert len(idx) <= 600 and idx[0] == 0 and idx[-1] == 999 and (np.diff(idx) >= 1).all()
    ys = [float((i * 37) % 11) for i in range(1000)]
    m = pl.DataFrame({"step": list(range(1000)), "wall_s": [float(i) for i in range(1000)], "entropy": ys})
    fig = curves_figure({"r": m}, ["entropy"], smoothing=0.5, max_points=600)
    raw, smooth = fig.data
    assert len(raw.x) == len(idx) and list(raw.x) == [float(i) for i in idx]
    # the smoothed line is the EMA over all 1000 steps, sampled at the kept steps (not an EMA of the kept ones)
    np.testing.assert_allclose(smooth.y, ema(ys, 0.5)[idx])


def test_health_cards_read_the_groups_rewards_and_weight_tool_steps_by_calls():
    from taorl.store.queries import same_reward_groups

    # step 0: groups all-0, mixed, all-1; step 1: mixed, all-0 (dropped for truncation first)
    g = pl.DataFrame({"step": [0, 0, 0, 1, 1],
                      "rewards": [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]})
    per = same_reward_groups(g)
    assert per.rows() == [(0, 3, 2, 1, 1), (1, 2, 1, 0, 1)]
    m = pl.DataFrame({"step": [0, 1], "tao/groups_kept": [1.0, 1.0],
                      "tao/groups_dropped/too_few_untruncated": [2.0, 1.0],
                      # 3 calls per rollout at 1/3 success, then no calls (success_rate 0 by convention)
                      "tools/success_rate": [1 / 3, 0.0], "tools/call_frequency": [3.0, 0.0]})
    flags = {f.name: f for f in health_flags(m, groups=g)}
    assert flags["zero-variance groups"].value == pytest.approx(3 / 5)
    assert "(3 of 5)" in flags["zero-variance groups"].message
    assert flags["tool failures"].value == pytest.approx(2 / 3)  # not the plain mean of 1 - (1/3, 0)
    # without the groups: what the filter metrics say, named as such
    flags = {f.name: f for f in health_flags(m)}
    assert flags["zero-variance groups"].value == 0.0 and "dropped as" in flags["zero-variance groups"].message
    none = pl.DataFrame({"step": [0], "tools/success_rate": [0.0], "tools/call_frequency": [0.0]})
    tf = next(f for f in health_flags(none) if f.name == "tool failures")
    assert tf.value is None and tf.ok and tf.message == "no tool calls"
