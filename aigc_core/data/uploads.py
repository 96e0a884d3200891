"""Importing a user's own images: a ``.zip`` of image files or an ``.npz`` array.

This is the one place uploaded images are validated. What we accept:

- a ``.zip`` of PNG, JPEG, BMP, GIF or WebP files. Sub-folders become class
  labels (``cats/1.png``, ``dogs/2.png``); a single folder wrapping everything
  is ignored; with no sub-folders the set has no labels. If some images sit
  in folders and some at the top level, the top-level ones form a class named
  ``unsorted``. Hidden files and ``__MACOSX/`` are skipped without comment.
- an ``.npz`` with an ``images`` array shaped (N, H, W), (N, H, W, C) or
  (N, C, H, W), uint8 or float (0..1, 0..255 or -1..1), and optionally
  ``labels`` (N,) and ``class_names``. It is read with ``allow_pickle=False``.

Every image is resized (shorter side to ``size``) and centre-cropped to
``size`` x ``size``, in grayscale (``channels=1``) or RGB (``channels=3``).
The default (``channels=None``) keeps what the upload is: RGB when any image
is in colour, grayscale when every image is grey (:func:`is_grey`), so a
newcomer's photos stay in colour and a scan of digits does not cost three
times the memory and time for nothing.

How we stay safe with files from anyone:

- Nothing is ever unpickled: ``.pt``, ``.pth``, ``.ckpt``, ``.pkl`` files (and
  PyTorch's zip checkpoints) are refused, because loading a pickle can run any
  code its author put in it.
- The archive is read in memory, never unpacked to disk. Limits: the upload
  size (:data:`MAX_UPLOAD_BYTES`), the number of members
  (:data:`MAX_MEMBERS`), the bytes of one member (:data:`MAX_MEMBER_BYTES`)
  and of all members (:data:`MAX_TOTAL_BYTES`) once decompressed, and the
  compression ratio (:data:`MAX_RATIO`) that gives away a zip bomb. Reads are
  capped at the size the archive declares, so a member that lies about its
  size cannot grow past it.
- Member names with an absolute path, a ``..`` part or a link type are
  refused (they are how an archive writes outside the folder it is unpacked
  into; we never unpack, but such an archive is not one a person made by hand).
- The zip's member count and the size of its table of contents are read from
  its end record before ``zipfile`` parses anything (:func:`open_zip`).
- Images open only through Pillow's PNG, JPEG, BMP, GIF and WebP readers,
  whatever the extension says, and only up to :data:`MAX_PIXELS` pixels (a
  header claiming 50,000 x 50,000 is a decompression bomb). Each image's
  pixels are counted from its header before decoding: at most
  :data:`MAX_DECODED_PIXELS` for one image and :data:`MAX_ARCHIVE_PIXELS` for
  the archive (the import stops with a message there). Corrupt or truncated
  images are refused.

A refused member is reported by name with the reason and the good ones still
load; fewer than :data:`MIN_IMAGES` usable images is an error that says why.
"""

from __future__ import annotations

import io
import math
import stat
import struct
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..errors import UserError
from .base import ImageData
from .catalog import DatasetInfo, check_name, list_datasets, save_uploaded

#: the largest upload, matching Streamlit's ``server.maxUploadSize`` (200 MB).
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
#: at most this many files in an archive (MNIST's 70,000 images fit).
MAX_MEMBERS = 100_000
#: one file, decompressed, may be at most this big (a 12-megapixel BMP is 36 MB).
MAX_MEMBER_BYTES = 64 * 1024 * 1024
#: all files together, decompressed (a zip bomb expands far beyond this).
MAX_TOTAL_BYTES = 1024 * 1024 * 1024
#: a member bigger than MAX_RATIO_FLOOR_BYTES may expand at most this many
#: times (it is refused; the rest still load). Photos compress hardly at all;
#: a flat BMP may reach ~50x; a bomb reaches 1000x. Small files are exempt: a
#: 200-byte icon at 300x is harmless, and many small ones together are bounded
#: by MAX_TOTAL_BYTES.
MAX_RATIO = 100
MAX_RATIO_FLOOR_BYTES = 1024 * 1024
#: the zip's table of contents (central directory) may be at most this big: it
#: is what ``zipfile`` parses into memory before anything else can be checked
#: (100,000 members with 100-byte names and the usual extras take ~16 MB).
MAX_DIRECTORY_BYTES = 24 * 1024 * 1024
#: the largest image header, in pixels (width x height), we agree to open: a
#: 48-megapixel phone photo passes; a header claiming 50,000 x 50,000 does not.
MAX_PIXELS = 50_000_000
#: the most pixels we decode for one image (after JPEG's reduced-scale decode,
#: which shrinks a phone photo 8x a side). Every image ends at 64 px or less, so a
#: 4096 x 4096 PNG is already 64 times more than needed; a 7000 x 7000 PNG costs
#: ~0.5 s of decoding for nothing.
MAX_DECODED_PIXELS = 4096 * 4096
#: the most pixels we decode for a whole archive (~10 s of decoding on a laptop
#: core; MNIST's 70,000 images are 55 million). Counted from each header before
#: its pixels are decoded; the import stops with a message when it would pass.
MAX_ARCHIVE_PIXELS = 1_000_000_000
#: at most this many images in a set (the archive limit, and the npz limit).
MAX_IMAGES = MAX_MEMBERS
#: below this there is too little to learn anything.
MIN_IMAGES = 16
SIZES = (28, 32, 64)
CHANNELS = (1, 3)
#: an image is grey when its channels differ by less than this on average
#: (0..255): a grey photo saved as a JPEG in RGB carries a level or two of
#: colour noise; any visibly coloured picture differs by far more.
GREY_TOLERANCE = 4.0

