"""Text corpora: two built-ins that work offline, and validated ``.txt`` uploads.

A corpus is a :class:`~aigc_core.data.base.TextData` in one of two modes:

- ``"stream"``: one long text; a model learns to continue it character by
  character.
- ``"lines"``: one item per line (names, titles); each item is learned as
  ``<start> item <end>``, so sampling produces whole items.

The validation split is always the *last* 10% (of the characters, or of the
lines): a model is judged on text it never trained on, and the split never
changes between runs.
"""

from __future__ import annotations

import functools
import random
import unicodedata
from collections import Counter
from pathlib import Path

from ..errors import UserError
from .base import TextData
from .catalog import builtin, check_name, upload_codec
from .vocab import vocabulary_note

MODES = ("stream", "lines")
#: the largest upload we accept; a character model on a CPU learns what it can
#: from a few MB, and the whole text is held as one tensor on the device.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: a stream shorter than this leaves too little for training windows and a
#: validation tail (10% of 500 characters is 50).
MIN_STREAM_CHARS = 500
#: a line corpus needs enough items that its last 10% still holds a few.
MIN_LINES = 20
VAL_FRACTION = 0.1
TEXT_FILE = "text.txt"

_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32 (little-endian)",
    b"\x00\x00\xfe\xff": "UTF-32 (big-endian)",
    b"\xff\xfe": "UTF-16 (little-endian)",
    b"\xfe\xff": "UTF-16 (big-endian)",
}
_HOW_TO_FIX = ("Save it as UTF-8 in your editor (Notepad: File -> Save as -> Encoding: UTF-8; LibreOffice: "
               "Save as -> Text, character set Unicode (UTF-8); VS Code: the encoding button in the status bar "
               "-> Save with Encoding -> UTF-8) and upload it again.")


# ---- built-in corpora --------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _pydoc_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics))


@builtin("pydoc", kind="text",
         description="Python's own documentation topics (pydoc_data.topics, ships with CPython): "
                     "about 460k characters of English prose and code, one stream of text.",
         summary=TextData("pydoc", _pydoc_text()).summary())
def pydoc_corpus() -> TextData:
    """Every topic of ``pydoc_data.topics`` (the text ``help("assert")`` shows),
    in sorted key order, separated by a blank line."""
    return TextData("pydoc", _pydoc_text(), mode="stream",
                    description="Python documentation topics (pydoc_data.topics)")


#: items longer than this are left out, so an item plus its start and end
#: markers fits a 64-character context.
MAX_NAME_CHARS = 62


@builtin("unicode_names", kind="text",
         description="About 27,000 names of Unicode characters (PANDA FACE, LATIN SMALL LETTER H WITH "
                     "LINE BELOW), from Python's unicodedata module; one name per line.",
         summary=dict(kind="text", mode="lines"))  # counted when first built (it takes a moment)
def unicode_names_corpus() -> TextData:
    """The names of Unicode characters, one per line, in a fixed shuffled order.

    Why this corpus: the short-item corpus has to work offline and ship with
    the stack. The candidates that do are small (plotly's gapminder table has
    142 country names, Python has 35 keywords and about 300 standard-library
    module names: too few items to learn a spelling from), while
    :mod:`unicodedata`, part of every CPython, names about 140,000 characters.
    We keep the names a person can read as words: we leave out names with
    digits or a hex code (``CJK UNIFIED IDEOGRAPH-4E00``, ``EGYPTIAN
    HIEROGLYPH A001``), the 11,000 generated ``HANGUL SYLLABLE`` names, and
    names longer than :data:`MAX_NAME_CHARS`. That leaves about 27,000 items
    over 28 characters (A-Z, space, hyphen); a model has to learn scripts,
    letters and the grammar of "X WITH Y AND Z", and the copy marker shows
    which invented names really exist. The order is shuffled with a fixed
    seed so the last-10% validation split is a fair sample rather than the
    last scripts in the code chart. (The list follows the Unicode version of
    the running Python, 14.0 for Python 3.11.)
    """
    return TextData("unicode_names", "\n".join(_unicode_names()), mode="lines",
                    description=f"Unicode character names (Unicode {unicodedata.unidata_version})")


