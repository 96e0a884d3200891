"""AIGC Studio: the entry point only builds navigation and the shared sidebar.

Run with ``streamlit run app.py``. Every page is a short module in ``pages/``
that lays out widgets and calls :mod:`aigc_core`; no training happens here.
"""

import streamlit as st

st.set_page_config(page_title="AIGC Studio", page_icon=":material/auto_awesome:", layout="wide")

from pages.common import sidebar  # noqa: E402 - after set_page_config

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/gallery.py", title="Gallery", icon=":material/photo_library:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
]

page = st.navigation(PAGES)
sidebar()
page.run()
