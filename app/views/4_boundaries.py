"""4 · Entropy at tool-call boundaries (the flagship view): mean token entropy vs offset from each
tool return, by training-step bucket; step × offset heatmap; post-tool vs other tokens; runs side
by side (e.g. shaping on vs off) with the shaped window drawn."""

import streamlit as st
import tao_ui

from taorl.store.queries import boundary_heatmap, boundary_profile
from taorl.viz import boundary_heatmap_figure, post_tool_figure
from taorl.viz.vega import boundary_profile_specs

sel = tao_ui.current()


@st.cache_data(show_spinner=False, max_entries=64)
def _profile(key, _lr, before, after, buckets):
    return boundary_profile(_lr.boundary_stats(before, after), buckets)


@st.cache_data(show_spinner=False, max_entries=64)
def _heat(key, _lr, before, after):
    return boundary_heatmap(_lr.boundary_stats(before, after))


def body(sel, lrs):
    st.title("Entropy at tool-call boundaries")
    c1, c2, c3 = st.columns(3)
    before = c1.slider("tokens before the call", 0, 32, 12, key="b_before")
    after = c2.slider("tokens after the tool output", 8, 128, 48, step=8, key="b_after")
    buckets = c3.slider("training-step buckets", 1, 6, 4, key="b_buckets")
    runs = list(lrs.items())[:3]
    if len(lrs) > 3:
        st.caption("Showing the first three runs side by side.")
    profiles, shaping = {}, {}
    for p, lr in runs:
        name = sel.label(p)
        profiles[name] = _profile(lr.key, lr, before, after, buckets)
        shaping[name] = tao_ui.shaping_of(tao_ui.config_of(lr))
    if all(df.is_empty() for df in profiles.values()):
        st.info("No token rows yet: the trainer writes them for logging.token_traj_per_step rollouts per step.")
        return
    titles = " vs ".join(f"{n} (shaping {'on' if s[0] else 'off'})" for n, s in shaping.items())
    key = tuple(lr.key for _, lr in runs)
    st.markdown(f"**Mean entropy around tool returns** · {titles}")
    specs = tao_ui.cached_figure(("b-profile", key, before, after, buckets),
                                 lambda: boundary_profile_specs(profiles, shaping))
    tao_ui.charts(specs, cols=len(specs), key="b-profile")
    st.caption("x = 0 is the first model token after a tool output, −1 the last token before the call's "
               "output. Bands: 95% CI of the mean (clipped at 0). Shaded: tokens the post-tool gate shapes "
               "(Ã = Â·(1 + a·g·Ĥ)).")
    # below the fold, drawn when opened (each plotly chart costs the first paint ~0.2-0.3 s in the browser)
    heat = st.expander("Entropy by training step × offset (heatmap)", key="b_heat_open", on_change="rerun",
                       icon=":material/grid_on:")
    if heat.open:
        cols = heat.columns(len(runs))
        zmax = max((float(d["hi"].max() or 0) for d in profiles.values() if not d.is_empty()), default=None)
        for col, (p, lr) in zip(cols, runs):
            with col:
                tao_ui.plot(tao_ui.cached_figure(("b-heat", lr.key, before, after, zmax), lambda lr=lr, p=p: (
                    boundary_heatmap_figure(_heat(lr.key, lr, before, after), zmax=zmax,
                                            title=f"{sel.label(p)}: entropy by step × offset"))), key=f"b-heat-{p}")
    post = st.expander("Post-tool tokens vs other tokens over training", key="b_post_open", on_change="rerun",
                       icon=":material/timeline:")
    if post.open:
        frames = {sel.label(p): lr.metrics() for p, lr in lrs.items()}
        with post:
            tao_ui.plot(tao_ui.cached_figure(("b-post", tuple(lr.key for lr in lrs.values()),
                                              tuple(sel.colors.get(n) for n in frames)), lambda: post_tool_figure(
                frames, colors=sel.colors, title="Post-tool tokens (solid) vs other tokens (dashed) over training")),
                key="b-post")


tao_ui.page(sel, body, multi=True)
