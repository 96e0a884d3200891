"""Image metrics that would catch a broken implementation: real against real
scores well, noise and a single repeated image score badly, training images
handed back count as copies, and the feature net is cached per data set."""

from __future__ import annotations

import pytest
import torch

from aigc_core.data.base import ImageData
from aigc_core.data.catalog import load_dataset
from aigc_core.errors import UserError
from aigc_core.metrics import features, image
from aigc_core.metrics.manifold import manifold_scores


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")  # 1,797 real 8 x 8 handwritten digits with labels


@pytest.fixture(scope="module")
def net(digits):
    return features.feature_net(digits)


@pytest.fixture(scope="module")
def halves(digits):
    perm = torch.randperm(len(digits), generator=torch.Generator().manual_seed(3))
    a, b = perm[:600], perm[600:1200]
    return image.unit_images(digits.images[a]), image.unit_images(digits.images[b])


@pytest.fixture(scope="module")
def scored(net, halves):
    real_a, real_b = halves
    noise = torch.rand(real_b.shape, generator=torch.Generator().manual_seed(0))
    one = real_b[:1].expand_as(real_b).clone()
    return {name: image.distribution_scores(real_a, fake, net)[0]
            for name, fake in {"real": real_b, "noise": noise, "one image": one}.items()}


def test_fid_and_kid_of_two_real_halves_are_far_below_noise_and_one_repeated_image(scored):
    real, noise, one = scored["real"], scored["noise"], scored["one image"]
    assert real["fid"] * 20 < noise["fid"] and real["fid"] * 20 < one["fid"], scored
    assert real["kid"] * 20 < noise["kid"] and real["kid"] * 20 < one["kid"], scored
    assert real["fid"] >= 0


def test_precision_and_recall_of_real_against_real_are_near_one(scored):
    real = scored["real"]
    assert real["precision"] > 0.8 and real["recall"] > 0.8 and real["coverage"] > 0.8
    assert 0.8 < real["density"] < 1.25


def test_noise_is_not_realistic_and_one_repeated_image_covers_nothing(scored):
    assert scored["noise"]["precision"] < 0.05 and scored["noise"]["coverage"] < 0.05
    assert scored["one image"]["recall"] < 0.05 and scored["one image"]["coverage"] < 0.05


def test_manifold_scores_tell_a_shrunken_cloud_from_a_shifted_one():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(1000, 4, generator=g)
    same = manifold_scores(real, torch.randn(1000, 4, generator=g))
    shrunk = manifold_scores(real, 0.3 * torch.randn(1000, 4, generator=g))
    shifted = manifold_scores(real, torch.randn(1000, 4, generator=g) + 4)
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    assert shrunk["precision"] > 0.95 and shrunk["recall"] < 0.2  # realistic but not varied
    assert shifted["precision"] < 0.05 and shifted["coverage"] < 0.05


def test_the_classifier_recognises_real_digits_of_every_class_but_not_noise(net, halves):
    real_f = features.features_of(net, halves[1])
    noise_f = features.features_of(net, torch.rand(halves[1].shape, generator=torch.Generator().manual_seed(1)))
    real, noise = image.recognition_scores(real_f, net), image.recognition_scores(noise_f, net)
    assert real["recognised"] > 0.8 and real["classes_covered"] == 10
    assert noise["recognised"] < 0.05


def test_a_generator_that_returns_training_images_has_a_copy_rate_near_one(digits):
    handed_back = image.unit_images(digits.images[torch.randperm(len(digits))[:300]])
    scores = image.copy_scores(handed_back, digits)
    assert scores["copy_rate"] > 0.95 and scores["copy_distance"] < 1e-3


def test_new_real_images_are_rarely_called_copies(digits):
    known = ImageData("digits_first_half", digits.images[:900], digits.labels[:900])
    new = image.unit_images(digits.images[900:])
    assert image.copy_scores(new, known)["copy_rate"] < 0.15


def test_nearest_neighbours_finds_each_samples_training_image_by_name_or_data_set(digits):
    picks = torch.tensor([5, 100, 1500])
    samples = image.unit_images(digits.images[picks])
    for dataset in ("digits", digits):
        found = image.nearest_neighbours(samples, dataset)
        assert found["images"].shape == samples.shape and found["images"].dtype == torch.float32
        assert torch.allclose(found["images"], samples) and found["distances"].shape == (3,)
        assert float(found["distances"].max()) < 1e-3
    blurred = (samples + 0.2 * torch.rand(samples.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert float(image.nearest_neighbours(blurred, digits)["distances"].min()) > 0.01


def test_nearest_neighbours_refuses_samples_of_another_size(digits):
    with pytest.raises(UserError, match="8x8"):
        image.nearest_neighbours(torch.rand(2, 1, 28, 28), digits)


def test_the_feature_net_is_cached_as_safetensors_keyed_by_name_and_content(digits, net):
    key = features.data_key(digits)
    path = features._path(key)
    assert key.startswith("digits-") and path.exists() and path.suffix == ".safetensors"
    loaded = features._load(path)
    x = image.unit_images(digits.images[:50])
    assert torch.allclose(loaded(x), net(x), atol=1e-5)
    assert net.facts["held_out_accuracy"] > 0.9
    changed = ImageData("digits", digits.images.flip(-1), digits.labels)
    assert features.data_key(changed) != key and features.cached_feature_net(changed) is None


def test_a_set_too_small_for_a_feature_net_is_refused_with_the_reason():
    small = ImageData("few", torch.zeros(50, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(UserError, match="at least 200"):
        features.feature_net(small)
    assert features.cached_feature_net(small) is None


def test_an_unlabelled_set_gets_an_autoencoder_whose_features_still_tell_noise_from_data(digits):
    unlabelled = ImageData("digits_nolabels", digits.images[:600])
    ae, facts = features.train_feature_net(unlabelled, max_steps=150)
    assert not ae.labelled and ae.num_features == features.FEATURE_DIM and facts["held_out_rmse"] < 0.3
    real_a, real_b = image.unit_images(digits.images[600:1000]), image.unit_images(digits.images[1000:1400])
    same = image.distribution_scores(real_a, real_b, ae)[0]
    noise = image.distribution_scores(real_a, torch.rand(real_b.shape), ae)[0]
    assert same["fid"] * 10 < noise["fid"] and image.recognition_scores(torch.zeros(3, 64), ae) == {}
