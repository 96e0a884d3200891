"""The room's queue simulated from per-run times (docs/scaling.md's tables)."""

from __future__ import annotations

from aigc_core.room.capacity import simulate, table


def test_with_one_slot_a_second_run_waits_until_everyone_has_had_a_first():
    # alice and bob press Train twice each; 10 s runs; one slot: alice, bob, alice, bob
    wait = simulate(participants=2, slots=1, run_seconds=[10.0], runs_each=2)
    assert (wait.mean, wait.longest, wait.all_done) == (15.0, 30.0, 40.0)


def test_more_nodes_shorten_the_wait_in_proportion():
    one, four = simulate(100, 1, [30.0, 60.0]), simulate(100, 4, [30.0, 60.0])
    assert one.all_done == 100 / 2 * 90.0
    assert four.longest <= one.longest / 4 + 60.0 and four.all_done < one.all_done / 3


def test_the_table_has_a_row_per_room_size_and_node_count():
    rows = table([30.0], rooms=(30, 100), nodes=(1, 4)).splitlines()[2:]
    assert [r.split("|")[1:4] for r in rows] == [[" 30 ", " 1 ", " 1 "], [" 30 ", " 4 ", " 4 "],
                                                [" 100 ", " 1 ", " 1 "], [" 100 ", " 4 ", " 4 "]]
