"""2 · Training curves: any metrics, smoothing, x = step or wall time, runs overlaid."""

import streamlit as st
import tao_ui

from taorl.viz.vega import curves_specs

sel = tao_ui.current()
DEFAULT = ["reward", "accuracy", "entropy", "tao/post_tool_entropy", "completions/mean_length",
           "tools/success_rate", "grad_norm", "clip_ratio/high_mean"]


def body(sel, lrs):
    st.title("Training curves")
    frames = {sel.label(p): lr.metrics() for p, lr in lrs.items()}
    names = []
    for df in frames.values():
        names += [c for c in df.columns if c not in ("step", "wall_s") and c not in names]
    c1, c2, c3 = st.columns([4, 2, 1])
    chosen = c1.multiselect("metrics", names, default=[d for d in DEFAULT if d in names], key="curves_metrics")
    smoothing = c2.slider("smoothing (EMA weight)", 0.0, 0.99, 0.6, 0.01, key="curves_smooth")
    x = c3.radio("x axis", ["step", "wall_s"], format_func=lambda v: "step" if v == "step" else "wall time",
                 key="curves_x")
    if not chosen:
        st.info("Pick at least one metric.")
        return
    tao_ui.charts(curves_specs(frames, chosen, x=x, smoothing=smoothing, colors=sel.colors, height=220), cols=2,
                  key="curves")
    st.caption("Faint lines: raw values; solid: debiased EMA. Wall time in hours since each run started. "
               "Drag to zoom along x, double-click to reset.")


tao_ui.page(sel, body, multi=True)
