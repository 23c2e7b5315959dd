"""9 · Benchmark curves: Avg@k / Pass@k per benchmark vs step, several runs, best checkpoint."""

import polars as pl
import streamlit as st
import tao_ui

from taorl.store.queries import best_checkpoint
from taorl.viz import eval_figure

sel = tao_ui.current()


def body(sel, lrs):
    st.title("Benchmarks")
    evals = {sel.label(p): lr.evals() for p, lr in lrs.items()}
    evals = {k: v for k, v in evals.items() if not v.is_empty()}
    if not evals:
        st.info("No evaluations yet (eval.every > 0 writes them during training; `taorl eval` after).")
        return
    metrics = sorted({m for df in evals.values() for m in df["metric"].unique().to_list()},
                     key=lambda m: (not m.startswith("avg"), m))
    benches = []
    for df in evals.values():
        benches += [b for b in df["benchmark"].unique(maintain_order=True).to_list() if b not in benches]
    c1, c2 = st.columns([1, 3])
    metric = c1.selectbox("metric", metrics, key="ev_metric")
    chosen = c2.multiselect("benchmarks", benches, default=benches, key="ev_bench")
    best = {}
    rows = []
    for name, df in evals.items():
        b = best_checkpoint(df, metric, chosen)
        if b is not None:
            best[name] = b[0]
            last = int(df["step"].max())
            fin = df.filter((pl.col("step") == last) & (pl.col("metric") == metric) & pl.col("benchmark").is_in(chosen))
            rows.append({"run": name, "best step": b[0], f"best mean {metric}": b[1], "last step": last,
                         f"last mean {metric}": float(fin["value"].mean()) if len(fin) else None})
    tao_ui.plot(eval_figure(evals, metric, chosen, colors=sel.colors, best=best,
                            title=f"{metric} per benchmark (band: CI; ★ best checkpoint by mean {metric})"),
                key="ev-fig")
    if rows:
        st.dataframe(pl.DataFrame(rows), hide_index=True, column_config={
            f"best mean {metric}": st.column_config.NumberColumn(format="percent"),
            f"last mean {metric}": st.column_config.NumberColumn(format="percent")})


tao_ui.page(sel, body, multi=True)
