"""Plotly figures over the frames of taorl.store (tables) and taorl.store.queries (aggregates).

Every function takes polars DataFrames (several runs as a dict label -> frame, in a stable order
so that colours stay put) and returns a plotly Figure; nothing here reads files, so notebooks and
the dashboard draw the same pictures:

    curves_figure(runs, metrics, x="step", smoothing=0.6)        training curves, runs overlaid
    outcome_bars_figure(counts, title, share=False)              kept / dropped / masked per step
    boundary_profile_figure(profiles, shaping=None)              entropy vs offset from tool returns
    boundary_heatmap_figure(heat)                                step × offset mean entropy
    post_tool_figure(runs, smoothing=0.6)                        post-tool vs other-token entropy
    tool_status_figure(calls, max_bins=60)                       share of call statuses over training
    calls_reward_figure(summary)                                 rollouts and reward by number of calls
    latency_figure(calls)                                        call latency per status
    eval_figure(runs, metric="avg@16", best=None)                benchmark curves with CI bands
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from taorl.viz.style import (
    BUCKET_COLORS,
    OUTCOME_COLORS,
    PALETTE,
    STATUS_COLORS,
    label,
    run_colors,
    tidy,
    with_alpha,
)


def band(xs, lo, hi, color: str, group: str, alpha: float = 0.15) -> go.Scatter:
    """An interval drawn as a filled band from lo to hi over xs (no markers, no legend entry, no hover;
    `group`: the legend group of the line it belongs to)."""
    return go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([hi, lo[::-1]]), mode="lines",
                      fill="toself", fillcolor=with_alpha(color, alpha), line={"width": 0}, hoverinfo="skip",
                      showlegend=False, legendgroup=group)


def ema(values: Sequence[float | None], smoothing: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing slider):

        m_t = w · m_{t-1} + (1 - w) · x_t,   m_0 = 0,   s_t = m_t / (1 - w^{n_t})

    n_t counts the finite values seen so far; missing values (None/NaN) are skipped and stay NaN.
    w = 0 returns the values unchanged.
    """
    x = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    w = float(smoothing)
    if not 0.0 <= w < 1.0:
        raise ValueError(f"smoothing={smoothing}: expected 0 <= w < 1")
    out = np.full_like(x, np.nan)
    m, n = 0.0, 0
    for i, v in enumerate(x):
        if math.isnan(v):
            continue
        m = w * m + (1 - w) * v
        n += 1
        out[i] = m / (1 - w ** n) if w > 0 else v
    return out


def _line(n: int):
    """SVG traces for up to a few thousand points (fast everywhere, no WebGL needed: headless and
    remote browsers fall back to slow software GL); WebGL beyond that."""
    return go.Scatter if n <= 5000 else go.Scattergl


def _x(df: pl.DataFrame, x: str) -> np.ndarray:
    v = df.get_column(x).to_numpy().astype(float)
    return v / 3600.0 if x == "wall_s" else v


# --------------------------------------------------------------------------------- curves
def thin(n: int, max_points: int) -> np.ndarray:
    """Indices of at most max_points of n points, evenly spread, first and last always kept: a long
    run is drawn from fewer points (the browser's work grows with them) after smoothing on all."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def curve_points(df: pl.DataFrame, metric: str, x: str = "step", smoothing: float = 0.6,
                 max_points: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(x, raw, EMA-smoothed) of one metric of one run, thinned to max_points after smoothing on
    every step; None when the run has no such metric. What both curves_figure (plotly) and
    taorl.viz.vega.curves_specs draw."""
    if metric not in df.columns or df.is_empty():
        return None
    xs, ys = _x(df, x), df.get_column(metric).to_numpy().astype(float)
    smooth = ema(ys, smoothing) if smoothing > 0 else ys
    keep = thin(len(xs), max_points)
    return xs[keep], ys[keep], smooth[keep]


