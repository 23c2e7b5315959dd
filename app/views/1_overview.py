"""1 · Run overview: where the run is, whether it is healthy, and its config."""

import polars as pl
import streamlit as st
import tao_ui
import yaml

from taorl.store.queries import HealthThresholds, dropped_by_reason, health_flags
from taorl.viz.vega import curves_specs

sel = tao_ui.current()


def last(m: pl.DataFrame, col: str):
    if col not in m.columns:
        return None
    s = m.get_column(col).drop_nulls()
    return float(s[-1]) if len(s) else None


def delta(m: pl.DataFrame, col: str, back: int = 10):
    if col not in m.columns or len(m) <= back:
        return None
    s = m.get_column(col)
    a, b = s[-1], s[-1 - back]
    return None if a is None or b is None else float(a) - float(b)


def fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


@st.cache_data(show_spinner=False, max_entries=32)
def _recent_groups(key, _lr, window: int) -> pl.DataFrame:
    """The last `window` steps' groups (step, rewards): what the zero-variance card reads."""
    last = _lr.run.last_step
    return _lr.run.groups(steps=range(max(0, last - window + 1), last + 1), columns=["rewards"])


def body(sel, lr):
    m = lr.metrics()
    run = lr.run
    name = sel.label(sel.primary)
    status = {"running": ":green-badge[running]", "finished": ":blue-badge[finished]", "failed": ":red-badge[failed]"}.get(run.status, run.status)
    st.title(f"Run overview · {name}")
    st.caption(f"{status} · last published step **{run.last_step}** · updated {tao_ui.ago(run.updated_at)} · "
               f"`{run.path}`")
    dropped, why = None, ""
    if "tao/groups_kept" in m.columns:
        reasons = dropped_by_reason(m)
        k = last(m, "tao/groups_kept") or 0.0
        d = sum(reasons.values())
        dropped = d / (k + d) if (k + d) > 0 else None
        if reasons:
            why = " By first reason: " + ", ".join(f"{r.replace('_', ' ')} {v:.0f}" for r, v in
                                                  sorted(reasons.items(), key=lambda kv: -kv[1])) + \
                  " (each group counts once, under the first reason its filter found)."
    c = st.columns(7)
    c[0].metric("step", f"{run.last_step}")
    c[1].metric("reward", fmt(last(m, "reward"), ".3f"), fmt(delta(m, "reward"), "+.3f") if delta(m, "reward") is not None else None,
                help="mean reward of the last step's rollouts (delta: vs 10 steps before)")
    c[2].metric("accuracy", fmt(last(m, "accuracy"), ".1%"))
    c[3].metric("entropy", fmt(last(m, "entropy"), ".3f"), help="mean token entropy of trained tokens (nats)")
    c[4].metric("groups dropped", fmt(dropped, ".0%"), help="share of the last step's sampled groups not trained on." + why)
    c[5].metric("tokens/s", fmt(last(m, "perf/tokens_per_s"), ",.0f"))
    c[6].metric("last update", tao_ui.ago(run.updated_at))

    show = [x for x in ("reward", "entropy", "tao/post_tool_entropy", "tools/success_rate") if x in m.columns]
    if show:  # the chart first: the browser draws it while the cards below are computed
        color = sel.colors.get(name, "#0072B2")
        tao_ui.charts(tao_ui.cached_figure(("overview", lr.key, tuple(show), name, color), lambda: curves_specs(
            {name: m}, show, smoothing=0.6, colors={name: color}, height=190, max_points=300)), cols=4,
            key="overview-curves")

    window = HealthThresholds().window
    st.subheader("Health", help=f"each card: the last {window} steps")
    flags = health_flags(m, groups=_recent_groups(lr.key, lr, window))
    cols = st.columns(len(flags))
    for col, f in zip(cols, flags):
        icon = ":green-badge[:material/check: ok]" if f.ok else ":orange-badge[:material/warning: check]"
        col.markdown(f"{icon} **{f.name}**  \n{f.message}  \n:gray[ok when {f.threshold}, last {window} steps]")

    cfg_box = st.expander("Config", expanded=False, key="ov_config", on_change="rerun")
    if cfg_box.open:  # drawn on demand: highlighting a long YAML costs the first paint a third of a second
        cfg = tao_ui.config_of(lr)
        cfg_box.code(yaml.safe_dump(cfg, sort_keys=False) if cfg else "# no config.yaml", language="yaml")


tao_ui.page(sel, body)