@functools.lru_cache(maxsize=1)
def _unicode_names() -> tuple[str, ...]:
    names = []
    for code in range(0x110000):
        name = unicodedata.name(chr(code), "")
        if (name and len(name) <= MAX_NAME_CHARS and not any(ch.isdigit() for ch in name)
                and not name.startswith("HANGUL SYLLABLE ")):
            names.append(name)
    random.Random(0).shuffle(names)
    return tuple(names)


# ---- uploads -----------------------------------------------------------------

#: what makes a file look like a list of items: most lines this short, mostly distinct, few ending like a sentence
ITEM_MEDIAN_CHARS = 40
ITEM_LONG_CHARS = 80
SENTENCE_END = (".", "!", "?", ",", ";", ":")


def guess_text_mode(source: bytes | str) -> tuple[str, str]:
    """``(mode, reason)``: ``lines`` when the file looks like a list of short,
    distinct items (names, titles, one per line), else ``stream``; the reason
    is a sentence a person can check against the file. Only the first
    megabyte is read."""
    if isinstance(source, bytes):
        source = source[:2**20].decode("utf-8", errors="replace")
    lines = [line.strip() for line in source[:2**20].replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    items = [line for line in lines if line]
    if len(items) < MIN_LINES:
        return "stream", f"it has only {len(items)} non-empty lines, too few to be a list of items"
    lengths = sorted(len(x) for x in items)
    median = lengths[len(lengths) // 2]
    long_share = sum(n > ITEM_LONG_CHARS for n in lengths) / len(lengths)
    distinct = len(set(items)) / len(items)
    sentences = sum(x.endswith(SENTENCE_END) for x in items) / len(items)
    if median > ITEM_MEDIAN_CHARS:
        return "stream", f"its lines are long (half are {median} characters or more): it reads as running text"
    if long_share > 0.1:
        return "stream", (f"{long_share:.0%} of its lines are over {ITEM_LONG_CHARS} characters: it reads as running "
                          "text")
    if sentences > 0.3:
        return "stream", (f"{sentences:.0%} of its lines end with punctuation, like sentences or wrapped prose: "
                          "it reads as running text")
    if distinct < 0.5:
        return "stream", f"only {distinct:.0%} of its lines are different: it reads as text with repeated lines"
    return "lines", (f"{len(items):,} short lines (half under {median + 1} characters), {distinct:.0%} of them "
                     "different and few ending like a sentence: each looks like one item (a name, a title)")


def import_text(source: bytes, name: str, mode: str = "stream", filename: str | None = None) -> TextData:
    """Check an uploaded text file and turn it into a :class:`TextData`.

    Refused, each with a message saying why and what to do: files over
    :data:`MAX_UPLOAD_BYTES`, binary files (NUL bytes), files that are not
    UTF-8 (naming the first bad byte and its position), empty or
    whitespace-only files, streams shorter than :data:`MIN_STREAM_CHARS` and
    line corpora with fewer than :data:`MIN_LINES` non-empty lines. Nothing
    is written here; :func:`aigc_core.data.catalog.save_uploaded` saves the
    result, so a refused file leaves no trace.

    A UTF-8 byte-order mark is dropped and Windows/old-Mac line endings become
    ``\\n``. In ``lines`` mode surrounding spaces and empty lines are dropped.
    """
    label = filename or "the uploaded file"
    name = check_name(name)
    if mode not in MODES:
        raise UserError(f"text mode must be 'stream' or 'lines', got {mode!r}")
    if len(source) > MAX_UPLOAD_BYTES:
        raise UserError(f"{label} is {len(source) / 1e6:.1f} MB; the limit for text is "
                        f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB. Upload a shorter excerpt.")
    for bom, encoding in _BOMS.items():
        if source.startswith(bom):
            raise UserError(f"{label} is encoded as {encoding}, not UTF-8. {_HOW_TO_FIX}")
    if b"\x00" in source:
        at = source.index(b"\x00")
        head = source[:2000]
        if max(head[0::2].count(0), head[1::2].count(0)) > len(head) // 4:
            # every other byte zero: ASCII-range text in a 16-bit encoding
            raise UserError(f"{label} looks like UTF-16 text (every other byte is zero), not UTF-8. {_HOW_TO_FIX}")
        raise UserError(f"{label} looks like a binary file, not text (it has a NUL byte at byte {at}). "
                        "Upload a plain .txt file.")
    if source.startswith(b"\xef\xbb\xbf"):
        source = source[3:]
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(_decode_message(label, source, exc)) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise UserError(f"{label} is empty or holds only spaces and line breaks; upload a file with some text in it")
    if mode == "lines":
        items = [line.strip() for line in text.split("\n")]
        items = [item for item in items if item]
        if len(items) < MIN_LINES:
            raise UserError(f"{label} has {len(items)} non-empty line(s); line mode needs at least {MIN_LINES} "
                            "items, one per line. Add more lines or use stream mode.")
        text = "\n".join(items)
    elif len(text) < MIN_STREAM_CHARS:
        raise UserError(f"{label} has {len(text)} characters; stream mode needs at least {MIN_STREAM_CHARS} "
                        "so there is text to train on and a tail to validate on.")
    return TextData(name, text, mode=mode, description=f"uploaded from {filename}" if filename else "uploaded text")


def _decode_message(label: str, source: bytes, exc: UnicodeDecodeError) -> str:
    at = exc.start
    line = source.count(b"\n", 0, at) + 1
    column = at - (source.rfind(b"\n", 0, at) + 1) + 1
    bad = source[at:at + 4][: max(1, exc.end - exc.start)]
    guess = ""
    try:
        # Windows-1252 covers Latin-1's printable range; a clean decode is a strong hint.
        source.decode("cp1252")
        guess = " It is probably Windows-1252 or Latin-1 (common for files saved on Windows)."
    except UnicodeDecodeError:
        pass
    return (f"{label} is not UTF-8 text: byte 0x{bad.hex()} at line {line}, column {column} (byte {at + 1} of the file) "
            f"is not valid UTF-8.{guess} {_HOW_TO_FIX} Nothing was imported.")


def _save_text(data: TextData, folder: Path) -> None:
    (folder / TEXT_FILE).write_text(data.text, encoding="utf-8", newline="\n")


def _load_text(folder: Path, meta: dict) -> TextData:
    mode = meta.get("mode") or (meta.get("summary") or {}).get("mode", "stream")
    text = (folder / TEXT_FILE).read_text(encoding="utf-8")
    return TextData(meta["name"], text, mode=mode, description=meta.get("description", ""))


upload_codec("text", _save_text, _load_text)


# ---- what the Data page shows, and the split ----------------------------------

def char_label(ch: str) -> str:
    """A visible label for a character (space, newline and tab are invisible on a chart)."""
    return {" ": "␠ (space)", "\n": "⏎ (newline)", "\t": "⇥ (tab)"}.get(ch, ch)


def items_of(data: TextData) -> list[str]:
    """The items of a line corpus (the lines of its text)."""
    return data.text.split("\n") if data.text else []


def text_stats(data: TextData) -> dict:
    """Numbers and a character-frequency table for the preview.

    ``char_freq`` is a list of ``{"char", "label", "count"}`` sorted by count
    (most frequent first); ``label`` makes spaces and line breaks visible.
    ``vocab_note`` says what a text model keeps of the characters when there
    are more than it keeps by default ("" otherwise).
    """
    counts = Counter(data.text)
    lines = items_of(data) if data.mode == "lines" else data.text.split("\n")
    train, val = split(data)
    stats = dict(
        mode=data.mode,
        chars=len(data.text),
        vocab_size=len(counts),
        lines=len(lines),
        train_chars=len(train),
        val_chars=len(val),
        char_freq=[dict(char=ch, label=char_label(ch), count=n) for ch, n in counts.most_common()],
        # in line mode the line break separates items; it is no character of the model's
        vocab_note=vocabulary_note(len(counts) - (data.mode == "lines" and "\n" in counts)),
    )
    if data.mode == "lines":
        lengths = [len(item) for item in lines]
        stats.update(items=len(lines), max_item_chars=max(lengths, default=0),
                     mean_item_chars=sum(lengths) / max(1, len(lengths)))
    return stats


def split(data: TextData) -> tuple[str, str]:
    """``(train_text, val_text)``: the last 10% of the characters (stream) or of
    the lines (lines mode, at least one) is held out for validation."""
    if data.mode == "lines":
        items = items_of(data)
        n_val = max(1, round(len(items) * VAL_FRACTION)) if len(items) > 1 else 0
        cut = len(items) - n_val
        return "\n".join(items[:cut]), "\n".join(items[cut:])
    cut = len(data.text) - int(len(data.text) * VAL_FRACTION)
    return data.text[:cut], data.text[cut:]
