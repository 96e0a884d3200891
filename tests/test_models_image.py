"""Image and 2-D generative models: GANs, VAEs and the autoencoder.

Every test builds its own tiny synthetic data set, so none depends on the
built-in sets, and uses small widths so each runs in a second or two on a CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from aigc_core.config import TrainSettings, describe, from_dict
from aigc_core.data.base import PointData, TextData
from aigc_core.errors import UserError
from aigc_core.models import gan, vae
from aigc_core.registry import get_model
from aigc_core.runs.checkpoint import load_state, save_checkpoint
from tests.tiny_runs import blobs

CPU = torch.device("cpu")
SIZES = (28, 32, 64)
CHANNELS = (1, 3)


def ring(n: int = 512) -> PointData:
    gen = torch.Generator().manual_seed(0)
    k = torch.randint(0, 8, (n,), generator=gen).float()
    centres = torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1) * 2
    return PointData("ring", centres + 0.05 * torch.randn(n, 2, generator=gen))


def make(name: str, data, seed: int = 0, **overrides):
    spec = get_model(name)
    small = {
        "dcgan": dict(ngf=8, ndf=8, batch_size=8),
        "mlp_gan": dict(width=16, batch_size=8),
        "toy_gan": dict(width=16, batch_size=32),
        "vae": dict(hidden=32, batch_size=8),
        "conv_vae": dict(width=8, batch_size=8),
        "ae": dict(hidden=32, width=8, batch_size=8),
    }[name]
    cfg = from_dict(spec.config_cls, {**small, **overrides})
    return spec.trainer_cls(cfg, data, CPU, seed)


def as_floats(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()}


# ---- shapes ---------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_dcgan_networks_map_noise_to_images_and_images_to_one_score(size, channels):
    G = gan.dcgan_generator(nz=100, ngf=8, nc=channels, size=size)
    for norm in ("batch", "layer"):
        D = gan.dcgan_discriminator(ndf=8, nc=channels, size=size, norm=norm)
        images = G(torch.randn(5, 100))
        assert images.shape == (5, channels, size, size)
        assert images.min() >= -1 and images.max() <= 1
        assert D(images).shape == (5,)


@pytest.mark.parametrize("name", ["dcgan", "mlp_gan", "vae", "conv_vae", "ae"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", CHANNELS)
def test_every_image_model_trains_and_samples_at_every_size(name, size, channels):
    extra = {"network": "conv"} if name == "ae" else {}
    trainer = make(name, blobs(24, size, channels), **extra)
    metrics = trainer.step()
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in metrics.values())
    assert all(math.isfinite(v) for v in as_floats(metrics).values())
    images = trainer.sample(6, seed=3)
    assert images.shape == (6, channels, size, size) and images.dtype == torch.float32
    assert images.device.type == "cpu"
    assert images.min() >= 0 and images.max() <= 1
    assert isinstance(trainer.film_strip(), Image.Image)


def test_toy_gan_samples_points_and_draws_a_scatter_frame():
    trainer = make("toy_gan", ring())
    trainer.step()
    points = trainer.sample(100, seed=1)
    assert points.shape == (100, 2) and torch.isfinite(points).all()
    frame = trainer.film_strip()
    assert frame.size == (320, 320)
    colours = {c for _, c in frame.getcolors(1_000_000)}
    assert (170, 170, 170) in colours and (230, 110, 20) in colours  # real grey, generated orange


def test_dcgan_refuses_sizes_it_has_no_layers_for():
    with pytest.raises(UserError, match="28, 32 or 64"):
        make("dcgan", blobs(8, 16))
    assert get_model("dcgan").fits({"size": 16}) is not None
    assert all(get_model("dcgan").fits({"size": s}) is None for s in SIZES)
    assert get_model("conv_vae").fits({"size": 48}) is not None
    assert get_model("mlp_gan").fits({"size": 48}) is None
    make("mlp_gan", blobs(8, 16)).step()  # the dense GAN takes any size


def test_a_model_given_the_wrong_kind_of_data_says_so():
    with pytest.raises(UserError, match="images"):
        make("dcgan", ring())
    with pytest.raises(UserError, match="2-D point"):
        make("toy_gan", blobs(8))
    with pytest.raises(UserError, match="images"):
        make("vae", TextData("t", "hello"))


# ---- losses ----------------------------------------------------------------------

@pytest.mark.parametrize("loss", gan.LOSSES)
def test_each_gan_loss_teaches_d_to_separate_and_g_to_fool(loss):
    """D trained alone on a fixed real and fake batch lowers its loss; then G
    trained alone against that D lowers its loss."""
    trainer = make("dcgan", blobs(16, 28), loss=loss)
    G, D = trainer.nets["G"], trainer.nets["D"]
    real = trainer.real_batch()
    z = trainer.noise(8)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    with torch.no_grad():
        fake = G(z)

    def d_loss():
        return gan.discriminator_loss(loss, D(real), D(fake))

    first = d_loss().item()
    for _ in range(30):
        opt_d.zero_grad()
        d_loss().backward()
        opt_d.step()
    assert d_loss().item() < first - 0.3

    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    D.requires_grad_(False)
    first = gan.generator_loss(loss, D(G(z))).item()
    for _ in range(30):
        opt_g.zero_grad()
        gan.generator_loss(loss, D(G(z))).backward()
        opt_g.step()
    assert gan.generator_loss(loss, D(G(z))).item() < first - 0.3


def test_one_discriminator_pass_over_real_and_fake_keeps_their_batch_statistics_apart():
    """The joint pass is only a speed-up: scores and running statistics equal
    those of two separate passes, as in the DCGAN paper."""
    torch.manual_seed(0)
    D = gan.dcgan_discriminator(ndf=8, nc=1, size=32)
    twin = gan.dcgan_discriminator(ndf=8, nc=1, size=32)
    twin.load_state_dict(D.state_dict())
    real, fake = torch.randn(6, 1, 32, 32), torch.randn(6, 1, 32, 32) * 0.3 + 0.5
    with gan.split_batch_norm(D, 2):
        joint = D(torch.cat([real, fake]))
    separate = torch.cat([twin(real), twin(fake)])
    assert torch.allclose(joint, separate, atol=1e-5)
    norms = [(a, b) for a, b in zip(D.modules(), twin.modules()) if isinstance(a, torch.nn.BatchNorm2d)]
    assert norms
    for a, b in norms:
        assert torch.allclose(a.running_mean, b.running_mean, atol=1e-6)
        assert torch.allclose(a.running_var, b.running_var, atol=1e-6)
    assert not torch.allclose(D(torch.cat([real, fake])), separate, atol=1e-3)  # mixing them would differ


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("make", [
    lambda: (gan.ScoreConv2d(16, 1, 4, 1, 0), torch.nn.Conv2d(16, 1, 4, 1, 0), (5, 16, 4, 4)),     # D's score layer
    lambda: (gan.ScoreConv2d(16, 1, 7, 1, 0), torch.nn.Conv2d(16, 1, 7, 1, 0), (5, 16, 7, 7)),
    lambda: (gan.PatchConvTranspose2d(8, 1, 4, 2, 1, bias=False),                                  # G's image layer
             torch.nn.ConvTranspose2d(8, 1, 4, 2, 1, bias=False), (5, 8, 16, 16)),
    lambda: (gan.PatchConvTranspose2d(8, 3, 4, 2, 1), torch.nn.ConvTranspose2d(8, 3, 4, 2, 1), (5, 8, 14, 14)),
], ids=["score-4", "score-7", "image-1ch", "image-3ch"])
def test_gemm_layers_compute_the_convolution_they_replace(make, channels_last):
    """The GEMM forms of the tiny layers are only a speed-up: same state dict,
    and output and every gradient equal the torch layer's up to float rounding."""
    torch.manual_seed(0)
    patch, plain, shape = make()
    assert patch.state_dict().keys() == plain.state_dict().keys()
    patch.load_state_dict(plain.state_dict())
    x = torch.randn(shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        patch, plain = patch.to(memory_format=torch.channels_last), plain.to(memory_format=torch.channels_last)
    x_patch, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_patch, y_plain = patch(x_patch), plain(x_plain)
    assert y_patch.shape == y_plain.shape
    assert torch.allclose(y_patch, y_plain, atol=1e-5)
    grad = torch.randn_like(y_plain)
    y_patch.backward(grad)
    y_plain.backward(grad)
    assert torch.allclose(x_patch.grad, x_plain.grad, atol=1e-5)
    for a, b in zip(patch.parameters(), plain.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-4)


def test_a_channels_last_dcgan_keeps_its_first_feature_map_channels_last_with_the_same_images():
    """The trainer stores G's first feature map in the layout of the rest
    (mixed layouts slow the element-wise steps); the images do not change."""
    torch.manual_seed(0)
    trainer = gan.DCGANTrainer(from_dict(gan.DCGANConfig, {"ngf": 8, "ndf": 8, "batch_size": 4}),
                               blobs(8, size=32), CPU, seed=0)
    G = trainer.nets["G"]
    first_map = G[1]
    assert first_map.channels_last
    z = torch.randn(3, trainer.cfg.nz)
    assert first_map(G[0](z)).is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        G.eval()
        laid_out = G(z)
        first_map.channels_last = False
        assert torch.allclose(G(z), laid_out, atol=1e-6)


def test_nonsaturating_losses_match_the_formulas():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected_d = -torch.log(d_real).mean() - torch.log(1 - d_fake).mean()
    assert torch.allclose(gan.discriminator_loss("nonsaturating", real, fake), expected_d)
    assert torch.allclose(gan.generator_loss("nonsaturating", fake), -torch.log(d_fake).mean())
    assert torch.allclose(gan.discriminator_loss("wgan_gp", real, fake), fake.mean() - real.mean())
    assert torch.allclose(gan.discriminator_loss("hinge", real, fake),
                          torch.relu(1 - real).mean() + torch.relu(1 + fake).mean())


def test_wgan_gp_penalty_is_positive_exact_for_a_linear_critic_and_differentiable():
    critic = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(12, 1), torch.nn.Flatten(0))
    with torch.no_grad():
        critic[1].weight.copy_(torch.full((1, 12), 3.0 / math.sqrt(12)))  # slope 3 everywhere
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    gp = gan.gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx((3 - 1) ** 2, rel=1e-4)
    gp.backward()
    assert critic[1].weight.grad.abs().sum() > 0

    trainer = make("dcgan", blobs(16, 32), loss="wgan_gp")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trainer.nets["D"].modules())
    metrics = as_floats(trainer.step())
    assert metrics["gp"] > 0


