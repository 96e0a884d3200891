"""Built-in image and point sets, the torchvision sets (from local fixtures,
never the network), the image upload codec, stats and preview grids."""

from __future__ import annotations

import pickle
import struct
import time
from urllib.error import URLError

import pytest
import torch

from aigc_core.data import images as img_mod
from aigc_core.data import torchvision_sets as tv
from aigc_core.data.base import ImageData, PointData
from aigc_core.data.catalog import dataset_info, delete_dataset, list_datasets, load_dataset, save_uploaded
from aigc_core.errors import UserError
from aigc_core.paths import cache_dir


@pytest.fixture(scope="session")
def glyphs() -> ImageData:
    return load_dataset("glyphs")  # built once per test session, in the session's cache


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """A workspace with its own empty cache, so fixture data never lands in the shared cache."""
    monkeypatch.setenv("AIGC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# ---- glyphs ------------------------------------------------------------------------

def test_glyphs_are_at_least_20000_grayscale_28px_digits_with_balanced_labels(glyphs):
    assert glyphs.images.dtype == torch.uint8
    assert glyphs.images.shape[1:] == (1, 28, 28)
    assert len(glyphs) >= 20_000
    assert glyphs.class_names == [str(d) for d in range(10)]
    counts = torch.bincount(glyphs.labels, minlength=10)
    assert counts.min() == counts.max() == len(glyphs) // 10


def test_glyphs_look_like_mnist_white_ink_on_black_with_a_centred_digit(glyphs):
    x = glyphs.images[:2000].float() / 255
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], -1)
    assert border.mean() < 0.02  # background stays black at the edges
    ink = x.flatten(1).mean(1)
    assert 0.06 < float(ink.mean()) < 0.3  # MNIST: 0.13
    assert float((x > 0.9).flatten(1).any(1).float().mean()) > 0.95  # strokes reach full white


def test_glyphs_are_all_different_images_not_copies_of_a_few_fonts(glyphs):
    sample = glyphs.images[:3000].flatten(1)
    assert len({bytes(row.numpy()) for row in sample}) == len(sample)


def test_glyphs_load_from_the_cache_in_well_under_a_second_after_the_first_build(glyphs):
    assert any(p.name.startswith(f"glyphs-v{img_mod.GLYPHS_VERSION}-") for p in cache_dir().glob("*.safetensors"))
    start = time.perf_counter()
    again = load_dataset("glyphs")
    assert time.perf_counter() - start < 0.5
    assert torch.equal(again.images, glyphs.images)


def test_glyph_generation_is_deterministic_for_a_seed_and_changes_with_it():
    a = img_mod.build_glyphs(count=120, seed=5)
    b = img_mod.build_glyphs(count=120, seed=5)
    c = img_mod.build_glyphs(count=120, seed=6)
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["images"], c["images"])


def test_glyph_templates_include_pillows_bundled_font():
    keys = [key for key, _ in img_mod._fonts()]
    assert keys[0] == "pillow-default"
    templates, labels = img_mod._glyph_templates()
    assert templates.shape[1:] == (56, 56) and len(templates) == len(labels)
    assert len(templates) >= 10 * len(img_mod._PEN_RADII)
    assert sorted(set(labels.tolist())) == list(range(10))


def test_skeletonize_thins_a_thick_bar_to_a_one_pixel_line():
    mask = torch.zeros(1, 1, 20, 40, dtype=torch.bool)
    mask[..., 6:15, 5:35] = True  # 9 px thick
    line = img_mod.skeletonize(mask)
    middle = line[0, 0, :, 10:30]
    assert middle.sum(0).max() == 1 and middle.sum() >= 20  # one pixel thick, and still there


# ---- digits and shapes ---------------------------------------------------------------

