"""WattGPU dashboard: the router. Run with ``streamlit run app.py``."""

import streamlit as st

from pages.ui import shared

st.set_page_config(page_title="WattGPU", page_icon=":material/bolt:", layout="wide")
page = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/compare.py", title="Compare GPUs", icon=":material/leaderboard:"),
    st.Page("pages/plan.py", title="Plan a deployment", icon=":material/dns:"),
    st.Page("pages/side_by_side.py", title="Side by side", icon=":material/compare:"),
    st.Page("pages/explain.py", title="Explain", icon=":material/psychology:"),
    st.Page("pages/cross_validation.py", title="Cross-validation", icon=":material/fact_check:"),
    st.Page("pages/data.py", title="Data", icon=":material/database:"),
])
page.run()
shared.after_page_drawn()