#: the Pillow readers we let open a file; nothing else is tried.
OPEN_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
#: the formats those readers may report (the JPEG reader reports the
#: multi-picture JPEGs phones write as MPO).
ALLOWED_FORMATS = OPEN_FORMATS + ("MPO",)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
UNSORTED_CLASS = "unsorted"
_NOT_AN_IMAGE = "not a PNG, JPEG, BMP, GIF or WebP image"
_PICKLE_REASON = ("a pickled Python/PyTorch file; we never unpickle files, because loading one can run any "
                  "code its author put in it")


@dataclass
class ImportReport:
    """What an import did: the data, and every file left out with the reason."""

    name: str
    accepted: int
    rejected: list[tuple[str, str]]
    class_names: list[str] | None
    data: ImageData
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(name=self.name, accepted=self.accepted, size=self.data.size, channels=self.data.channels,
                    class_names=self.class_names, rejected=[dict(file=f, reason=r) for f, r in self.rejected],
                    notes=list(self.notes))


# ---- entry points --------------------------------------------------------------

def import_images(source: bytes | str | Path, name: str, size: int = 28, channels: int | None = None,
                  filename: str | None = None, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Read a user's ``.zip`` of images or ``.npz`` into an :class:`ImageData`.

    ``source`` is the file's bytes (an upload) or a path; ``filename`` (or the
    path) supplies the extension. ``channels`` is 1 (grey), 3 (RGB) or None
    (keep the upload's colour: RGB when any image is in colour). ``progress(done, total)``, when given, is
    called as the archive's files are checked (about a hundred times for a big
    archive, and once at the end). Raises :class:`UserError` for anything the
    user can fix, with what went wrong and what to do.
    """
    name = check_name(name)
    if size not in SIZES:
        raise UserError(f"image size {size} is not offered; choose one of {', '.join(map(str, SIZES))} pixels")
    if channels is not None and channels not in CHANNELS:
        raise UserError(f"channels must be 1 (grayscale) or 3 (colour RGB), not {channels}")
    raw, filename = _read_source(source, filename)
    suffix = PurePosixPath(filename.lower()).suffix if filename else ""
    if suffix in PICKLE_SUFFIXES or _looks_like_pickle(raw):
        raise UserError(f"{filename or 'this file'} is {_PICKLE_REASON}. Upload a .zip of images or an .npz "
                        "array (numpy.savez) instead.")
    if not raw:
        raise UserError(f"{filename or 'the upload'} is empty (0 bytes)")
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        hint = " (a single image: put it, with at least 15 more, in a .zip)" if _sniff_image(raw) else ""
        raise UserError(f"{filename or 'this file'} is neither a .zip archive nor an .npz array{hint}. "
                        "Upload a .zip of PNG/JPEG/BMP/GIF/WebP images or an .npz with an `images` array.")
    with open_zip(raw, filename or "the archive") as zf:
        infos = zf.infolist()
        if _is_torch_checkpoint(infos):
            raise UserError(f"{filename or 'this file'} is a PyTorch checkpoint: {_PICKLE_REASON}. "
                            "Upload a .zip of images or an .npz array instead.")
        if suffix == ".npz" or _is_npz(infos):
            report = _import_npz(zf, infos, name, size, channels)
            if progress:
                progress(1, 1)
            return report
        return _import_zip(zf, infos, name, size, channels, progress)


def import_and_save(source: bytes | str | Path, name: str, size: int = 28, channels: int | None = None,
                    filename: str | None = None, overwrite: bool = False,
                    progress: Callable[[int, int], None] | None = None, *, actor=None) -> ImportReport:
    """Import (as :func:`import_images`) and register the result under ``name``
    as ``actor``'s (default: the single local user); it then appears in
    ``list_datasets()`` and persists until deleted."""
    from ..room.identity import LOCAL
    from .catalog import check_room_for_upload

    actor = actor or LOCAL
    name = check_name(name)
    check_room_for_upload(actor)  # before reading a byte of the upload
    existing = {d.name: d for d in list_datasets()}
    if name in existing and (existing[name].builtin or not overwrite):
        what = "a built-in data set" if existing[name].builtin else "a data set you already have"
        raise UserError(f"{name!r} is the name of {what}; choose another name"
                        + ("" if existing[name].builtin else " or delete the old one first"))
    report = import_images(source, name, size=size, channels=channels, filename=filename, progress=progress)
    extra = dict(source=filename or (str(source) if isinstance(source, (str, Path)) else None),
                 accepted=report.accepted, rejected=len(report.rejected))
    info: DatasetInfo = save_uploaded(report.data, overwrite=overwrite, extra_meta=extra, actor=actor)
    report.notes.append(f"saved as data set {info.name!r}")
    return report


#: what each kind of upload may be called (the Data page dispatches on this).
UPLOAD_SUFFIXES = {".zip": "image", ".npz": "image", ".txt": "text", ".csv": "table", ".tsv": "table"}


def upload_kind(filename: str) -> str:
    """``image``, ``text`` or ``table`` for an upload's file name; a pickle gets a
    refusal that says why, any other type a message naming what is accepted."""
    suffix = PurePosixPath((filename or "").lower()).suffix
    if suffix in PICKLE_SUFFIXES:
        raise UserError(f"{filename} is {_PICKLE_REASON}. Upload a .zip of images or an .npz array, a .txt file "
                        "or a .csv table instead.")
    if suffix not in UPLOAD_SUFFIXES:
        hint = " (put images in a .zip, at least 16 of them)" if suffix in (".png", ".jpg", ".jpeg", ".bmp", ".gif",
                                                                            ".webp") else ""
        raise UserError(f"{filename} is not a kind of file the studio reads{hint}. Upload a .zip of images (or an "
                        ".npz array), a .txt text file, or a .csv table.")
    return UPLOAD_SUFFIXES[suffix]


# ---- reading the upload ------------------------------------------------------------

def _read_source(source: bytes | str | Path, filename: str | None) -> tuple[bytes, str | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise UserError(f"no file at {path}")
        filename = filename or path.name
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise UserError(f"{path.name} is {path.stat().st_size / 2**20:.0f} MB; the limit is "
                            f"{MAX_UPLOAD_BYTES // 2**20} MB. Upload fewer or smaller images.")
        raw = path.read_bytes()
    if len(raw) > MAX_UPLOAD_BYTES:
        raise UserError(f"the upload is {len(raw) / 2**20:.0f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB. "
                        "Upload fewer or smaller images.")
    return raw, filename


_EOCD = struct.Struct("<4s4H2LH")          # end of central directory record (22 bytes + comment)
_ZIP64_LOCATOR = struct.Struct("<4sLQL")    # 20 bytes, just before the EOCD record
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")   # 56 bytes


def zip_directory_size(raw: bytes, shown: str = "the archive") -> tuple[int, int]:
    """``(members, central directory bytes)`` as the archive's end record declares them.

    Read straight from the last 64 kB (the end-of-central-directory record and,
    for big archives, the ZIP64 record before it) without parsing the directory
    itself, so a zip with a million members costs microseconds to size up. The
    records are found the way :mod:`zipfile` finds them, so these are the
    numbers it would go on to use. Raises :class:`UserError` when there is no
    end record or the directory it declares is larger than the file.
    """
    tail_start = max(0, len(raw) - (_EOCD.size + 0xFFFF))
    at = raw.rfind(b"PK\x05\x06", tail_start)
    if at < 0 or at + _EOCD.size > len(raw):
        raise UserError(f"{shown} is not a .zip archive (it has no end-of-archive record); make the archive again")
    _, _, _, _, count, dir_size, _, _ = _EOCD.unpack_from(raw, at)
    # like zipfile: a ZIP64 locator right before the end record, and the ZIP64 record right before that
    loc = at - _ZIP64_LOCATOR.size
    record = loc - _ZIP64_EOCD.size
    if record >= 0 and raw[loc:loc + 4] == b"PK\x06\x07" and raw[record:record + 4] == b"PK\x06\x06":
        _, _, _, _, _, _, _, count, dir_size, _ = _ZIP64_EOCD.unpack_from(raw, record)
    if dir_size > len(raw):
        raise UserError(f"{shown} is a damaged .zip file (its table of contents claims {dir_size:,} bytes, more "
                        f"than the {len(raw):,}-byte file); make the archive again")
    return count, dir_size


def open_zip(raw: bytes, shown: str = "the archive", max_members: int | None = None) -> zipfile.ZipFile:
    """A :class:`zipfile.ZipFile` over ``raw``, opened only after the member count
    and the size of the table of contents (which ``zipfile`` parses whole, up
    front) are checked against :data:`MAX_MEMBERS` (or ``max_members``) and
    :data:`MAX_DIRECTORY_BYTES`. Every uploaded zip is opened here."""
    limit = MAX_MEMBERS if max_members is None else max_members
    count, dir_size = zip_directory_size(raw, shown)
    if count > limit:
        raise UserError(f"{shown} holds {count:,} files; the limit is {limit:,}. Split it into smaller archives.")
    if dir_size > MAX_DIRECTORY_BYTES:
        raise UserError(f"the table of contents of {shown} is {dir_size / 2**20:.0f} MB; the limit is "
                        f"{MAX_DIRECTORY_BYTES // 2**20} MB (that many or that long file names are not a set of "
                        "images). Split it into smaller archives with shorter names.")
    try:
        return zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise UserError(f"{shown} is a damaged .zip file ({_short(exc)}); make the archive again and upload it") \
            from None


def _looks_like_pickle(raw: bytes) -> bool:
    # protocol 2+ pickles start with PROTO (0x80) and the protocol number
    return len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5


def _is_torch_checkpoint(infos: list[zipfile.ZipInfo]) -> bool:
    # torch.save writes a zip holding <name>/data.pkl next to <name>/data/0, ...
    return any(PurePosixPath(i.filename).name == "data.pkl" for i in infos)


def _is_npz(infos: list[zipfile.ZipInfo]) -> bool:
    names = {i.filename for i in infos}
    return "images.npy" in names and all(n.endswith(".npy") for n in names)


def _sniff_image(raw: bytes) -> bool:
    return raw[:8] == b"\x89PNG\r\n\x1a\n" or raw[:3] == b"\xff\xd8\xff" or raw[:2] == b"BM" or raw[:4] == b"GIF8" \
        or (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP")


def _display_name(info: zipfile.ZipInfo) -> str:
    """The member's name as its author wrote it.

    Zip names are UTF-8 only when flag bit 11 is set; otherwise Python decodes
    them as CP437, which turns names written as UTF-8 without the flag (common)
    into mojibake. Undo that when the bytes are valid UTF-8, and make control
    characters visible so a report line stays one line.
    """
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return "".join(ch if unicodedata.category(ch)[0] != "C" else f"\\x{ord(ch):02x}" for ch in name)


def _check_archive(infos: list[zipfile.ZipInfo]) -> None:
    """Archive-wide limits, checked from the central directory before reading anything."""
    files = [i for i in infos if not i.is_dir()]
    if not files:
        raise UserError("the archive is empty: it holds no files. Put your images in a .zip "
                        "(sub-folders become class labels) and upload it again.")
    if len(files) > MAX_MEMBERS:
        raise UserError(f"the archive holds {len(files):,} files; the limit is {MAX_MEMBERS:,}. "
                        "Split it into smaller archives.")
    total = sum(i.file_size for i in files)
    if total > MAX_TOTAL_BYTES:
        raise UserError(f"the archive would expand to {total / 2**30:.1f} GB; the limit is "
                        f"{MAX_TOTAL_BYTES / 2**30:.0f} GB. This is either far more than a training set "
                        "needs or a 'zip bomb'; upload fewer or smaller images.")


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why this member must not be read, or None."""
    raw_name = info.filename
    parts = raw_name.replace("\\", "/").split("/")
    if raw_name.startswith(("/", "\\")) or (len(raw_name) > 1 and raw_name[1] == ":"):
        return "absolute path: archive members must be relative"
    if ".." in parts:
        return "path goes up a folder ('..'), outside the archive"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "a symbolic link, not a file"
    if mode and not stat.S_ISREG(mode) and stat.S_IFMT(mode):
        return "a special file (device, pipe or socket), not a regular file"
    if info.flag_bits & 0x1:
        return "encrypted (password-protected) member"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"{info.file_size / 2**20:.0f} MB once decompressed; the limit per file is {MAX_MEMBER_BYTES // 2**20} MB"
    if info.file_size > MAX_RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(1, info.compress_size):
        return f"expands {info.file_size / max(1, info.compress_size):,.0f} times when decompressed (a 'zip bomb')"
    return None


