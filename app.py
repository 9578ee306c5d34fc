"""WattGPU dashboard: the router. Run with ``streamlit run app.py``."""

import streamlit as st

from pages.ui import shared

st.set_page_config(page_title="WattGPU", page_icon=":material/bolt:", layout="wide")
page = st.navigation(shared.app_pages())
shared.router_ran()
page.run()
shared.after_page_drawn()
