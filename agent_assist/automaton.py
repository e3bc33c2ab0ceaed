"""Every occurrence of a fixed set of words in a text, in one Aho-Corasick pass.

The minefield triggers (~190,000 expanded phrasings), the triage cues, the context marks
and QA's rubric phrases are each looked up in every turn of every transcript. pyahocorasick
finds a node's child by a linear scan of its children: the minefield trie's root has over
500, so each character of a reply cost a few hundred comparisons. ahocorasick-rs (the Rust
``aho-corasick`` crate) keeps a contiguous automaton with dense transitions near the root
and answers in a third of the time, with the same matches in the same order (checked on
every text of the bundled data). The emotion lexicon wants leftmost-longest matches
(``longest=True``), which pyahocorasick's ``iter_long`` did not always give: after a
failed longer match it could skip a word (没有 in 有没有, 不 in 找不到), on 122 of 131,000
texts of the bundled data; the Rust crate finds those too and nothing else differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Generic, TypeVar

import ahocorasick_rs

V = TypeVar("V")

_SURROGATE = re.compile("[\ud800-\udfff]")


class WordFinder(Generic[V]):
    """The words of ``entries`` (word -> value), found anywhere in a text, overlaps included.

    >>> f = WordFinder({"不行": "no", "行": "ok"})
    >>> [(f.values[i], start, end) for i, start, end in f.find("这样不行")]
    [('no', 2, 4), ('ok', 3, 4)]
    """

    __slots__ = ("values", "_ac", "_overlapping")

    def __init__(self, entries: Mapping[str, V], *, longest: bool = False) -> None:
        """``longest``: report the leftmost-longest words, none overlapping, instead of all."""
        # An empty word would match between every two characters; no caller means one.
        words = [w for w in entries if w]
        #: The value of each word, indexed by the first number of each match.
        self.values: list[V] = [entries[w] for w in words]
        kind = ahocorasick_rs.MatchKind.LeftmostLongest if longest else ahocorasick_rs.MatchKind.Standard
        self._ac = (
            ahocorasick_rs.AhoCorasick(
                words, matchkind=kind, implementation=ahocorasick_rs.Implementation.ContiguousNFA
            )
            if words
            else None
        )
        self._overlapping = not longest

    def __len__(self) -> int:
        return len(self.values)

    def find(self, text: str) -> list[tuple[int, int, int]]:
        """(value index, start, end) of every occurrence in ``text``, in order of end, and
        the longer first of those ending together (as an Aho-Corasick walk reports them);
        with ``longest``, the leftmost-longest occurrences in text order."""
        if self._ac is None:
            return []
        try:
            return self._ac.find_matches_as_indexes(text, overlapping=self._overlapping)
        except UnicodeEncodeError:
            # A lone surrogate cannot cross into Rust as UTF-8; one U+FFFD for each keeps
            # every offset, and no word holds either.
            return self._ac.find_matches_as_indexes(
                _SURROGATE.sub("\ufffd", text), overlapping=self._overlapping
            )