def _is_hidden(parts: list[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in ("thumbs.db", "desktop.ini")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # ZipExtFile stops at the declared size and checks the CRC at the end,
    # so a member cannot expand past what _member_problem already allowed
    with zf.open(info) as fh:
        data = fh.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise ValueError("larger than declared")
    return data


# ---- a zip of image files -------------------------------------------------------------

def _import_zip(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], name: str, size: int,
                channels: int, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    _check_archive(infos)
    rejected: list[tuple[str, str]] = []
    images: list[tuple[list[str], torch.Tensor]] = []  # (folder parts, (C, size, size) uint8)
    budget = PixelBudget(MAX_ARCHIVE_PIXELS)
    members = sorted((i for i in infos if not i.is_dir()), key=lambda i: i.filename)
    every = max(1, len(members) // 100)
    for done, info in enumerate(members):
        if progress and done % every == 0:
            progress(done, len(members))
        shown = _display_name(info)
        parts = [p for p in shown.replace("\\", "/").split("/") if p not in ("", ".")] or [shown]
        problem = _member_problem(info)
        if problem:
            rejected.append((shown, problem))
            continue
        if _is_hidden(parts):
            continue
        if PurePosixPath(parts[-1].lower()).suffix in PICKLE_SUFFIXES:
            rejected.append((shown, _PICKLE_REASON))
            continue
        try:
            raw = _read_member(zf, info)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            rejected.append((shown, f"could not be read from the archive ({_short(exc)})"))
            continue
        try:
            tensor = decode_image(raw, size, channels or 3, budget)
        except _OverBudget as exc:
            raise UserError(f"stopped at {shown} ({done + 1:,} of {len(members):,} files): the images so far add up "
                            f"to {budget.spent + exc.pixels:,} pixels to decode, more than the limit of "
                            f"{MAX_ARCHIVE_PIXELS:,} for one archive. Every image is shrunk to {size} px, so shrink "
                            "them to at most a few hundred pixels a side before zipping, or upload fewer.") from None
        except _Refused as exc:
            rejected.append((shown, str(exc)))
            continue
        if channels is None and is_grey(tensor):
            tensor = _luma(tensor)  # a third of the memory while the rest are read
        images.append((parts[:-1], tensor))
        if len(images) > MAX_IMAGES:
            raise UserError(f"the archive holds more than {MAX_IMAGES:,} images; split it into smaller archives")

    if progress:
        progress(len(members), len(members))
    _require_enough(len(images), rejected, what="images in the archive")
    labels, class_names, notes = _folder_labels([folders for folders, _ in images])
    tensors = [t for _, t in images]
    if channels is None:
        coloured = sum(t.shape[0] == 3 for t in tensors)
        channels = 3 if coloured else 1
        tensors = [t.expand(3, -1, -1) if t.shape[0] != channels else t for t in tensors]
        notes.append(_colour_note(channels, coloured, len(tensors)))
    data = ImageData(name, torch.stack(tensors), labels, class_names,
                     description=f"uploaded images ({len(images)} at {size}x{size}, "
                                 f"{'grayscale' if channels == 1 else 'RGB'})")
    return ImportReport(name, len(images), rejected, class_names, data, notes)


def is_grey(image: torch.Tensor) -> bool:
    """Whether a (C, H, W) uint8 image has no colour worth keeping: one channel,
    or channels that differ by less than :data:`GREY_TOLERANCE` on average."""
    if image.shape[0] == 1:
        return True
    spread = image.amax(0).float() - image.amin(0).float()  # (H, W): 0 where R = G = B
    return float(spread.mean()) < GREY_TOLERANCE


def _luma(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 -> (1, H, W): ITU-R 601-2 luma, the weights of Pillow's convert("L")."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (image.float() * weights).sum(0, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)


def _colour_note(channels: int, coloured: int, total: int) -> str:
    if channels == 1:
        return "Saved in grey (1 channel): every image is grey, so colour channels would only cost time."
    return (f"Kept in colour (3 channels): {coloured:,} of the {total:,} images are in colour"
            + (" (the grey ones are stored as colour too)." if coloured < total else "."))


def _folder_labels(folders: list[list[str]]) -> tuple[torch.Tensor | None, list[str] | None, list[str]]:
    """Class labels from the first folder below the folders every image shares."""
    common = 0
    shortest = min(len(f) for f in folders)
    while common < shortest and len({tuple(f[:common + 1]) for f in folders}) == 1:
        common += 1
    keys = [f[common] if len(f) > common else None for f in folders]
    if all(k is None for k in keys):
        return None, None, []
    notes = []
    if any(k is None for k in keys):
        n = sum(k is None for k in keys)
        notes.append(f"{n} image(s) outside any class folder were put in the class {UNSORTED_CLASS!r}")
        keys = [UNSORTED_CLASS if k is None else k for k in keys]
    class_names = sorted(set(keys))
    index = {c: i for i, c in enumerate(class_names)}
    return torch.tensor([index[k] for k in keys], dtype=torch.int64), class_names, notes


class _Refused(Exception):
    """An image we will not use; the message is the reason shown to the user."""


class _OverBudget(Exception):
    """Decoding this image would take the archive past :data:`MAX_ARCHIVE_PIXELS`."""

    def __init__(self, pixels: int):
        super().__init__(pixels)
        self.pixels = pixels


@dataclass
class PixelBudget:
    """Pixels an import may still decode; charged from each header before decoding."""

    limit: int
    spent: int = 0

    def charge(self, pixels: int) -> None:
        if self.spent + pixels > self.limit:
            raise _OverBudget(pixels)
        self.spent += pixels


def decode_image(raw: bytes, size: int, channels: int, budget: PixelBudget | None = None) -> torch.Tensor:
    """One image file's bytes -> (channels, size, size) uint8, or :class:`_Refused`.

    Only Pillow's readers for the allowed formats are tried, so a file's
    extension decides nothing. The pixel count is checked from the header
    before any pixel is decoded: against :data:`MAX_PIXELS` (the header),
    :data:`MAX_DECODED_PIXELS` (what would be decoded, after JPEG's
    reduced-scale decode) and the archive's ``budget``.
    """
    with warnings.catch_warnings():
        # Pillow warns above its own limit and raises at twice it; ours is lower
        # and checked first, but treat its warning as a refusal too
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(raw), formats=OPEN_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _Refused(f"claims more pixels than the limit of {MAX_PIXELS:,} (a 'decompression bomb')") from None
        except Exception:  # noqa: BLE001 - Pillow raises many kinds for junk input; all mean "not an image"
            raise _Refused(_NOT_AN_IMAGE) from None
        with img:
            if img.format not in ALLOWED_FORMATS:
                raise _Refused(_NOT_AN_IMAGE)
            w, h = img.size
            if w < 1 or h < 1:
                raise _Refused("has no pixels")
            if w * h > MAX_PIXELS:
                raise _Refused(f"is {w:,} x {h:,} pixels, more than the limit of {MAX_PIXELS:,}: a header that "
                               "large is how a 'decompression bomb' starts; shrink the image if it is real")
            if img.format in ("JPEG", "MPO"):
                # decode at a reduced scale straight away (fast and small)
                try:
                    img.draft("L" if channels == 1 else "RGB", (size, size))
                except Exception as exc:  # noqa: BLE001 - a broken header surfaces as many types
                    raise _Refused(f"corrupt {img.format} image ({_short(exc)})") from None
                w, h = img.size
            if w * h > MAX_DECODED_PIXELS:
                side = math.isqrt(MAX_DECODED_PIXELS)
                raise _Refused(f"is {w:,} x {h:,} pixels; the limit is {MAX_DECODED_PIXELS:,} ({side} x {side}). "
                               f"It becomes {size} x {size}, so shrink it first (a few hundred pixels a side "
                               "keeps every detail that survives)")
            if budget is not None:
                budget.charge(w * h)
            try:
                img.load()
                try:
                    img = ImageOps.exif_transpose(img)  # phone photos stored sideways
                except Exception:  # noqa: BLE001 - a broken EXIF block is no reason to lose the picture
                    pass
                img = _to_mode(img, channels)
                factor = min(img.size) // (2 * size)
                if factor >= 2:
                    # a box average down to 2-4x the result first: LANCZOS over millions of pixels
                    # was the slow part (0.2 s for a 4096 x 4096 image, 0.02 s after this)
                    img = img.reduce(factor)
                img = ImageOps.fit(img, (size, size), method=Image.LANCZOS, centering=(0.5, 0.5))
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise _Refused(f"claims more pixels than the limit of {MAX_PIXELS:,} (a 'decompression bomb')") from None
            except Exception as exc:  # noqa: BLE001 - truncated/corrupt data surfaces as many types
                raise _Refused(f"corrupt or truncated {img.format} image ({_short(exc)})") from None
    array = np.asarray(img, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Grayscale or RGB; transparent pixels become white (what a viewer shows)."""
    if img.mode in ("P", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        back = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(back, rgba)
    if img.mode.startswith("I"):  # 16-bit PNG: 0..65535
        array = np.asarray(img).astype(np.float32) / 257
        img = Image.fromarray(array.clip(0, 255).round().astype(np.uint8), mode="L")
    return img.convert("L" if channels == 1 else "RGB")


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _require_enough(count: int, rejected: list[tuple[str, str]], what: str) -> None:
    if count >= MIN_IMAGES:
        return
    if count == 0 and not rejected:
        msg = f"no usable {what}: the archive holds only hidden or system files"
    elif count == 0:
        msg = f"no usable {what}"
    else:
        msg = f"only {count} usable {what}; at least {MIN_IMAGES} are needed to train anything"
    if rejected:
        shown = "; ".join(f"{f}: {r}" for f, r in rejected[:8])
        more = f"; and {len(rejected) - 8} more" if len(rejected) > 8 else ""
        msg += f". {len(rejected)} file(s) were refused: {shown}{more}"
    raise UserError(msg + ". Add more PNG, JPEG, BMP, GIF or WebP images and upload again.")


# ---- an .npz array ----------------------------------------------------------------------

def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> np.ndarray:
    """One array of an .npz, its header checked before any data is allocated."""
    problem = _member_problem(info)
    if problem:
        raise UserError(f"the array {key!r} in the .npz was refused: {problem}")
    with zf.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:  # 3.0 only adds UTF-8 field names, which image arrays never need
                raise ValueError(f"npy format version {version[0]}.{version[1]} is not supported")
        except (ValueError, EOFError) as exc:
            raise UserError(f"the array {key!r} in the .npz is not a valid numpy array ({_short(exc)})") from None
    if dtype.hasobject:
        raise UserError(f"the array {key!r} in the .npz holds Python objects, which numpy can only load by "
                        "unpickling; we never unpickle files because loading one can run any code its author "
                        "put in it. Save plain numbers (numpy.savez with a uint8 or float array).")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_TOTAL_BYTES or nbytes > info.file_size:
        raise UserError(f"the array {key!r} in the .npz claims {nbytes:,} bytes, more than the file holds or the "
                        f"{MAX_TOTAL_BYTES / 2**30:.0f} GB limit")
    try:
        return np.load(io.BytesIO(_read_member(zf, info)), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"the array {key!r} in the .npz could not be read ({_short(exc)})") from None


def _import_npz(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], name: str, size: int,
                channels: int) -> ImportReport:
    _check_archive(infos)
    members = {i.filename[:-4]: i for i in infos if i.filename.endswith(".npy")}
    if "images" not in members:
        keys = ", ".join(sorted(members)) or "none"
        raise UserError(f"the .npz has no array called `images` (it has: {keys}). Save it with "
                        "numpy.savez(file, images=..., labels=...).")
    array = _read_npy(zf, members["images"], "images")
    images = _npz_images(array)  # float (N, C, H, W) in [0, 1]
    n = images.shape[0]
    if n > MAX_IMAGES:
        raise UserError(f"the .npz holds {n:,} images; the limit is {MAX_IMAGES:,}")
    notes: list[str] = []
    rejected: list[tuple[str, str]] = []
    finite = torch.isfinite(images).flatten(1).all(1)
    if not bool(finite.all()):
        rejected += [(f"images[{i}]", "contains NaN or infinite values") for i in torch.nonzero(~finite).flatten().tolist()]
    labels, class_names = None, None
    if "labels" in members:
        names_arr = _read_npy(zf, members["class_names"], "class_names") if "class_names" in members else None
        labels, class_names = _npz_labels(_read_npy(zf, members["labels"], "labels"), n, names_arr)
    keep = torch.nonzero(finite).flatten()
    _require_enough(len(keep), rejected, what="images in the .npz")
    if channels is None:
        rgb = images[keep][:, :3]
        coloured = 0 if rgb.shape[1] < 3 else \
            int(((rgb.amax(1) - rgb.amin(1)).mul(255).flatten(1).mean(1) >= GREY_TOLERANCE).sum())
        channels = 3 if coloured else 1
        notes.append(_colour_note(channels, coloured, len(keep)))
    images = _fit(images[keep], size, channels)
    if labels is not None:
        labels = labels[keep]
    data = ImageData(name, images.mul(255).round_().clamp_(0, 255).to(torch.uint8), labels, class_names,
                     description=f"uploaded array ({len(keep)} images at {size}x{size}, "
                                 f"{'grayscale' if channels == 1 else 'RGB'})")
    return ImportReport(name, len(keep), rejected, class_names, data, notes)


def _npz_images(array: np.ndarray) -> torch.Tensor:
    """Any accepted layout and range -> float (N, C, H, W) in [0, 1] (NaN kept for the caller)."""
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        last, second = array.shape[-1] in (1, 3, 4), array.shape[1] in (1, 3, 4)
        if last:  # (N, H, W, C), numpy's usual order; wins when both could be channels
            array = array.transpose(0, 3, 1, 2)
        elif not second:
            raise UserError(f"`images` has shape {array.shape}; with 4 dimensions one of them must be 1, 3 or 4 "
                            "colour channels: (N, H, W, C) or (N, C, H, W)")
    else:
        raise UserError(f"`images` has shape {array.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W)")
    if array.shape[0] == 0 or array.shape[2] < 1 or array.shape[3] < 1:
        raise UserError(f"`images` has shape {array.shape}: there are no pixels in it")
    if array.dtype == np.bool_:
        return torch.from_numpy(array.astype(np.float32))
    if array.dtype.kind not in "uif":
        raise UserError(f"`images` has dtype {array.dtype}; use uint8 (0..255) or float (0..1)")
    x = torch.from_numpy(np.ascontiguousarray(array).astype(np.float32))
    ok = x[torch.isfinite(x)]
    lo, hi = (float(ok.min()), float(ok.max())) if ok.numel() else (0.0, 1.0)
    if array.dtype == np.uint8 or (lo >= 0 and hi > 1.0 + 1e-6 and hi <= 255):
        return x / 255
    if lo >= 0 and hi <= 1.0 + 1e-6:
        return x
    if lo >= -1.0 - 1e-6 and hi <= 1.0 + 1e-6:  # the tanh range models use
        return (x + 1) / 2
    raise UserError(f"`images` values run from {lo:g} to {hi:g}; use 0..255, 0..1 or -1..1")


def _fit(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """float (N, C, H, W) in [0, 1] -> (N, channels, size, size): shorter side to
    ``size``, centre crop, then gray <-> RGB (alpha composited over white)."""
    c = images.shape[1]
    if c == 4:
        alpha = images[:, 3:4]
        images = images[:, :3] * alpha + (1 - alpha)
    elif c == 2:  # gray + alpha
        alpha = images[:, 1:2]
        images = images[:, :1] * alpha + (1 - alpha)
    h, w = images.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
        out = []
        for start in range(0, images.shape[0], 1024):  # bounded memory for big arrays
            out.append(F.interpolate(images[start:start + 1024], size=(new_h, new_w), mode="bilinear",
                                     antialias=True, align_corners=False))
        images = torch.cat(out)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        images = images[:, :, top:top + size, left:left + size]
    if channels == 1 and images.shape[1] == 3:
        # ITU-R 601-2 luma, the same weights as Pillow's convert("L")
        images = (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif channels == 3 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images.clamp(0, 1).contiguous()


def _npz_labels(labels: np.ndarray, n: int, names: np.ndarray | None) -> tuple[torch.Tensor, list[str]]:
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != n:
        raise UserError(f"`labels` has {labels.shape[0]} entries but `images` has {n}; give one label per image")
    if labels.dtype.kind in "iu":
        values = sorted(set(labels.tolist()))
        if names is not None and values and values[0] >= 0 and values[-1] < len(names):
            class_names = [str(s) for s in np.asarray(names).reshape(-1).tolist()]
            return torch.from_numpy(labels.astype(np.int64)), class_names
        index = {v: i for i, v in enumerate(values)}
        return torch.tensor([index[v] for v in labels.tolist()], dtype=torch.int64), [str(v) for v in values]
    if labels.dtype.kind in "US":
        text = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in labels.tolist()]
        class_names = sorted(set(text))
        index = {c: i for i, c in enumerate(class_names)}
        return torch.tensor([index[t] for t in text], dtype=torch.int64), class_names
    raise UserError(f"`labels` has dtype {labels.dtype}; use whole numbers or strings, one per image")
