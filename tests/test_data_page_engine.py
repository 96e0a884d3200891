"""Engine pieces the Data page uses: which kind an upload is, a free name for
it, import progress, and the statistics of a point set."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from aigc_core.data.base import ImageData, PointData
from aigc_core.data.catalog import check_name, delete_dataset, free_name, list_datasets, load_dataset, save_uploaded
from aigc_core.data.points import point_stats, ring8
from aigc_core.data.uploads import import_images, upload_kind
from aigc_core.errors import UserError


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_upload_kind_follows_the_file_name():
    assert upload_kind("cats.zip") == "image"
    assert upload_kind("digits.NPZ") == "image"
    assert upload_kind("poems.txt") == "text"
    assert upload_kind("shop.csv") == "table"


@pytest.mark.parametrize("name", ["model.pt", "weights.pth", "frame.pkl", "x.pickle", "m.ckpt"])
def test_a_pickled_upload_is_refused_with_the_reason(name):
    with pytest.raises(UserError, match="never unpickle"):
        upload_kind(name)


def test_an_unknown_upload_type_names_what_is_accepted():
    with pytest.raises(UserError, match=r"\.zip.*\.txt.*\.csv"):
        upload_kind("report.docx")
    with pytest.raises(UserError, match="put images in a .zip"):
        upload_kind("cat.png")


def test_free_name_makes_a_valid_name_that_is_not_taken():
    assert free_name("my cats (2024)", taken=set()) == "my_cats_2024"
    assert free_name("iris", taken={"iris", "iris-2"}) == "iris-3"
    assert free_name("", taken=set()) == "my_data"
    assert check_name(free_name("ünïcode naме" * 10, taken=set()))


def test_image_import_reports_progress_up_to_the_number_of_files():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(20):
            zf.writestr(f"img{i:02d}.png", png(i))
    seen = []
    report = import_images(buf.getvalue(), "progress_test", progress=lambda done, total: seen.append((done, total)))
    assert report.accepted == 20
    assert seen[0] == (0, 20) and seen[-1] == (20, 20)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_point_stats_count_modes_and_spread():
    stats = point_stats(ring8(count=800))
    assert stats["count"] == 800 and stats["dims"] == 2
    assert stats["modes"] == 8 and sum(stats["per_mode"].values()) == 800
    assert all(-1.3 < lo and hi < 1.3 for lo, hi in zip(stats["min"], stats["max"]))
    unlabelled = point_stats(PointData("p", torch.zeros(5, 2)))
    assert unlabelled["modes"] == 0 and unlabelled["per_mode"] is None and unlabelled["std"] == [0.0, 0.0]


def test_a_damaged_upload_says_so_and_how_to_recover(fresh_home):
    from aigc_core.paths import datasets_dir

    save_uploaded(ImageData("damaged", torch.zeros(4, 1, 8, 8, dtype=torch.uint8)))
    (datasets_dir() / "damaged" / "data.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="damaged or incomplete.*delete it on the Data page"):
        load_dataset("damaged")
    delete_dataset("damaged")
    assert "damaged" not in {d.name for d in list_datasets()}