def curves_figure(runs: dict[str, pl.DataFrame], metrics: Sequence[str], x: str = "step",
                  smoothing: float = 0.6, colors: dict[str, str] | None = None, cols: int = 2,
                  height_per_row: int = 260, title: str | None = None, max_points: int = 600) -> go.Figure:
    """One panel per metric, one colour per run: the raw values faint, the EMA-smoothed line solid.
    runs: label -> wide metrics frame (step, wall_s, <metric>...); x: "step" or "wall_s" (hours).
    Runs longer than max_points steps are drawn from max_points of them (thin), the EMA being
    computed on every step first."""
    metrics = list(metrics)
    colors = colors or run_colors(list(runs))
    cols = max(1, min(cols, len(metrics) or 1))
    rows = max(1, math.ceil(len(metrics) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[label(m) for m in metrics],
                        horizontal_spacing=0.07, vertical_spacing=min(0.12, 0.5 / rows))
    for i, m in enumerate(metrics):
        r, c = i // cols + 1, i % cols + 1
        for name, df in runs.items():
            pts = curve_points(df, m, x, smoothing, max_points)
            if pts is None:
                continue
            xs, ys, smooth = pts
            col = colors.get(name, PALETTE[0])
            first = i == 0
            trace = _line(len(xs))
            if smoothing > 0:
                fig.add_trace(trace(x=xs, y=ys, mode="lines", line={"color": with_alpha(col, 0.25), "width": 1},
                                           name=f"{name} (raw)", legendgroup=name, showlegend=False,
                                           hoverinfo="skip"), row=r, col=c)
            fig.add_trace(trace(x=xs, y=smooth, mode="lines",
                                       line={"color": col, "width": 2}, name=name, legendgroup=name,
                                       showlegend=first, hovertemplate=f"{name}<br>%{{x}}: %{{y:.4g}}<extra></extra>"),
                          row=r, col=c)
        fig.update_xaxes(title_text=label(x) if i // cols == rows - 1 else None, row=r, col=c)
    return tidy(fig, title, height=max(300, rows * height_per_row))


# ------------------------------------------------------------------------------- outcomes
def outcome_bars_figure(counts: pl.DataFrame, title: str | None = None, share: bool = False,
                        y_title: str = "count", order: Sequence[str] | None = None) -> go.Figure:
    """Stacked bars per step of counts by outcome (long frame: step, outcome, count); share=True
    divides by the step's total."""
    fig = go.Figure()
    if counts.is_empty():
        return tidy(fig, title)
    df = counts
    if share:
        df = df.with_columns(count=pl.col("count") / pl.col("count").sum().over("step"))
    outcomes = list(order) if order else df.get_column("outcome").unique(maintain_order=True).to_list()
    for o in outcomes:
        part = df.filter(pl.col("outcome") == o).sort("step")
        if part.is_empty() or float(part["count"].sum() or 0) == 0:
            continue
        fig.add_trace(go.Bar(x=part["step"].to_numpy(), y=part["count"].to_numpy(), name=o.replace("_", " "),
                             marker_color=OUTCOME_COLORS.get(o), marker_line_width=0,
                             hovertemplate=f"{o}<br>step %{{x}}: %{{y:.3g}}<extra></extra>"))
    fig.update_layout(barmode="stack", bargap=0.0)
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="share" if share else y_title, tickformat=".0%" if share else None)
    tidy(fig, title, height=320)
    # many outcomes: a horizontal legend above the plot wraps into rows that run over the title,
    # so the legend goes in a column to the right of the plot
    fig.update_layout(legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01},
                      margin={"r": 160})
    return fig


