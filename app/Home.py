"""taorl dashboard: `taorl dashboard RUNS_DIR` (or `streamlit run app/Home.py -- --runs-dir DIR`).

The router: page config, the shared sidebar (tao_ui.sidebar), then st.navigation over thin pages
that call taorl.store.queries for data and taorl.viz for figures.
"""

import streamlit as st

import tao_ui

st.set_page_config(page_title="taorl dashboard", page_icon="🧭", layout="wide")

PAGES = {
    "Run": [
        st.Page("pages/1_overview.py", title="Overview", icon="🩺", url_path="overview", default=True),
        st.Page("pages/2_curves.py", title="Training curves", icon="📈", url_path="curves"),
        st.Page("pages/3_groups.py", title="Groups & filters", icon="🧮", url_path="groups"),
        st.Page("pages/4_boundaries.py", title="Entropy at tool calls", icon="🔧", url_path="boundaries"),
    ],
    "Inspect": [
        st.Page("pages/5_tokens.py", title="Token view", icon="🔤", url_path="tokens"),
        st.Page("pages/6_browser.py", title="Trajectory browser", icon="🗂️", url_path="browser"),
        st.Page("pages/7_group.py", title="One group", icon="👥", url_path="group"),
        st.Page("pages/8_tools.py", title="Tool calls", icon="🐍", url_path="tools"),
    ],
    "Compare": [
        st.Page("pages/9_benchmarks.py", title="Benchmarks", icon="🏁", url_path="benchmarks"),
        st.Page("pages/10_ablation.py", title="Ablations", icon="⚖️", url_path="ablation"),
    ],
}

nav = st.navigation(PAGES)
st.session_state["_tao_sel"] = tao_ui.sidebar()
nav.run()
