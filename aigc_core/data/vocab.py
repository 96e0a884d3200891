"""The character vocabulary of the text models: characters <-> integer ids.

Line corpora (names, titles) reserve ``<pad>``, ``<start>`` and ``<end>``;
stream corpora use their characters only.

A model keeps at most ``max_vocab`` characters, the most frequent ones; the
rarer rest share one "other" id, written back as ``\ufffd`` (the replacement
character). Without the cap a bigram model's V x V table for a 0.2 MB Chinese
text (V = 63,712) would be 15 GiB.
"""

from __future__ import annotations

from collections import Counter

from ..config import param
from ..errors import UserError

PAD, SOS, EOS = "<pad>", "<start>", "<end>"
SPECIALS = (PAD, SOS, EOS)
#: the one token every character beyond a model's ``max_vocab`` becomes; it is
#: also what the model writes for it (a visible "some other character").
OTHER = "\ufffd"
DEFAULT_MAX_VOCAB = 512


def max_vocab_param(default: int = DEFAULT_MAX_VOCAB):
    """The ``max_vocab`` field of a text model's config."""
    return param(default, "Characters kept",
                 "The model learns this many of the text's characters, the most frequent; every rarer one becomes "
                 f"one 'other' character, written as {OTHER}. English needs about 100; Chinese or Japanese text uses "
                 "thousands, and each kept character adds a row (and, for the bigram, a column) of weights.",
                 min=16, max=4096, step=16, advanced=True)


def vocabulary_note(source, max_vocab: int = DEFAULT_MAX_VOCAB) -> str:
    """One sentence on what a model with ``max_vocab`` keeps of a text, or ``""``
    when it keeps every character.

    ``source`` is the text, a :class:`TextData`, the number of distinct
    characters, or a dict with it (``text_stats``' ``vocab_size`` or a data set
    summary's ``vocab``).
    """
    if isinstance(source, dict):
        distinct = int(source.get("vocab_size", source.get("vocab", 0)) or 0)
    elif isinstance(source, int):
        distinct = source
    else:
        distinct = len(set(getattr(source, "text", source)))
    if distinct <= max_vocab:
        return ""
    return (f"The text has {distinct:,} distinct characters; models keep the {max_vocab:,} most frequent, and the "
            f"other {distinct - max_vocab:,} become one 'other' character (written as {OTHER}). Raise "
            "'Characters kept' to keep more (every one adds weights).")


class CharVocab:
    """Characters <-> integer ids.

    Stream corpora use their characters only. Line corpora reserve the first
    three ids for ``<pad>``, ``<start>`` and ``<end>`` (the line break is the
    item separator, not a character of any item).
    """

    def __init__(self, tokens: list[str], mode: str, folded: tuple[str, ...] | list[str] = ()):
        self.tokens = list(tokens)
        self.mode = mode
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        #: characters of the training text beyond the cap, all mapped to OTHER's id
        self.folded = tuple(ch for ch in folded if ch not in self.index)
        if self.folded:
            self.index.update(dict.fromkeys(self.folded, self.index[OTHER]))

    @classmethod
    def from_text(cls, text: str, mode: str, max_vocab: int | None = None) -> "CharVocab":
        """The vocabulary of ``text``: its characters in code-point order, or, when
        there are more than ``max_vocab``, the ``max_vocab`` most frequent and
        one :data:`OTHER` token (the last id) for the rest."""
        counts = Counter(text)
        if mode == "lines":
            counts.pop("\n", None)
        specials = list(SPECIALS) if mode == "lines" else []
        if max_vocab is None or len(counts) <= max_vocab:
            return cls(specials + sorted(counts), mode)
        # the most frequent first, ties by code point so the same text always gives the same ids
        ranked = sorted((ch for ch in counts if ch != OTHER), key=lambda ch: (-counts[ch], ch))
        return cls(specials + sorted(ranked[:max_vocab]) + [OTHER], mode, folded=ranked[max_vocab:])

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def chars(self) -> list[str]:
        """The characters the model has an id of its own for."""
        return [t for t in self.tokens if t not in SPECIALS and not (self.folded and t == OTHER)]

    def id(self, token: str) -> int:
        return self.index[token]

    def unknown(self, text: str) -> list[str]:
        """Characters of ``text`` the vocabulary does not have, in order of appearance."""
        seen: dict[str, None] = {}
        for ch in text:
            if ch not in self.index or ch in SPECIALS:
                seen.setdefault(ch, None)
        return list(seen)

    def encode(self, text: str) -> list[int]:
        missing = self.unknown(text)
        if missing:
            shown = ", ".join(_show_char(ch) for ch in missing[:20])
            more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
            known = "".join(ch for ch in self.chars if ch.isprintable() and ch != " ")
            raise UserError(
                f"the prompt uses {len(missing)} character(s) this model never saw in its training text: "
                f"{shown}{more}. Remove or replace them. It knows {len(self.chars)} characters"
                + (f" ({known[:120]}{'...' if len(known) > 120 else ''}, space)" if known else "")
                + (f", and writes {len(self.folded):,} rarer ones of its training text as {OTHER}" if self.folded
                   else "") + ".")
        return [self.index[ch] for ch in text]

    def decode(self, ids) -> str:
        """Ids to text; the special tokens are dropped, the other token is written as :data:`OTHER`."""
        return "".join(tok for tok in (self.tokens[i] for i in ids) if tok not in SPECIALS)


def _show_char(ch: str) -> str:
    name = {"\n": "line break", "\t": "tab", " ": "space"}.get(ch)
    return f"{name} (U+{ord(ch):04X})" if name else f"{ch!r} (U+{ord(ch):04X})"
