"""The Vega-Lite specs the overview and the entropy page draw first (taorl.viz.vega): valid against
the Vega-Lite schema Altair ships, and holding the same numbers as the plotly figures they replace."""

import math

import numpy as np
import polars as pl
import pytest
from altair.utils.schemapi import validate_jsonschema
from altair.vegalite.v6.schema import load_schema

from taorl.viz.figures import boundary_profile_figure, curve_points, curves_figure
from taorl.viz.vega import boundary_profile_specs, curves_specs

SCHEMA = load_schema()


def _metrics(values, extra=None) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame({"step": list(range(n)), "wall_s": [60.0 * i for i in range(n)], "entropy": values,
                         **(extra or {})})


def test_curves_spec_holds_the_smoothed_and_raw_values():
    m = _metrics([1.0, None, 3.0, 5.0])
    (spec,) = curves_specs({"r": m}, ["entropy"], smoothing=0.5)
    validate_jsonschema(spec, SCHEMA)
    rows = spec["data"]["values"]
    # debiased EMA, w = 0.5, the missing value skipped: m1 = 0.5, s1 = 0.5/0.5 = 1; m2 = 0.25 + 1.5 = 1.75,
    # s2 = 1.75/0.75 = 2.3333; m3 = 0.875 + 2.5 = 3.375, s3 = 3.375/0.875 = 3.857143
    assert [r["x"] for r in rows] == [0, 1, 2, 3]
    assert [r["raw"] for r in rows] == [1.0, None, 3.0, 5.0]  # JSON has no NaN: a gap is null
    assert rows[0]["smooth"] == 1.0 and rows[1]["smooth"] is None
    assert rows[2]["smooth"] == pytest.approx(2.333333, abs=1e-6) and rows[3]["smooth"] == pytest.approx(3.857143)
    # the same numbers as the plotly figure (the solid line is its last trace)
    smooth = curves_figure({"r": m}, ["entropy"], smoothing=0.5).data[-1].y
    assert np.allclose([r["smooth"] if r["smooth"] is not None else np.nan for r in rows], smooth, equal_nan=True)
    assert spec["title"]["text"] == "entropy (nats/token)" and spec["width"] == "container"


def test_curves_specs_thin_long_runs_and_keep_run_colours():
    long = _metrics([float(i % 7) for i in range(1000)])
    specs = curves_specs({"a": long, "b": long}, ["entropy", "step_s_missing"], max_points=300,
                         colors={"a": "#111111", "b": "#222222"}, x="wall_s")
    for s in specs:
        validate_jsonschema(s, SCHEMA)
    rows = specs[0]["data"]["values"]
    xs, _, smooth = curve_points(long, "entropy", "wall_s", 0.6, 300)
    assert len(rows) == 2 * len(xs) == 600 and rows[-1]["x"] == pytest.approx(999 / 60)  # hours
    assert [r["smooth"] for r in rows[:3]] == [round(float(v), 6) for v in smooth[:3]]
    line = specs[0]["layer"][1]["encoding"]["color"]
    assert line["scale"] == {"domain": ["a", "b"], "range": ["#111111", "#222222"]}
    assert line["legend"] is not None  # two runs: a legend on the first panel only
    assert specs[1]["data"]["values"] == [] and specs[1]["layer"][1]["encoding"]["color"]["legend"] is None
    (one,) = curves_specs({"a": long}, ["entropy"])
    assert one["layer"][1]["encoding"]["color"]["legend"] is None  # one run: nothing to tell apart
    assert curves_specs({"a": long}, ["entropy"], smoothing=0.0)[0]["layer"][0]["encoding"]["y"]["field"] == "smooth"


def _profile(shift: float = 0.0) -> pl.DataFrame:
    rows = []
    for b, scale in (("steps 0–4", 1.0), ("steps 5–9", 0.5)):
        for rel in range(-2, 4):
            mean = scale * (1.0 + (0.5 if rel >= 0 else 0.0)) + shift
            rows.append({"bucket": b, "lo_step": 0, "rel": rel, "mean": mean, "lo": mean - 0.1, "hi": mean + 0.1,
                         "n": 10 + rel})
    return pl.DataFrame(rows)


def test_profile_specs_share_y_shade_the_window_and_break_at_the_tool_output():
    specs = boundary_profile_specs({"on": _profile(), "off": _profile(shift=1.0)}, {"on": (True, 2), "off": (False, None)})
    assert len(specs) == 2
    for s in specs:
        validate_jsonschema(s, SCHEMA)
    on, off = specs
    # shared y: lo over both runs 0.5 - 0.1 = 0.4, hi 1.5 + 1 + 0.1 = 2.6; padded by 4 % of the range
    ys = [layer["encoding"]["y"]["scale"]["domain"] for layer in on["layer"] if "y" in layer.get("encoding", {})
          and "scale" in layer["encoding"]["y"]]
    assert ys and all(d == pytest.approx([0.4 - 0.088, 2.6 + 0.088]) for d in ys)
    # the shaded window: offsets 0 .. W-1 = 0, 1, i.e. from -0.5 to 1.5; none where shaping is off
    rect = [layer for layer in on["layer"] if layer["mark"]["type"] == "rect"]
    assert rect and rect[0]["data"]["values"] == [{"x0": -0.5, "x1": 1.5}]
    assert not [layer for layer in off["layer"] if layer["mark"]["type"] == "rect"]
    # lines and bands split before / after the tool output (detail), so none crosses offset -0.5
    line = next(layer for layer in on["layer"] if layer["mark"]["type"] == "line")
    assert line["encoding"]["detail"] == {"field": "side"}
    sides = {(r["x"], r["side"]) for r in on["data"]["values"]}
    assert (-1, "before") in sides and (0, "after") in sides
    # the same means as the plotly figure, bucket by bucket
    fig = boundary_profile_figure({"on": _profile()}, {"on": (True, 2)})
    plotted = sorted(y for t in fig.data if t.hovertemplate for y in t.y)
    assert sorted(r["mean"] for r in on["data"]["values"]) == pytest.approx(plotted)
    tips = next(layer for layer in on["layer"] if layer["mark"]["type"] == "point")["encoding"]["tooltip"]
    assert [t["field"] for t in tips] == ["bucket", "x", "mean", "lo", "hi", "n"]


def test_profile_specs_skip_empty_runs_and_need_no_shaping_info():
    empty = _profile().clear()
    specs = boundary_profile_specs({"a": _profile(), "b": empty})
    assert len(specs) == 1 and "title" in specs[0]  # two runs asked for: each panel names its run
    validate_jsonschema(specs[0], SCHEMA)
    assert not [layer for layer in specs[0]["layer"] if layer["mark"]["type"] == "rect"]
    assert all(not (isinstance(v, float) and math.isnan(v)) for r in specs[0]["data"]["values"] for v in r.values())


def test_profile_band_is_clipped_at_zero_entropy():
    prof = _profile().with_columns(lo=pl.col("mean") - 2.0)  # a wide interval over few tokens
    (spec,) = boundary_profile_specs({"a": prof})
    assert min(r["lo"] for r in spec["data"]["values"]) == 0.0
    band = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "area")
    assert band["encoding"]["y"]["scale"]["domain"][0] == 0.0
    fig = boundary_profile_figure({"a": prof})  # the notebooks' plotly figure clips the same way
    assert min(min(t.y) for t in fig.data if t.fill == "toself") == 0.0
