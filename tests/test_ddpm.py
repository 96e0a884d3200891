"""The diffusion model ``ddpm``: schedule, forward process, objective,
samplers, the denoising path, EMA weights, checkpoints and a real run.

Tiny UNets on tiny synthetic sets, so each test takes a second or two on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
import torch
from PIL import Image

from aigc_core.config import TrainSettings, describe, from_dict
from aigc_core.data.base import TextData
from aigc_core.errors import UserError
from aigc_core.models.diffusion import networks
from aigc_core.registry import get_model
from aigc_core.runs.checkpoint import load_state, state_to_bytes
from aigc_core.sample import load_for_sampling
from tests.tiny_runs import blobs, finished, tiny_images

CPU = torch.device("cpu")


def make(data=None, seed: int = 0, **overrides):
    spec = get_model("ddpm")
    cfg = from_dict(spec.config_cls, {"width": 8, "batch_size": 8, "timesteps": 100, **overrides})
    return spec.trainer_cls(cfg, data if data is not None else blobs(16), CPU, seed)


# ---- schedule and forward process ------------------------------------------------------------

def test_cosine_schedule_falls_from_almost_one_to_almost_zero():
    abar = networks.cosine_alpha_bar(1000)
    assert abar.shape == (1000,)
    assert abar[0] > 0.999 and abar[-1] < 1e-4
    assert (abar[1:] < abar[:-1]).all()
    # the cosine shape: about half the signal (abar = 1/2) is left half-way through
    assert 0.4 < abar[499] < 0.6


def test_forward_process_matches_its_closed_form():
    """For a fixed x_0, many draws of x_t have mean sqrt(abar) x_0 and variance 1 - abar."""
    abar = networks.cosine_alpha_bar(1000)
    x0 = torch.tensor([-1.0, -0.3, 0.5, 1.0])
    for level in (10, 500, 900):
        a = abar[level - 1].float()
        draws = 20_000
        eps = torch.randn(draws, 4, generator=torch.Generator().manual_seed(level))
        x_t = networks.q_sample(x0.expand(draws, 4), a.expand(draws), eps)
        assert torch.allclose(x_t.mean(0), a.sqrt() * x0, atol=0.03)
        assert torch.allclose(x_t.var(0), (1 - a).expand(4), atol=0.03 * max(float(1 - a), 0.1))


def test_sampling_levels_walk_evenly_from_pure_noise_to_the_first_level():
    assert networks.sampling_levels(1000, 1) == [1000]
    assert networks.sampling_levels(1000, 5) == [1000, 750, 500, 251, 1]
    assert networks.sampling_levels(100, 100) == list(range(100, 0, -1))
    with pytest.raises(UserError, match="between 1 and 100"):
        networks.sampling_levels(100, 101)


def test_ddim_with_eta_one_is_the_ancestral_update():
    x_t, eps, z = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    a_t, a_s = 0.3, 0.6
    assert torch.allclose(networks.ddim_update(x_t, eps, a_t, a_s, eta=1.0, z=z),
                          networks.ancestral_update(x_t, eps, a_t, a_s, z=z), atol=1e-5)


def test_the_last_step_of_either_sampler_returns_the_predicted_image():
    x_t, eps = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    x0 = networks.predict_x0(x_t, eps, 0.9)
    assert torch.allclose(networks.ddim_update(x_t, eps, 0.9, 1.0), x0, atol=1e-6)
    assert torch.allclose(networks.ancestral_update(x_t, eps, 0.9, 1.0, z=torch.randn_like(x_t)), x0, atol=1e-6)


# ---- networks and training -------------------------------------------------------------------

@pytest.mark.parametrize("patch", [1, 2])
@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 1)])
def test_unet_predicts_noise_of_the_image_shape_and_starts_at_zero(size, channels, patch):
    net = networks.UNet(channels, ch=8, patch=patch)
    x, t = torch.randn(3, channels, size, size), torch.tensor([1, 50, 1000])
    out = net(x, t)
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output: a first loss of exactly 1


def test_a_step_returns_detached_scalars_with_the_loss_for_each_quarter_of_the_noise_levels():
    trainer = make()
    out = trainer.step()
    assert {"loss", "loss_t1", "loss_t2", "loss_t3", "loss_t4", "grad_norm", "lr"} <= set(out)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in out.values())
    # every quarter holds two of the batch's eight levels, so the quarters average to the loss
    quarters = torch.stack([out[f"loss_t{i}"] for i in range(1, 5)])
    assert torch.allclose(quarters.mean(), out["loss"], atol=1e-6)


def test_each_batch_spreads_its_noise_levels_over_all_four_quarters():
    trainer = make(batch_size=8)
    for _ in range(5):
        t, bucket = trainer.noise_levels(8)
        assert t.min() >= 1 and t.max() <= trainer.T
        assert torch.bincount(bucket, minlength=4).tolist() == [2, 2, 2, 2]
        assert torch.equal(bucket, (t - 1) * 4 // trainer.T)  # quarter 1 holds levels 1..25 of 100


def test_training_lowers_the_noise_prediction_loss_on_a_tiny_set():
    trainer = make(blobs(16), batch_size=16, lr=5e-3, warmup=1)
    gen = torch.Generator().manual_seed(1)
    x0 = blobs(16).images.float().div(127.5).sub(1)
    t = torch.randint(1, trainer.T + 1, (16,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    x_t = networks.q_sample(x0, trainer.alpha_bar_dev[t - 1], eps)

    def held_loss() -> float:
        with torch.no_grad():
            return float(networks.noise_prediction_loss(trainer.nets["unet"](x_t, t), eps).mean())

    first = held_loss()
    assert first == pytest.approx(float(eps.pow(2).mean()), rel=1e-5)  # eps_hat = 0 at the start
    for _ in range(25):
        trainer.step()
    assert held_loss() < 0.6 * first


def test_the_ema_follows_the_weights_slowly_after_a_quick_warm_up():
    trainer = make(ema_decay=0.99)
    assert trainer.ema_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    before = [p.clone() for p in trainer.nets["ema"].parameters()]
    trainer.step()
    after = list(trainer.nets["ema"].parameters())
    weights = list(trainer.nets["unet"].parameters())
    # the first update moves the average 90% of the way to the new weights
    for b, a, w in zip(before, after, weights):
        assert torch.allclose(a, 0.1 * b + 0.9 * w, rtol=1e-5, atol=1e-12)
    trainer.steps_done = 10_000
    assert trainer.ema_decay() == 0.99
    assert not any(p.requires_grad for p in trainer.nets["ema"].parameters())


# ---- sampling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
@pytest.mark.parametrize("steps", [1, 5])
def test_each_sampler_gives_images_in_unit_range_the_same_for_the_same_seed(sampler, steps):
    trainer = make(patch=2 if sampler == "ddim" else 1)
    for _ in range(3):
        trainer.step()
    images = trainer.sample(4, seed=3, steps=steps, sampler=sampler)
    assert images.shape == (4, 1, 28, 28) and images.dtype == torch.float32 and images.device.type == "cpu"
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, trainer.sample(4, seed=3, steps=steps, sampler=sampler))
    assert not torch.equal(images, trainer.sample(4, seed=4, steps=steps, sampler=sampler))


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_a_seed_names_the_same_sample_whatever_the_count(sampler):
    trainer = make()
    trainer.step()
    many = trainer.sample(5, seed=9, steps=4, sampler=sampler)
    # equal up to float rounding: convolution kernels may sum in another order for another batch size
    assert torch.allclose(trainer.sample(1, seed=9, steps=4, sampler=sampler)[0], many[0], atol=1e-5)
    assert torch.allclose(trainer.sample(3, seed=9, steps=4, sampler=sampler), many[:3], atol=1e-5)


def test_samples_come_from_the_ema_weights_not_the_latest_ones():
    trainer = make()
    trainer.step()
    images = trainer.sample(2, seed=1, steps=3)
    with torch.no_grad():
        for p in trainer.nets["unet"].parameters():
            p.add_(1.0)
    assert torch.equal(trainer.sample(2, seed=1, steps=3), images)
    with torch.no_grad():
        list(trainer.nets["ema"].parameters())[-1].add_(0.5)  # the bias of the output layer
    assert not torch.equal(trainer.sample(2, seed=1, steps=3), images)


def test_denoise_path_runs_from_the_starting_noise_to_the_sample():
    trainer = make()
    trainer.step()
    for sampler in ("ddim", "ancestral"):
        path = trainer.denoise_path(seed=5, steps=8, n_frames=5, sampler=sampler)
        assert path.shape == (5, 1, 28, 28) and path.min() >= 0 and path.max() <= 1
        start = networks_start_noise(trainer, seed=5)
        assert torch.equal(path[0], start)
        assert torch.equal(path[-1], trainer.sample(1, seed=5, steps=8, sampler=sampler)[0])
    # the noise frame is speckled (pixels everywhere between 0 and 1), the last one is the model's image
    assert path[0].std() > 0.3
    assert trainer.denoise_path(seed=5, steps=1, n_frames=2).shape == (2, 1, 28, 28)


def networks_start_noise(trainer, seed: int) -> torch.Tensor:
    from aigc_core.imaging import from_unit_range
    from aigc_core.models.diffusion.trainer import _row_noise

    x_T, _ = _row_noise(1, trainer.image_shape, seed)
    return from_unit_range(x_T)[0]


def test_bad_sampling_knobs_are_explained():
    trainer = make()
    with pytest.raises(UserError, match="between 1 and 100 steps"):
        trainer.sample(2, 0, steps=0)
    with pytest.raises(UserError, match="between 1 and 100 steps"):
        trainer.sample(2, 0, steps=101)
    with pytest.raises(UserError, match="sampler"):
        trainer.sample(2, 0, sampler="euler")
    with pytest.raises(UserError, match="eta"):
        trainer.sample(2, 0, eta=1.5)
    with pytest.raises(UserError, match="between 1 and 10000 samples"):
        trainer.sample(0, 0)
    with pytest.raises(UserError, match="between 2 and 6 frames"):
        trainer.denoise_path(0, steps=5, n_frames=7)


def test_sampling_knobs_accept_command_line_strings():
    trainer = make()
    assert torch.equal(trainer.sample(2, 0, steps="3", sampler="ddim", eta="0"),
                       trainer.sample(2, 0, steps=3, sampler="ddim", eta=0.0))


def test_film_strip_is_a_grid_of_the_fixed_noise_denoised():
    trainer = make()
    frame = trainer.film_strip()
    assert isinstance(frame, Image.Image) and frame.size == (242, 242)  # 8 x 8 images of 28 px, 2 px gaps
    assert trainer.film_strip().tobytes() == frame.tobytes()


# ---- checkpoints --------------------------------------------------------------------------------

def test_a_checkpoint_round_trip_keeps_the_ema_weights_and_the_samples(tmp_path):
    trainer = make(seed=3)
    for _ in range(4):
        trainer.step()
    path = tmp_path / "step.safetensors"
    path.write_bytes(state_to_bytes(trainer.state()))
    expected_samples = trainer.sample(3, seed=2, steps=4)
    expected_step = {k: float(v) for k, v in trainer.step().items()}

    resumed = make(seed=42)
    state, _ = load_state(path)
    resumed.load_state(state)
    assert resumed.steps_done == 4 and torch.equal(resumed.fixed_noise, trainer.fixed_noise)
    assert torch.equal(resumed.sample(3, seed=2, steps=4), expected_samples)
    assert {k: float(v) for k, v in resumed.step().items()} == expected_step

    for_sampling = make(seed=7)
    for_sampling.load_state(state, weights_only=True)
    assert torch.equal(for_sampling.sample(3, seed=2, steps=4), expected_samples)


# ---- data checks and the registry ----------------------------------------------------------------

def test_ddpm_needs_images_whose_side_halves_twice():
    spec = get_model("ddpm")
    assert all(spec.fits({"size": s}) is None for s in (28, 32, 64))
    assert "multiple of 4" in spec.fits({"size": 30})
    with pytest.raises(UserError, match="multiple of 4"):
        make(blobs(8, size=30))
    with pytest.raises(UserError, match="images"):
        make(TextData("t", "hello"))


def test_ddpm_is_registered_with_labelled_settings_and_valid_presets():
    spec = get_model("ddpm")
    assert (spec.family, spec.data_kind) == ("diffusion", "image")
    assert all(f["label"] and f["help"] for f in describe(spec.config_cls))
    assert {"Quick", "Standard"} <= set(spec.presets)
    for preset in spec.presets.values():
        from_dict(spec.config_cls, preset.get("model"))
        assert from_dict(TrainSettings, preset.get("train")).max_seconds
    # "steps" on the command line is the training budget, never a model setting
    assert "steps" not in {f.name for f in fields(spec.config_cls)}


def test_declared_knobs_are_the_sampling_arguments_and_work():
    spec = get_model("ddpm")
    knobs = {f["name"]: f for f in spec.knob_fields()}
    assert set(knobs) == {"steps", "sampler", "eta"}
    assert set(knobs["sampler"]["choices"]) == set(networks.SAMPLERS)
    assert spec.capabilities == {"denoise"}
    trainer = make(timesteps=1000)
    defaults = {name: f["default"] for name, f in knobs.items()}
    assert trainer.sample(1, 0, **defaults).shape == (1, 1, 28, 28)
    logged = set(trainer.step())
    charted = {key for chart in spec.charts for key in chart.keys}
    assert charted == logged and set(spec.metrics) == logged
    panel = spec.explanation({})
    assert "q(x_t \\mid x_0)" in panel and "T$ = 1000" in panel and spec.film_caption


# ---- a real run -----------------------------------------------------------------------------------

def test_a_ddpm_run_trains_in_the_loop_saves_frames_and_is_evaluated():
    run = finished("ddpm", tiny_images(), steps=12, width=8, batch_size=8, sample_steps=3)
    assert run.status == "completed", run.message
    assert run.final_metrics["loss"] > 0 and math.isfinite(run.final_metrics["loss"])
    assert "copy_rate" in run.final_metrics  # the end-of-run evaluation sampled it
    assert sorted(p.name for p in (run.folder / "samples").glob("*.png"))[:2] == ["step_00000000.png",
                                                                                  "step_00000010.png"]
    trainer, _, step = load_for_sampling(run.id)
    assert step == 12 and trainer.steps_done == 12
    assert trainer.denoise_path(seed=1, steps=3, n_frames=4).shape == (4, 1, 28, 28)


def test_the_gallery_scrubber_follows_the_chosen_sampler_and_steps_to_the_sample_shown():
    from tests.tiny_runs import open_page

    run = finished("ddpm", tiny_images(), steps=3, width=8, batch_size=8, timesteps=100, sample_steps=3)
    gallery = open_page("pages/gallery.py", run.id)
    gallery.selectbox(key="g_sampler").set_value("ddim")
    gallery.slider(key="g_steps").set_value(4)
    gallery.session_state["g_tab"] = "Denoising"
    gallery.run()
    assert not gallery.exception and not gallery.error, [e.value for e in gallery.error]
    frames = gallery.session_state["g_denoise"][1]
    trainer, _, _ = load_for_sampling(run.id)
    assert torch.allclose(frames[-1], trainer.sample(1, 0, steps=4, sampler="ddim")[0], atol=1e-5)
    assert not torch.allclose(frames[-1], trainer.sample(1, 0, steps=4, sampler="ancestral")[0], atol=1e-3)
