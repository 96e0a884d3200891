"""The room: who is acting, what they own, and what one run may cost.

So far it holds :mod:`aigc_core.room.limits` (model size, memory, time budget,
film-strip frames and metric rows); workshop mode adds participants and
ownership here.
"""
