"""Image-model speed on the current device: our DCGAN trainer against a plain
PyTorch loop, VAE steps/s and sampling latency.

The reference loop is written the way PyTorch's ``examples/dcgan/main.py``
writes it: the example's networks (a 1x1 -> 4x4 transposed convolution first,
a sigmoid at the end of D, BCELoss), a ``DataLoader`` over a ``TensorDataset``
(``num_workers=0``: worker processes only compete for the two cores of a
small machine), ``zero_grad()``, ``fake = netG(noise)``, D on the real batch
then on ``fake.detach()``, the G step through ``netD(fake)``, and ``.item()``
on the losses every step for the progress line. Both loops train the classic
configuration (nz=100, ngf=ndf=64, 32x32, 1 channel, batch 64) on the same
synthetic images; the arithmetic of a step does not depend on the pictures.

Timing windows alternate between the two loops and the best window of each
counts, so a neighbour briefly using the CPU does not decide the comparison.
"""

from __future__ import annotations

import io
import time

import torch
from torch import nn

from ..config import from_dict
from ..data.base import ImageData
from ..models.gan import DCGANConfig, DCGANTrainer
from ..models.vae import ConvVAEConfig, ConvVAETrainer, VAEConfig, VAETrainer
from ..train.device import autocast_dtype, pick_device

NZ, NGF, NDF, NC, SIZE, BATCH = 100, 64, 64, 1, 32, 64


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _steps_per_s(step, device: torch.device, seconds: float, warmup: int = 3) -> float:
    """Steps per second of ``step()`` over a window of about ``seconds``."""
    for _ in range(warmup):
        step()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        if n % 2 == 0:
            _sync(device)
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                return n / elapsed


def _synthetic_images(n: int = 2048, size: int = SIZE, channels: int = NC) -> ImageData:
    gen = torch.Generator().manual_seed(0)
    return ImageData("bench", torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=gen))


# ---- the reference: PyTorch examples' dcgan/main.py, at 32 x 32 -------------------

class ReferenceGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, NGF * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 4), nn.ReLU(True),
            # state size. (ngf*4) x 4 x 4
            nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2), nn.ReLU(True),
            # state size. (ngf*2) x 8 x 8
            nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF), nn.ReLU(True),
            # state size. (ngf) x 16 x 16
            nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False), nn.Tanh(),
            # state size. (nc) x 32 x 32
        )

    def forward(self, z):
        return self.main(z)


class ReferenceDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(NC, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf) x 16 x 16
            nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 2), nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*2) x 8 x 8
            nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 4), nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*4) x 4 x 4
            nn.Conv2d(NDF * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)


def _weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


def reference_loop(data: ImageData, device: torch.device):
    """A step function running the examples' training loop one batch at a time."""
    torch.manual_seed(0)
    dataset = torch.utils.data.TensorDataset(data.to_unit_range("cpu"))
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0, drop_last=True)
    netG, netD = ReferenceGenerator().to(device), ReferenceDiscriminator().to(device)
    netG.apply(_weights_init)
    netD.apply(_weights_init)
    criterion = nn.BCELoss()
    real_label, fake_label = 1, 0
    optimizerD = torch.optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    log = io.StringIO()
    batches = iter(())

    def step():
        nonlocal batches
        try:
            data_batch = next(batches)
        except StopIteration:
            batches = iter(dataloader)
            data_batch = next(batches)
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        real_cpu = data_batch[0].to(device)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=device)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(batch_size, NZ, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()
        # (2) Update G network: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        print(f"Loss_D: {errD.item():.4f} Loss_G: {errG.item():.4f} D(x): {D_x:.4f} D(G(z)): {D_G_z1:.4f} / {D_G_z2:.4f}",
              file=log)
        log.seek(0)
        log.truncate()

    return step


# ---- how far from the hardware --------------------------------------------------------