# ---------------------------------------------------------------- entropy at tool boundaries
def boundary_profile_figure(profiles: dict[str, pl.DataFrame],
                            shaping: dict[str, tuple[bool, int | None]] | None = None,
                            title: str | None = None, height: int = 420) -> go.Figure:
    """Mean entropy (line) with its 95 % CI (band) vs token offset from a tool return, one line
    per training-step bucket, one panel per run (side by side, shared y).

    profiles: run label -> queries.boundary_profile(...) frame (bucket, lo_step, rel, mean, lo, hi).
    shaping: run label -> (shaping enabled, window W or None = whole turn): the gated region is
    shaded from offset 0 to W (or to the right edge). The band is clipped at 0 (an entropy is never
    negative; a t interval over few tokens can reach below). rel < 0: tokens before the call's output
    (-1 = the last one before it); 0 = the first model token after the output.
    """
    names = list(profiles)
    fig = make_subplots(rows=1, cols=max(1, len(names)), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=names if len(names) > 1 else None)
    for j, name in enumerate(names, start=1):
        df = profiles[name]
        if df.is_empty():
            continue
        buckets = df.get_column("bucket").unique(maintain_order=True).to_list()
        pal = BUCKET_COLORS[-len(buckets):] if len(buckets) <= len(BUCKET_COLORS) else PALETTE
        xmax = int(df["rel"].max())
        xmin = int(df["rel"].min())
        on, window = (shaping or {}).get(name, (False, None))
        if on:
            x1 = (window - 0.5) if window else xmax + 0.5
            fig.add_vrect(x0=-0.5, x1=x1, fillcolor="rgba(230,159,0,0.10)", line_width=0, row=1, col=j,
                          annotation_text=f"shaped: first {window} tokens" if window else "shaped: whole post-tool turn",
                          annotation_position="top right", annotation_font_size=11, exclude_empty_subplots=False)
        fig.add_vline(x=-0.5, line={"color": "#555", "dash": "dot", "width": 1}, row=1, col=j,
                      exclude_empty_subplots=False)
        fig.add_annotation(x=-0.5, y=1.0, yref="y domain", xref=f"x{j if j > 1 else ''}", text="tool output",
                           showarrow=False, yanchor="bottom", font={"size": 11, "color": "#555"})
        for k, b in enumerate(buckets):
            part = df.filter(pl.col("bucket") == b).sort("rel")
            col = pal[k % len(pal)]
            xs = part["rel"].to_numpy()
            for side in (part["rel"] < 0, part["rel"] >= 0):  # no line across the tool output
                p = part.filter(side)
                if p.is_empty():
                    continue
                xs = p["rel"].to_numpy()
                lo = np.maximum(p["lo"].to_numpy(), 0.0)  # an entropy is never negative; a t interval can be
                fig.add_trace(band(xs, lo, p["hi"].to_numpy(), col, b, alpha=0.18), row=1, col=j)
                fig.add_trace(go.Scatter(x=xs, y=p["mean"].to_numpy(), mode="lines", line={"color": col, "width": 2},
                                         name=b, legendgroup=b, showlegend=(j == 1 and bool((p["rel"] >= 0).all())),
                                         customdata=np.stack([p["n"].to_numpy(), lo,
                                                              p["hi"].to_numpy()], axis=1),
                                         hovertemplate=(f"{b}<br>offset %{{x}}: H = %{{y:.3f}} "
                                                        "[%{customdata[1]:.3f}, %{customdata[2]:.3f}]"
                                                        "<br>n = %{customdata[0]}<extra></extra>")),
                              row=1, col=j)
        fig.update_xaxes(title_text="model tokens from the tool return", range=[xmin - 0.5, xmax + 0.5], row=1, col=j)
    fig.update_yaxes(title_text="entropy (nats/token), mean ± 95% CI", row=1, col=1)
    tidy(fig, title, height=height)
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "center", "x": 0.5},
                      margin={"b": 40})
    return fig


