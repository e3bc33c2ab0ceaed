"""Regular expressions that stay linear: checked when phrasebooks load, and run safely.

Phrasebook regexes are data that companies edit, so :func:`check_linear_regex` rejects the
constructs that make Python's backtracking engine super-linear. Even an accepted pattern
such as ``\\d+天`` re-scans a long run of digits from every position when searched, which is
quadratic; :class:`RunSafeRegex` searches so that no attempt starts inside such a run.
:func:`first_chars` lets a caller skip a pattern when the text holds none of its possible
first characters.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

try:
    import re._parser as _sre  # Python >= 3.11
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre  # type: ignore[no-redef,unused-ignore]

_FORBIDDEN = ("(?=", "(?!", "(?<=", "(?<!", "(?P=")


def check_linear_regex(pattern: str) -> None:
    """Reject constructs that can make Python's backtracking engine super-linear.

    Allowed: literals, classes, alternation, groups, and quantifiers whose body contains
    no further quantifier. That rules out the classic ``(a+)+`` blow-ups, back-references
    and look-arounds.
    """
    if any(tok in pattern for tok in _FORBIDDEN) or re.search(r"\\[1-9]", pattern):
        raise ValueError(f"regex {pattern!r} uses a look-around or back-reference")
    try:
        parsed = _sre.parse(pattern)
    except re.error as e:
        raise ValueError(f"regex {pattern!r} does not compile: {e}") from None

    repeats = {_sre.MAX_REPEAT, _sre.MIN_REPEAT}

    def walk(items: Any, inside_repeat: bool) -> None:
        for op, av in items:
            if op in repeats:
                lo, hi, body = av
                if inside_repeat and hi != 1:
                    raise ValueError(f"regex {pattern!r} nests quantifiers")
                walk(body, inside_repeat or hi != 1)
            elif op == _sre.SUBPATTERN:
                walk(av[-1], inside_repeat)
            elif op == _sre.BRANCH:
                for branch in av[1]:
                    walk(branch, inside_repeat)

    walk(parsed, False)


def first_chars(pattern: str) -> frozenset[str] | None:
    """Characters a match of ``pattern`` must start with, or None if that is not simple."""

    def first(items: list) -> set[str] | None:
        if not items:
            return None
        op, av = items[0]
        if op == _sre.LITERAL:
            return {chr(av)}
        if op == _sre.IN:
            if all(o == _sre.LITERAL for o, _ in av):
                return {chr(v) for _, v in av}
            return None
        if op == _sre.SUBPATTERN:
            return first(list(av[-1]))
        if op == _sre.BRANCH:
            out: set[str] = set()
            for branch in av[1]:
                f = first(list(branch))
                if f is None:
                    return None
                out |= f
            return out
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[0] >= 1:
            return first(list(av[2]))
        return None

    found = first(list(_sre.parse(pattern)))
    return frozenset(found) if found else None



_CATEGORIES = {
    _sre.CATEGORY_DIGIT: r"\d",
    _sre.CATEGORY_NOT_DIGIT: r"\D",
    _sre.CATEGORY_SPACE: r"\s",
    _sre.CATEGORY_NOT_SPACE: r"\S",
    _sre.CATEGORY_WORD: r"\w",
    _sre.CATEGORY_NOT_WORD: r"\W",
}
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT)


def _one_char(item: Any) -> str | None:
    """A regex class for a one-character parsed item (a literal or a class), if simple."""
    op, av = item
    if op == _sre.LITERAL:
        return f"[{re.escape(chr(av))}]"
    if op != _sre.IN:
        return None
    parts = []
    for o, v in av:
        if o == _sre.LITERAL:
            parts.append(re.escape(chr(v)))
        elif o == _sre.RANGE:
            parts.append(f"{re.escape(chr(v[0]))}-{re.escape(chr(v[1]))}")
        elif o == _sre.CATEGORY and v in _CATEGORIES:
            parts.append(_CATEGORIES[v])
        elif o == _sre.NEGATE and not parts:
            parts.append("^")
        else:
            return None
    return f"[{''.join(parts)}]"


def _leading(items: list[Any]) -> list[Any] | None:
    """The first parsed item of every branch a match can start with."""
    if not items:
        return None
    op, av = items[0]
    if op == _sre.SUBPATTERN:
        return _leading(list(av[-1]))
    if op == _sre.BRANCH:
        out: list[Any] = []
        for branch in av[1]:
            first = _leading(list(branch))
            if first is None:
                return None
            out += first
        return out
    return [items[0]]


def _run_of(item: Any) -> str | None:
    """The class of an unbounded repeat of one character (\\d+), if simple."""
    op, av = item
    if op in _REPEATS and av[0] >= 1 and av[1] == _sre.MAXREPEAT and len(av[2]) == 1:
        return _one_char(av[2][0])
    return None


def start_class(patterns: Sequence[str]) -> str | None:
    """One regex class holding every character a match of any of ``patterns`` can start
    with, or None where that is not simple (a negated class, an optional first item …).

    >>> print(start_class([r"\\d+天", "(今天|明天)前"]))
    [\\d今明]
    """
    parts: list[str] = []
    for pattern in patterns:
        parsed = _sre.parse(pattern)
        firsts = _leading(list(parsed))
        if parsed.state.flags & ~re.UNICODE or not firsts:
            return None
        for op, av in firsts:
            if op in _REPEATS and av[0] >= 1 and len(av[2]) == 1:
                op, av = av[2][0]  # \d+, [一二]{1,3}: starts with one of its characters
            cls = _one_char((op, av))
            if cls is None or cls.startswith("[^"):
                return None
            parts.append(cls[1:-1])
    return f"[{''.join(dict.fromkeys(parts))}]" if parts else None


def guard_leading_run(pattern: str) -> str:
    r"""``pattern`` for ``search``/``finditer`` over long texts: it never starts inside a run.

    A search tries every position. Where ``pattern`` starts with an unbounded repeat such
    as ``\d+``, each try inside a run of digits scans to the end of the run and back, which
    is quadratic in the run's length (seconds for 20,000 digits). When every branch the
    pattern can start with is that same repeat, or a literal character outside its class,
    a match starting inside a run implies one starting a character earlier; so a guard
    refusing to start between two characters of the class changes no search result (the
    leftmost match is the same) and leaves one try per run. Otherwise ``pattern`` is
    returned unchanged.
    """
    parsed = _sre.parse(pattern)
    firsts = _leading(list(parsed))
    if parsed.state.flags & ~re.UNICODE or not firsts:
        return pattern
    runs = {_run_of(item) for item in firsts} - {None}
    if len(runs) != 1:
        return pattern
    cls = runs.pop()
    assert cls is not None
    for item in firsts:
        if _run_of(item) == cls:
            continue
        op, av = item
        if op in _REPEATS and av[0] >= 1 and len(av[2]) == 1:
            op, av = av[2][0]  # [一二]{1,3}: starts with one of its characters
        if op == _sre.LITERAL:
            chars = [chr(av)]
        elif op == _sre.IN and all(o == _sre.LITERAL for o, _ in av):
            chars = [chr(v) for _, v in av]
        else:
            return pattern
        if any(re.fullmatch(cls, ch) for ch in chars):
            return pattern
    return f"(?!(?<={cls}){cls})(?:{pattern})"


class RunSafeRegex:
    """Alternative patterns compiled for ``search`` and ``finditer`` in linear time.

    The results are those of ``re.compile("|".join(f"(?:{p})" for p in patterns))`` for
    patterns that cannot match the empty string. Each alternative is guarded by
    :func:`guard_leading_run`; a match at the very position a search starts from (which the
    guard may refuse when the character before it belongs to the run) is tried unguarded.
    """

    __slots__ = ("_plain", "_guarded", "_gated")

    def __init__(self, patterns: Sequence[str]) -> None:
        self._plain = re.compile("|".join(f"(?:{p})" for p in patterns))
        self._guarded = re.compile("|".join(f"(?:{guard_leading_run(p)})" for p in patterns))
        # The guard hides the patterns' first characters from the regex engine's own
        # prefilter, so a search tried every alternative at every position; trying them
        # only where a possible first character stands gives the same leftmost match. A
        # lookahead on that class does it inside the engine (a Python loop over those
        # positions cost half as much again).
        starts = start_class(patterns)
        self._gated = re.compile(f"(?={starts})(?:{self._guarded.pattern})") if starts is not None else None

    def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        m = self._plain.match(text, pos, endpos)
        if m is not None:
            return m
        return (self._gated or self._guarded).search(text, pos, endpos)

    def finditer(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> Iterator[re.Match[str]]:
        while (m := self.search(text, pos, endpos)) is not None:
            yield m
            pos = max(m.end(), m.start() + 1)


