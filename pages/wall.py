"""Wall (workshop mode): the samples people published to the room, with their
names, newest first, and the room leaderboard over the published runs."""

from __future__ import annotations

import time

import streamlit as st

from aigc_core.room import board
from pages.common import acting, guard, room_leaderboard

actor = acting("Wall")
st.title("The room's wall")
st.caption("Samples people in this workshop posted from the Gallery, newest first, and how the published runs "
           "compare. Post your own from the Gallery.")

posts = board.wall(actor=actor)
if not posts:
    st.info("Nothing on the wall yet. In the Gallery, generate samples and press **Post to the wall**.",
            icon=":material/wall_art:")
columns = st.columns(3)
for i, post in enumerate(posts):
    with columns[i % 3].container(border=True):
        minutes = max(0, time.time() - post.created) / 60
        st.text(f"{post.user} · {post.run_name} · {minutes:.0f} min ago")
        if post.caption:
            st.text(post.caption)
        if post.path is not None and post.path.exists():
            st.image(str(post.path), use_container_width=True)
        elif post.text is not None:
            st.code(post.text, language=None, wrap_lines=True)
        if post.user == actor.name:
            if st.button("Take it down", key=f"down_{post.id}"):
                with guard("Taking the post down"):
                    board.hide_post(post.id, actor=actor)
                    st.rerun()

st.subheader("Room leaderboard")
room_leaderboard(actor, key="wall_board_dataset")
