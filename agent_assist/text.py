"""Text normalisation for analysis, with a map back to the original string.

Every analyser works on :attr:`Normalized.text` and reports offsets into the caller's
original string through :meth:`Normalized.span`. The common case (no whitespace runs, no
zero-width or control characters) changes no lengths, so the map is the identity and costs
nothing; only unusual input pays for an explicit offset table.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Script = Literal["simplified", "traditional", "none"]

# Characters removed outright: zero-width and format characters, C0/C1 controls other than
# whitespace, soft hyphen. They carry no meaning for emotion or wording but break matching
# when a copy-paste puts one inside a cue word.
_DROP = [0x00AD, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF]
_DROP += [c for c in range(0x00, 0x20) if chr(c) not in "\t\n\r\x0b\x0c"]
_DROP += list(range(0x7F, 0xA0))
_SPACES = "\t\n\r\x0b\x0c\u00a0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)


def _base_table() -> dict[int, int | None]:
    table: dict[int, int | None] = {}
    for c in range(0xFF01, 0xFF5F):  # full-width ASCII block -> ASCII
        table[c] = c - 0xFEE0
    for c in range(ord("A"), ord("Z") + 1):
        table[c] = c + 32
    for c in range(0xFF21, 0xFF3B):  # full-width capitals straight to lower case
        table[c] = c - 0xFEE0 + 32
    for ch in _SPACES:
        table[ord(ch)] = 0x20
    for c in _DROP:
        table[c] = None
    # Ideographic punctuation that has a half-width twin with the same meaning.
    table[0x3002] = ord(".")  # 。
    table[0x3001] = ord(",")  # 、
    table[0xFF64] = ord(",")  # ､ half-width ideographic comma
    return table


_BMP = list(range(0x10000))  # shared by every table: identity ints are allocated once


def _indexed(table: Mapping[int, int | None]) -> list[int | None]:
    """``table`` as a list indexed by code point, for :meth:`str.translate`.

    With a dict, every character the table leaves alone raises and clears a KeyError inside
    ``translate``; a list answers by index, which makes translating Chinese text ~2x faster.
    Past the list's end ``translate`` gets an IndexError and keeps the character, as a dict
    miss does, so only code points the table maps need to be inside it.
    """
    out: list[int | None] = list(_BMP)
    top = max(table, default=0)
    if top >= len(out):
        out.extend(range(len(out), top + 1))
    for k, v in table.items():
        out[k] = v
    return out


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalised view of ``original``; ``offsets[i]`` is where ``text[i]`` came from."""

    original: str
    text: str
    offsets: tuple[int, ...] | None  # None: identity map (same length, same positions)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a ``[start, end)`` span of :attr:`text` to the original string."""
        if self.offsets is None:
            return start, end
        if start >= end:
            o = self.offsets[start] if start < len(self.offsets) else len(self.original)
            return o, o
        return self.offsets[start], self.offsets[end - 1] + 1


class Normalizer:
    """Turns raw text into :class:`Normalized` using a Traditional → Simplified table.

    One instance is built per phrasebook (the table is data) and is immutable afterwards,
    so it can be shared by any number of threads.
    """

    __slots__ = ("_table", "_s2t", "_by_index", "_s2t_by_index")

    def __init__(self, t2s: dict[str, str], s2t: dict[str, str] | None = None) -> None:
        table = _base_table()
        for trad, simp in t2s.items():
            table.setdefault(ord(trad), ord(simp))
        self._table = table
        self._s2t = {ord(k): ord(v) for k, v in (s2t or {}).items()}
        self._by_index = _indexed(table)
        self._s2t_by_index = _indexed(self._s2t)

    def fold(self, text: str) -> str:
        """Length-insensitive normalisation for phrasebook terms (no offset map)."""
        return " ".join(text.translate(self._by_index).split())

    def normalize(self, text: str) -> Normalized:
        """Normalise ``text`` for analysis.

        >>> from agent_assist.text import default_normalizer
        >>> n = default_normalizer().normalize("還沒到！！")
        >>> n.text, n.span(0, 3)
        ('还没到!!', (0, 3))
        """
        folded = text.translate(self._by_index)
        if len(folded) == len(text) and "  " not in folded:
            return Normalized(text, folded, None)
        return self._remap(text)

    def _remap(self, text: str) -> Normalized:
        # Slow path, taken only when characters were dropped or whitespace runs collapsed.
        out: list[str] = []
        offsets: list[int] = []
        table = self._table
        for i, ch in enumerate(text):
            mapped = table.get(ord(ch), ord(ch))
            if mapped is None:
                continue
            c = chr(mapped)
            if c == " " and out and out[-1] == " ":
                continue
            out.append(c)
            offsets.append(i)
        return Normalized(text, "".join(out), tuple(offsets))

    def to_traditional(self, text: str) -> str:
        """Character-level Simplified → Traditional conversion (same length)."""
        return text.translate(self._s2t_by_index)

    def script(self, text: str) -> Script:
        """Which Chinese script ``text`` is written in, by characters unique to each."""
        trad = simp = 0
        for ch in text:
            o = ord(ch)
            if o < 0x3400 or 0xFE30 <= o <= 0xFFEF:  # not Han (full-width punctuation ，！？)
                continue
            t = self._table.get(o)
            if t is not None and t != o:
                trad += 1
            elif o in self._s2t:
                simp += 1
        if trad == simp == 0:
            return "none" if not any(_is_han(c) for c in text) else "simplified"
        return "traditional" if trad > simp else "simplified"


def check_text(text: object, where: str = "text") -> str:
    """``text`` if it is a str; otherwise a TypeError that says which argument and what it got."""
    if not isinstance(text, str):
        raise TypeError(f"{where} must be str, not {type(text).__name__}")
    return text


def _is_han(ch: str) -> bool:
    return "CJK" in unicodedata.name(ch, "")


def default_normalizer() -> Normalizer:
    """The normaliser of the default phrasebook (loaded once, shared)."""
    from .phrasebook import default_phrasebook

    return default_phrasebook().normalizer
