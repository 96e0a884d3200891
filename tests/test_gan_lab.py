"""The 2-D GAN lab's engine and the latent lab's engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_core.errors import UserError
from aigc_core.learn.gan_lab import DATASETS, LOSSES, GanLab, lab_figure, measure_frames_per_second


@pytest.mark.parametrize("dataset", DATASETS)
def test_a_frame_has_real_and_fake_points_a_heat_map_a_manifold_and_arrows(dataset):
    frame = GanLab(dataset=dataset).frame(grid=20, manifold=7)
    assert frame.real.shape == (512, 2) and frame.fake.shape == (256, 2) and frame.arrows.shape == (256, 2)
    assert frame.heat.shape == (20, 20) and frame.axis.shape == (20,)
    assert ((frame.heat > 0) & (frame.heat < 1)).all()  # non-saturating: D's probability of "real"
    assert frame.manifold.shape == (7, 7, 2)
    assert np.isfinite(frame.arrows).all() and np.abs(frame.arrows).max() > 0


def test_training_d_only_leaves_g_alone_and_g_only_leaves_d_alone():
    lab = GanLab(seed=1)
    g0 = [p.detach().clone() for p in lab.G.parameters()]
    d0 = [p.detach().clone() for p in lab.D.parameters()]
    lab.step("d", 3)
    assert all(torch.equal(a, b) for a, b in zip(g0, lab.G.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d0, lab.D.parameters()))
    d1 = [p.detach().clone() for p in lab.D.parameters()]
    lab.step("g", 3)
    assert all(torch.equal(a, b) for a, b in zip(d1, lab.D.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(g0, lab.G.parameters()))
    assert lab.step_count == 6


def test_training_only_d_sharpens_its_verdict_on_real_against_generated_points():
    lab = GanLab(dataset="ring8", seed=0)
    before = lab.frame()
    lab.step("d", 60)
    after = lab.frame()

    def gap(frame):  # D's output near real points minus near generated points
        def at(points):
            ix = np.clip(np.searchsorted(frame.axis, points[:, 0]), 0, len(frame.axis) - 1)
            iy = np.clip(np.searchsorted(frame.axis, points[:, 1]), 0, len(frame.axis) - 1)
            return frame.heat[iy, ix].mean()
        return at(frame.real) - at(frame.fake)

    assert gap(after) > gap(before) + 0.2


def test_the_arrows_point_generated_points_towards_where_d_says_real():
    lab = GanLab(dataset="ring8", seed=0)
    lab.step("d", 60)
    before = lab.frame()
    lab.step("g", 20)
    after = lab.frame()
    # G moved its points the way the arrows said: the score of the generated points went up
    assert after.loss_g < before.loss_g or np.isnan(before.loss_g)
    moved = after.fake - before.fake
    cos = (moved * before.arrows).sum(1) / (np.linalg.norm(moved, axis=1) * np.linalg.norm(before.arrows, axis=1) + 1e-9)
    assert np.median(cos) > 0.3


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_without_error_and_stays_finite(loss):
    lab = GanLab(loss=loss, d_steps=2)
    lab.step("both", 10)
    frame = lab.frame()
    assert np.isfinite(frame.loss_d) and np.isfinite(frame.loss_g) and np.isfinite(frame.heat).all()


def test_the_same_seed_gives_the_same_lab():
    a, b = GanLab(seed=3), GanLab(seed=3)
    a.step("both", 5)
    b.step("both", 5)
    assert np.array_equal(a.frame().fake, b.frame().fake)


def test_unknown_choices_are_clear_errors():
    with pytest.raises(UserError, match="point sets"):
        GanLab(dataset="nope")
    with pytest.raises(UserError, match="losses"):
        GanLab(loss="nope")
    with pytest.raises(UserError, match="train one of"):
        GanLab().step("x")


def test_a_frame_becomes_a_plotly_figure_with_heat_map_manifold_points_and_arrows():
    fig = lab_figure(GanLab().frame(grid=10, manifold=5))
    assert [t.type for t in fig.data] == ["heatmap", "scattergl", "scattergl", "scattergl", "scattergl"]
    assert [t.name for t in fig.data[1:]] == ["G's manifold", "real", "generated", "G's gradient"]


def test_a_frame_for_the_browser_is_small_json_of_integer_pixels_and_heat_levels():
    import json

    from aigc_core.learn.gan_lab import frame_data

    lab = GanLab()
    lab.step("both", 3)
    data = frame_data(lab.frame(grid=30, manifold=9), side=400)
    assert len(json.dumps(data)) < 20_000
    assert len(data["heat"]) == 30 * 30 and all(isinstance(v, int) and 0 <= v <= 255 for v in data["heat"])
    assert len(data["fake"]) == len(data["tips"]) == 2 * 256
    assert len(data["lines"]) == 2 * 9 and all(len(line) == 2 * 9 for line in data["lines"])
    assert data["step"] == 3


def test_frames_per_second_is_measured_for_one_and_several_learners():
    one = measure_frames_per_second(learners=1, seconds=0.5)
    two = measure_frames_per_second(learners=2, seconds=0.5)
    assert one["mean_fps"] > 0 and two["learners"] == 2 and two["min_fps"] > 0


# ---- the latent lab ---------------------------------------------------------------------------------

def test_the_shipped_latent_vae_encodes_held_out_digits_and_decodes_the_plane():
    from aigc_core.learn.latent_lab import SHIPPED_BETAS, STARTER_DIR, latent_vae

    for beta in SHIPPED_BETAS:
        assert (STARTER_DIR / f"latent_vae_beta{beta:g}.safetensors").exists()
    vae = latent_vae(1.0)
    points, digits = vae.encode_held_out(500)
    assert points.shape == (500, 2) and set(np.unique(digits)) == set(range(10))
    assert vae.decode_grid(5).shape == (140, 140)
    walk = vae.walk((-2, 0), (2, 0), 6)
    assert walk.shape == (6, 28, 28) and 0 <= walk.min() and walk.max() <= 1
    # the two ends of a walk across the plane decode to different images
    assert np.abs(walk[0] - walk[-1]).mean() > 0.02


def test_a_larger_beta_packs_the_codes_closer_to_the_origin():
    from aigc_core.learn.latent_lab import latent_vae

    spread = {b: float(np.linalg.norm(latent_vae(b).encode_held_out(500)[0], axis=1).mean()) for b in (0.5, 4.0)}
    assert spread[4.0] < spread[0.5]


def test_another_beta_is_trained_on_demand_and_cached_in_the_workspace(fresh_home):
    from aigc_core.learn import latent_lab

    model = latent_lab.latent_vae(2.5, seconds=1.0)
    assert model.beta == 2.5
    assert (fresh_home / "learn" / "latent_vae_beta2.5.safetensors").exists()
    with pytest.raises(UserError, match="beta must be between"):
        latent_lab.train_latent_vae(50.0, seconds=0.1)
