"""taorl dashboard: `taorl dashboard RUNS_DIR` (or `streamlit run app/Home.py -- --runs-dir DIR`).

The router: page config, the shared sidebar (tao_ui.sidebar), then st.navigation over thin pages
that call taorl.store.queries for data and taorl.viz for figures.
"""

from pathlib import Path

import streamlit as st
import tao_ui

if st.get_option("client.toolbarMode") == "auto":  # `streamlit run app/Home.py` without taorl's launcher
    st.set_option("client.toolbarMode", "viewer")  # no Deploy button: a local research tool
st.set_page_config(page_title="taorl dashboard", page_icon=":material/explore:", layout="wide",
                   menu_items={"Get help": None, "Report a bug": None,
                               "About": "taorl dashboard: live views of TAO-RL runs and experiments "
                                        "(`taorl dashboard RUNS_DIR`)."})

root = tao_ui.runs_root()
found = tao_ui.experiments(str(root)) if root.is_dir() else []
# opened on an experiment folder (or its runs/): the experiment is the first page
on_experiment = len(found) == 1 and Path(found[0]).resolve() in (root.resolve(), root.resolve().parent)
EXPERIMENT = st.Page("views/0_experiment.py", title="Experiment", icon=":material/science:", url_path="experiment")
OVERVIEW = st.Page("views/1_overview.py", title="Overview", icon=":material/monitor_heart:", url_path="overview")


def _start() -> None:
    """`/`: go to the first page, keeping the query (?run=...). Streamlit serves its default page at `/`
    only, so the visible pages are not the default: /overview and /experiment stay valid links."""
    st.switch_page(EXPERIMENT if on_experiment else OVERVIEW, query_params=st.query_params.to_dict())
PAGES = {
    "": [st.Page(_start, title="taorl dashboard", url_path="start", default=True, visibility="hidden")],
    **({"Experiment": [EXPERIMENT]} if on_experiment else {}),
    "Run": [
        OVERVIEW,
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
        *([] if on_experiment else [EXPERIMENT]),
        st.Page("views/9_benchmarks.py", title="Benchmarks", icon=":material/flag:", url_path="benchmarks"),
        st.Page("views/10_ablation.py", title="Ablations", icon=":material/compare:", url_path="ablation"),
    ],
}

nav = st.navigation(PAGES)
st.session_state["_tao_sel"] = tao_ui.sidebar()
nav.run()
