"""Class-conditional generation: a conditional DCGAN or conv VAE draws the
class asked for (by name or index), refuses data without classes, shows one
row per class, and leaves unconditional runs (and the shipped starters) as
they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from aigc_core.config import from_dict
from aigc_core.data.base import ImageData
from aigc_core.errors import UserError
from aigc_core.registry import get_model
from aigc_core.runs import api
from tests.tiny_runs import QUIET, open_page, tiny_images

CPU = torch.device("cpu")
STARTERS = Path(__file__).resolve().parent.parent / "starters"
SMALL = {"dcgan": dict(ngf=8, ndf=8, nz=16, batch_size=8), "conv_vae": dict(width=8, latent_dim=4, batch_size=8)}


def digits_like(n: int = 40, classes: int = 4) -> ImageData:
    """Labelled 28 x 28 images: class k is a bright bar at row 5k."""
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    for i, k in enumerate(labels.tolist()):
        images[i, :, 5 * k:5 * k + 4, 4:24] = 255
    return ImageData("bars", images, labels, ["top", "upper", "lower", "bottom"][:classes])


def make(model: str, data, **overrides):
    spec = get_model(model)
    cfg = from_dict(spec.config_cls, {**SMALL[model], **overrides})
    return spec.trainer_cls(cfg, data, CPU, 0)


@pytest.mark.parametrize("model", ["dcgan", "conv_vae"])
def test_a_conditional_model_samples_the_class_asked_for_by_name_or_index(model):
    trainer = make(model, digits_like(), conditional=True)
    for _ in range(2):
        trainer.step()
    trainer.train_mode(False)
    spec = get_model(model)
    by_name = trainer.sample(6, 3, **spec.parse_knobs({"label": "lower"}))
    by_index = trainer.sample(6, 3, **spec.parse_knobs({"label": "2"}))
    assert by_name.shape == (6, 1, 28, 28)
    assert torch.equal(by_name, by_index)
    assert not torch.equal(by_name, trainer.sample(6, 3, label="top"))
    assert trainer.sample(6, 3).shape == (6, 1, 28, 28)  # "all": classes drawn from the seed
    assert torch.equal(trainer.labels_for("all", 50, 9)[:6], trainer.labels_for("all", 6, 9))
    assert set(trainer.labels_for("all", 200, 1).tolist()) == {0, 1, 2, 3}
    assert trainer.condition_choices() == {"label": ["top", "upper", "lower", "bottom"]}
    with pytest.raises(UserError, match="no class 'middle'.*top, upper, lower, bottom"):
        trainer.sample(2, 0, label="middle")
    with pytest.raises(UserError, match="no class '7'"):
        trainer.sample(2, 0, label="7")


@pytest.mark.parametrize("model", ["dcgan", "conv_vae"])
def test_an_unconditional_model_refuses_a_class_but_takes_all(model):
    trainer = make(model, digits_like())
    assert trainer.condition_choices() == {}
    assert trainer.sample(2, 0, label="all").shape == (2, 1, 28, 28)
    with pytest.raises(UserError, match="trained without classes"):
        trainer.sample(2, 0, label="3")


@pytest.mark.parametrize("model", ["dcgan", "conv_vae"])
def test_a_conditional_run_on_a_set_without_classes_is_refused_when_the_config_is_made(model):
    unlabelled = tiny_images()
    with pytest.raises(UserError, match="conditional=true needs a labelled image set"):
        api.make_config(model, unlabelled, model_set={"conditional": True})
    api.make_config(model, tiny_images("tiny_img_classes", classes=3), model_set={"conditional": True})


@pytest.mark.parametrize("model", ["dcgan", "conv_vae"])
def test_the_film_strip_of_a_conditional_model_has_one_row_per_class(model):
    plain = make(model, digits_like()).film_strip()
    per_class = make(model, digits_like(classes=3), conditional=True).film_strip()
    assert plain.size[0] == per_class.size[0]  # 8 samples a row either way
    assert per_class.size[1] == pytest.approx(plain.size[1] * 3 / 8, abs=4)  # 3 rows instead of 8


def test_a_conditional_vae_rebuilds_held_out_images_with_the_class_it_infers():
    trainer = make("conv_vae", digits_like(80), conditional=True)
    for _ in range(30):
        trainer.step()
    images = trainer.held_out[:4].float().div(255)
    assert trainer.reconstruct(images).shape == images.shape
    assert trainer.infer_labels(images).shape == (4,)
    elbo = trainer.held_out_elbo(images)
    assert elbo < 0 and torch.isfinite(torch.tensor(elbo))
    assert set(trainer.evaluate()) >= {"val_loss", "val_elbo"}


@pytest.mark.parametrize("starter", ["dcgan-glyphs", "dcgan-shapes"])
def test_conditional_false_keeps_the_weights_of_the_shipped_starters(starter):
    """Same checkpoint keys and shapes as the starters shipped before conditional existed."""
    card = json.loads((STARTERS / starter / "config.json").read_text())
    with safe_open(str(STARTERS / starter / "model.safetensors"), "pt") as f:
        shipped = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys() if k.startswith("s.nets.")}
    spec = get_model(card["model"])
    cfg = from_dict(spec.config_cls, card["model_config"])
    assert cfg.conditional is False and cfg.augment == "none"
    from aigc_core.data.catalog import load_dataset

    trainer = spec.trainer_cls(cfg, load_dataset(card["dataset"]), CPU, 0)
    fresh = {f"s.nets.{net}.{k}": tuple(v.shape) for net, m in trainer.nets.items() for k, v in m.state_dict().items()}
    assert fresh == shipped


def test_the_gallery_picks_a_class_and_shows_one_row_per_class():
    cfg = api.make_config("dcgan", tiny_images("tiny_img_classes", classes=3),
                          model_set={**SMALL["dcgan"], "conditional": True},
                          train_set={"steps": 2, "checkpoint_every": 2, "sample_every": 2, "device": "cpu"})
    run = api.run_in_foreground(cfg, **QUIET)
    at = open_page("pages/gallery.py", run.id)
    assert not at.exception and not at.error
    picker = at.selectbox(key="g_label")
    assert picker.options == ["all", "a", "b", "c"]
    picker.set_value("b").run()
    assert not at.exception and not at.error
    at.toggle(key="g_per_value").set_value(True).run()
    assert not at.exception and not at.error
    assert any("one row per class, top to bottom: a, b, c" in c for img in at.image for c in img.captions)