def test_digits_are_sklearns_1797_real_8x8_digits_stretched_to_0_255():
    data = load_dataset("digits")
    assert data.images.shape == (1797, 1, 8, 8) and data.images.dtype == torch.uint8
    assert int(data.images.max()) == 255 and int(data.images.min()) == 0
    assert sorted(set(data.labels.tolist())) == list(range(10))
    from sklearn.datasets import load_digits

    assert torch.equal(data.labels, torch.from_numpy(load_digits().target).long())


def test_shapes_are_12000_rgb_32px_images_of_three_balanced_classes():
    data = load_dataset("shapes")
    assert data.images.shape == (12_000, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.class_names == ["circle", "square", "triangle"]
    assert torch.bincount(data.labels).tolist() == [4000, 4000, 4000]


def test_each_shape_sits_wholly_inside_its_image_on_a_plain_background():
    x = img_mod.build_shapes(count=60, seed=3)["images"].int()
    corner = x[:, :, :1, :1]
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], -1)
    assert (border - corner[..., 0]).abs().max() <= 1
    shape_pixels = ((x - corner).abs().sum(1) > 60).flatten(1).float().mean(1)
    assert float(shape_pixels.min()) > 0.03  # every image shows a visible shape


def test_shapes_are_deterministic_for_a_seed():
    a, b = img_mod.build_shapes(count=30, seed=1), img_mod.build_shapes(count=30, seed=1)
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])


# ---- points --------------------------------------------------------------------------

@pytest.mark.parametrize("name, modes", [("ring8", 8), ("grid25", 25), ("moons", 2), ("spiral", 2)])
def test_point_sets_are_8192_unit_scale_2d_points_with_a_label_per_mode(name, modes):
    data = load_dataset(name)
    assert isinstance(data, PointData) and data.points.shape == (8192, 2) and data.points.dtype == torch.float32
    assert float(data.points.abs().max()) < 1.6
    assert 0.3 < float(data.points.std()) < 1.0
    assert sorted(set(data.labels.tolist())) == list(range(modes))
    again = load_dataset(name)
    assert torch.equal(again.points, data.points)


def test_ring8_points_lie_near_radius_one():
    radius = load_dataset("ring8").points.norm(dim=1)
    assert abs(float(radius.mean()) - 1.0) < 0.02 and float(radius.std()) < 0.1


def test_builtins_are_listed_with_kind_and_summary_without_building_them():
    info = {d.name: d for d in list_datasets()}
    for name in ("glyphs", "digits", "shapes", "ring8", "grid25", "moons", "spiral", "mnist", "fashion_mnist",
                 "cifar10"):
        assert info[name].builtin
    assert info["glyphs"].summary["count"] >= 20_000 and info["shapes"].summary["channels"] == 3
    assert info["mnist"].needs_download and not info["glyphs"].needs_download
    assert dataset_info("spiral").kind == "points"


# ---- torchvision sets: local fixtures only ---------------------------------------------

def _idx_images(images: torch.Tensor) -> bytes:
    return struct.pack(">IIII", 2051, images.shape[0], 28, 28) + images.numpy().tobytes()


