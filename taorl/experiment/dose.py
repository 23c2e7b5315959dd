"""The dose-response view of an experiment whose arms differ in the shaping coefficient a, and what
the shaping did in each arm (issue 24).

    arm_doses(spec)        arm -> {"a": a (0 when shaping is off), "filters": group filter on?,
                           "shaping": shaping on?}, read from each arm's run config
    dose_rows(spec, res)   the arms with filters on, by a: held-out primary metric (interval over
                           seeds) and its paired difference with the a = 0 arm (filters only)
    dose_figure(...)       held-out accuracy against a (one point per arm with its 95 % interval,
                           seeds as dots), the arms without filters as dashed horizontal lines
    calls_figure(...)      held-out accuracy by number of tool calls per rollout, per arm

The shaping (spec §3, taorl.algo.shaping) multiplies a post-tool token's advantage by (1 + a·Ĥ_t),
Ĥ_t the normalised entropy of that token: a = 0 is the filters-only arm, a = 0.01 the paper's value.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
import polars as pl

from taorl.experiment.calls import BUCKETS
from taorl.experiment.spec import ExperimentSpec
from taorl.experiment.stats import mean_interval, paired_difference


def arm_doses(spec: ExperimentSpec) -> dict[str, dict]:
    out = {}
    for arm in spec.arms:
        cfg = spec.run_config(arm, spec.seeds[0])
        sh = cfg.algo.shaping
        out[arm] = {"a": float(sh.coef) if sh.enabled else 0.0, "shaping": bool(sh.enabled),
                    "filters": bool(cfg.algo.filter.group.enabled or cfg.algo.filter.tool.enabled)}
    return out


def is_dose_response(spec: ExperimentSpec) -> bool:
    """At least three arms with filters on and different a: a dose-response to show."""
    d = [v["a"] for v in arm_doses(spec).values() if v["filters"]]
    return len(set(d)) >= 3


def _per_seed(held: pl.DataFrame, arm: str, metric: str, step: int) -> dict[int, float]:
    p = held.filter((pl.col("arm") == arm) & (pl.col("metric") == metric) & (pl.col("step") == step))
    return {int(s): float(v) for s, v in zip(p["seed"], p["value"])}


def dose_rows(spec: ExperimentSpec, held: pl.DataFrame, metric: str, step: int) -> list[dict]:
    """Filters-on arms sorted by a: a, mean/low/high/n, per_seed, and `delta` (paired with the a = 0 arm)."""
    doses = arm_doses(spec)
    arms = sorted((a for a, v in doses.items() if v["filters"]), key=lambda a: doses[a]["a"])
    zero = next((a for a in arms if doses[a]["a"] == 0.0), None)
    rows = []
    for arm in arms:
        vals = _per_seed(held, arm, metric, step)
        iv = mean_interval(list(vals.values()))
        row = {"arm": arm, "a": doses[arm]["a"], "mean": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n,
               "per_seed": vals, "delta": None}
        if zero is not None and arm != zero:
            div, d = paired_difference(vals, _per_seed(held, zero, metric, step))
            row["delta"] = {"mean": div.mean, "low": div.low, "high": div.high, "n": div.n, "per_seed": d,
                            "vs": zero}
        rows.append(row)
    return rows


def dose_figure(spec: ExperimentSpec, held: pl.DataFrame, metric: str, step: int) -> go.Figure:
    from taorl.viz.style import PALETTE, tidy, with_alpha

    doses = arm_doses(spec)
    rows = dose_rows(spec, held, metric, step)
    labels = [f"a = {r['a']:g}" for r in rows]
    fig = go.Figure()
    for j, r in enumerate(rows):
        col = PALETTE[(j + 1) % len(PALETTE)]
        seeds = sorted(r["per_seed"].items())
        fig.add_trace(go.Scatter(x=[labels[j]] * len(seeds), y=[v for _, v in seeds], mode="markers",
                                 marker={"color": with_alpha(col, 0.45), "size": 8}, showlegend=False,
                                 text=[f"{r['arm']} seed {s}" for s, _ in seeds],
                                 hovertemplate="%{text}: %{y:.1%}<extra></extra>"))
        err = ({"type": "data", "symmetric": False, "array": [min(r["high"], 1.0) - r["mean"]],
                "arrayminus": [r["mean"] - max(r["low"], 0.0)]} if math.isfinite(r["low"]) else None)
        fig.add_trace(go.Scatter(x=[labels[j]], y=[r["mean"]], mode="markers", error_y=err, name=r["arm"],
                                 marker={"color": col, "size": 13, "symbol": "diamond"},
                                 hovertemplate=f"{r['arm']}: mean %{{y:.1%}}<extra></extra>"))
    for arm, v in doses.items():  # the arms without filters (GRPO-TIR): a reference line
        if v["filters"]:
            continue
        iv = mean_interval(list(_per_seed(held, arm, metric, step).values()))
        if iv.n == 0:
            continue
        fig.add_hline(y=iv.mean, line={"color": "#555", "dash": "dash"},
                      annotation_text=f"{arm} (no filters, no shaping): {100 * iv.mean:.1f} %",
                      annotation_position="bottom right")
        if iv.n > 1:
            fig.add_hrect(y0=max(iv.low, 0.0), y1=min(iv.high, 1.0), fillcolor="#999", opacity=0.12, line_width=0)
    fig.update_xaxes(title_text="shaping coefficient a (filters on; a = 0: filters only, 0.01: the paper's)",
                     categoryorder="array", categoryarray=labels)
    fig.update_yaxes(title_text=f"held-out {metric.removeprefix('heldout/')}", tickformat=".0%", range=[0, 1.05])
    return tidy(fig, f"Dose-response after {step} steps: mean, 95 % interval over seeds, seeds as dots",
                height=420, legend=False)


def calls_rows(spec: ExperimentSpec, held: pl.DataFrame, step: int) -> list[dict]:
    """Per arm and number of calls (0, 1, 2, 3+): share of rollouts and their accuracy (intervals over seeds)."""
    rows = []
    for arm in spec.arms:
        for b in BUCKETS:
            share = mean_interval(list(_per_seed(held, arm, f"heldout/calls={b}/share", step).values()))
            acc = mean_interval(list(_per_seed(held, arm, f"heldout/calls={b}/accuracy", step).values()))
            if share.n:
                rows.append({"arm": arm, "calls": b, "share": share, "accuracy": acc})
    return rows


def calls_figure(spec: ExperimentSpec, held: pl.DataFrame, step: int) -> go.Figure:
    from taorl.viz.style import run_colors, tidy

    colors = run_colors(list(spec.arms))
    fig = go.Figure()
    rows = calls_rows(spec, held, step)
    for arm in spec.arms:
        part = [r for r in rows if r["arm"] == arm]
        if not part:
            continue
        ys = [r["accuracy"].mean for r in part]
        err = [(r["accuracy"].high - r["accuracy"].mean) if r["accuracy"].n > 1 else 0.0 for r in part]
        errm = [(r["accuracy"].mean - r["accuracy"].low) if r["accuracy"].n > 1 else 0.0 for r in part]
        fig.add_trace(go.Bar(x=[f"{r['calls']} call{'' if r['calls'] == '1' else 's'}" for r in part], y=ys, name=arm,
                             marker_color=colors.get(arm), texttemplate="%{customdata:.0f} %", textposition="inside",
                             error_y={"type": "data", "symmetric": False, "array": err, "arrayminus": errm},
                             customdata=[100 * r["share"].mean for r in part],
                             hovertemplate=f"{arm}: accuracy %{{y:.1%}} (%{{customdata:.0f}} % of rollouts)"
                                           "<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="held-out accuracy of those rollouts", tickformat=".0%", range=[0, 1.05])
    return tidy(fig, f"Held-out accuracy by number of tool calls after {step} steps (mean over seeds, 95 % interval; "
                "in the bar: share of the arm's rollouts)",
                height=400)
