"""6 · Trajectory browser: filter the rollouts of the run, step through them, open one.
Deep link: ?run=&step=&traj=."""

import polars as pl
import streamlit as st
import tao_ui

from taorl.store.queries import filter_trajectories
from taorl.types import GROUP_REASONS, TOOL_STATUSES, TRAJ_REASONS

sel = tao_ui.current()
SHOW = ["step", "traj", "group", "reward", "advantage", "weight", "reason", "n_call", "n_ok", "statuses",
        "finish", "length", "has_tokens"]


def body(sel, lr):
    st.title("Trajectory browser")
    tr = lr.trajectories()
    last = lr.run.last_step
    with st.container(border=True):
        c = st.columns(4)
        lo = max(0, last - 9)
        steps = c[0].slider("steps", 0, max(last, 1), (lo, last), key="br_steps") if last > 0 else (0, 0)
        reward = c[1].slider("reward", 0.0, 1.0, (0.0, 1.0), 0.5, key="br_reward")
        kept = c[2].radio("weight", ["all", "trained", "masked"], horizontal=True, key="br_kept")
        maxlen = int(tr["length"].max() or 1)
        length = c[3].slider("length (tokens)", 0, maxlen, (0, maxlen), key="br_len")
        c = st.columns(4)
        reasons = c[0].multiselect("reason", ["none", *TRAJ_REASONS, *GROUP_REASONS], key="br_reasons")
        maxc = int(tr["n_call"].max() or 0)
        calls = c[1].slider("tool calls", 0, max(maxc, 1), (0, max(maxc, 1)), key="br_calls")
        statuses = c[2].multiselect("has a call with status", list(TOOL_STATUSES), key="br_status")
        text = c[3].text_input("text contains", key="br_text")
    df = filter_trajectories(tr, steps=steps, reward=reward, kept=kept, reasons=reasons, calls=calls,
                             statuses=statuses, length=length)
    if text:  # the decoded text is read only for the chosen steps
        texts = lr.run.trajectories(steps=range(steps[0], steps[1] + 1), columns=["traj", "text"])
        df = filter_trajectories(df.join(texts, on=["step", "traj"], how="left"), text=text)
    df = df.sort("step", "traj")
    n = len(df)
    st.caption(f"**{n:,}** of {len(tr.filter(pl.col('step').is_between(*steps))):,} rollouts in steps "
               f"{steps[0]}–{steps[1]} match")
    if n == 0:
        return
    keys = list(zip(df["step"].to_list(), df["traj"].to_list()))
    qs, qt = st.query_params.get("step"), st.query_params.get("traj")
    want = (int(qs), int(qt)) if qs and qt and qs.isdigit() and qt.isdigit() else None
    if "br_i" not in st.session_state or (want in keys and st.session_state.get("_br_want") != want):
        st.session_state["br_i"] = keys.index(want) if want in keys else 0
    st.session_state["_br_want"] = want
    i = min(st.session_state["br_i"], n - 1)
    nav = st.columns([1, 1, 6])
    if nav[0].button("◀ prev", disabled=i == 0, key="br_prev"):
        i -= 1
    if nav[1].button("next ▶", disabled=i >= n - 1, key="br_next"):
        i += 1
    st.session_state["br_i"] = i
    nav[2].markdown(f"trajectory **{i + 1}** of {n}")
    step, traj = keys[i]
    st.query_params.update({"step": str(step), "traj": str(traj)})
    st.session_state["_br_want"] = (step, traj)
    st.dataframe(df.select([c for c in SHOW if c in df.columns]), hide_index=True, height=220, key="br_table")
    row = df.row(i, named=True)
    st.subheader(f"Step {step} · trajectory {traj} (group {row['group']}, sample {row['index']})")
    m = st.columns(5)
    m[0].metric("reward", f"{row['reward']:.0f}")
    m[1].metric("advantage", f"{row['advantage']:+.3f}")
    m[2].metric("weight", f"{row['weight']:.2f}")
    m[3].metric("why", row["reason"] or "trained")
    m[4].metric("finish", row["finish"])
    links = st.columns(2)
    q = {"run": sel.label(sel.primary), "step": str(step)}
    if row["has_tokens"]:
        links[0].page_link("views/5_tokens.py", label="token view →", icon=":material/text_fields:", query_params={**q, "traj": str(traj)})
    links[1].page_link("views/7_group.py", label="its group →", icon=":material/groups:", query_params={**q, "group": str(row["group"])})
    text = lr.run.trajectories(steps=step, columns=["traj", "text"]).filter(pl.col("traj") == traj)
    st.code(text["text"][0] if len(text) else "", language=None, wrap_lines=True)


tao_ui.page(sel, body)
