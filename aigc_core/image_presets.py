"""The rule that fits an image model's preset to its data set and device.

Each image family's ``fit_preset`` is :func:`image_preset_rule` with the
family's own regulariser and size fields (``gan/__init__``, ``vae/__init__``).
For a set of n images of C channels on a device, a preset as written becomes:

1. **Budget.** Quick keeps its seconds (it is the half-minute look).
   Standard trains for  T = 300 s x sqrt(n / 10,000)  clamped to
   [120 s, 600 s]: 150 s for 2,500 images, 300 s for 10,000, 600 s from
   40,000. A larger set has more to learn; a small one is learnt (and,
   by a GAN's discriminator, memorised) sooner. The steps cap grows with
   T in proportion, so the clock, not the cap, ends the run. On a GPU
   (``cuda``, ``mps``) the cap is 4x that, since a GPU does the written
   steps in a fraction of the time.
2. **Regulariser** (what dropout and weight decay are to the text and table
   models): below ``few`` images the family's data regulariser is switched
   on when the preset has none: a GAN gets DiffAugment (translation; with
   cutout below a fifth of ``few``), so D cannot memorise the real set; an
   autoencoder gets random crops.
3. **Classes.** A model that can be class-conditional (``conditional=True``
   given) trains on a labelled set's classes (2 or more) unless the preset
   says otherwise: DCGAN Quick on ``glyphs`` recognised 81% of its samples
   (10 digits) after 40 CPU seconds conditional, against 66% after 90
   unconditional.
4. **Size.** On a GPU, Standard doubles the widths and the batch (bounded by
   the fields' own maxima): the GPU has the room and the time.

5. **Precision.** A model that asks for it (``bf16_cpu``: DCGAN) trains in
   bf16 autocast on a CPU whose cores multiply in bf16 (``avx512_bf16`` or
   ``amx_bf16``): its steps run 1.35x (Quick) to 1.7x (ngf = ndf = 64)
   faster there, and at equal CPU time it learns at least as well. DCGAN
   Quick on ``glyphs``, one thread of this project's 2-core CPU, 80% of 256
   samples recognised after 30, 30, 20 and 30 CPU seconds in bf16 (seeds
   0-3) against 30 s not enough (73%, 80%), 35 and 30 s in fp32. (Before
   the preset learnt classes, bf16 bought nothing: 62% against 66% after
   90 s.) Other models keep the device's default (fp32 on a CPU).

The ``why`` line names every change, e.g. "for 600 colour 32 px images on
cpu: augment translation (a small set)".
"""

from __future__ import annotations

import dataclasses
import math

from .train.device import cpu_multiplies_in_bf16

STANDARD_SECONDS, STANDARD_IMAGES = 300.0, 10_000
SECONDS_RANGE = (120.0, 600.0)
GPU_STEPS = 4


def standard_seconds(count: int) -> float:
    """T = 300 s x sqrt(n / 10,000), clamped to [120, 600] s, to the nearest 10 s."""
    lo, hi = SECONDS_RANGE
    return float(round(min(hi, max(lo, STANDARD_SECONDS * math.sqrt(max(count, 1) / STANDARD_IMAGES))), -1))


def _field_max(config_cls, name: str) -> float | None:
    for f in dataclasses.fields(config_cls):
        if f.name == name:
            return f.metadata.get("max")
    return None


def image_preset_rule(config_cls, *, widths: tuple[str, ...], regulariser: str, few: int,
                      small: str, tiny: str | None = None, conditional: bool = False, bf16_cpu: bool = False):
    """A ``fit_preset`` for an image model (see the module docstring).

    ``widths``: the model fields that set its size; ``regulariser``: the
    field that switches on its data regulariser, set to ``small`` below
    ``few`` images and to ``tiny`` (when given) below ``few / 5``;
    ``bf16_cpu``: bf16 autocast on a CPU that multiplies in bf16."""

    def fit(name: str, preset: dict, summary: dict, device_type: str) -> tuple[dict, str]:
        model, train = preset.setdefault("model", {}), preset.setdefault("train", {})
        count = int(summary.get("count") or 0)
        changes: list[str] = []
        gpu = device_type in ("cuda", "mps")
        if name == "Standard" and count:
            seconds = standard_seconds(count)
            written = float(train.get("max_seconds") or seconds)
            if train.get("steps"):
                train["steps"] = int(round(train["steps"] * seconds / written))
            train["max_seconds"] = seconds
            changes.append(f"{seconds:.0f} s")
        if gpu and train.get("steps"):
            train["steps"] = int(train["steps"] * GPU_STEPS)
            changes.append(f"{train['steps']:,} steps at most")
        if bf16_cpu and device_type == "cpu" and "precision" not in train and cpu_multiplies_in_bf16():
            train["precision"] = "bf16"
            changes.append("bf16 (this CPU multiplies in bf16)")
        if count and model.get(regulariser, "none") == "none":
            choice = tiny if tiny and count < few / 5 else small if count < few else None
            if choice:
                model[regulariser] = choice
                changes.append(f"{regulariser} {choice} (a small set)")
        if conditional and int(summary.get("classes") or 0) >= 2 and "conditional" not in model:
            model["conditional"] = True
            changes.append(f"one class at a time ({summary['classes']} classes)")
        if gpu and name == "Standard":
            for key in (*widths, "batch_size"):
                default = getattr(config_cls, key, None) if key not in model else model[key]
                if default is None:
                    continue
                most = _field_max(config_cls, key)
                model[key] = int(min(most, default * 2) if most else default * 2)
            changes.append("widths and batch x2 (a GPU)")
        if not changes:
            return preset, ""
        colour = {1: "grey", 3: "colour"}.get(summary.get("channels"), f"{summary.get('channels')}-channel")
        return preset, (f"for {count:,} {colour} {summary.get('size')} px images on {device_type}: "
                        + ", ".join(changes))

    return fit