def test_vae_logs_reconstruction_and_kl_and_kl_is_never_negative():
    trainer = make("vae", blobs(32))
    for _ in range(5):
        metrics = as_floats(trainer.step())
        assert metrics["kl"] >= 0
        assert metrics["loss"] == pytest.approx(metrics["recon"] + metrics["kl"], rel=1e-5)
    mu, logvar = torch.randn(6, 4), torch.randn(6, 4)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(4), torch.ones(4))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    assert torch.allclose(vae.kl_divergence(mu, logvar), expected, atol=1e-5)
    assert vae.kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0


@pytest.mark.parametrize("name,extra", [("vae", {}), ("conv_vae", {}), ("ae", {}), ("vae", {"recon_loss": "mse"})])
def test_autoencoders_fit_a_tiny_set(name, extra):
    trainer = make(name, blobs(16), lr=3e-3, **extra)
    first = float(trainer.step()["recon"])
    for _ in range(120):
        last = float(trainer.step()["recon"])
    assert last < 0.6 * first


def test_held_out_tenth_is_fixed_and_evaluated():
    data = blobs(40)
    a, b = make("vae", data, seed=1), make("vae", data, seed=2)
    assert torch.equal(a.held_out, b.held_out) and a.held_out.shape[0] == 4
    assert a.images.shape[0] == 36
    numbers = a.evaluate()
    assert {"val_loss", "val_recon", "val_kl", "val_elbo"} <= set(numbers)
    assert numbers["val_elbo"] == pytest.approx(-(numbers["val_recon"] + numbers["val_kl"]))
    assert a.evaluate() == numbers  # the same noise every time


