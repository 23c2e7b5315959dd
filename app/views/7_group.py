"""7 · One group: its G samples side by side with rewards and advantages, and where they first
diverge. Deep link: ?run=&step=&group=."""

import html

import polars as pl
import streamlit as st
import tao_ui

from taorl.store.queries import first_divergence, first_token_divergence

sel = tao_ui.current()


def _int_param(name: str):
    v = st.query_params.get(name)
    return int(v) if v is not None and v.isdigit() else None


def body(sel, lr):
    st.title("One group")
    last = lr.run.last_step
    c1, c2 = st.columns(2)
    qs = _int_param("step")
    step = c1.number_input("step", 0, last, qs if qs is not None and qs <= last else last, key="grp_step")
    groups = lr.groups().filter(pl.col("step") == step).sort("group")
    if groups.is_empty():
        st.info(f"Step {step} has no groups.")
        return
    gids = groups["group"].to_list()
    qg = _int_param("group")
    gid = c2.selectbox("group", gids, index=gids.index(qg) if qg in gids else 0, key="grp_group",
                       format_func=lambda g: f"{g} · pass {groups.filter(pl.col('group') == g)['pass_rate'][0]:.2f}"
                       f" · {groups.filter(pl.col('group') == g)['reason'][0] or 'kept'}")
    st.query_params.update({"step": str(step), "group": str(gid)})
    g = groups.filter(pl.col("group") == gid).row(0, named=True)
    st.markdown(f"**Problem** `{g['problem_id']}`: {html.escape(g['problem'])}  \n**Answer** `{g['answer']}` · "
                f"pass rate **{g['pass_rate']:.2f}** · reward std {g['reward_std']:.3f} · "
                f"**{'kept' if g['kept'] else 'dropped: ' + str(g['reason'])}**")
    tr = lr.run.trajectories(steps=step).filter(pl.col("group") == gid).sort("index")
    texts = tr["text"].to_list()
    cut = first_divergence(texts)
    tok_note = ""
    if len(tr) and tr["has_tokens"].all():
        toks = lr.run.tokens(step, tr["traj"].to_list(), columns=["traj", "pos", "segment", "token_id"])
        p = first_token_divergence(toks)
        if p is not None:
            tok_note = f" (token position {p})"
    st.caption(f"The {len(texts)} samples share their first **{cut}** characters{tok_note}; the shared "
               "prefix is greyed, the first divergent character marked ▌.")
    per_row = 4
    for r0 in range(0, len(tr), per_row):
        cols = st.columns(per_row)
        for col, row in zip(cols, tr.slice(r0, per_row).iter_rows(named=True)):
            with col.container(border=True):
                ok = ":green-badge[right]" if row["reward"] >= 1 else ":red-badge[wrong]"
                st.markdown(f"**#{row['index']}** {ok} reward {row['reward']:.0f} · Â **{row['advantage']:+.2f}** · "
                            f"w {row['weight']:.1f}  \n{row['reason'] or 'trained'} · "
                            f"calls {row['n_ok']}/{row['n_call']} ok · {row['length']} tok")
                t = row["text"]
                st.html(
                    "<div style='font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;"
                    "max-height:340px;overflow:auto;line-height:1.45'>"
                    f"<span style='color:#aaa'>{html.escape(t[:cut])}</span>"
                    f"<span style='color:#D55E00;font-weight:bold'>▌</span>{html.escape(t[cut:])}</div>")


tao_ui.page(sel, body)
