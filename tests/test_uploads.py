"""Importing a user's images: what loads, and a refusal for each way an upload can be bad.

Every bad-input test also checks that the good files next to the bad one
still load, as a user would expect.
"""

from __future__ import annotations

import io
import pickle
import stat
import struct
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from aigc_core.data import uploads
from aigc_core.data.catalog import delete_dataset, list_datasets, load_dataset
from aigc_core.data.uploads import ImportReport, import_and_save, import_images
from aigc_core.errors import UserError


# ---- making files --------------------------------------------------------------------

def image_bytes(fmt: str = "PNG", size=(40, 30), mode: str = "RGB", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode if mode in ("L", "RGB", "RGBA") else "RGB"]
    array = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    img = Image.fromarray(array[:, :, 0] if channels == 1 else array, mode=None)
    if mode == "P":
        img = img.convert("P")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_zip(members: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def good_images(n: int, folder: str = "", fmt: str = "PNG") -> list[tuple[str, bytes]]:
    ext = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "WEBP": "webp"}[fmt]
    return [(f"{folder}img{i:03d}.{ext}", image_bytes(fmt, seed=i)) for i in range(n)]


def rejected_reasons(report: ImportReport) -> dict[str, str]:
    return dict(report.rejected)


# ---- what loads ------------------------------------------------------------------------

def test_a_zip_with_class_folders_loads_with_labels_from_the_folder_names():
    members = good_images(10, "pets/cats/") + good_images(10, "pets/dogs/", fmt="JPEG")
    report = import_images(make_zip(members), "pets", size=28, channels=1, filename="pets.zip")
    assert report.accepted == 20 and report.rejected == []
    assert report.class_names == ["cats", "dogs"]
    data = report.data
    assert data.images.shape == (20, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [10, 10]
    assert data.class_names == ["cats", "dogs"] and data.name == "pets"


@pytest.mark.parametrize("size, channels", [(32, 3), (64, 1), (64, 3)])
def test_images_are_resized_to_the_chosen_size_and_colour(size, channels):
    report = import_images(make_zip(good_images(16)), "x", size=size, channels=channels)
    assert report.data.images.shape == (16, channels, size, size)


def test_every_allowed_format_and_colour_mode_loads():
    members = []
    for i, (fmt, mode) in enumerate([("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "L"), ("PNG", "P"), ("JPEG", "RGB"),
                                     ("JPEG", "L"), ("BMP", "RGB"), ("GIF", "P"), ("WEBP", "RGB"), ("WEBP", "RGBA")]):
        members.append((f"a/{i}.{fmt.lower()}", image_bytes(fmt, mode=mode, seed=i)))
    members += good_images(6, "a/")
    report = import_images(make_zip(members), "formats", channels=3)
    assert report.accepted == 16, report.rejected


def test_the_shorter_side_is_fitted_and_the_middle_kept():
    # 100 x 50: black 25-px bands left and right of a white middle; the centre
    # crop keeps only the white
    array = np.zeros((50, 100), dtype=np.uint8)
    array[:, 25:75] = 255
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    report = import_images(make_zip([(f"{i}.png", buf.getvalue()) for i in range(16)]), "crop", size=32)
    assert int(report.data.images.min()) >= 240


def test_transparent_pixels_become_white():
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)  # fully transparent black
    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    report = import_images(make_zip([(f"{i}.png", buf.getvalue()) for i in range(16)]), "clear")
    assert int(report.data.images.min()) == 255


def test_images_all_in_one_folder_have_no_labels():
    report = import_images(make_zip(good_images(16, "holiday/")), "holiday")
    assert report.data.labels is None and report.class_names is None


def test_images_outside_the_class_folders_form_an_unsorted_class():
    members = good_images(8, "cats/") + good_images(8, "dogs/") + good_images(2)
    report = import_images(make_zip(members), "mixed")
    assert report.class_names == ["cats", "dogs", "unsorted"]
    assert torch.bincount(report.data.labels).tolist() == [8, 8, 2]
    assert any("unsorted" in note for note in report.notes)


def test_hidden_files_and_macos_resource_forks_are_skipped_silently():
    members = good_images(16, "set/") + [
        ("__MACOSX/set/._img000.png", b"\x00\x05\x16\x07junk"),
        ("set/.DS_Store", b"\x00\x00\x00\x01Bud1"),
        ("set/Thumbs.db", b"\xd0\xcf\x11\xe0"),
    ]
    report = import_images(make_zip(members), "clean")
    assert report.accepted == 16 and report.rejected == []


def test_the_extension_decides_nothing_the_content_does():
    members = good_images(16) + [
        ("really_a_png.jpg", image_bytes("PNG", seed=99)),  # accepted: it is a PNG
        ("photo.png", image_bytes("TIFF", seed=98)),  # refused: TIFF is not on the list
        ("notes.png", b"this is text, not a picture"),
    ]
    report = import_images(make_zip(members), "ext")
    assert report.accepted == 17
    reasons = rejected_reasons(report)
    assert set(reasons) == {"photo.png", "notes.png"}
    assert all("not a PNG, JPEG, BMP, GIF or WebP image" in r for r in reasons.values())


def test_an_npz_of_uint8_images_with_labels_loads():
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = np.arange(20) % 4
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images, labels=labels)
    report = import_images(buf.getvalue(), "arr", filename="arr.npz")
    assert report.accepted == 20
    assert torch.equal(report.data.images[:, 0], torch.from_numpy(images))  # same size: unchanged
    assert report.class_names == ["0", "1", "2", "3"]
    assert torch.equal(report.data.labels, torch.from_numpy(labels).long())


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_an_npz_of_float_colour_images_in_either_channel_order_loads(layout):
    images = np.random.default_rng(1).random((16, 40, 40, 3)).astype(np.float32)  # 0..1
    if layout == "NCHW":
        images = images.transpose(0, 3, 1, 2)
    buf = io.BytesIO()
    np.savez(buf, images=images, labels=np.array(["cat", "dog"] * 8))
    report = import_images(buf.getvalue(), "floaty", size=32, channels=3, filename="floaty.npz")
    assert report.data.images.shape == (16, 3, 32, 32)
    assert report.class_names == ["cat", "dog"]
    mean = float(report.data.images.float().mean())
    assert 110 < mean < 145  # 0..1 floats were scaled to 0..255, not left near 0