def boundary_heatmap_figure(heat: pl.DataFrame, title: str | None = None, zmax: float | None = None,
                            height: int = 380) -> go.Figure:
    """Mean entropy per (training step, offset after the tool return): heat = queries.boundary_heatmap."""
    fig = go.Figure()
    if heat.is_empty():
        return tidy(fig, title)
    wide = heat.pivot(on="rel", index="step", values="mean", sort_columns=False).sort("step")
    rels = sorted(int(c) for c in wide.columns if c != "step")
    z = wide.select([str(r) for r in rels]).to_numpy().T  # rows = offsets, columns = steps
    fig.add_trace(go.Heatmap(x=wide["step"].to_numpy(), y=rels, z=z, colorscale="Viridis", zmin=0,
                             zmax=zmax, colorbar={"title": {"text": "H (nats)", "side": "right"}},
                             hovertemplate="step %{x}, offset %{y}: H = %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="model tokens after the tool return", autorange=True)
    return tidy(fig, title, height=height)


def post_tool_figure(runs: dict[str, pl.DataFrame], smoothing: float = 0.6,
                     colors: dict[str, str] | None = None, title: str | None = None) -> go.Figure:
    """Entropy on post-tool tokens (solid) vs all other model tokens (dashed) over training, per run."""
    colors = colors or run_colors(list(runs))
    fig = go.Figure()
    for name, df in runs.items():
        col = colors.get(name, PALETTE[0])
        for metric, dash, what in (("tao/post_tool_entropy", "solid", "post-tool"),
                                   ("tao/other_entropy", "dash", "other tokens")):
            if metric not in df.columns or df.is_empty():
                continue
            y = df.get_column(metric).to_numpy().astype(float)
            fig.add_trace(_line(len(y))(x=df["step"].to_numpy(), y=ema(y, smoothing) if smoothing else y,
                                       mode="lines", line={"color": col, "dash": dash, "width": 2},
                                       name=f"{name}: {what}",
                                       hovertemplate=f"{name} {what}<br>step %{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="entropy (nats/token)")
    return tidy(fig, title, height=340)


# ------------------------------------------------------------------------------------ tools
def tool_status_figure(calls: pl.DataFrame, max_bins: int = 60, title: str | None = None) -> go.Figure:
    """Share of each call status per step bin (stacked area); calls = queries.tool_calls."""
    fig = go.Figure()
    if calls.is_empty():
        return tidy(fig, title)
    first, last = int(calls["step"].min()), int(calls["step"].max())
    width = max(1, math.ceil((last - first + 1) / max_bins))
    df = (calls.with_columns(bin=first + (pl.col("step") - first) // width * width)
          .group_by("bin", "status").len().with_columns(share=pl.col("len") / pl.col("len").sum().over("bin"))
          .sort("bin"))
    for s in STATUS_COLORS:
        p = df.filter(pl.col("status") == s)
        if p.is_empty():
            continue
        fig.add_trace(go.Scatter(x=p["bin"].to_numpy(), y=p["share"].to_numpy(), name=s.replace("_", " "),
                                 stackgroup="s", line={"width": 0.5, "color": STATUS_COLORS[s]},
                                 hovertemplate=f"{s}<br>step %{{x}}: %{{y:.1%}}<extra></extra>"))
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="share of tool calls", tickformat=".0%", range=[0, 1])
    return tidy(fig, title, height=330)


def calls_reward_figure(summary: pl.DataFrame, title: str | None = None) -> go.Figure:
    """Bars: rollouts per number of tool calls; lines: mean reward and call success rate
    (summary = queries.success_vs_reward)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if summary.is_empty():
        return tidy(fig, title)
    x = summary["n_call"].to_numpy()
    fig.add_trace(go.Bar(x=x, y=summary["rollouts"].to_numpy(), name="rollouts", marker_color="#D0D7E1"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=summary["reward"].to_numpy(), name="mean reward", mode="lines+markers",
                             line={"color": "#0072B2", "width": 2}), secondary_y=True)
    fig.add_trace(go.Scatter(x=x, y=summary["success"].to_numpy(), name="call success rate", mode="lines+markers",
                             line={"color": "#009E73", "width": 2, "dash": "dash"}), secondary_y=True)
    fig.update_xaxes(title_text="tool calls in the rollout", dtick=1)
    fig.update_yaxes(title_text="rollouts", secondary_y=False)
    fig.update_yaxes(title_text="rate", range=[0, 1], tickformat=".0%", secondary_y=True)
    return tidy(fig, title, height=330)


def latency_figure(calls: pl.DataFrame, title: str | None = None, max_points: int = 20000) -> go.Figure:
    """Call wall time per status (box plots, log scale)."""
    fig = go.Figure()
    if calls.is_empty():
        return tidy(fig, title)
    df = calls.sample(max_points, seed=0) if len(calls) > max_points else calls
    for s in STATUS_COLORS:
        p = df.filter(pl.col("status") == s)
        if p.is_empty():
            continue
        fig.add_trace(go.Box(y=p["ms"].to_numpy(), name=s.replace("_", " "), marker_color=STATUS_COLORS[s],
                             boxpoints=False))
    fig.update_yaxes(title_text="call wall time (ms, log)", type="log")
    return tidy(fig, title, height=330, legend=False)


# ------------------------------------------------------------------------------------ evals
def eval_figure(runs: dict[str, pl.DataFrame], metric: str = "avg@16", benchmarks: Sequence[str] | None = None,
                colors: dict[str, str] | None = None, best: dict[str, int] | None = None, cols: int = 4,
                title: str | None = None) -> go.Figure:
    """One panel per benchmark: `metric` vs step per run with its CI band; best: run -> step of the
    best checkpoint (marked with a star)."""
    colors = colors or run_colors(list(runs))
    if benchmarks is None:
        seen: list[str] = []
        for df in runs.values():
            seen += [b for b in df["benchmark"].unique(maintain_order=True).to_list() if b not in seen]
        benchmarks = seen
    benchmarks = list(benchmarks)
    cols = max(1, min(cols, len(benchmarks) or 1))
    rows = max(1, math.ceil(len(benchmarks) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=benchmarks, horizontal_spacing=0.05,
                        vertical_spacing=0.16 if rows > 1 else 0.1)
    for i, bench in enumerate(benchmarks):
        r, c = i // cols + 1, i % cols + 1
        for name, df in runs.items():
            p = df.filter((pl.col("benchmark") == bench) & (pl.col("metric") == metric)).sort("step")
            if p.is_empty():
                continue
            col = colors.get(name, PALETTE[0])
            xs = p["step"].to_numpy()
            fig.add_trace(band(xs, p["ci_low"].to_numpy(), p["ci_high"].to_numpy(), col, name), row=r, col=c)
            fig.add_trace(go.Scatter(x=xs, y=p["value"].to_numpy(), mode="lines+markers", name=name,
                                     legendgroup=name, showlegend=i == 0, line={"color": col, "width": 2},
                                     marker={"size": 5},
                                     hovertemplate=f"{name}<br>step %{{x}}: {metric} = %{{y:.1%}}<extra></extra>"),
                          row=r, col=c)
            if best and name in best:
                b = p.filter(pl.col("step") == best[name])
                if not b.is_empty():
                    fig.add_trace(go.Scatter(x=b["step"].to_numpy(), y=b["value"].to_numpy(), mode="markers",
                                             marker={"symbol": "star", "size": 13, "color": col,
                                                         "line": {"color": "white", "width": 1}},
                                             name="best checkpoint", legendgroup="best",
                                             showlegend=False, hovertemplate="best checkpoint: step %{x}<extra></extra>"),
                                  row=r, col=c)
        fig.update_yaxes(tickformat=".0%", row=r, col=c)
    return tidy(fig, title, height=max(300, rows * 260))


# ------------------------------------------------------------------------------ experiments
def seed_band_figure(frame: pl.DataFrame, arms: Sequence[str], title: str | None = None,
                     y_title: str | None = None, smoothing: float = 0.0, percent: bool = False,
                     colors: dict[str, str] | None = None, x_title: str = "optimizer steps",
                     bounds: tuple[float, float] | None = None, seed_lines: bool = False,
                     max_points: int | None = None, height: int = 360) -> go.Figure:
    """One line per arm: the mean over seeds at each step, with its 95 % interval over seeds as a band.

    frame: arm, seed, step, value. smoothing > 0 smooths each seed's curve (ema) before averaging.
    The interval is taorl.experiment.stats.mean_interval (Student t over seeds); with one seed
    there is no band. bounds: the values' range (a rate: (0, 1), the default when percent), to
    which the band is clipped, as the report's tables clip a rate's interval. seed_lines: each
    seed's own (smoothed) curve as a thin line under the mean. max_points: long curves are drawn
    from that many of their steps (thin), after smoothing and averaging on all of them. While an
    experiment runs, seeds reach a step at different times: the mean at a step is over the seeds
    that have it (the hover gives n)."""
    if bounds is None and percent:
        bounds = (0.0, 1.0)
    from taorl.experiment.stats import mean_interval

    colors = colors or run_colors(list(arms))
    fig = go.Figure()
    for arm in arms:
        part = frame.filter(pl.col("arm") == arm)
        if part.is_empty():
            continue
        if smoothing > 0:
            part = pl.concat([g.sort("step").with_columns(value=pl.Series(ema(g.sort("step")["value"].to_list(), smoothing)))
                              for _, g in part.group_by("seed", maintain_order=True)])
        per_step = part.group_by("step").agg(pl.col("value")).sort("step")
        xs = per_step["step"].to_numpy()
        iv = [mean_interval(v) for v in per_step["value"].to_list()]
        col = colors.get(arm, PALETTE[0])
        fmt = ".1%" if percent else ".3g"
        if seed_lines:
            for seed, g in part.sort("seed", "step").group_by("seed", maintain_order=True):
                g = g.sort("step")
                k = thin(len(g), max_points) if max_points else np.arange(len(g))
                fig.add_trace(go.Scatter(x=g["step"].to_numpy()[k], y=g["value"].to_numpy()[k], mode="lines",
                                         line={"color": with_alpha(col, 0.45), "width": 1}, legendgroup=arm,
                                         showlegend=False, name=f"{arm} seed {seed[0]}",
                                         hovertemplate=f"{arm} seed {seed[0]}<br>step %{{x}}: %{{y:{fmt}}}<extra></extra>"))
        keep = thin(len(xs), max_points) if max_points else np.arange(len(xs))
        iv = [iv[i] for i in keep]
        xs = xs[keep]
        lo = np.array([i.low for i in iv], dtype=float)
        hi = np.array([i.high for i in iv], dtype=float)
        if bounds is not None:
            lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
        if np.isfinite(lo).any():
            fig.add_trace(band(xs, lo, hi, col, arm))
        n = max(i.n for i in iv)
        fig.add_trace(go.Scatter(x=xs, y=[i.mean for i in iv], mode="lines+markers" if len(xs) <= 30 else "lines",
                                 name=f"{arm} (n={n})", legendgroup=arm, line={"color": col, "width": 2},
                                 marker={"size": 6}, customdata=[i.n for i in iv] if seed_lines else None,
                                 hovertemplate=(f"{arm}<br>step %{{x}}: %{{y:{fmt}}}"
                                                + (" (mean of %{customdata} seeds)" if seed_lines else "")
                                                + "<extra></extra>")))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title, tickformat=".0%" if percent else None)
    return tidy(fig, title, height=height)


def paired_difference_figure(rows: Sequence[dict], title: str | None = None, percent: bool = True) -> go.Figure:
    """Each arm minus the baseline, per seed (dots) and the mean with its 95 % interval (bar).
    rows: dicts with arm, mean, low, high, per_seed {seed: d}."""
    fig = go.Figure()
    names = [r["arm"] for r in rows]
    for j, r in enumerate(rows):
        col = PALETTE[(j + 1) % len(PALETTE)]
        seeds = list(r["per_seed"].items())
        fig.add_trace(go.Scatter(x=[v for _, v in seeds], y=[r["arm"]] * len(seeds), mode="markers",
                                 marker={"color": with_alpha(col, 0.5), "size": 9}, showlegend=False,
                                 text=[f"seed {s}" for s, _ in seeds],
                                 hovertemplate="%{text}: %{x:.3g}<extra></extra>"))
        err = {"type": "data", "symmetric": False, "array": [r["high"] - r["mean"]],
               "arrayminus": [r["mean"] - r["low"]]} if np.isfinite(r["low"]) else None
        fig.add_trace(go.Scatter(x=[r["mean"]], y=[r["arm"]], mode="markers", error_x=err,
                                 marker={"color": col, "size": 13, "symbol": "diamond"}, showlegend=False,
                                 hovertemplate="mean %{x:.3g}<extra></extra>"))
    fig.add_vline(x=0, line={"color": "#555", "dash": "dot"})
    fig.update_yaxes(categoryorder="array", categoryarray=names[::-1])
    fig.update_xaxes(title_text="difference (arm − baseline)", tickformat=".0%" if percent else None)
    return tidy(fig, title, height=120 + 60 * max(1, len(rows)), legend=False)
