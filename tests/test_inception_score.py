"""The Inception Score with the data set's own classifier."""

from __future__ import annotations

import math

import pytest
import torch

from aigc_core.data.catalog import load_dataset
from aigc_core.metrics.features import feature_net
from aigc_core.metrics.inception import inception_score, inception_scores, score_from_probs


def test_peaked_and_even_class_probabilities_score_the_number_of_classes():
    probs = torch.eye(10).repeat(20, 1).double()          # each sample sure of one class, all classes equally
    mean, std = score_from_probs(probs, splits=4)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-9)


def test_unsure_or_identical_samples_score_one():
    assert score_from_probs(torch.full((100, 10), 0.1).double())[0] == pytest.approx(1.0)
    one = torch.zeros(100, 10).double()
    one[:, 3] = 1.0
    assert score_from_probs(one)[0] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return data, feature_net(data)


def test_real_digits_score_far_above_noise(digits):
    data, net = digits
    real = data.images[:500].float() / 255
    noise = torch.rand(500, *real.shape[1:], generator=torch.Generator().manual_seed(0))
    real_is, _ = inception_score(real, net)
    noise_is, _ = inception_score(noise, net)
    assert real_is > 6.0, real_is        # ten classes, nearly all recognised
    assert noise_is < 1.5, noise_is      # "none of these" for all of them
    assert real_is > 4 * noise_is


def test_one_image_repeated_scores_about_one(digits):
    data, net = digits
    same = (data.images[:1].float() / 255).repeat(300, 1, 1, 1)
    assert inception_score(same, net)[0] == pytest.approx(1.0, abs=1e-6)


def test_eval_keys_carry_the_real_images_score_as_the_yardstick(digits):
    data, net = digits
    out = inception_scores(data.images[500:900].float() / 255, data, net)
    assert set(out) == {"inception_score", "inception_score_std", "inception_score_real"}
    assert all(math.isfinite(v) for v in out.values())
    assert out["inception_score"] == pytest.approx(out["inception_score_real"], rel=0.2)


def test_eval_of_a_run_on_a_labelled_set_reports_the_inception_score(digits):
    from aigc_core.metrics.labels import METRIC_INFO
    from aigc_core.train.evaluate import evaluate_run

    from tiny_runs import finished

    run = finished("mlp_gan", "digits", steps=10, width=32, batch_size=16)
    out = evaluate_run(run.id, n=300)
    assert {"inception_score", "inception_score_real", "fid"} <= set(out)
    assert 1.0 <= out["inception_score"] <= 11.0
    assert "not Inception v3" in METRIC_INFO["inception_score"]["how"]