def step_flops(step) -> int:
    """Floating-point operations of one call of ``step()`` (forward and
    backward, every network), counted by PyTorch's FLOP counter: matrix
    multiplies and convolutions, 2 per multiply-add. Element-wise work (norms,
    activations, the optimiser) is not counted, so it slightly under-counts."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def cpu_peak_gflops(cores: int, cpuinfo: str | None = None) -> tuple[float, str]:
    """The CPU's fp32 peak for ``cores`` cores, from /proc/cpuinfo:

        peak = cores x clock x FMA lanes x FMA units x 2

    (a fused multiply-add is 2 operations). Lanes: 16 floats in a 512-bit
    register with AVX-512, 8 with AVX2 + FMA. Units per core: two for AMD's
    Zen 5 (family 26, full 512-bit datapaths), Intel's AVX-512 server cores
    and AVX2 cores; one for Zen 4 (family 25), which does a 512-bit FMA as two
    halves. The clock is the one /proc/cpuinfo reports; in a virtual machine
    that is the nominal clock, and a core that boosts above it can beat this
    "peak". ``cpuinfo``: the file's text (default: read it)."""
    try:
        info = cpuinfo if cpuinfo is not None else open("/proc/cpuinfo").read()
    except OSError:
        return 0.0, "no /proc/cpuinfo"
    fields: dict[str, str] = {}
    for line in info.splitlines():
        if ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            fields.setdefault(key, value)
    flags = set(fields.get("flags", "").split())
    mhz = float(fields.get("cpu MHz", 0) or 0)
    amd, family = fields.get("vendor_id") == "AuthenticAMD", int(fields.get("cpu family", 0) or 0)
    if "avx512f" in flags:
        lanes, width, units = 16, "AVX-512", 1 if amd and family < 26 else 2
    elif {"avx2", "fma"} <= flags:
        lanes, width, units = 8, "AVX2+FMA", 2
    else:
        lanes, width, units = 4, "SSE", 1
    peak = cores * mhz / 1000 * lanes * units * 2
    return peak, f"{cores} cores x {mhz / 1000:.2f} GHz x {lanes} fp32 lanes ({width}) x {units} FMA units x 2"


# ---- ours ------------------------------------------------------------------------

def dcgan_trainer(data: ImageData, device: torch.device, autocast=None, **overrides) -> DCGANTrainer:
    cfg = from_dict(DCGANConfig, dict(nz=NZ, ngf=NGF, ndf=NDF, batch_size=BATCH, **overrides))
    return DCGANTrainer(cfg, data, device, seed=0, autocast=autocast)


def _sample_ms(trainer, n: int = 64, repeats: int = 10) -> float:
    trainer.sample(n, seed=0)  # warm-up
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        trainer.sample(n, seed=i)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best


def _compiled_figures(data: ImageData, device: torch.device, autocast, window: float) -> dict:
    """Steps/s with the networks compiled the way the training loop does it
    (``net.compile()``), and the seconds the first compiled steps take. Only
    on CUDA: on this project's 2-core CPU, compiling took about 34 s and
    gave no speed-up (6.4 vs 6.6 steps/s eager)."""
    trainer = dcgan_trainer(data, device, autocast)
    for net in trainer.nets.values():
        net.compile()
    try:
        t0 = time.perf_counter()
        for _ in range(3):
            trainer.step()
        _sync(device)
        compile_s = time.perf_counter() - t0
        return {"dcgan.compile_s": round(compile_s, 1),
                "dcgan.compiled_steps_per_s": round(_steps_per_s(trainer.step, device, window), 2)}
    except Exception as exc:  # noqa: BLE001 - no compiler here: report it, do not fail the bench
        return {"dcgan.compiled_steps_per_s": f"compile failed: {type(exc).__name__}"}


# ---- time to recognisable digits -------------------------------------------------------

RECOGNISED_SHARE, CLASSES_NEEDED, CHECK_SAMPLES = 0.8, 8, 256


