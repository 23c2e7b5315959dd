"""3 · Group & filter statistics: groups kept / dropped per reason, trajectories masked per reason,
and the groups of one step (select a row to open the group)."""

import polars as pl
import streamlit as st
import tao_ui

from taorl.store.queries import filter_counts, group_table
from taorl.viz import outcome_bars_figure

sel = tao_ui.current()
GROUP_ORDER = ["kept", "not_selected", "group_all_correct", "group_all_wrong", "too_few_untruncated"]


def body(sel, lr):
    st.title("Groups & filters")
    m = lr.metrics()
    g, t = filter_counts(m)
    share = st.toggle("as shares of the step", value=False, key="groups_share")
    c1, c2 = st.columns(2)
    with c1:
        tao_ui.plot(outcome_bars_figure(g, "Groups per step: kept, or why dropped", share=share,
                                        y_title="groups", order=GROUP_ORDER), key="groups-bars")
    with c2:
        tao_ui.plot(outcome_bars_figure(t, "Trajectories masked per step, by reason", share=share,
                                        y_title="trajectories"), key="masked-bars")
    if not g.is_empty():
        tot = g.group_by("outcome").agg(pl.col("count").sum()).sort("count", descending=True)
        st.caption("Over the whole run: " + " · ".join(f"{o.replace('_', ' ')} **{c:,.0f}**"
                                                      for o, c in tot.iter_rows()))

    st.subheader("Groups of one step")
    last = lr.run.last_step
    q = st.query_params.get("step")
    step = st.number_input("step", 0, last, int(q) if q and q.isdigit() and int(q) <= last else last, key="groups_step")
    groups = lr.groups().filter(pl.col("step") == step)
    table = group_table(groups)
    ev = st.dataframe(table.drop("step"), hide_index=True, on_select="rerun", selection_mode="single-row",
                      key="groups_table", column_config={
                          "pass_rate": st.column_config.ProgressColumn("pass rate", min_value=0, max_value=1,
                                                                       format="%.2f"),
                          "problem": st.column_config.TextColumn("problem", width="large"),
                          "reward_std": st.column_config.NumberColumn("reward std", format="%.3f")})
    rows = ev.selection.rows if ev is not None and hasattr(ev, "selection") else []
    if rows:
        gid = int(table["group"][rows[0]])
        st.page_link("views/7_group.py", label=f"Open group {gid} of step {step} →", icon=":material/groups:",
                     query_params={"run": sel.label(sel.primary), "step": str(step), "group": str(gid)})
    else:
        st.caption("Select a row to open the group's samples side by side.")


tao_ui.page(sel, body)