def _idx_labels(labels: torch.Tensor) -> bytes:
    return struct.pack(">II", 2049, labels.shape[0]) + labels.to(torch.uint8).numpy().tobytes()


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_style_sets_load_from_files_already_downloaded(isolated_home, name, folder):
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (12, 28, 28), generator=gen, dtype=torch.uint8)
    labels = torch.arange(12) % 10
    raw = tv.downloads_dir() / folder / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(_idx_images(train))
    (raw / "train-labels-idx1-ubyte").write_bytes(_idx_labels(labels))
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx_images(train[:2]))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx_labels(labels[:2]))

    data = load_dataset(name)  # AIGC_NO_DOWNLOAD=1 is set: files already there still load
    assert data.images.shape == (12, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.equal(data.images[:, 0], train) and torch.equal(data.labels, labels)
    assert len(data.class_names) == 10
    # converted once: deleting the raw files leaves the cached copy working
    for f in raw.iterdir():
        f.unlink()
    assert torch.equal(load_dataset(name).images, data.images)


def test_cifar10_loads_from_official_python_batches_already_downloaded(isolated_home, monkeypatch):
    import torchvision.datasets.cifar as cifar

    # our fixture files cannot match the official MD5 checksums torchvision demands
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    folder = tv.downloads_dir() / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(1)
    batches = []
    for i in range(1, 6):
        data = torch.randint(0, 256, (3, 3072), generator=gen, dtype=torch.uint8).numpy()
        batches.append(data)
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({"data": data, "labels": [i, i + 1, 0]}))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": batches[0], "labels": [0, 1, 2]}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(tv.CIFAR10.class_names)}))

    data = load_dataset("cifar10")
    assert data.images.shape == (15, 3, 32, 32) and data.images.dtype == torch.uint8
    expected = torch.from_numpy(batches[0][0]).view(3, 32, 32)  # CIFAR rows are R plane, G plane, B plane
    assert torch.equal(data.images[0], expected)
    assert data.labels[:3].tolist() == [1, 2, 0] and data.class_names[0] == "airplane"


def test_torchvision_sets_without_network_say_so_and_point_to_glyphs(isolated_home):
    with pytest.raises(UserError) as err:
        load_dataset("mnist")
    msg = str(err.value)
    assert "could not download MNIST" in msg and "no internet connection" in msg and "glyphs" in msg


def test_a_failed_download_becomes_a_plain_message_not_a_traceback(isolated_home, monkeypatch):
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.mnist as mnist

    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("AIGC_NO_DOWNLOAD", "0")
    monkeypatch.setattr(mnist, "download_and_extract_archive", offline)
    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    for name, title in (("fashion_mnist", "Fashion-MNIST"), ("cifar10", "CIFAR-10")):
        with pytest.raises(UserError, match=f"could not download {title}: no internet connection.*glyphs"):
            load_dataset(name)


# ---- uploaded image sets, stats and previews -------------------------------------------

def test_an_image_set_saved_as_upload_loads_back_identically_with_class_names(fresh_home):
    gen = torch.Generator().manual_seed(0)
    data = ImageData("pets", torch.randint(0, 256, (20, 3, 32, 32), generator=gen, dtype=torch.uint8),
                     torch.arange(20) % 2, ["cat", "dog"], description="two classes")
    save_uploaded(data)
    back = load_dataset("pets")
    assert torch.equal(back.images, data.images) and torch.equal(back.labels, data.labels)
    assert back.class_names == ["cat", "dog"] and back.name == "pets"
    assert (fresh_home / "datasets" / "pets" / "data.safetensors").exists()
    unlabelled = ImageData("plain", data.images[:16])
    save_uploaded(unlabelled)
    assert load_dataset("plain").labels is None
    delete_dataset("pets")
    with pytest.raises(UserError):
        load_dataset("pets")


def test_image_stats_count_pixels_and_classes():
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    images[:2] = 255
    stats = img_mod.image_stats(ImageData("x", images, torch.tensor([0, 0, 1, 1]), ["a", "b"]))
    assert stats["count"] == 4 and stats["size"] == 8 and stats["channels"] == 1
    assert stats["per_class"] == {"a": 2, "b": 2}
    assert stats["mean"] == pytest.approx(0.5) and stats["std"] == pytest.approx(0.5)


def test_preview_grid_shows_n_random_images_fixed_by_seed(glyphs):
    grid = img_mod.preview_grid(glyphs, n=64, seed=0)
    assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 8 x 8 tiles of 28 px with 2 px gaps
    assert img_mod.preview_grid(glyphs, n=64, seed=0).tobytes() == grid.tobytes()
    assert img_mod.preview_grid(glyphs, n=64, seed=1).tobytes() != grid.tobytes()
    assert img_mod.preview_grid(load_dataset("shapes"), n=16).size == (4 * 34 + 2, 4 * 34 + 2)
