"""Augmentation for small data: DiffAugment's transforms are differentiable,
keep the shape and are applied to real and generated images alike (in D's
step and in G's); the autoencoders' flips, crops and rotations are a data
option on the training batch."""

from __future__ import annotations

import pytest
import torch

from aigc_core.config import from_dict
from aigc_core.data.base import ImageData
from aigc_core.errors import UserError
from aigc_core.models.gan import trainer as gan_trainer
from aigc_core.models.vae import trainer as vae_trainer
from aigc_core.registry import get_model
from aigc_core.train import augment

CPU = torch.device("cpu")


def batch(n: int = 6, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def squares(n: int = 24) -> ImageData:
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 8:20, 8:20] = 255
    return ImageData("squares", images)


@pytest.mark.parametrize("name", ["color", "translation", "cutout"])
def test_each_diffaugment_transform_keeps_the_shape_and_passes_gradients_to_the_pixels(name):
    x = batch().requires_grad_(True)
    out = augment.DIFF_AUGMENT[name](x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert not torch.equal(out.detach(), x.detach())
    out.pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_policy_applies_its_transforms_with_the_same_seed_the_same_way():
    x = batch()
    a = augment.diff_augment(x, "translation,cutout,color", torch.Generator().manual_seed(5))
    b = augment.diff_augment(x, "translation,cutout,color", torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == x.shape
    assert augment.diff_augment(x, "none") is x
    with pytest.raises(UserError, match="unknown augmentation zoom"):
        augment.diff_augment(x, "translation,zoom")


def test_translation_shifts_the_content_and_fills_the_border_with_zero():
    x = torch.ones(50, 1, 16, 16)
    out = augment.translation(x, torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert (out == 0).any() and (out == 1).any()


def test_cutout_zeroes_a_square_hole_half_the_side_wide():
    x = torch.ones(20, 1, 16, 16)
    out = augment.cutout(x, torch.Generator().manual_seed(0))
    holes = (out == 0).flatten(1).sum(1)
    assert holes.max() == 64 and holes.min() > 0  # 8 x 8 when inside, smaller where it hangs over the edge


def test_a_gan_with_augment_shows_d_augmented_real_and_generated_images_in_both_steps(monkeypatch):
    calls = []

    def spy(x, policy, gen=None):
        calls.append((tuple(x.shape), x.requires_grad, policy))
        return augment.diff_augment(x, policy, gen)

    monkeypatch.setattr(gan_trainer, "diff_augment", spy)
    spec = get_model("dcgan")
    cfg = from_dict(spec.config_cls, dict(ngf=8, ndf=8, nz=16, batch_size=4, augment="translation,cutout"))
    trainer = spec.trainer_cls(cfg, squares(), CPU, 0)
    out = trainer.step()
    # D step: the real batch and the generated batch (detached); G step: the generated batch with its graph
    assert calls == [((4, 1, 28, 28), False, "translation,cutout"), ((4, 1, 28, 28), False, "translation,cutout"),
                     ((4, 1, 28, 28), True, "translation,cutout")]
    assert torch.isfinite(out["loss_d"]) and torch.isfinite(out["loss_g"])
    calls.clear()
    plain = spec.trainer_cls(from_dict(spec.config_cls, dict(ngf=8, ndf=8, nz=16, batch_size=4)), squares(), CPU, 0)
    plain.step()
    assert calls == []  # augment=none never touches the batches


def test_mlp_gan_trains_with_every_diffaugment_policy():
    spec = get_model("mlp_gan")
    for policy in augment.GAN_AUGMENTS:
        trainer = spec.trainer_cls(from_dict(spec.config_cls, dict(width=16, batch_size=4, augment=policy)),
                                   squares(), CPU, 0)
        assert all(torch.isfinite(v) for v in trainer.step().values())


@pytest.mark.parametrize("name", ["flip", "crop", "rotate"])
def test_each_classic_augmentation_keeps_shape_and_pixel_range(name):
    x = (batch(channels=1) + 1) / 2
    out = augment.CLASSIC[name](x, torch.Generator().manual_seed(2))
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


def test_an_autoencoder_with_augment_trains_on_changed_images_and_measures_on_the_originals(monkeypatch):
    seen = []

    def spy(x, policy, gen=None):
        out = augment.classic_augment(x, policy, gen)
        seen.append((policy, torch.equal(out, x)))
        return out

    monkeypatch.setattr(vae_trainer, "classic_augment", spy)
    for model, small in [("vae", dict(hidden=32, batch_size=8)), ("conv_vae", dict(width=8, batch_size=8)),
                         ("ae", dict(hidden=32, batch_size=8))]:
        spec = get_model(model)
        trainer = spec.trainer_cls(from_dict(spec.config_cls, {**small, "augment": "crop,rotate"}), squares(), CPU, 0)
        trainer.step()
        trainer.evaluate()
    assert seen == [("crop,rotate", False)] * 3  # once per training step, never in evaluate


def test_flips_are_a_choice_digits_are_not_flipped_by_default():
    for model in ("vae", "conv_vae", "ae"):
        field = next(f for f in get_model(model).config_cls.__dataclass_fields__.values() if f.name == "augment")
        assert field.default == "none"
        assert "flip,crop,rotate" in field.metadata["choices"] and "crop,rotate" in field.metadata["choices"]
