"""Human evaluation: thumbs-up share, real-or-generated rounds and the fooling rate."""

from __future__ import annotations

import math

import pytest
import torch

from aigc_core import data_loop
from aigc_core.errors import UserError
from aigc_core.human_eval import (GENERATED, REAL, fooling_rate, human_scores, make_round, round_score,
                                     submit_round, thumbs_up, wilson_interval)
from aigc_core.rating_rules import rate_by_rule

from tiny_runs import dcgan_run, finished, tiny_lines


def test_wilson_interval_matches_the_textbook_values():
    # 8 of 20: the usual worked example, (0.219, 0.613)
    low, high = wilson_interval(8, 20)
    assert low == pytest.approx(0.2188, abs=1e-3) and high == pytest.approx(0.6134, abs=1e-3)
    # it stays inside [0, 1] and is not empty at the edges, where p +- z sqrt(p(1-p)/n) collapses to a point
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.25 < high < 0.35
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.65 < low < 0.75
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_interval_narrows_as_more_people_play():
    widths = [wilson_interval(n // 4, n)[1] - wilson_interval(n // 4, n)[0] for n in (20, 80, 320)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[1] == pytest.approx(widths[0] / 2, rel=0.2)  # about 1 / sqrt(n)


def test_a_round_score_counts_generated_samples_taken_for_real():
    truth = [REAL, GENERATED, GENERATED, REAL, GENERATED, REAL]
    answers = [REAL, REAL, GENERATED, GENERATED, REAL, REAL]
    assert round_score(truth, answers) == {"right": 3, "fooled": 2, "generated": 3, "items": 6}


def test_rounds_are_half_real_half_generated_and_the_fooling_rate_pools_every_player():
    run = dcgan_run(steps=10)
    first = make_round(run.id, player="ana", seed=1)
    assert len(first.items) == 20 and sum(it.truth == REAL for it in first.items) == 10
    assert all(tuple(it.content.shape) == (1, 28, 28) for it in first.items)
    # ana is fooled by every generated image; bo by none
    assert submit_round(first.id, [REAL] * 20)["fooled"] == 10
    second = make_round(run.id, player="bo", seed=2)
    submit_round(second.id, {it.position: it.truth for it in second.items})
    score = fooling_rate(run.id)
    assert score["fooling_rate"] == pytest.approx(10 / 20) and score["fooling_judged"] == 20
    assert score["fooling_players"] == 2 and score["fooling_accuracy"] == pytest.approx(30 / 40)
    low, high = wilson_interval(10, 20)
    assert (score["fooling_rate_low"], score["fooling_rate_high"]) == (low, high)


def test_the_order_of_a_round_is_random_but_the_same_for_its_seed():
    run = dcgan_run(steps=10)
    a, b = make_round(run.id, seed=5), make_round(run.id, seed=5)
    assert [it.truth for it in a.items] == [it.truth for it in b.items]
    assert [it.truth for it in a.items] != [REAL] * 10 + [GENERATED] * 10


def test_a_round_counts_once_and_needs_every_answer():
    run = dcgan_run(steps=10)
    round_ = make_round(run.id, n=4, seed=3)
    with pytest.raises(UserError, match="1 of 4 still open"):
        submit_round(round_.id, [REAL, REAL, GENERATED])
    submit_round(round_.id, [REAL] * 4)
    with pytest.raises(UserError, match="already in"):
        submit_round(round_.id, [REAL] * 4)
    with pytest.raises(UserError, match="even number"):
        make_round(run.id, n=5)


def test_text_rounds_show_real_lines_and_generated_lines():
    run = finished("bigram", tiny_lines(), steps=10)
    round_ = make_round(run.id, n=6, seed=0)
    assert all(isinstance(it.content, str) and it.kind == "text" for it in round_.items)


def test_nobody_played_means_no_score_rather_than_zero():
    run = dcgan_run(steps=10)
    assert fooling_rate(run.id) == {} and thumbs_up(run.id) == {}


def test_the_thumbs_up_share_counts_people_and_leaves_rule_ratings_out():
    run = dcgan_run(steps=10)
    image = torch.rand(1, 28, 28)
    for i, rating in enumerate([1, 1, 0, 1]):
        data_loop.rate_image(run.id, image, rating, step=run.step, seed=0, index=i)
    rate_by_rule(run.id, "brightest=0.25", n=12, seed=99)  # 3 up, 9 down, by a rule
    score = thumbs_up(run.id)
    assert score["human_like_share"] == pytest.approx(0.75) and score["human_ratings"] == 4
    assert set(human_scores(run.id)) >= {"human_like_share", "human_ratings"}
    assert not math.isnan(score["human_like_low"])
