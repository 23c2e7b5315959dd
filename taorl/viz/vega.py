"""Vega-Lite specs for the charts a dashboard page draws first (the overview's curves, the entropy
profile at tool returns).

Why not plotly here: a fresh browser tab pays for loading the chart library's code before it draws
anything, and plotly's (4.7 MB) takes about a second on a laptop core, Vega-Lite's (Streamlit's own
chart engine) a third of that (benchmarks/bench_dashboard.py; README "First paint"). The pictures are
the same as taorl.viz.figures' plotly ones, from the same data preparation (curve_points, the profile
frame), with hover values and drag-to-zoom; the notebooks and the pages below the fold keep plotly.

Every function returns plain dicts (JSON), one spec per panel, so a page lays panels out in columns
and each fits its column's width:

    curves_specs(runs, metrics, x="step", smoothing=0.6)      one panel per metric, runs overlaid
    boundary_profile_specs(profiles, shaping)                  one panel per run, shared y
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from taorl.viz.figures import curve_points
from taorl.viz.style import BUCKET_COLORS, PALETTE, label, run_colors

SHADED = "#E69F00"  # the post-tool window the shaping acts on (as in boundary_profile_figure)
CONFIG = {"view": {"stroke": None}, "axis": {"gridColor": "#eee", "labelFontSize": 11}}  # every panel's look


def _num(v) -> float | None:
    """JSON has no NaN: a missing value is null (a gap in the line)."""
    v = float(v)
    return None if math.isnan(v) else round(v, 6)


def _hover(y: str, tooltip: list[dict]) -> dict:
    """Hover labels (plotly's): an invisible point per datum that shows its values when the pointer
    is within a few pixels of it. Cheaper to draw than a nearest-point (Voronoi) selection, which
    cost the overview a quarter of a second of its first paint."""
    return {"mark": {"type": "point", "size": 160, "filled": True, "opacity": 0},
            "encoding": {"y": {"field": y, "type": "quantitative"}, "tooltip": tooltip}}


def _label(x: float, text: str, color: str) -> dict:
    """A text layer at the top of the panel, ending just left of x (the shaded window's right edge,
    the tool output's rule)."""
    return {"data": {"values": [{"x": x, "t": text}]},
            "mark": {"type": "text", "align": "right", "baseline": "top", "dx": -4, "dy": 4, "y": 0, "fontSize": 11,
                     "color": color},
            "encoding": {"x": {"field": "x", "type": "quantitative"}, "text": {"field": "t"}}}


# --------------------------------------------------------------------------------- curves
def curves_specs(runs: dict[str, pl.DataFrame], metrics: Sequence[str], x: str = "step",
                 smoothing: float = 0.6, colors: dict[str, str] | None = None, height: int = 200,
                 max_points: int = 600) -> list[dict]:
    """One panel per metric, one colour per run: raw values faint, the EMA-smoothed line solid (as
    figures.curves_figure). The legend is on the first panel, and only with more than one run."""
    colors = colors or run_colors(list(runs))
    names = list(runs)
    specs = []
    for i, m in enumerate(metrics):
        rows = []
        for name, df in runs.items():
            pts = curve_points(df, m, x, smoothing, max_points)
            if pts is None:
                continue
            xs, ys, smooth = pts
            rows += [{"run": name, "x": _num(a), "raw": _num(b), "smooth": _num(c)} for a, b, c in zip(xs, ys, smooth)]
        color = {"field": "run", "type": "nominal",
                 "scale": {"domain": names, "range": [colors.get(n, PALETTE[0]) for n in names]},
                 "legend": {"orient": "top", "title": None, "symbolType": "stroke", "symbolStrokeWidth": 3,
                            "symbolOpacity": 1} if (i == 0 and len(names) > 1) else None}
        y = {"type": "quantitative", "title": None, "scale": {"zero": False}}
        layers = []
        if smoothing > 0:
            layers.append({"mark": {"type": "line", "strokeWidth": 1, "opacity": 0.25},
                           "encoding": {"y": {"field": "raw", **y}, "color": color}})
        layers.append({"mark": {"type": "line", "strokeWidth": 2},
                       "params": [{"name": "zoom", "select": {"type": "interval", "encodings": ["x"]},
                                   "bind": "scales"}],
                       "encoding": {"y": {"field": "smooth", **y}, "color": color}})
        layers.append(_hover("smooth", [{"field": "run", "title": "run"},
                                        {"field": "x", "type": "quantitative", "title": label(x)},
                                        {"field": "smooth", "type": "quantitative", "title": label(m), "format": ".4g"}]))
        specs.append({
            "title": {"text": label(m), "anchor": "start", "fontSize": 13, "fontWeight": "normal"},
            "width": "container", "height": height,
            "data": {"values": rows},
            "encoding": {"x": {"field": "x", "type": "quantitative", "title": label(x),
                               "scale": {"zero": False, "nice": False}}},
            "layer": layers,
            "config": CONFIG,
        })
    return specs


# ------------------------------------------------------------------------------- boundaries
def boundary_profile_specs(profiles: dict[str, pl.DataFrame],
                           shaping: dict[str, tuple[bool, int | None]] | None = None,
                           height: int = 380) -> list[dict]:
    """Mean entropy (line) with its 95 % CI (band) vs token offset from a tool return, one line per
    training-step bucket, one panel per run with a shared y range (as figures.boundary_profile_figure):
    the region the post-tool gate shapes is shaded, the tool output marked at offset -0.5, and no line
    crosses it. The band is clipped at 0 (an entropy is never negative; a t interval over few tokens
    can reach below). profiles: run label -> queries.boundary_profile(...) frame."""
    full = [df for df in profiles.values() if not df.is_empty()]
    lo = max(0.0, min((float(df["lo"].min()) for df in full), default=0.0))
    hi = max((float(df["hi"].max()) for df in full), default=1.0)
    pad = 0.04 * (hi - lo or 1.0)
    specs = []
    for j, (name, df) in enumerate(profiles.items()):
        if df.is_empty():
            continue
        buckets = df.get_column("bucket").unique(maintain_order=True).to_list()
        pal = BUCKET_COLORS[-len(buckets):] if len(buckets) <= len(BUCKET_COLORS) else PALETTE
        xmin, xmax = int(df["rel"].min()), int(df["rel"].max())
        rows = [{"bucket": r["bucket"], "x": int(r["rel"]), "side": "after" if r["rel"] >= 0 else "before",
                 "mean": _num(r["mean"]), "lo": _num(max(0.0, r["lo"])), "hi": _num(r["hi"]), "n": int(r["n"])}
                for r in df.sort("bucket", "rel", maintain_order=True).iter_rows(named=True)]
        color = {"field": "bucket", "type": "nominal", "sort": buckets,
                 "scale": {"domain": buckets, "range": [pal[k % len(pal)] for k in range(len(buckets))]},
                 "legend": {"orient": "bottom", "title": None, "symbolType": "stroke", "symbolStrokeWidth": 3,
                            "symbolOpacity": 1}}
        y = {"type": "quantitative", "scale": {"domain": [max(0.0, lo - pad), hi + pad], "zero": False, "nice": False},
             "title": "entropy (nats/token), mean ± 95% CI" if j == 0 else None}
        layers = []
        on, window = (shaping or {}).get(name, (False, None))
        if on:
            x1 = (window - 0.5) if window else xmax + 0.5
            text = f"shaped: first {window} tokens" if window else "shaped: whole post-tool turn"
            layers += [
                {"data": {"values": [{"x0": -0.5, "x1": x1}]}, "mark": {"type": "rect", "color": SHADED, "opacity": 0.10},
                 "encoding": {"x": {"field": "x0", "type": "quantitative"}, "x2": {"field": "x1"}}},
                _label(x1, text, "#8a5a00"),
            ]
        layers += [
            {"data": {"values": [{"x": -0.5}]}, "mark": {"type": "rule", "color": "#555", "strokeDash": [2, 3]},
             "encoding": {"x": {"field": "x", "type": "quantitative"}}},
            _label(-0.5, "tool output", "#555"),
            {"mark": {"type": "area", "opacity": 0.18},
             "encoding": {"y": {"field": "lo", **y}, "y2": {"field": "hi"}, "color": color, "detail": {"field": "side"}}},
            {"mark": {"type": "line", "strokeWidth": 2},
             "encoding": {"y": {"field": "mean", **y}, "color": color, "detail": {"field": "side"}}},
            _hover("mean", [{"field": "bucket", "title": "steps"},
                                   {"field": "x", "type": "quantitative", "title": "offset"},
                                   {"field": "mean", "type": "quantitative", "title": "H (nats)", "format": ".3f"},
                                   {"field": "lo", "type": "quantitative", "title": "95% CI from", "format": ".3f"},
                                   {"field": "hi", "type": "quantitative", "title": "95% CI to", "format": ".3f"},
                                   {"field": "n", "type": "quantitative", "title": "tokens"}]),
        ]
        specs.append({
            **({"title": {"text": name, "anchor": "start", "fontSize": 13, "fontWeight": "normal"}}
               if len(profiles) > 1 else {}),
            "width": "container", "height": height,
            "data": {"values": rows},
            "encoding": {"x": {"field": "x", "type": "quantitative", "title": "model tokens from the tool return",
                               "scale": {"domain": [xmin - 0.5, xmax + 0.5], "nice": False, "zero": False}}},
            "layer": layers,
            "config": CONFIG,
        })
    return specs
