"""The room: who is acting, what they own, and what one run may cost.

- :mod:`aigc_core.room.identity`: the single local user, a workshop
  participant or the teacher, and the signed tokens that say who is who;
- :mod:`aigc_core.room.policy`: ownership and the fair queue, as functions of
  plain values;
- :mod:`aigc_core.room.limits`: model size, memory, time budget, film-strip
  frames and metric rows, and each participant's runs, data sets and bytes;
- :mod:`aigc_core.room.board`: what the room shares and the teacher sees:
  who is here, the load, the room preset, the shared wall, the leaderboard.
"""
