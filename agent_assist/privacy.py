"""Masking personal data: phone, ID-card and bank-card numbers, e-mails and plate numbers.

Masks keep the text's length, so every offset computed on the original stays valid on the
redacted text. Numbers come from the slot extractor's rules (``slots.yaml``); e-mails and
plates from ``privacy.yaml``. E-mails are found by walking out from each ``@`` rather than
by a regex, so a long run of address-like characters cannot make the scan quadratic.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from .phrasebook import Phrasebook, StrictModel, check_linear_regex
from .text import Normalized, check_text

_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
# Every mask lands on ASCII letters or digits of the normalised text (numbers and plates are
# ASCII tokens, an e-mail's mailbox is ASCII), i.e. on ASCII or full-width ones in the input:
# a text with none has nothing to mask, and most customer-service turns have none.
_MASKABLE = re.compile("[0-9A-Za-z\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")



class EmailRule(StrictModel):
    keep_start: int = Field(1, ge=0, le=4)


class PlateRule(StrictModel):
    regex: str
    keep_start: int = Field(2, ge=0, le=4)

    @field_validator("regex")
    @classmethod
    def _linear(cls, v: str) -> str:
        check_linear_regex(v)
        return v


class PrivacyBook(StrictModel):
    """``privacy.yaml``."""

    version: int = 1
    mask_char: str = Field("*", min_length=1, max_length=1)
    email: EmailRule
    plates: PlateRule


class Redactor:
    """Masks personal data with one phrasebook's rules; immutable and thread-safe."""

    def __init__(self, phrasebook: Phrasebook, mask_numbers) -> None:  # type: ignore[no-untyped-def]
        book = phrasebook.book("privacy.yaml", PrivacyBook)
        self._normalize = phrasebook.normalizer.normalize
        self._mask_numbers = mask_numbers
        self._char = book.mask_char
        self._email_keep = book.email.keep_start
        self._plate = re.compile(book.plates.regex)
        self._plate_keep = book.plates.keep_start

    def redact(self, text: str, *, norm: Normalized | None = None) -> str:
        """``text`` with personal data masked (same length); ``norm``: ``text`` normalised by
        the phrasebook's normaliser, if the caller has it already."""
        check_text(text)
        if _MASKABLE.search(text) is None:
            return text
        masked = self._mask_numbers(text, norm)
        if masked is not text or norm is None:
            norm = self._normalize(masked)
        spans: list[tuple[int, int]] = []
        for m in self._plate.finditer(norm.text):
            s, e = norm.span(m.start(), m.end())
            spans.append((s + self._plate_keep, e))
        spans.extend(self._emails(norm.text, norm.span))
        if not spans:
            return masked
        chars = list(masked)
        for s, e in spans:
            for i in range(s, e):
                if chars[i].isalnum():
                    chars[i] = self._char
        return "".join(chars)

    def _emails(self, text: str, span) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
        out = []
        pos = text.find("@")
        floor = 0  # no local part reaches back past the previous '@'
        while pos != -1:
            start = pos
            while start > floor and text[start - 1] in _LOCAL:
                start -= 1
            end = pos + 1
            while end < len(text) and text[end] in _DOMAIN:
                end += 1
            domain = text[pos + 1 : end].rstrip(".-")
            tld = domain.rsplit(".", 1)
            if start < pos and len(tld) == 2 and len(tld[1]) >= 2 and tld[1].isalpha() and tld[0]:
                s, _ = span(start, pos)
                out.append((s + self._email_keep, span(pos - 1, pos)[1]))
            floor = pos + 1
            pos = text.find("@", pos + 1)
        return out
