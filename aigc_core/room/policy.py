"""Ownership and the fair queue: the rules, as functions of plain values.

The run store, the data catalogue and the command line call these; pages only
show what they decide. In single-user mode the local actor owns everything, so
none of these rules ever refuses anything.

- A participant lists, controls, samples from and deletes only their own runs
  and data sets, plus what others **published** to the room and the built-ins
  and starters (which belong to nobody).
- The teacher sees and controls everything.
- Training slots go round-robin between people: among the queued runs, the
  next one belongs to whoever has the fewest runs training now plus ahead of it
  in their own queue; ties go to whoever was served longest ago (a slot last
  went to them earliest, or never), then to the earlier request.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .identity import Actor

#: owners that are not people: shipped or built-in things anyone may see and sample
SHARED_OWNERS = {None, "", "starter", "builtin"}


def can_see(actor: Actor, owner: str | None, published: bool = False) -> bool:
    """Whether ``actor`` may list, open and sample from a thing owned by ``owner``."""
    return actor.sees_everything or owner in SHARED_OWNERS or owner == actor.name or bool(published)


def can_change(actor: Actor, owner: str | None) -> bool:
    """Whether ``actor`` may stop, resume, rename, publish or delete it."""
    return actor.sees_everything or (owner not in SHARED_OWNERS and owner == actor.name)


def check_see(actor: Actor, owner: str | None, published: bool = False, what: str = "run") -> None:
    if not can_see(actor, owner, published):
        raise UserError(f"this {what} belongs to {owner}")


def check_change(actor: Actor, owner: str | None, what: str = "run") -> None:
    if can_change(actor, owner):
        return
    if owner in SHARED_OWNERS:
        raise UserError(f"this {what} is shared with the whole room; only the teacher can change it")
    raise UserError(f"this {what} belongs to {owner}")


@dataclass(frozen=True)
class Waiting:
    """A queued run as the fair order sees it."""

    run_id: str
    user: str
    created: float
    #: expected training seconds (its time budget, or its steps at a typical speed)
    seconds: float = 0.0


def fair_order(queued: list[Waiting], active_by_user: dict[str, int],
               last_served: dict[str, float] | None = None) -> list[Waiting]:
    """Queued runs in the order they get slots: round-robin between people.

    A run's round is how many runs its owner has training now plus how many of
    the owner's own queued runs were requested before it; lower rounds go
    first, then whoever got a slot longest ago (``last_served``: person -> when
    their latest run started; never = first), then earlier requests. With one
    slot, alice's two runs and then bob's one: alice's first (round 0), bob's
    (round 0, later), alice's second (round 1); and once alice's first has
    finished, her second and bob's are both round 0, but alice was served
    last, so bob's still goes first."""
    last_served = last_served or {}
    seen: dict[str, int] = {}
    keyed = []
    for w in sorted(queued, key=lambda w: (w.created, w.run_id)):
        ahead = seen.get(w.user, 0)
        seen[w.user] = ahead + 1
        served = last_served.get(w.user, float("-inf"))
        keyed.append(((active_by_user.get(w.user, 0) + ahead, served, w.created, w.run_id), w))
    return [w for _, w in sorted(keyed, key=lambda kw: kw[0])]


def expected_wait(order: list[Waiting], run_id: str, slots: int, busy_seconds_left: list[float]) -> float | None:
    """Seconds until ``run_id`` starts, simulating the slots in the fair order.

    ``busy_seconds_left`` are the remaining seconds of the runs training now.
    Returns ``None`` when the run is not waiting."""
    ids = [w.run_id for w in order]
    if run_id not in ids:
        return None
    free_at = sorted(list(busy_seconds_left) + [0.0] * max(0, slots - len(busy_seconds_left)))[:max(1, slots)]
    if len(free_at) < max(1, slots):
        free_at += [0.0] * (max(1, slots) - len(free_at))
    for w in order:
        start = free_at.pop(0)
        if w.run_id == run_id:
            return start
        free_at.append(start + max(0.0, w.seconds))
        free_at.sort()
    return None