# ---- determinism, sampling knobs, interpolation ----------------------------------------------

@pytest.mark.parametrize("name", ["dcgan", "mlp_gan", "toy_gan", "vae", "conv_vae", "ae"])
def test_same_seed_gives_the_same_first_step(name):
    data = ring() if name == "toy_gan" else blobs(16)
    torch.manual_seed(123)  # the global RNG must not matter
    first = as_floats(make(name, data, seed=7).step())
    torch.manual_seed(456)
    again = as_floats(make(name, data, seed=7).step())
    other = as_floats(make(name, data, seed=8).step())
    assert first == again
    assert first != other


@pytest.mark.parametrize("name", ["dcgan", "vae", "ae"])
def test_a_seed_names_the_same_samples_whatever_the_count(name):
    trainer = make(name, blobs(16))
    trainer.step()
    eight = trainer.sample(8, seed=5)
    assert torch.equal(trainer.sample(8, seed=5), eight)
    assert torch.allclose(trainer.sample(1, seed=5)[0], eight[0], atol=1e-6)
    assert not torch.equal(trainer.sample(8, seed=6), eight)


def test_truncation_pulls_samples_towards_the_average_image():
    trainer = make("dcgan", blobs(16))
    for _ in range(3):
        trainer.step()
    spread = {psi: trainer.sample(16, seed=0, truncation=psi).std(0).mean().item() for psi in (0.0, 0.5, 1.0)}
    assert spread[0.0] < 1e-6  # z = 0 for all: one image
    assert spread[0.5] < spread[1.0]
    with pytest.raises(UserError, match="truncation"):
        trainer.sample(4, seed=0, truncation=-1)


