"""The character vocabulary of the text models: characters <-> integer ids.

Line corpora (names, titles) reserve ``<pad>``, ``<start>`` and ``<end>``;
stream corpora use their characters only.
"""

from __future__ import annotations

from ..errors import UserError

PAD, SOS, EOS = "<pad>", "<start>", "<end>"
SPECIALS = (PAD, SOS, EOS)


class CharVocab:
    """Characters <-> integer ids.

    Stream corpora use their characters only. Line corpora reserve the first
    three ids for ``<pad>``, ``<start>`` and ``<end>`` (the line break is the
    item separator, not a character of any item).
    """

    def __init__(self, tokens: list[str], mode: str):
        self.tokens = list(tokens)
        self.mode = mode
        self.index = {tok: i for i, tok in enumerate(self.tokens)}

    @classmethod
    def from_text(cls, text: str, mode: str) -> "CharVocab":
        if mode == "lines":
            return cls(list(SPECIALS) + sorted(set(text) - {"\n"}), mode)
        return cls(sorted(set(text)), mode)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def chars(self) -> list[str]:
        return [t for t in self.tokens if t not in SPECIALS]

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
                + (f" ({known[:120]}{'...' if len(known) > 120 else ''}, space)" if known else "") + ".")
        return [self.index[ch] for ch in text]

    def decode(self, ids) -> str:
        """Ids to text; the special tokens are dropped."""
        return "".join(tok for tok in (self.tokens[i] for i in ids) if tok not in SPECIALS)


def _show_char(ch: str) -> str:
    name = {"\n": "line break", "\t": "tab", " ": "space"}.get(ch)
    return f"{name} (U+{ord(ch):04X})" if name else f"{ch!r} (U+{ord(ch):04X})"
