"""10 · Ablation comparison: the config keys that differ, aligned curves, a final table."""

import polars as pl
import streamlit as st
import tao_ui

from taorl.config import config_diff
from taorl.store.queries import final_evals
from taorl.viz import curves_figure

sel = tao_ui.current()
CURVES = ["reward", "accuracy", "entropy", "tao/post_tool_entropy", "tools/success_rate", "completions/mean_length"]
TABLE = ["reward", "accuracy", "entropy", "tao/post_tool_entropy", "tools/success_rate", "completions/clipped_ratio"]


def body(sel, lrs):
    st.title("Ablations")
    if len(lrs) < 2:
        st.info("Pick runs to compare in the sidebar (“Compare with”).")
    names = {p: sel.label(p) for p in lrs}
    cfgs = {p: tao_ui.config_of(lr) for p, lr in lrs.items()}
    base = next(iter(lrs))
    keys: dict[str, None] = {}
    for p in lrs:
        for k in config_diff(cfgs[base], cfgs[p]):
            keys[k] = None
    st.subheader("Config differences")
    if len(lrs) >= 2 and keys:
        flat = {p: {k: v[1] for k, v in config_diff({}, cfgs[p]).items()} for p in lrs}
        st.dataframe(pl.DataFrame({"key": list(keys), **{names[p]: [str(flat[p].get(k, "–")) for k in keys]
                                                        for p in lrs}}), hide_index=True)
    elif len(lrs) >= 2:
        st.caption("The configs are identical.")
    frames = {names[p]: lr.metrics() for p, lr in lrs.items()}
    smoothing = st.slider("smoothing", 0.0, 0.99, 0.8, 0.01, key="ab_smooth")
    present = [m for m in CURVES if any(m in f.columns for f in frames.values())]
    tao_ui.plot(curves_figure(frames, present, smoothing=smoothing, colors=sel.colors, cols=3), key="ab-curves")
    window = st.number_input("final table: mean over the last N steps", 1, 1000, 20, key="ab_window")
    rows = []
    for p, lr in lrs.items():
        m = frames[names[p]]
        tail = m.tail(int(window))
        row = {"run": names[p], "steps": lr.run.last_step + 1}
        for c in TABLE:
            row[c] = float(tail[c].mean()) if c in tail.columns and tail[c].null_count() < len(tail) else None
        fe = final_evals(lr.evals())
        row["eval avg@16 (mean)"] = float(fe["value"].mean()) if len(fe) else None
        rows.append(row)
    st.subheader(f"Final table (last {int(window)} steps)")
    st.dataframe(pl.DataFrame(rows), hide_index=True)


tao_ui.page(sel, body, multi=True)