def seconds_to_recognisable_digits(limit_s: float = 60.0, check_every_s: float = 5.0, device=None,
                                   clock: str = "wall", precision: str | None = None, seed: int = 0) -> dict:
    """Train ``dcgan`` (Quick preset, fitted by its rule to ``glyphs`` and
    this device) on ``glyphs`` for up to ``limit_s`` seconds of training;
    every ``check_every_s`` the glyphs classifier (the feature net of
    :mod:`aigc_core.metrics.features`) looks at 256 samples from a fixed
    seed. Recognisable = at least 80% of them put in one digit class with
    confidence and at least 8 of the 10 digits among them; half of them is
    the milestone ``dcgan.glyphs_half_recognised_s``. Checks and the feature
    net's own training do not count towards the seconds.

    ``clock="cpu"`` counts this process's CPU seconds instead of wall
    seconds (a busy machine's neighbours then do not eat the budget; with
    more than one thread, threads waiting for each other count too), and
    the figures say both. ``precision`` overrides the fitted preset's;
    ``seed`` is the run's (its weights and batches)."""
    import os

    from ..config import TrainSettings
    from ..data.catalog import load_dataset
    from ..metrics.features import feature_net, features_of
    from ..metrics.image import recognition_scores
    from ..registry import get_model

    device = device or pick_device("auto")
    data = load_dataset("glyphs")
    net = feature_net(data)
    fitted, _ = get_model("dcgan").preset("Quick", data.summary(), device.type)
    settings = from_dict(TrainSettings, dict(fitted["train"], **({"precision": precision} if precision else {})))
    trainer = DCGANTrainer(from_dict(DCGANConfig, fitted["model"]), data, device, seed=seed,
                           autocast=autocast_dtype(device, settings.precision))
    now = time.process_time if clock == "cpu" else time.perf_counter
    trained, wall, steps, last = 0.0, 0.0, 0, {"recognised": 0.0, "classes_covered": 0.0}
    out: dict = {"dcgan.glyphs_clock": clock, "dcgan.glyphs_precision": settings.precision,
                 "dcgan.glyphs_threads": torch.get_num_threads(), "dcgan.glyphs_load_before": os.getloadavg()[0],
                 "dcgan.glyphs_half_recognised_s": f"not reached in {limit_s:g} s",
                 "dcgan.glyphs_recognisable_s": f"not reached in {limit_s:g} s"}
    while trained < limit_s:
        trainer.train_mode(True)
        t0, w0 = now(), time.perf_counter()
        while now() - t0 < min(check_every_s, limit_s - trained):
            trainer.step()
            steps += 1
        _sync(device)
        trained += now() - t0
        wall += time.perf_counter() - w0
        trainer.train_mode(False)
        with torch.no_grad():
            last = recognition_scores(features_of(net, trainer.sample(CHECK_SAMPLES, seed=0)), net)
        enough_classes = last["classes_covered"] >= CLASSES_NEEDED
        if enough_classes and last["recognised"] >= 0.5 and isinstance(out["dcgan.glyphs_half_recognised_s"], str):
            out["dcgan.glyphs_half_recognised_s"] = round(trained, 1)  # a milestone on the way
        if enough_classes and last["recognised"] >= RECOGNISED_SHARE:
            out["dcgan.glyphs_recognisable_s"] = round(trained, 1)
            break
    out.update({"dcgan.glyphs_recognised": last["recognised"], "dcgan.glyphs_classes": int(last["classes_covered"]),
                "dcgan.glyphs_steps": steps, "dcgan.glyphs_train_s": round(trained, 1),
                "dcgan.glyphs_wall_s": round(wall, 1), "dcgan.glyphs_load_after": os.getloadavg()[0]})
    return out