def test_npz_images_containing_nan_are_refused_one_by_one():
    images = np.random.default_rng(2).random((18, 28, 28)).astype(np.float32)
    images[3, 0, 0] = np.nan
    buf = io.BytesIO()
    np.savez(buf, images=images)
    report = import_images(buf.getvalue(), "nan", filename="nan.npz")
    assert report.accepted == 17 and rejected_reasons(report) == {"images[3]": "contains NaN or infinite values"}


def test_an_imported_set_is_saved_listed_loaded_and_deleted(fresh_home):
    report = import_and_save(make_zip(good_images(8, "a/") + good_images(8, "b/")), "my_set", size=32,
                             channels=3, filename="my_set.zip")
    assert any(d.name == "my_set" and not d.builtin for d in list_datasets())
    data = load_dataset("my_set")
    assert torch.equal(data.images, report.data.images) and data.class_names == ["a", "b"]
    with pytest.raises(UserError, match="already have"):
        import_and_save(make_zip(good_images(16)), "my_set")
    delete_dataset("my_set")
    assert not any(d.name == "my_set" for d in list_datasets())


def test_an_upload_cannot_take_the_name_of_a_built_in_set(fresh_home):
    with pytest.raises(UserError, match="built-in"):
        import_and_save(make_zip(good_images(16)), "glyphs")


def test_a_path_can_be_imported_like_an_upload(tmp_path):
    path = tmp_path / "folder.zip"
    path.write_bytes(make_zip(good_images(16)))
    assert import_images(path, "from_path").accepted == 16


