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
        import re._parser as sre_parse  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse  # type: ignore[no-redef]
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as e:
        raise ValueError(f"regex {pattern!r} does not compile: {e}") from None

    repeats = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT}

    def walk(items: Any, inside_repeat: bool) -> None:
        for op, av in items:
            if op in repeats:
                lo, hi, body = av
                if inside_repeat and hi != 1:
                    raise ValueError(f"regex {pattern!r} nests quantifiers")
                walk(body, inside_repeat or hi != 1)
            elif op == sre_parse.SUBPATTERN:
                walk(av[-1], inside_repeat)
            elif op == sre_parse.BRANCH:
                for branch in av[1]:
                    walk(branch, inside_repeat)

    walk(parsed, False)


def first_chars(pattern: str) -> frozenset[str] | None:
    """Characters a match of ``pattern`` must start with, or None if that is not simple."""
    try:
        import re._parser as sre_parse  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse  # type: ignore[no-redef]

    def first(items: list) -> set[str] | None:
        if not items:
            return None
        op, av = items[0]
        if op == sre_parse.LITERAL:
            return {chr(av)}
        if op == sre_parse.IN:
            if all(o == sre_parse.LITERAL for o, _ in av):
                return {chr(v) for _, v in av}
            return None
        if op == sre_parse.SUBPATTERN:
            return first(list(av[-1]))
        if op == sre_parse.BRANCH:
            out: set[str] = set()
            for branch in av[1]:
                f = first(list(branch))
                if f is None:
                    return None
                out |= f
            return out
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT) and av[0] >= 1:
            return first(list(av[2]))
        return None

    found = first(list(sre_parse.parse(pattern)))
    return frozenset(found) if found else None



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
    try:
        import re._parser as sre_parse  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse  # type: ignore[no-redef,unused-ignore]

    categories = {
        sre_parse.CATEGORY_DIGIT: r"\d",
        sre_parse.CATEGORY_NOT_DIGIT: r"\D",
        sre_parse.CATEGORY_SPACE: r"\s",
        sre_parse.CATEGORY_NOT_SPACE: r"\S",
        sre_parse.CATEGORY_WORD: r"\w",
        sre_parse.CATEGORY_NOT_WORD: r"\W",
    }

    def one_char(item: Any) -> str | None:  # a regex for the one-character item, if simple
        op, av = item
        if op == sre_parse.LITERAL:
            return re.escape(chr(av))
        if op != sre_parse.IN:
            return None
        parts = []
        for o, v in av:
            if o == sre_parse.LITERAL:
                parts.append(re.escape(chr(v)))
            elif o == sre_parse.RANGE:
                parts.append(f"{re.escape(chr(v[0]))}-{re.escape(chr(v[1]))}")
            elif o == sre_parse.CATEGORY and v in categories:
                parts.append(categories[v])
            elif o == sre_parse.NEGATE and not parts:
                parts.append("^")
            else:
                return None
        return f"[{''.join(parts)}]"

    def leading(items: list[Any]) -> list[Any] | None:  # the first item of every branch
        if not items:
            return None
        op, av = items[0]
        if op == sre_parse.SUBPATTERN:
            return leading(list(av[-1]))
        if op == sre_parse.BRANCH:
            out: list[Any] = []
            for branch in av[1]:
                first = leading(list(branch))
                if first is None:
                    return None
                out += first
            return out
        return [items[0]]

    def run_of(item: Any) -> str | None:  # the class of an unbounded repeat (\d+), if simple
        op, av = item
        repeat = op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT)
        if repeat and av[0] >= 1 and av[1] == sre_parse.MAXREPEAT and len(av[2]) == 1:
            return one_char(av[2][0])
        return None

    parsed = sre_parse.parse(pattern)
    firsts = leading(list(parsed))
    if parsed.state.flags & ~re.UNICODE or not firsts:
        return pattern
    runs = {run_of(item) for item in firsts} - {None}
    if len(runs) != 1:
        return pattern
    cls = runs.pop()
    assert cls is not None
    for item in firsts:
        if run_of(item) == cls:
            continue
        op, av = item
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT) and av[0] >= 1 and len(av[2]) == 1:
            op, av = av[2][0]  # [一二]{1,3}: starts with one of its characters
        if op == sre_parse.LITERAL:
            chars = [chr(av)]
        elif op == sre_parse.IN and all(o == sre_parse.LITERAL for o, _ in av):
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

    __slots__ = ("_plain", "_guarded")

    def __init__(self, patterns: Sequence[str]) -> None:
        self._plain = re.compile("|".join(f"(?:{p})" for p in patterns))
        self._guarded = re.compile("|".join(f"(?:{guard_leading_run(p)})" for p in patterns))

    def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self._plain.match(text, pos, endpos) or self._guarded.search(text, pos, endpos)

    def finditer(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> Iterator[re.Match[str]]:
        while (m := self.search(text, pos, endpos)) is not None:
            yield m
            pos = max(m.end(), m.start() + 1)