def run(quick: bool = False) -> dict:
    device = pick_device("auto")
    window = 1.0 if quick else 2.5
    rounds = 1 if quick else 3
    autocast = autocast_dtype(device, "auto")  # what a run with default settings uses
    data = _synthetic_images()
    out: dict = {}

    ours = dcgan_trainer(data, device, autocast)
    ref = reference_loop(data, device)
    loops = {"ours": ours.step, "ref": ref}
    if device.type == "cpu" and not quick:
        # the CPU default is fp32 (precision=auto); bf16 autocast is timed in the
        # same alternation, against the same fp32 reference, and labelled as such
        loops["bf16"] = dcgan_trainer(data, device, torch.bfloat16).step
    best = dict.fromkeys(loops, 0.0)
    for _ in range(rounds):  # alternate windows; keep each loop's best
        for name, step in loops.items():
            best[name] = max(best[name], _steps_per_s(step, device, window))
    ours_best, ref_best = best["ours"], best["ref"]
    out["dcgan.steps_per_s"] = round(ours_best, 2)
    out["dcgan.images_per_s"] = round(ours_best * BATCH, 1)
    out["dcgan.reference_steps_per_s"] = round(ref_best, 2)
    out["dcgan.speedup"] = round(ours_best / ref_best, 2)
    out["dcgan.precision"] = "bf16 autocast" if autocast is not None else "fp32"
    out["dcgan.reference_precision"] = "fp32"
    # our step skips D's weight gradients in the G update, so it does less arithmetic than the reference
    flops, ref_flops = step_flops(ours.step), step_flops(ref)
    out["dcgan.gflop_per_step"] = round(flops / 1e9, 2)
    out["dcgan.reference_gflop_per_step"] = round(ref_flops / 1e9, 2)
    out["dcgan.gflops"] = round(flops * ours_best / 1e9, 1)
    out["dcgan.reference_gflops"] = round(ref_flops * ref_best / 1e9, 1)
    if device.type == "cpu":
        peak, how = cpu_peak_gflops(torch.get_num_threads())
        out["cpu.peak_gflops"] = round(peak, 1)
        out["cpu.peak_rule"] = how
        if peak:
            out["dcgan.share_of_peak"] = round(flops * ours_best / 1e9 / peak, 3)
            out["dcgan.reference_share_of_peak"] = round(ref_flops * ref_best / 1e9 / peak, 3)
    if "bf16" in best:
        out["dcgan.bf16_steps_per_s"] = round(best["bf16"], 2)
        out["dcgan.bf16_speedup_over_fp32_reference"] = round(best["bf16"] / ref_best, 2)
    if device.type == "cuda":
        # what bf16 autocast and torch.compile each add on a GPU
        fp32 = dcgan_trainer(data, device, None)
        out["dcgan.fp32_steps_per_s"] = round(_steps_per_s(fp32.step, device, window), 2)
        if not quick:
            out.update(_compiled_figures(data, device, autocast, window))
    out["dcgan.sample64_ms"] = round(_sample_ms(ours), 1)

    mnist_like = _synthetic_images(2048, 28, 1)
    vae = VAETrainer(from_dict(VAEConfig, {}), mnist_like, device, seed=0, autocast=autocast)
    out["vae.steps_per_s"] = round(_steps_per_s(vae.step, device, window / 2), 1)
    out["vae.images_per_s"] = round(out["vae.steps_per_s"] * vae.batch_size, 0)
    conv_vae = ConvVAETrainer(from_dict(ConvVAEConfig, {}), mnist_like, device, seed=0, autocast=autocast)
    out["conv_vae.steps_per_s"] = round(_steps_per_s(conv_vae.step, device, window / 2), 1)
    out["conv_vae.images_per_s"] = round(out["conv_vae.steps_per_s"] * conv_vae.batch_size, 0)
    if not quick:
        out.update(seconds_to_recognisable_digits(device=device))
    return out


# ---- presets fitted to data sets they were and were not tuned on -----------------------

#: the image families' models measured: the convolutional one where the set's size allows, else the dense one
PRESET_MODELS = {"gan": ("dcgan", "mlp_gan"), "vae": ("conv_vae", "vae")}
#: (name, how to make it): the sets the rule in aigc_core.image_presets was tuned on ...
TUNING_SETS = ("photo:china.jpg:600", "photo:china.jpg:3000", "shapes", "glyphs")
#: ... and sets it never saw while it was written
UNSEEN_SETS = ("photo:flower.jpg:600", "photo:flower.jpg:3000", "digits")
SCORED_SAMPLES = 1000


