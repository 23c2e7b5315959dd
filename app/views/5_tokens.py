"""5 · Token view of one trajectory: every token coloured by a chosen quantity on a colour scale
fixed per run; tool output boxed and greyed; hover for exact values. Deep link: ?run=&step=&traj=."""

import polars as pl
import streamlit as st
import tao_ui

from taorl.viz import QUANTITIES, token_html, token_scale

sel = tao_ui.current()


@st.cache_data(show_spinner=False, max_entries=256)
def _scale(path: str, created: float, ref_step: int, quantity: str, _lr=None):
    """Per run and quantity: the scale of the run's first step with tokens (fixed as it grows)."""
    return token_scale(_lr.run.tokens(ref_step), quantity)


def _int_param(name: str):
    v = st.query_params.get(name)
    return int(v) if v is not None and v.lstrip("-").isdigit() else None


def body(sel, lr):
    st.title("Token view")
    tr = lr.trajectories()
    with_tok = tr.filter(pl.col("has_tokens"))
    if with_tok.is_empty():
        st.info("This run has no token rows yet.")
        return
    steps = with_tok["step"].unique().sort().to_list()
    want_step, want_traj = _int_param("step"), _int_param("traj")
    c1, c2, c3, c4 = st.columns([1, 1, 2, 1])
    step = c1.selectbox("step", steps, index=steps.index(want_step) if want_step in steps else len(steps) - 1,
                        key="tok_step")
    trajs = with_tok.filter(pl.col("step") == step)["traj"].sort().to_list()
    traj = c2.selectbox("trajectory", trajs, index=trajs.index(want_traj) if want_traj in trajs else 0,
                        key="tok_traj")
    quantity = c3.segmented_control("colour by", list(QUANTITIES), default="entropy", key="tok_q") or "entropy"
    show_prompt = c4.toggle("show prompt", value=False, key="tok_prompt")
    st.query_params.update({"step": str(step), "traj": str(traj)})

    row = tr.filter((pl.col("step") == step) & (pl.col("traj") == traj)).row(0, named=True)
    m = st.columns(6)
    m[0].metric("reward", f"{row['reward']:.0f}")
    m[1].metric("advantage Â", f"{row['advantage']:+.3f}")
    m[2].metric("weight", f"{row['weight']:.2f}")
    m[3].metric("trained", "yes" if row["weight"] > 0 else "no", help="weight > 0: the loss sees this trajectory")
    m[4].metric("tool calls", f"{row['n_ok']}/{row['n_call']} ok")
    m[5].metric("length", f"{row['length']} tok")
    facts = [f"weight reason: `{row['reason']}`"] if row["reason"] else []  # names too long for a metric
    if row["statuses"]:
        facts.append("calls: " + " → ".join(f"{s} ({ms:.0f} ms)" for s, ms in zip(row["statuses"], row["call_ms"])))
    if facts:
        st.caption(" · ".join(facts))
    ref_step = int(steps[0])
    scale = _scale(str(lr.path), float(lr.run.manifest.get("created_at", 0)), ref_step, quantity, _lr=lr)
    toks = lr.run.tokens(step, traj)
    st.html(token_html(toks, quantity, scale, show_prompt=show_prompt))
    st.caption(f"Colour scale fixed for this run (from step {ref_step}), so steps compare. "
               "· marks a space, ↵ a newline.")


tao_ui.page(sel, body)