@pytest.mark.parametrize("kwargs, message", [(dict(size=48), "48"), (dict(channels=2), "channels"),
                                             (dict(name="bad name!"), "not allowed")])
def test_wrong_options_are_refused_with_what_is_allowed(kwargs, message):
    args = dict(name="ok", size=28, channels=1) | kwargs
    with pytest.raises(UserError, match=message):
        import_images(make_zip(good_images(16)), **args)


# ---- bad input: one test per rule ----------------------------------------------------------

def test_a_zip_bomb_member_is_refused_and_the_good_images_still_load():
    bomb = b"\x00" * (20 * 1024 * 1024)  # 20 MB of zeros packs to about 20 KB
    report = import_images(make_zip(good_images(16) + [("bomb.bmp", bomb)]), "bombed")
    assert report.accepted == 16
    assert "zip bomb" in rejected_reasons(report)["bomb.bmp"]


def test_an_archive_expanding_past_the_total_limit_is_refused_before_reading(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_TOTAL_BYTES", 2 * 1024 * 1024)
    members = good_images(16) + [(f"pad{i}.bmp", b"\x00" * 600_000) for i in range(4)]
    with pytest.raises(UserError, match="would expand to .*zip bomb"):
        import_images(make_zip(members), "big")


def test_a_member_that_lies_about_its_size_cannot_expand_past_it():
    data = make_zip(good_images(16) + [("liar.png", image_bytes("PNG", size=(300, 300)))])
    # rewrite the central directory's "uncompressed size" of the last member to 100 bytes
    cd = data.rindex(b"PK\x01\x02")
    data = data[:cd + 24] + struct.pack("<I", 100) + data[cd + 28:]
    report = import_images(data, "liar")
    assert report.accepted == 16
    assert "could not be read" in rejected_reasons(report)["liar.png"]


def test_too_many_members_are_refused(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_MEMBERS", 20)
    with pytest.raises(UserError, match="holds 21 files; the limit is 20"):
        import_images(make_zip(good_images(21)), "many")


def test_path_traversal_and_absolute_names_are_refused_and_the_rest_load():
    members = good_images(16) + [("../../etc/evil.png", image_bytes()), ("/abs/evil.png", image_bytes()),
                                 ("ok/..\\..\\win.png", image_bytes()), ("C:/Windows/evil.png", image_bytes())]
    report = import_images(make_zip(members), "escape")
    assert report.accepted == 16
    reasons = rejected_reasons(report)
    assert "'..'" in reasons["../../etc/evil.png"] and "'..'" in reasons["ok/..\\..\\win.png"]
    assert "absolute" in reasons["/abs/evil.png"] and "absolute" in reasons["C:/Windows/evil.png"]


def test_a_symlink_member_is_refused_and_the_rest_load():
    link = zipfile.ZipInfo("link.png")
    link.create_system = 3  # unix
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    report = import_images(make_zip(good_images(16) + [(link, b"/etc/passwd")]), "links")
    assert report.accepted == 16
    assert "symbolic link" in rejected_reasons(report)["link.png"]


def test_corrupt_and_truncated_images_are_refused_and_the_rest_load():
    png = image_bytes("PNG", size=(64, 64))
    jpeg = image_bytes("JPEG", size=(64, 64))
    members = good_images(16) + [("cut.png", png[: len(png) // 2]), ("cut.jpg", jpeg[: len(jpeg) // 3]),
                                 ("noise.gif", b"GIF89a" + bytes(range(256)) * 4)]
    report = import_images(make_zip(members), "broken")
    assert report.accepted == 16
    reasons = rejected_reasons(report)
    assert set(reasons) == {"cut.png", "cut.jpg", "noise.gif"}
    assert "corrupt or truncated PNG" in reasons["cut.png"]


def _png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header (IHDR) is rewritten to claim ``width`` x ``height``."""
    png = bytearray(image_bytes("PNG", size=(8, 8)))
    ihdr = png.index(b"IHDR")
    png[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    png[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(png[ihdr:ihdr + 17])))
    return bytes(png)


@pytest.mark.parametrize("width, height", [(60_000, 60_000), (8_000, 7_000)])
def test_a_decompression_bomb_header_is_refused_before_decoding(width, height):
    report = import_images(make_zip(good_images(16) + [("huge.png", _png_claiming(width, height))]), "bomb")
    assert report.accepted == 16
    reason = rejected_reasons(report)["huge.png"]
    assert "decompression bomb" in reason and "limit" in reason


def test_an_empty_archive_is_refused_with_a_clear_message():
    with pytest.raises(UserError, match="the archive is empty"):
        import_images(make_zip([]), "empty")
    with pytest.raises(UserError, match="the archive is empty"):
        import_images(make_zip([("only/a/folder/", b"")]), "folders")
    with pytest.raises(UserError, match="empty"):
        import_images(b"", "nothing", filename="x.zip")


def test_an_archive_without_images_is_refused_and_says_what_it_found():
    members = [("readme.txt", b"hello"), ("data.csv", b"a,b\n1,2\n")]
    with pytest.raises(UserError) as err:
        import_images(make_zip(members), "text")
    msg = str(err.value)
    assert "no usable images" in msg and "readme.txt" in msg and "data.csv" in msg


@pytest.mark.parametrize("filename", ["model.pt", "weights.pth", "state.pkl", "run.ckpt", None])
def test_a_pickled_checkpoint_is_refused_because_unpickling_runs_code(filename):
    payload = pickle.dumps({"weights": [1.0, 2.0]}, protocol=4)
    with pytest.raises(UserError, match="never unpickle"):
        import_images(payload, "ckpt", filename=filename)


def test_a_pytorch_zip_checkpoint_renamed_to_zip_is_refused():
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buf)
    with pytest.raises(UserError, match="PyTorch checkpoint.*never unpickle"):
        import_images(buf.getvalue(), "renamed", filename="images.zip")


def test_a_pickle_inside_an_image_zip_is_refused_and_the_images_load():
    report = import_images(make_zip(good_images(16) + [("model.pkl", pickle.dumps([1, 2]))]), "with_pickle")
    assert report.accepted == 16
    assert "never unpickle" in rejected_reasons(report)["model.pkl"]


def test_an_npz_holding_pickled_objects_is_refused():
    buf = io.BytesIO()
    np.savez(buf, images=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(UserError, match="Python objects.*never unpickle"):
        import_images(buf.getvalue(), "objs", filename="objs.npz")


def test_an_npz_without_an_images_array_says_what_it_has():
    buf = io.BytesIO()
    np.savez(buf, pictures=np.zeros((16, 8, 8), dtype=np.uint8))
    with pytest.raises(UserError, match="no array called `images`.*pictures"):
        import_images(buf.getvalue(), "wrong", filename="wrong.npz")


def test_odd_and_non_utf8_file_names_load_and_are_reported_readably():
    members = good_images(12, "cats/")
    members += [("cats/with space & (brackets).png", image_bytes(seed=50)),
                ("cats/emoji_\U0001F408.png", image_bytes(seed=51)),
                ("猫/一.png", image_bytes(seed=52)), ("猫/二.png", image_bytes(seed=53))]
    members += [("cats/cafX.png", image_bytes(seed=54)), ("cats/new\nline.txt", b"x")]
    data = make_zip(members)
    # make one name Latin-1 bytes (not valid UTF-8), as old Windows zip tools write
    data = data.replace(b"cats/cafX.png", b"cats/caf\xe9.png")
    # and write the Chinese folder as UTF-8 without the "names are UTF-8" flag
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(sig, start)) != -1:
            flags = struct.unpack_from("<H", data, start + flag_at)[0]
            data = data[:start + flag_at] + struct.pack("<H", flags & ~0x800) + data[start + flag_at + 2:]
            start += 4
    report = import_images(data, "names")
    assert report.accepted == 17
    assert report.class_names == ["cats", "猫"]  # the UTF-8 folder name read back correctly
    reasons = rejected_reasons(report)
    assert list(reasons) == ["cats/new\\x0aline.txt"]  # the newline is shown, not printed


def test_too_few_images_is_an_error_that_lists_why_the_rest_were_refused():
    members = good_images(5) + [("bad1.png", b"junk"), ("../bad2.png", image_bytes())]
    with pytest.raises(UserError) as err:
        import_images(make_zip(members), "few")
    msg = str(err.value)
    assert "only 5 usable images" in msg and "at least 16" in msg
    assert "bad1.png" in msg and "../bad2.png" in msg


def test_a_file_that_is_not_an_archive_is_refused_with_what_to_upload():
    with pytest.raises(UserError, match="single image"):
        import_images(image_bytes(), "one", filename="cat.png")
    with pytest.raises(UserError, match="neither a .zip archive nor an .npz"):
        import_images(b"just some text", "txt", filename="notes.txt")


def test_an_upload_over_the_size_limit_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(UserError, match="limit is"):
        import_images(b"\x00" * 1001, "big")
    path = tmp_path / "big.zip"
    path.write_bytes(b"\x00" * 1001)
    with pytest.raises(UserError, match="limit is"):
        import_images(path, "big")


def test_a_damaged_zip_is_refused_with_a_message():
    data = make_zip(good_images(16))
    end = data.rindex(b"PK\x05\x06")  # keep the end record, lose most of the central directory
    damaged = data[:end - 40] + data[end:]
    with pytest.raises(UserError, match="damaged .zip"):
        import_images(damaged, "damaged", filename="damaged.zip")


# ---- colour: kept as uploaded by default --------------------------------------------------

def test_colour_images_stay_in_colour_by_default_and_say_so():
    report = import_images(make_zip(good_images(16)), "colourful")
    assert report.data.channels == 3 and report.to_dict()["channels"] == 3
    assert any("Kept in colour (3 channels): 16 of the 16" in n for n in report.notes)


def test_grey_images_are_saved_in_grey_by_default_even_as_rgb_jpegs():
    grey_rgb = [(f"g{i}.jpg", image_bytes("JPEG", mode="L", seed=i)) for i in range(8)]
    # the same grey pictures saved as RGB JPEGs: a level or two of colour noise, no colour
    for i in range(8):
        img = Image.open(io.BytesIO(image_bytes("PNG", mode="L", seed=100 + i))).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        grey_rgb.append((f"rgb{i}.jpg", buf.getvalue()))
    report = import_images(make_zip(grey_rgb), "greys")
    assert report.data.channels == 1
    assert any("Saved in grey" in n for n in report.notes)


def test_one_colour_image_among_grey_ones_keeps_the_set_in_colour():
    members = [(f"g{i}.png", image_bytes("PNG", mode="L", seed=i)) for i in range(15)]
    members.append(("colour.png", image_bytes("PNG", mode="RGB", seed=99)))
    data = import_images(make_zip(members), "mostly_grey").data
    assert data.channels == 3
    grey = data.images[1]  # "colour.png" sorts first
    assert grey[0].equal(grey[1]) and grey[1].equal(grey[2])  # the grey ones are stored as colour too


def test_asking_for_grey_or_colour_still_converts():
    assert import_images(make_zip(good_images(16)), "asked_grey", channels=1).data.channels == 1
    greys = [(f"g{i}.png", image_bytes("PNG", mode="L", seed=i)) for i in range(16)]
    assert import_images(make_zip(greys), "asked_colour", channels=3).data.channels == 3


def test_an_npz_of_colour_images_stays_in_colour_by_default():
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, images=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8))
    assert import_images(buf.getvalue(), "npz_colour", filename="c.npz").data.channels == 3
    buf = io.BytesIO()
    np.savez(buf, images=np.repeat(rng.integers(0, 256, (20, 32, 32, 1), dtype=np.uint8), 3, axis=3))
    assert import_images(buf.getvalue(), "npz_grey", filename="g.npz").data.channels == 1
