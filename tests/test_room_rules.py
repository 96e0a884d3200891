"""Workshop mode's rules: who is who (signed tokens), who may do what, and the fair queue."""

from __future__ import annotations

import pytest

from aigc_core.errors import UserError
from aigc_core.room import identity, policy
from aigc_core.room.identity import LOCAL, Actor
from aigc_core.room.policy import Waiting


@pytest.fixture
def room(monkeypatch, fresh_home):
    monkeypatch.setenv("AIGC_WORKSHOP_CODE", "owl-42")
    monkeypatch.setenv("AIGC_TEACHER_CODE", "hawk-7")
    monkeypatch.delenv("AIGC_USER", raising=False)
    return fresh_home


def test_without_workshop_mode_everyone_is_the_local_user_and_flags_are_not_needed(monkeypatch):
    monkeypatch.delenv("AIGC_WORKSHOP_CODE", raising=False)
    assert not identity.workshop_mode()
    assert identity.actor_for_command_line() is LOCAL
    assert identity.actor_for_command_line("bob") is LOCAL
    assert policy.can_change(LOCAL, "alice")


def test_joining_with_the_room_code_gives_a_token_that_names_the_participant(room):
    actor, token = identity.join("owl-42", "  Alice   Smith ")
    assert actor == Actor("Alice Smith", "participant")
    assert identity.actor_from_token(token) == actor
    assert "Alice" not in token.split(".")[1]  # the signature is not the name


def test_the_teacher_code_makes_the_teacher(room):
    actor, token = identity.join("hawk-7", "")
    assert actor.is_teacher and actor.sees_everything
    assert identity.actor_from_token(token).is_teacher


def test_a_wrong_code_is_refused_plainly(room):
    with pytest.raises(UserError, match="not this room's code"):
        identity.join("owl-43", "alice")


def test_a_forged_or_edited_token_names_nobody(room):
    _, token = identity.join("owl-42", "alice")
    body, mac = token.split(".")
    forged_body = identity._b64(b'{"n":"bob","r":"teacher","t":1}')
    assert identity.actor_from_token(f"{forged_body}.{mac}") is None
    assert identity.actor_from_token(body + ".AAAA") is None
    assert identity.actor_from_token("alice") is None
    assert identity.actor_from_token("") is None


def test_new_room_codes_retire_old_tokens(room, monkeypatch):
    _, token = identity.join("owl-42", "alice")
    monkeypatch.setenv("AIGC_WORKSHOP_CODE", "owl-99")
    assert identity.actor_from_token(token) is None


def test_an_expired_token_names_nobody(room):
    _, token = identity.join("owl-42", "alice")
    assert identity.actor_from_token(token, now=10**12) is None


@pytest.mark.parametrize("name", ["", "x" * 40, "local", "Teacher", "<script>", "_x", "a/b"])
def test_unusable_display_names_are_refused(room, name):
    with pytest.raises(UserError):
        identity.join("owl-42", name)


def test_command_line_needs_a_user_in_workshop_mode(room, monkeypatch):
    with pytest.raises(UserError, match="--user NAME"):
        identity.actor_for_command_line()
    assert identity.actor_for_command_line("bob") == Actor("bob", "participant")
    monkeypatch.setenv("AIGC_USER", "carol")
    assert identity.actor_for_command_line() == Actor("carol", "participant")
    assert identity.actor_for_command_line(teacher=True).is_teacher


def test_participants_see_their_own_published_and_shared_things_only():
    alice, bob, teacher = Actor("alice"), Actor("bob"), Actor("T", "teacher")
    assert policy.can_see(alice, "alice")
    assert not policy.can_see(bob, "alice")
    assert policy.can_see(bob, "alice", published=True)
    assert policy.can_see(bob, "starter") and policy.can_see(bob, None)
    assert policy.can_see(teacher, "alice")


def test_only_the_owner_or_the_teacher_changes_a_run():
    alice, bob, teacher = Actor("alice"), Actor("bob"), Actor("T", "teacher")
    policy.check_change(alice, "alice")
    policy.check_change(teacher, "alice")
    with pytest.raises(UserError, match="this run belongs to alice"):
        policy.check_change(bob, "alice")
    with pytest.raises(UserError, match="only the teacher"):
        policy.check_change(bob, "starter")
    assert not policy.can_change(bob, "alice")


def test_fair_queue_gives_bob_a_slot_before_alices_second_run():
    queued = [Waiting("a1", "alice", 1.0), Waiting("a2", "alice", 2.0), Waiting("b1", "bob", 3.0)]
    assert [w.run_id for w in policy.fair_order(queued, {})] == ["a1", "b1", "a2"]
    # alice's first is training: bob's run is next, then alice's second
    assert [w.run_id for w in policy.fair_order(queued[1:], {"alice": 1})] == ["b1", "a2"]


def test_fair_queue_with_many_runs_from_one_person_does_not_starve_a_newcomer():
    queued = [Waiting(f"a{i}", "alice", float(i)) for i in range(200)] + [Waiting("n1", "newcomer", 500.0)]
    order = [w.run_id for w in policy.fair_order(queued, {"alice": 2})]
    assert order[0] == "n1"


def test_expected_wait_simulates_the_slots_in_fair_order():
    order = [Waiting("a", "alice", 1.0, seconds=30), Waiting("b", "bob", 2.0, seconds=60),
             Waiting("c", "carol", 3.0, seconds=10)]
    # one slot, busy for 20 more seconds
    assert policy.expected_wait(order, "a", 1, [20.0]) == 20.0
    assert policy.expected_wait(order, "b", 1, [20.0]) == 50.0
    assert policy.expected_wait(order, "c", 1, [20.0]) == 110.0
    # two slots, one free
    assert policy.expected_wait(order, "b", 2, [20.0]) == 20.0
    assert policy.expected_wait(order, "zzz", 1, []) is None
