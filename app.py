"""AIGC Studio: the entry point only builds navigation and the shared sidebar.

Run with ``streamlit run app.py``. Every page is a short module in ``pages/``
that lays out widgets and calls :mod:`aigc_core`; no training happens here.
"""

from pathlib import Path

import streamlit as st

st.set_page_config(page_title="AIGC Studio", page_icon=":material/auto_awesome:", layout="wide")

from aigc_core.room.identity import workshop_mode  # noqa: E402
from pages.common import current_actor, room_gate, show_page  # noqa: E402 - after set_page_config

HERE = Path(__file__).resolve().parent
PAGES = [  # (file, title, icon)
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/data.py", "Data", ":material/dataset:"),
    ("pages/train.py", "Train", ":material/model_training:"),
    ("pages/gallery.py", "Gallery", ":material/photo_library:"),
    ("pages/compare.py", "Compare", ":material/compare:"),
    ("pages/learn.py", "Learn", ":material/school:"),
]
#: in workshop mode: the room's wall for everyone, the Room page for the teacher
WALL_PAGE = ("pages/wall.py", "Wall", ":material/wall_art:")
ROOM_PAGE = ("pages/room.py", "Room", ":material/groups:")

actor = current_actor()
pages = PAGES + [WALL_PAGE] if workshop_mode() else PAGES
if actor is not None and actor.is_teacher:
    pages = pages + [ROOM_PAGE]
page = st.navigation([st.Page(path, title=title, icon=icon, default=(title == "Home"))
                      for path, title, icon in pages if (HERE / path).exists()])
if actor is None:
    room_gate()  # workshop mode, not joined yet: the join form, and no page
show_page(page)
