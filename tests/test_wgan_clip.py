"""The original WGAN (loss=wgan) beside WGAN-GP: the critic's weights stay
inside [-c, c], RMSProp with the paper's learning rate and critic steps
unless the user sets them, and the numbers a lesson needs are logged."""

from __future__ import annotations

import pytest
import torch

from aigc_core.config import from_dict
from aigc_core.data.base import ImageData
from aigc_core.models import gan
from aigc_core.registry import get_model, metric_info
from aigc_core.runs import api
from tests.tiny_runs import tiny_images

CPU = torch.device("cpu")


def squares(n: int = 24) -> ImageData:
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 8:20, 8:20] = 255
    return ImageData("squares", images)


def wgan(model: str = "dcgan", **overrides):
    spec = get_model(model)
    small = {"dcgan": dict(ngf=8, ndf=8, nz=16, batch_size=8), "mlp_gan": dict(width=16, batch_size=8)}[model]
    cfg = from_dict(spec.config_cls, {**small, "loss": "wgan", **overrides})
    return spec.trainer_cls(cfg, squares(), CPU, 0)


@pytest.mark.parametrize("model", ["dcgan", "mlp_gan"])
def test_every_critic_weight_stays_within_the_clip_after_steps(model):
    trainer = wgan(model, clip_value=0.02, lr_d=1e-2)  # a large step: unclipped, weights would leave the box
    for _ in range(3):
        out = trainer.step()
    weights = [p.detach() for p in trainer.nets["D"].parameters()]
    assert max(float(w.abs().max()) for w in weights) <= 0.02 + 1e-7
    assert float(out["critic_weight_max"]) == pytest.approx(0.02)  # pinned at c: the clip is doing the work
    assert torch.isfinite(out["wasserstein"])


def test_wgan_uses_rmsprop_and_the_papers_settings_unless_the_user_sets_them():
    trainer = wgan()
    assert all(isinstance(opt, torch.optim.RMSprop) for opt in trainer.optims.values())
    data = tiny_images()
    chosen = api.make_config("dcgan", data, model_set={"loss": "wgan"})["model_config"]
    assert (chosen["lr_g"], chosen["lr_d"], chosen["d_steps"], chosen["clip_value"]) == (5e-5, 5e-5, 5, 0.01)
    mine = api.make_config("dcgan", data, model_set={"loss": "wgan", "lr_d": 1e-4, "d_steps": 2})["model_config"]
    assert (mine["lr_g"], mine["lr_d"], mine["d_steps"]) == (5e-5, 1e-4, 2)
    other = api.make_config("dcgan", data, model_set={"loss": "wgan_gp"})["model_config"]
    assert (other["lr_g"], other["d_steps"]) == (2e-4, 1)
    assert isinstance(wgan(loss="wgan_gp").optims["D"], torch.optim.Adam)


def test_the_wasserstein_estimate_is_logged_for_both_critics_and_explained():
    assert "wasserstein" in wgan(loss="wgan_gp").step()
    assert "critic_weight_max" not in wgan(loss="wgan_gp").step()
    info = metric_info("dcgan")
    assert info["wasserstein"]["label"] == "Wasserstein estimate"
    assert info["critic_weight_max"]["label"] == "Largest critic weight"


def test_clip_weights_clamps_in_place_and_reports_the_largest_weight():
    net = torch.nn.Linear(4, 3)
    with torch.no_grad():
        net.weight.fill_(0.5)
        net.bias.fill_(-0.003)
    assert float(gan.clip_weights(net, 0.01)) == pytest.approx(0.01)
    assert float(net.weight.detach().max()) == pytest.approx(0.01) and float(net.bias.detach().min()) == pytest.approx(-0.003)


def test_the_explanation_shows_the_clip_and_why_the_penalty_replaced_it():
    text = get_model("dcgan").explanation({"loss": "wgan"})
    assert r"\operatorname{clip}(w, -c, c)" in text
    assert "Gulrajani" in text and "explode" in text and "capacity" in text
