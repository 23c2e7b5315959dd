"""10 · Ablation comparison: experiment reports (taorl experiment), then the runs picked in the
sidebar: the config keys that differ, aligned curves, a final table."""

from pathlib import Path

import polars as pl
import streamlit as st
import tao_ui
from report_tables import heldout_table, iv, paired_table

from taorl.config import config_diff
from taorl.experiment.report import find_reports, load_report
from taorl.store.queries import final_evals
from taorl.viz import curves_figure

sel = tao_ui.current()
CURVES = ["reward", "accuracy", "entropy", "tao/post_tool_entropy", "tools/success_rate", "completions/mean_length"]
TABLE = ["reward", "accuracy", "entropy", "tao/post_tool_entropy", "tools/success_rate", "completions/clipped_ratio"]


@st.cache_data(ttl=10, show_spinner=False)
def _reports(root: str) -> list[str]:
    r = Path(root)
    found = find_reports(r) + [p for p in find_reports(r.parent, max_depth=1) if p not in find_reports(r)]
    return [str(p) for p in found]


@st.cache_data(ttl=10, show_spinner=False)
def _report(folder: str, mtime: float) -> dict:
    return load_report(folder)


def experiments(sel) -> None:
    """The reports written by `taorl experiment`: held-out intervals over seeds, paired differences."""
    found = _reports(str(sel.root))
    if not found:
        st.caption("No experiment report here yet: `taorl experiment configs/experiments/cpu-smollm2.yaml` "
                   "writes one (arms x seeds, held-out accuracy with intervals over seeds).")
        return
    st.subheader("Experiments")
    folder = st.selectbox("report", found, key="ab_report", format_func=lambda f: _short(sel.root, f))
    rep = _report(folder, (Path(folder) / "report.json").stat().st_mtime)
    if rep.get("label"):
        st.warning(f"**{rep['label']}**", icon=":material/info:")
    final = rep.get("final_step")
    if final is None:
        st.info("No held-out evaluation in this report yet.")
        return

    st.markdown(f"**Held-out after {final} steps**: mean [95 % interval over seeds]")
    st.dataframe(heldout_table(rep), hide_index=True)
    paired = paired_table(rep)
    if paired is not None:
        st.markdown("**Paired differences** (same seed; each arm against the baseline, then the other arms "
                    "pairwise; intervals not corrected for the number of comparisons)")
        st.dataframe(paired, hide_index=True)
    figs = rep["figures"]
    cols = st.columns(2)
    for i, name in enumerate(n for n in ("heldout", "reward", "paired") if n in figs):
        with cols[i % 2]:
            tao_ui.plot(figs[name], key=f"ab-exp-{name}")
    if rep.get("dose"):
        _dose(rep, figs)
    reading = Path(folder) / "reading.md"
    if reading.is_file():
        with st.expander("reading.md: what the numbers do and do not show"):
            st.markdown(reading.read_text())
    with st.expander("report.md"):
        st.markdown((Path(folder) / "report.md").read_text().split("## Figures")[0])


def _dose(rep: dict, figs: dict) -> None:
    """The dose-response of an experiment whose filters-on arms differ in the shaping coefficient a
    (read from report.json's `dose`, written by taorl.experiment.dose; nothing recomputed)."""
    st.markdown("**Dose-response**: held-out accuracy against the shaping coefficient a (filters on; "
                "a = 0 is filters only, a = 0.01 the paper's TAO-RL), paired with the a = 0 arm")
    st.dataframe(pl.DataFrame([{"arm": d["arm"], "a": d["a"], "seeds": d["n"], "held-out": iv(d),
                                "Δ vs a = 0": iv(d.get("delta")),
                                "per seed": ", ".join(f"{s}: {100 * v:.1f}" for s, v in sorted(d["per_seed"].items()))}
                               for d in rep["dose"]]), hide_index=True)
    cols = st.columns(2)
    for i, name in enumerate(n for n in ("dose", "post_tool_entropy", "calls") if n in figs):
        with cols[i % 2]:
            tao_ui.plot(figs[name], key=f"ab-exp-{name}")


def _short(root, folder: str) -> str:
    try:
        return str(Path(folder).relative_to(Path(root).parent))
    except ValueError:
        return folder


def body(sel, lrs):
    st.subheader("Runs picked in the sidebar")
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


st.title("Ablations")
tao_ui.guard(experiments, sel)
tao_ui.page(sel, body, multi=True)
