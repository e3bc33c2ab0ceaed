"""The emotion cue lexicon, compiled to one Aho-Corasick automaton plus a few regexes.

A scan walks the leftmost-longest matches once. Negators and intensifiers are remembered
as they pass; when a cue arrives, the modifiers right before it (within their scope and
the same clause) decide its weight and whether it is negated. Each rule is a small piece
of :meth:`CueMatcher.scan` with its data in ``phrasebooks/emotion.yaml``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from .automaton import WordFinder
from .errors import PhrasebookError
from .patterns import first_chars
from .phrasebook import EMOTION_FEATURES, EmotionBook
from .text import Normalizer

_CUE, _NEG, _INT, _BLOCK = 0, 1, 2, 3
# Characters that end a clause: a negator or intensifier never reaches across them.
_CLAUSE_BREAKS = frozenset(",.!?;:~…，。！？；：～、\n ")
_FEATURE_INDEX = {name: i for i, name in enumerate(EMOTION_FEATURES)}


class CueHit(NamedTuple):
    """A cue found in normalised text (offsets are into the normalised string).

    A named tuple rather than a frozen dataclass: a scan creates several per message and
    tuple construction is several times cheaper.
    """

    start: int
    end: int
    cue: str
    rule: str  # lexicon | negation | pattern
    tier: str
    feature: int
    weight: float


@dataclass(frozen=True, slots=True)
class _Cue:
    cue: str
    tier: str
    feature: int
    weight: float
    negatable: bool
    negated_tier: str
    negated_feature: int
    length: int
    token: bool  # ASCII letters/digits only: must not sit inside a longer number or word


class CueMatcher:
    """Compiled cue lexicon for one phrasebook; immutable, so safe to share across threads."""

    def __init__(self, book: EmotionBook, normalizer: Normalizer, source: str = "emotion.yaml"):
        self._neg_scope = book.negation.scope
        self._int_scope = book.intensifiers.scope
        entries: dict[str, tuple[Any, ...]] = {}  # word -> (kind, factor or _Cue)
        owner: dict[str, str] = {}

        def add(term: str, value: tuple[Any, ...], where: str) -> None:
            key = normalizer.fold(term)
            if not key:
                raise PhrasebookError(source, f"term {term!r} is empty after normalisation", key=where)
            if key in owner:
                raise PhrasebookError(
                    source, f"term {term!r} appears twice ({owner[key]} and {where})", key=where
                )
            owner[key] = where
            entries[key] = value

        for term in book.negation.terms:
            add(term, (_NEG, 0.0), "negation.terms")
        for term in book.negation.blockers:
            add(term, (_BLOCK, 0.0), "negation.blockers")
        for term, factor in book.intensifiers.terms.items():
            add(term, (_INT, float(factor)), "intensifiers.terms")
        for g in book.groups:
            for term in g.terms:
                key = normalizer.fold(term)
                cue = _Cue(
                    cue=f"{g.id}:{term}",
                    tier=g.tier,
                    feature=_FEATURE_INDEX[g.feature],
                    weight=g.weight,
                    negatable=g.negatable,
                    negated_tier=g.negated_tier,
                    negated_feature=_FEATURE_INDEX[g.negated_feature],
                    length=len(key),
                    token=key.isascii() and key.isalnum(),
                )
                add(term, (_CUE, cue), f"groups[{g.id}]")
        self._words = WordFinder(entries, longest=True)
        # A pattern runs only when the message holds one of the characters it can start
        # with: most messages trigger one or two of them, so this skips most regex passes.
        self._patterns = [
            (re.compile(p.regex), p.id, p.tier, _FEATURE_INDEX[p.feature], p.weight) for p in book.patterns
        ]
        # The patterns each first character can start, found by one character class in C
        # (cheaper than a set of the message's characters tested against each pattern).
        self._always: tuple[int, ...] = ()
        self._by_first: dict[str, tuple[int, ...]] = {}
        for j, p in enumerate(book.patterns):
            first = first_chars(p.regex)
            if first is None:
                self._always += (j,)
            for ch in first or ():
                self._by_first[ch] = (*self._by_first.get(ch, ()), j)
        firsts = "".join(map(re.escape, sorted(self._by_first)))
        self._first_rx = re.compile(f"[{firsts}]") if firsts else None

    def scan(self, text: str) -> tuple[list[float], list[CueHit]]:
        """Feature sums (one per :data:`EMOTION_FEATURES`) and the hits behind them."""
        feats = [0.0] * len(EMOTION_FEATURES)
        hits: list[CueHit] = []
        mods: list[tuple[int, int, int, float]] = []  # (start, end, kind, factor)
        values = self._words.values
        for i, start, end in self._words.find(text):
            kind, payload = values[i]
            if kind == _NEG or kind == _INT:
                mods.append((start, end, kind, payload))
                continue
            if kind == _BLOCK:
                mods.clear()
                continue
            if payload.token and _inside_token(text, start, end):
                continue  # 12315 inside a phone number is not a threat
            if mods:
                hit = self._apply_modifiers(text, start, end, payload, mods)
                mods.clear()
            else:
                hit = CueHit(
                    start, end, payload.cue, "lexicon", payload.tier, payload.feature, payload.weight
                )
            feats[hit.feature] += hit.weight
            hits.append(hit)
        todo = self._always
        if self._first_rx is not None and (present := self._first_rx.findall(text)):
            by_first = self._by_first
            todo = tuple(sorted({j for ch in set(present) for j in by_first[ch]}.union(todo)))
        for j in todo:
            rx, pid, tier, feature, weight = self._patterns[j]
            for m in rx.finditer(text):
                feats[feature] += weight
                hits.append(
                    CueHit(m.start(), m.end(), f"{pid}:{m.group()}", "pattern", tier, feature, weight)
                )
        return feats, hits

    def _apply_modifiers(
        self, text: str, start: int, end: int, cue: _Cue, mods: list[tuple[int, int, int, float]]
    ) -> CueHit:
        negations = 0
        factor = 1.0
        pos = start
        for m_start, m_end, kind, m_factor in reversed(mods):
            scope = self._neg_scope if kind == _NEG else self._int_scope
            gap = pos - m_end
            if gap < 0 or gap > scope or any(c in _CLAUSE_BREAKS for c in text[m_end:pos]):
                break
            if kind == _NEG:
                negations += 1
            else:
                factor *= m_factor
            pos = m_start
        weight = cue.weight * factor
        if negations % 2 == 1 and cue.negatable:
            return CueHit(pos, end, cue.cue, "negation", cue.negated_tier, cue.negated_feature, weight)
        return CueHit(pos if factor != 1.0 else start, end, cue.cue, "lexicon", cue.tier, cue.feature, weight)


def _inside_token(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return (before.isascii() and before.isalnum()) or (after.isascii() and after.isalnum())


def feature_vector(sums: list[float]) -> list[float]:
    """What the model sees of the lexicon: log-damped sums, so ten cues are not ten times one."""
    return [math.log1p(s) for s in sums]