def photo_patches(photo: str, count: int, size: int = 32, seed: int = 0) -> ImageData:
    """``count`` colour patches of ``size`` x ``size`` pixels cut at random
    places from one of scikit-learn's sample photos (``china.jpg``,
    ``flower.jpg``), shrunk to half size first so a patch holds a roof's
    edge or a leaf rather than a flat piece of sky."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    index = next(i for i, path in enumerate(photos.filenames) if path.endswith(photo))
    image = torch.tensor(photos.images[index]).permute(2, 0, 1).float()         # 3 x H x W
    image = nn.functional.avg_pool2d(image[None], 2)[0].round().to(torch.uint8)  # 3 x H/2 x W/2
    gen = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, image.shape[1] - size + 1, (count,), generator=gen).tolist()
    xs = torch.randint(0, image.shape[2] - size + 1, (count,), generator=gen).tolist()
    patches = torch.stack([image[:, y:y + size, x:x + size] for y, x in zip(ys, xs)])
    return ImageData(f"{photo.split('.')[0]}{count}", patches.contiguous())


def bench_set(name: str) -> ImageData:
    """A set of :data:`TUNING_SETS` / :data:`UNSEEN_SETS` by its name there."""
    if name.startswith("photo:"):
        _, photo, count = name.split(":")
        return photo_patches(photo, int(count))
    from ..data.catalog import load_dataset

    return load_dataset(name)


def train_fitted_preset(model: str, preset: str, data: ImageData, device: torch.device,
                        seconds_cap: float | None = None) -> dict:
    """Train ``model``'s ``preset`` as its rule fits it to ``data`` on this
    device, timed on this process's CPU clock (a busy machine's neighbours
    do not shorten it), then score 1,000 samples on the set's feature net."""
    from ..config import TrainSettings
    from ..metrics.features import MIN_IMAGES, feature_net
    from ..metrics.image import image_scores
    from ..registry import get_model
    from ..train.device import device_type

    spec = get_model(model)
    fitted, why = spec.preset(preset, data.summary(), device_type(str(device)))
    settings = from_dict(TrainSettings, fitted.get("train", {}))
    seconds = min(settings.max_seconds or float("inf"), seconds_cap or float("inf"))
    trainer = spec.trainer_cls(from_dict(spec.config_cls, fitted.get("model", {})), data, device, 0,
                               autocast_dtype(device, settings.precision))
    trainer.train_mode(True)
    cpu0, wall0, steps = time.process_time(), time.perf_counter(), 0
    while time.process_time() - cpu0 < seconds and (not settings.steps or steps < settings.steps):
        trainer.step()
        steps += 1
    _sync(device)
    out = {"steps": steps, "cpu_s": round(time.process_time() - cpu0, 1),
           "wall_s": round(time.perf_counter() - wall0, 1), "fit": why or "as written"}
    trainer.train_mode(False)
    if len(data) >= MIN_IMAGES:
        samples = trainer.sample(min(SCORED_SAMPLES, len(data)), seed=1)
        scores = image_scores(samples, data, feature_net(data))
        out.update({k: round(scores[k], 3) for k in ("fid", "recognised") if k in scores})
    return out


def preset_figures(quick: bool = False, device=None, sets: list[str] | None = None) -> dict:
    """Each image family's Standard preset (Quick with ``quick``), fitted by
    its rule, trained on every tuning set and every unseen set (or the ones
    in ``sets``); per set: steps, CPU and wall seconds, FID on the set's
    feature net (and the recognised share where the set has classes)."""
    import os

    from ..registry import get_model

    device = device or pick_device("auto")
    preset = "Quick" if quick else "Standard"
    out: dict = {"presets.preset": preset, "presets.load_before": round(os.getloadavg()[0], 1)}
    for group, names in (("tuned", TUNING_SETS), ("unseen", UNSEEN_SETS)):
        for set_name in names:
            if sets and set_name not in sets:
                continue
            data = bench_set(set_name)
            for family, models in PRESET_MODELS.items():
                model = next(m for m in models if get_model(m).fits(data.summary()) is None)
                figures = train_fitted_preset(model, preset, data, device)
                label = f"presets.{group}.{data.name}.{model}"
                out[label] = ", ".join(f"{k} {v}" for k, v in figures.items())
    out["presets.load_after"] = round(os.getloadavg()[0], 1)
    return out
