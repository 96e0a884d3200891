"""The image bench's parts: FLOPs of a step, the CPU's peak, the photo-patch sets and a fitted preset's run."""

import pytest
import torch

from aigc_core.benchmarks import images as bench
from aigc_core.config import from_dict
from aigc_core.models.gan import DCGANConfig, DCGANTrainer
from aigc_core.data.base import ImageData

ZEN5 = "vendor_id\t: AuthenticAMD\ncpu family\t: 26\ncpu MHz\t\t: 2600.000\nflags\t\t: fpu avx2 fma avx512f\n"
ZEN4 = ZEN5.replace("cpu family\t: 26", "cpu family\t: 25")
HASWELL = "vendor_id\t: GenuineIntel\ncpu family\t: 6\ncpu MHz\t\t: 3000.000\nflags\t\t: fpu avx avx2 fma\n"


def test_the_cpu_peak_is_cores_times_clock_times_fma_lanes_and_units_times_two():
    assert bench.cpu_peak_gflops(2, ZEN5)[0] == pytest.approx(2 * 2.6 * 16 * 2 * 2)
    assert bench.cpu_peak_gflops(2, ZEN4)[0] == pytest.approx(2 * 2.6 * 16 * 1 * 2)  # 512-bit FMA in two halves
    peak, how = bench.cpu_peak_gflops(4, HASWELL)
    assert peak == pytest.approx(4 * 3.0 * 8 * 2 * 2) and "AVX2+FMA" in how


def test_a_dcgan_step_counts_its_convolution_flops_forward_and_backward():
    data = ImageData("tiny", torch.zeros(16, 1, 32, 32, dtype=torch.uint8))
    cfg = from_dict(DCGANConfig, dict(nz=8, ngf=8, ndf=8, batch_size=4))
    flops = bench.step_flops(DCGANTrainer(cfg, data, torch.device("cpu"), seed=0).step)
    # the generator's forward alone, 2 per multiply-add for 4 images: the dense layer (8 -> 32 x 4 x 4), then
    # 4x4 transposed convolutions (16 taps per input pixel) from 4x4, 8x8 and 16x16 inputs
    g_forward = 2 * 4 * (8 * 32 * 16 + 16 * 16 * 32 * 16 + 64 * 16 * 16 * 8 + 256 * 16 * 8 * 1)
    assert flops > 3 * g_forward


def test_photo_patches_are_colour_crops_of_a_sample_photo():
    data = bench.photo_patches("china.jpg", 20)
    assert data.images.shape == (20, 3, 32, 32) and data.images.dtype == torch.uint8 and data.name == "china20"
    assert data.images.float().std() > 10  # not a flat patch of one colour
    assert torch.equal(data.images, bench.photo_patches("china.jpg", 20).images)  # the same seed, the same set


def test_a_fitted_preset_trains_on_the_cpu_clock_and_says_how_it_was_fitted():
    data = bench.photo_patches("flower.jpg", 64)
    out = bench.train_fitted_preset("conv_vae", "Quick", data, torch.device("cpu"), seconds_cap=0.5)
    assert out["steps"] >= 1 and out["cpu_s"] >= 0.5 and "augment crop (a small set)" in out["fit"]
    assert "fid" not in out  # 64 images: too few for a feature net, so no score rather than a meaningless one


def test_the_bench_runs_a_section_asked_for_by_name_from_another_sections_module(monkeypatch):
    from aigc_core import bench as bench_command

    monkeypatch.setattr(bench, "preset_figures", lambda quick: {"presets.preset": "Quick" if quick else "Standard"})
    lines = []
    results = bench_command.run_bench(quick=True, only="image_presets", echo=lines.append)
    assert results["presets.preset"] == "Quick" and any("[image_presets]" in line for line in lines)


def test_the_bench_narrows_a_by_name_section_to_the_sets_asked_for(monkeypatch, capsys):
    from aigc_core import bench as bench_command
    from aigc_core.cli import main

    seen = {}

    def preset_figures(quick, sets=None):
        seen["image_sets"] = sets
        return {"presets.preset": "Quick"}

    def presets_run(quick, texts=None, tables=None):
        seen.update(texts=texts, tables=tables)
        return {"presets.note": "ran"}

    monkeypatch.setattr(bench, "preset_figures", preset_figures)
    monkeypatch.setattr("aigc_core.benchmarks.presets.run", presets_run)
    # a set named asks for its section without --only
    assert main(["bench", "--quick", "--image-sets", "shapes,digits"]) == 0
    assert seen["image_sets"] == ["shapes", "digits"]
    assert main(["bench", "--quick", "--tables", "blobs", "--texts", "stdlib_150k"]) == 0
    assert seen["tables"] == ["blobs"] and seen["texts"] == ["stdlib_150k"]
    capsys.readouterr()
    # a name the bench does not have, or a set for a section left out, is refused with what to do
    assert main(["bench", "--tables", "blobz"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tables: no tables called 'blobz'; the bench has ") and "glyphs_7x7" in err
    assert main(["bench", "--only", "images", "--texts", "pydoc"]) == 2
    assert "--texts narrows the presets section; add it to --only" in capsys.readouterr().err
    assert set(bench_command.known_sets()["image_sets"]) == set(bench.TUNING_SETS + bench.UNSEEN_SETS)