@pytest.mark.parametrize("name", ["dcgan", "toy_gan", "vae", "ae"])
def test_interpolation_starts_and_ends_at_the_two_seeds_samples(name):
    trainer = make(name, ring() if name == "toy_gan" else blobs(16))
    trainer.step()
    frames = trainer.interpolate(11, 22, steps=5)
    assert frames.shape[0] == 5
    assert torch.allclose(frames[0], trainer.sample(1, seed=11)[0], atol=1e-5)
    assert torch.allclose(frames[-1], trainer.sample(1, seed=22)[0], atol=1e-5)
    assert not torch.allclose(frames[2], frames[0])


def test_slerp_stays_on_the_sphere_between_unit_vectors():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    path = gan.slerp(a, b, 5)
    assert torch.allclose(path.norm(dim=1), torch.ones(5), atol=1e-6)
    assert torch.allclose(path[2], torch.tensor([1.0, 1.0]) / math.sqrt(2), atol=1e-6)


def test_reconstruct_and_encode_work_on_images_in_unit_range():
    trainer = make("conv_vae", blobs(16, 32, 3))
    images = blobs(4, 32, 3, seed=9).images.float() / 255
    recon = trainer.reconstruct(images)
    assert recon.shape == images.shape and 0 <= recon.min() and recon.max() <= 1
    assert trainer.encode(images).shape == (4, 20)
    with pytest.raises(UserError, match="3-channel 32x32"):
        trainer.reconstruct(torch.rand(2, 1, 28, 28))


def test_autoencoder_samples_from_a_gaussian_fitted_to_its_codes():
    trainer = make("ae", blobs(32))
    for _ in range(20):
        trainer.step()
    extra = trainer.extra_state()  # a checkpoint refits
    codes = trainer.encode(trainer.images.float() / 255)
    assert torch.allclose(extra["code_mean"], codes.mean(0), atol=1e-4)
    cov = extra["code_chol"] @ extra["code_chol"].T
    assert torch.allclose(cov, torch.cov(codes.T), atol=1e-3 * float(cov.abs().max()) + 1e-5)
    images = trainer.sample(8, seed=1)
    assert images.shape == (8, 1, 28, 28)

    fresh = make("ae", blobs(32), seed=99)
    fresh.load_state({"nets": {k: v.state_dict() for k, v in trainer.nets.items()}, "extra": extra}, weights_only=True)
    assert torch.allclose(fresh.sample(8, seed=1), images, atol=1e-6)
    frame = trainer.film_strip()  # real images above their reconstructions: two rows
    assert frame.size[0] > 4 * frame.size[1]


def test_gan_film_strip_uses_the_fixed_noise_kept_in_checkpoints():
    trainer = make("dcgan", blobs(16))
    frame = trainer.film_strip()
    assert frame.size == (8 * 30 + 2, 8 * 30 + 2)  # 8 x 8 tiles of 28 px with 2 px padding
    assert torch.equal(trainer.extra_state()["fixed_noise"], trainer.fixed_noise)
    other = make("dcgan", blobs(16), seed=5)
    assert not torch.equal(other.fixed_noise, trainer.fixed_noise)


# ---- checkpoints -----------------------------------------------------------------------------

@pytest.mark.parametrize("name,extra", [("dcgan", {}), ("dcgan", {"loss": "wgan_gp", "d_steps": 2}),
                                        ("toy_gan", {"loss": "hinge"}), ("vae", {}), ("ae", {}),
                                        ("conv_vae", {"channels_last": True}), ("dcgan", {"ema_decay": 0.99})])
