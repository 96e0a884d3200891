"""AIGC Studio: the entry point only builds navigation and the shared sidebar.

Run with ``streamlit run app.py``. Every page is a short module in ``pages/``
that lays out widgets and calls :mod:`aigc_core`; no training happens here.
"""

from pathlib import Path

import streamlit as st

st.set_page_config(page_title="AIGC Studio", page_icon=":material/auto_awesome:", layout="wide")

from pages.common import show_page  # noqa: E402 - after set_page_config

HERE = Path(__file__).resolve().parent
PAGES = [  # (file, title, icon)
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/data.py", "Data", ":material/dataset:"),
    ("pages/train.py", "Train", ":material/model_training:"),
    ("pages/gallery.py", "Gallery", ":material/photo_library:"),
    ("pages/compare.py", "Compare", ":material/compare:"),
]

page = st.navigation([st.Page(path, title=title, icon=icon, default=(title == "Home"))
                      for path, title, icon in PAGES if (HERE / path).exists()])
show_page(page)
