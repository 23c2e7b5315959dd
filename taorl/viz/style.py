"""Colours, labels and the common layout of every taorl figure (dashboard and notebooks alike).

A run keeps its colour everywhere: run_colors(labels) assigns the palette in the given order, so
pass the runs in a stable order (e.g. sorted paths) and the same run gets the same colour on
every page.
"""

from __future__ import annotations

import plotly.graph_objects as go

# colour-blind-friendly (Okabe-Ito, then Tableau for more runs)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#76B7B2", "#EDC948", "#FF9DA7", "#9C755F"]
# outcome colours: kept in green, the drop / mask reasons in warm to grey tones
OUTCOME_COLORS = {
    "kept": "#009E73", "group_all_correct": "#56B4E9", "group_all_wrong": "#D55E00",
    "too_few_untruncated": "#CC79A7", "not_selected": "#BBBBBB",
    "tools_all_failed": "#E69F00", "void_turn": "#CC79A7", "truncated": "#D55E00",
}
STATUS_COLORS = {
    "ok": "#009E73", "output_truncated": "#8CD3B9", "no_output": "#F0E442", "syntax_error": "#E69F00",
    "runtime_error": "#D55E00", "timeout": "#CC79A7", "memory": "#882255", "sandbox_error": "#555555",
}
BUCKET_COLORS = ["#A6CEE3", "#56B4E9", "#0072B2", "#08306B", "#03132B", "#000000"]

# axis labels with units for the metric names the trainer writes
LABELS = {
    "step": "training step", "wall_s": "wall time (h)", "reward": "reward (mean)", "accuracy": "accuracy",
    "entropy": "entropy (nats/token)", "tao/post_tool_entropy": "post-tool entropy (nats/token)",
    "tao/other_entropy": "other-token entropy (nats/token)", "perf/tokens_per_s": "generation (tokens/s)",
    "perf/step_s": "step time (s)", "grad_norm": "grad norm", "clip_ratio/high_mean": "clip fraction (high)",
    "clip_ratio/low_mean": "clip fraction (low)", "completions/clipped_ratio": "truncated share",
    "completions/mean_length": "response length (tokens)", "tools/call_frequency": "tool calls / rollout",
    "tools/success_rate": "tool success rate", "tao/shaping_factor_mean": "shaping factor 1 + a·Ĥ (mean)",
    "tao/void_rate": "void-turn share", "loss": "loss", "lr": "learning rate",
}


def label(name: str) -> str:
    return LABELS.get(name, name)


def run_colors(labels: list[str]) -> dict[str, str]:
    """label -> colour, in the given order (stable across pages when the order is)."""
    return {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(labels)}


def with_alpha(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def tidy(fig: go.Figure, title: str | None = None, height: int | None = None, legend: bool = True) -> go.Figure:
    """The common look: white template, compact margins, legend on top, hover across traces."""
    fig.update_layout(
        template="plotly_white", title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}} if title else None,
        margin={"l": 10, "r": 10, "t": 60 if title else 30, "b": 10}, height=height,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1.0, "title": None},
        showlegend=legend, hoverlabel={"namelength": -1}, font={"size": 12},
    )
    return fig