def test_a_checkpoint_round_trip_reproduces_the_next_step_exactly(tmp_path, name, extra):
    data = ring() if name == "toy_gan" else blobs(16)
    trainer = make(name, data, seed=3, **extra)
    for _ in range(3):
        trainer.step()
    path = save_checkpoint(tmp_path, 3, trainer.state())
    expected = as_floats(trainer.step())

    resumed = make(name, data, seed=42, **extra)
    state, _ = load_state(path)
    resumed.load_state(state)
    assert as_floats(resumed.step()) == expected
    assert torch.equal(resumed.fixed_noise, trainer.fixed_noise)
    if extra.get("ema_decay"):  # the moving average and its warm-up count resume too
        assert resumed.ema_steps == trainer.ema_steps == 4
        assert torch.equal(resumed.sample(4, seed=1), trainer.sample(4, seed=1))


def test_the_mlp_gan_presets_batch_normalise_the_generator_and_an_older_run_keeps_its_layout(tmp_path):
    from aigc_core.models.gan.config import MLPGANConfig

    spec = get_model("mlp_gan")
    assert all(p["model"]["g_norm"] == "batch" for p in spec.presets.values())
    normed = make("mlp_gan", blobs(16), g_norm="batch")
    assert [type(m).__name__ for m in normed.nets["G"] if isinstance(m, torch.nn.BatchNorm1d)] == ["BatchNorm1d"] * 2
    for _ in range(2):
        normed.step()
    assert normed.sample(4, seed=1).shape == (4, 1, 28, 28)
    # a run saved before the setting: its config has no g_norm, its generator no batch norm
    saved = {k: v for k, v in vars(make("mlp_gan", blobs(16)).cfg).items() if k != "g_norm"}
    old = spec.trainer_cls(from_dict(MLPGANConfig, saved), blobs(16), CPU, 0)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in old.nets["G"])
    path = save_checkpoint(tmp_path, 1, old.state())
    again = spec.trainer_cls(from_dict(MLPGANConfig, saved), blobs(16), CPU, 7)
    again.load_state(load_state(path)[0])
    assert torch.equal(again.sample(4, seed=1), old.sample(4, seed=1))


def test_a_gan_with_a_generator_ema_samples_from_the_average_not_the_live_weights():
    from aigc_core.train.utils import eval_mode, seeded_noise

    trainer = make("dcgan", blobs(16), seed=3, ema_decay=0.99)
    for _ in range(3):
        trainer.step()
    z = seeded_noise(4, trainer.cfg.nz, 1)
    with torch.no_grad(), eval_mode(trainer.nets["G"], trainer.nets["G_ema"]):
        average, live = trainer.nets["G_ema"](z), trainer.nets["G"](z)
    samples = trainer.sample(4, seed=1)
    assert torch.allclose(samples, trainer.to_output(average), atol=1e-6)
    assert (samples - trainer.to_output(live)).abs().max() > 1e-5
    assert "G_ema" not in make("dcgan", blobs(16)).nets  # off unless asked for


# ---- registry: configs and presets ------------------------------------------------------------

@pytest.mark.parametrize("name", ["mlp_gan", "dcgan", "toy_gan", "vae", "conv_vae", "ae"])
def test_registered_models_have_labelled_settings_and_valid_presets(name):
    spec = get_model(name)
    fields = describe(spec.config_cls)
    assert fields and all(f["label"] and f["help"] for f in fields)
    assert {"Quick", "Standard"} <= set(spec.presets)
    for preset in spec.presets.values():
        from_dict(spec.config_cls, preset.get("model"))
        settings = from_dict(TrainSettings, preset.get("train"))
        assert settings.steps or settings.max_seconds
    assert spec.family == {"ae": "ae"}.get(name, "vae" if "vae" in name else "gan")
    assert spec.data_kind == ("points" if name == "toy_gan" else "image")


def test_gan_settings_cover_the_classic_knobs():
    names = {f["name"] for f in describe(gan.DCGANConfig)}
    assert {"nz", "ngf", "ndf", "loss", "lr_g", "lr_d", "beta1", "beta2", "batch_size", "d_steps",
            "gp_weight", "channels_last"} <= names
    cfg = gan.DCGANConfig()
    assert (cfg.nz, cfg.ngf, cfg.ndf, cfg.beta1, cfg.gp_weight) == (100, 64, 64, 0.5, 10.0)
    assert vae.VAEConfig().latent_dim == 20
