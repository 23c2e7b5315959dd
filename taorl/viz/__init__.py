"""Figures and token HTML shared by the dashboard (app/) and the notebooks.

    from taorl.viz import curves_figure, boundary_profile_figure, token_html
    from taorl.store.queries import LiveRun, boundary_profile

Figures take polars frames from taorl.store / taorl.store.queries and return plotly Figures;
taorl.viz.vega gives the same pictures as Vega-Lite specs for the charts a dashboard page draws
first (a fresh tab loads Vega-Lite's code in a third of plotly's time); nothing in taorl.viz reads
files. `taorl dashboard` starts the Streamlit app (taorl.viz.launch).
"""

from taorl.viz.figures import (
    boundary_heatmap_figure,
    boundary_profile_figure,
    calls_reward_figure,
    curves_figure,
    ema,
    eval_figure,
    latency_figure,
    outcome_bars_figure,
    post_tool_figure,
    tool_status_figure,
)
from taorl.viz.style import PALETTE, label, run_colors
from taorl.viz.tokens import QUANTITIES, color_of, legend_html, token_html, token_scale

__all__ = [
    "PALETTE", "QUANTITIES", "boundary_heatmap_figure", "boundary_profile_figure", "calls_reward_figure",
    "color_of", "curves_figure", "ema", "eval_figure", "label", "latency_figure", "legend_html",
    "outcome_bars_figure", "post_tool_figure", "run_colors", "token_html", "token_scale", "tool_status_figure",
]
