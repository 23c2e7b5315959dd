"""taorl dashboard: `taorl dashboard RUNS_DIR` (or `streamlit run app/Home.py -- --runs-dir DIR`).

The router: page config, the shared sidebar (tao_ui.sidebar), then st.navigation over thin pages
that call taorl.store.queries for data and taorl.viz for figures.
"""

import streamlit as st
import tao_ui

st.set_page_config(page_title="taorl dashboard", page_icon=":material/explore:", layout="wide")

PAGES = {
    "Run": [
        st.Page("views/1_overview.py", title="Overview", icon=":material/monitor_heart:", url_path="overview", default=True),
        st.Page("views/2_curves.py", title="Training curves", icon=":material/show_chart:", url_path="curves"),
        st.Page("views/3_groups.py", title="Groups & filters", icon=":material/filter_alt:", url_path="groups"),
        st.Page("views/4_boundaries.py", title="Entropy at tool calls", icon=":material/construction:", url_path="boundaries"),
    ],
    "Inspect": [
        st.Page("views/5_tokens.py", title="Token view", icon=":material/text_fields:", url_path="tokens"),
        st.Page("views/6_browser.py", title="Trajectory browser", icon=":material/folder_open:", url_path="browser"),
        st.Page("views/7_group.py", title="One group", icon=":material/groups:", url_path="group"),
        st.Page("views/8_tools.py", title="Tool calls", icon=":material/terminal:", url_path="tools"),
    ],
    "Compare": [
        st.Page("views/9_benchmarks.py", title="Benchmarks", icon=":material/flag:", url_path="benchmarks"),
        st.Page("views/10_ablation.py", title="Ablations", icon=":material/compare:", url_path="ablation"),
    ],
}

nav = st.navigation(PAGES)
st.session_state["_tao_sel"] = tao_ui.sidebar()
nav.run()
