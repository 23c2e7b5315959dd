"""8 · Tool-call analytics: statuses over training, calls per rollout vs reward and success,
latency per status."""

import polars as pl
import streamlit as st
import tao_ui

from taorl.store.queries import success_vs_reward, tool_calls
from taorl.viz import calls_reward_figure, latency_figure, tool_status_figure

sel = tao_ui.current()


@st.cache_data(show_spinner=False, max_entries=16)
def _calls(key, _lr):
    return tool_calls(_lr.trajectories())


def body(sel, lr):
    st.title("Tool calls")
    tr = lr.trajectories()
    calls = _calls(lr.key, lr)
    last = lr.run.last_step
    n_calls = len(calls)
    ok = int(calls["status"].is_in(["ok", "output_truncated"]).sum()) if n_calls else 0
    c = st.columns(4)
    c[0].metric("tool calls", f"{n_calls:,}")
    c[1].metric("calls / rollout", f"{n_calls / max(len(tr), 1):.2f}")
    c[2].metric("success rate", f"{ok / n_calls:.1%}" if n_calls else "–")
    c[3].metric("median latency", f"{calls['ms'].median():.0f} ms" if n_calls else "–")
    tao_ui.plot(tool_status_figure(calls, title="Call statuses over training"), key="t-status")
    lo = max(0, last - 49)
    steps = st.slider("steps for the two charts below", 0, max(last, 1), (lo, last), key="t_steps") if last > 0 else (0, 0)
    part = tr.filter(pl.col("step").is_between(*steps))
    pc = calls.filter(pl.col("step").is_between(*steps))
    c1, c2 = st.columns(2)
    with c1:
        tao_ui.plot(calls_reward_figure(success_vs_reward(part), title="Calls per rollout vs reward"), key="t-reward")
    with c2:
        tao_ui.plot(latency_figure(pc, title="Latency per status"), key="t-latency")
    if len(pc):
        st.dataframe(pc.group_by("status").agg(calls=pl.len(), median_ms=pl.col("ms").median(),
                                               p95_ms=pl.col("ms").quantile(0.95), mean_reward=pl.col("reward").mean())
                     .with_columns(share=pl.col("calls") / pl.col("calls").sum()).sort("calls", descending=True),
                     hide_index=True)


tao_ui.page(sel, body)
