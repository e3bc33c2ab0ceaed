"""Complaint triage (分类分级): category, nature of the fix, grading, priority and deadlines.

One scan of the normalised message (one Aho-Corasick automaton over every term of
``phrasebooks/triage.yaml`` plus a few linear regexes) yields *votes*; each dimension is then
decided by one small function over them, and every label keeps the spans that voted for it:

=========  ====================================================  ==============================
dimension  rule (data in ``triage.yaml``)                         where
=========  ====================================================  ==============================
category   highest summed weight; subcategory within it          :meth:`TriageMatcher.category`
nature     subcategory's nature (``nature.prior``) + nature cues  :meth:`TriageMatcher.nature`
severity   max(default, subcategory baseline, severity cues)     :meth:`TriageMatcher.severity`
safety     any cue of a ``safety: true`` severity group           :meth:`TriageMatcher.severity`
urgency    max(default, safety, cues, emotion rules)             :meth:`TriageMatcher.urgency`
scope      max(default, scope cues)                               :meth:`TriageMatcher.scope`
level      first matching rule of ``levels.rules``                :meth:`TriageMatcher.level`
deadlines  ``default`` <- level row <- ``safety`` row             :meth:`TriageMatcher.deadlines`
=========  ====================================================  ==============================

Emotion feeds urgency, but this module does not run emotion detection (analysers do not
import each other): the caller passes an already computed :class:`EmotionResult`
(:meth:`agent_assist.Assistant.triage` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from .automaton import WordFinder
from .errors import PhrasebookError
from .patterns import start_class
from .phrasebook import Phrasebook, StrictModel, Tier, check_linear_regex, unique_ids
from .results import EmotionResult, ResultModel, Turn, build
from .text import Normalized, Normalizer, check_text

Nature = Literal["compensation", "process", "cognition"]
Severity = Literal["low", "medium", "high", "critical"]
Urgency = Literal["low", "medium", "high"]
Scope = Literal["single", "batch", "media"]
Level = Literal["P1", "P2", "P3", "P4"]

NATURES: tuple[str, ...] = ("compensation", "process", "cognition")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")  # in rising order
URGENCIES: tuple[str, ...] = ("low", "medium", "high")
SCOPES: tuple[str, ...] = ("single", "batch", "media")
LEVELS: tuple[Level, ...] = ("P1", "P2", "P3", "P4")


# --- schema of triage.yaml -------------------------------------------------------------

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(m|min|h|d)\s*")
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400}


def _parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    m = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if m is None or float(m[1]) <= 0:
        raise ValueError(f"expected a positive duration like '30m', '2h' or '3d', not {value!r}")
    return timedelta(seconds=float(m[1]) * _UNIT_SECONDS[m[2]])


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


def _term(v: str) -> str:
    if not v.strip():
        raise ValueError("empty term")
    return v


def _regex(v: str) -> str:
    check_linear_regex(v)
    return v


# Validated one by one, so an error names the item: scope.groups.1.patterns.0.
Term = Annotated[str, AfterValidator(_term)]
Regex = Annotated[str, AfterValidator(_regex)]


class _Cues(StrictModel):
    """Words and patterns that vote for one value of one dimension."""

    id: str = Field(description="Unique id, shown in the evidence's cue, e.g. 'severity.injury'.")
    terms: list[Term] = Field(default_factory=list, description="Words or phrases, either script.")
    patterns: list[Regex] = Field(
        default_factory=list, description="Python regexes over normalised text; linear-time subset."
    )
    weight: float = Field(1.0, gt=0, le=5, description="Weight of one hit.")


class Subcategory(_Cues):
    """A kind of complaint within a category, with the usual nature of its fix."""

    label: str = Field(description="Display name, e.g. 制造缺陷.")
    nature: Nature = Field(description="The nature its fix usually has.")
    severity: Severity = Field("low", description="Baseline severity when it wins.")


class Category(StrictModel):
    """A complaint category: its own general words and its subcategories."""

    id: str
    label: str
    terms: list[Term] = Field(default_factory=list, description="Words naming the category only.")
    weight: float = Field(0.5, gt=0, le=5, description="Weight of one category-level term.")
    default_subcategory: str | None = Field(None, description="Subcategory when none is named.")
    subcategories: list[Subcategory] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_exists(self) -> Category:
        ids = [s.id for s in self.subcategories]
        if self.default_subcategory is not None and self.default_subcategory not in ids:
            raise ValueError(f"default_subcategory {self.default_subcategory!r} is not one of {ids}")
        return self


class Fallback(StrictModel):
    category: str
    subcategory: str


class NatureCues(_Cues):
    nature: Nature


class NatureSection(StrictModel):
    prior: float = Field(1.0, ge=0, le=5, description="Vote of the winning subcategory's nature.")
    groups: list[NatureCues] = Field(default_factory=list)


class SeverityCues(_Cues):
    severity: Severity
    safety: bool = Field(False, description="A hit makes the complaint safety-related.")


class SeveritySection(StrictModel):
    default: Severity = "low"
    groups: list[SeverityCues] = Field(default_factory=list)


class UrgencyCues(_Cues):
    urgency: Urgency


class EmotionRule(StrictModel):
    """Urgency implied by the customer's emotion tier at or above an intensity."""

    tier: Tier
    min_intensity: float = Field(0.0, ge=0, le=1)
    urgency: Urgency


class EmotionCueRule(StrictModel):
    """Urgency implied by emotion evidence whose cue id starts with ``cue`` (e.g. 'wait.')."""

    cue: str = Field(min_length=1)
    urgency: Urgency


class UrgencySection(StrictModel):
    default: Urgency = "low"
    safety: Urgency = Field("high", description="Urgency of a safety-related complaint.")
    emotion: list[EmotionRule] = Field(default_factory=list, description="First match counts.")
    emotion_cues: list[EmotionCueRule] = Field(default_factory=list)
    groups: list[UrgencyCues] = Field(default_factory=list)


class ScopeCues(_Cues):
    scope: Scope


class ScopeSection(StrictModel):
    default: Scope = "single"
    groups: list[ScopeCues] = Field(default_factory=list)


class LevelRule(StrictModel):
    """``level`` applies when every given condition holds (a list: any of its values)."""

    id: str
    level: Level
    safety: bool | None = None
    severity: list[Severity] | None = None
    urgency: list[Urgency] | None = None
    scope: list[Scope] | None = None
    category: list[str] | None = None


class LevelSection(StrictModel):
    default: Level = "P4"
    rules: list[LevelRule] = Field(default_factory=list, description="Tried in order.")


class DeadlineRow(StrictModel):
    """Response times; a row under ``levels`` or ``safety`` may give only some of them."""

    acknowledge: Duration | None = None
    first_solution: Duration | None = None
    final: Duration | None = None
    follow_up: Duration | None = Field(None, description="Counted from the final result.")


class FullDeadlineRow(DeadlineRow):
    acknowledge: Duration
    first_solution: Duration
    final: Duration
    follow_up: Duration


class DeadlineTable(StrictModel):
    default: FullDeadlineRow
    levels: dict[Level, DeadlineRow] = Field(default_factory=dict)
    safety: DeadlineRow | None = None


class TriageBook(StrictModel):
    """``triage.yaml``: categories, nature cues, grading cues, level rules and deadlines."""

    version: int = 1
    categories: list[Category] = Field(min_length=1)
    fallback: Fallback
    nature: NatureSection
    severity: SeveritySection
    urgency: UrgencySection
    scope: ScopeSection
    levels: LevelSection
    deadlines: DeadlineTable


def _check_triage(path: Path, book: TriageBook) -> None:
    cats = {c.id: c for c in book.categories}
    unique_ids(path, [(f"categories.{i}.id", c.id) for i, c in enumerate(book.categories)])
    for i, c in enumerate(book.categories):
        unique_ids(
            path, [(f"categories.{i}.subcategories.{j}.id", s.id) for j, s in enumerate(c.subcategories)]
        )
    groups: list[tuple[str, str]] = []
    for section in ("nature", "severity", "urgency", "scope"):
        groups += [(f"{section}.groups.{i}.id", g.id) for i, g in enumerate(getattr(book, section).groups)]
    unique_ids(path, groups)
    unique_ids(path, [(f"levels.rules.{i}.id", r.id) for i, r in enumerate(book.levels.rules)])
    fb = book.fallback
    if fb.category not in cats:
        raise PhrasebookError(str(path), f"unknown category {fb.category!r}", key="fallback.category")
    if fb.subcategory not in {s.id for s in cats[fb.category].subcategories}:
        raise PhrasebookError(
            str(path),
            f"{fb.subcategory!r} is not a subcategory of {fb.category!r}",
            key="fallback.subcategory",
        )
    for i, r in enumerate(book.levels.rules):
        for name in r.category or ():
            if name not in cats:
                raise PhrasebookError(
                    str(path), f"unknown category {name!r}", key=f"levels.rules.{i}.category"
                )


# --- result models ----------------------------------------------------------------------


class TriageEvidence(ResultModel):
    """One span that voted for a triage label, located in the caller's original string."""

    start: int = Field(description="Offset of the first character (in the message, or in history[turn]).")
    end: int = Field(description="Offset one past the last character; text == source[start:end].")
    text: str = Field(description="The original characters, exactly as given.")
    cue: str = Field(description="'<group id>:<matched text>', or 'emotion:<emotion cue>' for emotion.")
    rule: str = Field(
        description="The dimension it voted in: category, nature, severity, safety, urgency, scope."
    )
    label: str = Field(description="The value it voted for, e.g. 'delivery.logistics_delay' or 'high'.")
    weight: float = Field(description="Weight of the vote.")
    turn: int | None = Field(None, description="None: the message itself; else the index into history.")


class Deadlines(ResultModel):
    """Response deadlines. Durations count from receipt, except ``follow_up`` (from the final result)."""

    basis: str = Field(description="Which table rows applied: the level, plus '+safety' when safety-related.")
    acknowledge: timedelta = Field(description="Acknowledge the complaint within this time.")
    first_solution: timedelta = Field(description="Offer a first solution within this time.")
    final: timedelta = Field(description="Give the final result within this time.")
    follow_up: timedelta = Field(description="Call back within this time after the final result.")
    acknowledge_by: datetime | None = Field(None, description="now + acknowledge, when `now` was given.")
    first_solution_by: datetime | None = Field(
        None, description="now + first_solution, when `now` was given."
    )
    final_by: datetime | None = Field(None, description="now + final, when `now` was given.")
    follow_up_by: datetime | None = Field(None, description="final_by + follow_up, when `now` was given.")


class Triage(ResultModel):
    """Category, nature, grading, priority level and deadlines of one complaint, with evidence."""

    category: str = Field(description="Category id from triage.yaml: product_quality, service, delivery, ...")
    category_label: str = Field(description="Display name of the category, e.g. 产品质量.")
    subcategory: str = Field(description="Subcategory id within the category, e.g. malfunction.")
    subcategory_label: str = Field(description="Display name of the subcategory.")
    nature: Nature = Field(description="compensation, process or cognition: what kind of fix it needs.")
    severity: Severity = Field(description="low, medium, high or critical.")
    urgency: Urgency = Field(description="low, medium or high.")
    scope: Scope = Field(description="single customer, batch of customers, or media exposure.")
    safety: bool = Field(description="A safety or health risk is mentioned (30-minute response).")
    level: Level = Field(description="Priority, P1 highest.")
    level_rule: str | None = Field(description="Id of the level rule that matched; None: the default level.")
    deadlines: Deadlines = Field(description="Response deadlines for this level.")
    evidence: list[TriageEvidence] = Field(description="Spans that produced the labels.")
    truncated: bool = Field(False, description="The text was longer than the limit; only its start was read.")


# --- the compiled matcher -----------------------------------------------------------------

_SUB, _CAT, _NATURE, _SEVERITY, _URGENCY, _SCOPE = range(6)
_DIM_NAMES = ("category", "category", "nature", "severity", "urgency", "scope")


@dataclass(frozen=True, slots=True)
class _Vote:
    dim: int
    target: int  # subcategory / category index, or the rank of a nature, severity, urgency, scope
    weight: float
    group: str
    safety: bool
    dimension: int = -1  # for matching, categories and subcategories are one dimension: _CAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "dimension", _CAT if self.dim == _SUB else self.dim)


# A hit: (start, end, vote, turn, cue) in normalised coordinates of its own text.
_Hit = tuple[int, int, _Vote, int | None, str]


class TriageMatcher:
    """``triage.yaml`` compiled once per phrasebook; immutable, so safe to share across threads."""

    def __init__(self, book: TriageBook, normalizer: Normalizer, source: str = "triage.yaml") -> None:
        self.book = book
        self._cats = book.categories
        self._subs: list[tuple[int, Subcategory]] = [
            (ci, s) for ci, c in enumerate(book.categories) for s in c.subcategories
        ]
        self._sub_index = {(self._cats[ci].id, s.id): i for i, (ci, s) in enumerate(self._subs)}
        self._default_sub = [
            self._sub_index[(c.id, c.default_subcategory or c.subcategories[0].id)] for c in book.categories
        ]
        self._fallback = self._sub_index[(book.fallback.category, book.fallback.subcategory)]
        self._compile(normalizer, source)
        self._deadlines = self._deadline_table()

    # -- building

    def _compile(self, normalizer: Normalizer, source: str) -> None:
        keys: dict[str, list[_Vote]] = {}
        owners: list[dict[str, str]] = [{} for _ in range(6)]
        patterns: list[tuple[re.Pattern[str], _Vote]] = []

        def add(dim: int, terms: list[str], pats: list[str], vote: _Vote, where: str) -> None:
            for term in terms:
                key = normalizer.fold(term)
                if not key:
                    raise PhrasebookError(source, f"term {term!r} is empty after normalisation", key=where)
                d = vote.dimension
                if key in owners[d]:
                    raise PhrasebookError(
                        source, f"term {term!r} appears twice ({owners[d][key]} and {where})", key=where
                    )
                owners[d][key] = where
                keys.setdefault(key, []).append(vote)
            patterns.extend((_compile_pattern(p), vote) for p in pats)

        b = self.book
        for ci, c in enumerate(b.categories):
            add(_CAT, c.terms, [], _Vote(_CAT, ci, c.weight, c.id, False), f"categories[{c.id}].terms")
        for si, (ci, s) in enumerate(self._subs):
            gid = f"{b.categories[ci].id}.{s.id}"
            add(_SUB, s.terms, s.patterns, _Vote(_SUB, si, s.weight, gid, False), f"subcategories[{gid}]")
        for g in b.nature.groups:
            add(
                _NATURE,
                g.terms,
                g.patterns,
                _Vote(_NATURE, NATURES.index(g.nature), g.weight, g.id, False),
                f"nature.groups[{g.id}]",
            )
        for sg in b.severity.groups:
            vote = _Vote(_SEVERITY, SEVERITIES.index(sg.severity), sg.weight, sg.id, sg.safety)
            add(_SEVERITY, sg.terms, sg.patterns, vote, f"severity.groups[{sg.id}]")
        for ug in b.urgency.groups:
            vote = _Vote(_URGENCY, URGENCIES.index(ug.urgency), ug.weight, ug.id, False)
            add(_URGENCY, ug.terms, ug.patterns, vote, f"urgency.groups[{ug.id}]")
        for cg in b.scope.groups:
            vote = _Vote(_SCOPE, SCOPES.index(cg.scope), cg.weight, cg.id, False)
            add(_SCOPE, cg.terms, cg.patterns, vote, f"scope.groups[{cg.id}]")

        self._auto = WordFinder(
            {
                # the evidence's cue, made once; whether the word has word characters at an end
                key: (tuple((v, f"{v.group}:{key}") for v in votes), _is_word(key[0]) or _is_word(key[-1]))
                for key, votes in keys.items()
            }
        )
        self._patterns = patterns
        self._sub_cat = [ci for ci, _ in self._subs]
        self._levels = [
            _LevelRule(r.level, r.id, r.safety, *(None if x is None else frozenset(x) for x in conditions))
            for r in b.levels.rules
            for conditions in [(r.severity, r.urgency, r.scope, r.category)]
        ]

    def _deadline_table(self) -> dict[tuple[str, bool], Deadlines]:
        t = self.book.deadlines
        table: dict[tuple[str, bool], Deadlines] = {}
        for level in LEVELS:
            for safety in (False, True):
                row = t.default.model_dump()
                rows = [t.levels.get(level)] + ([t.safety] if safety else [])
                for over in rows:
                    if over is not None:
                        row.update({k: v for k, v in over.model_dump().items() if v is not None})
                basis = level + ("+safety" if safety else "")
                table[(level, safety)] = Deadlines(basis=basis, **row)
        return table

    # -- scanning

    def scan(self, text: str, turn: int | None = None) -> list[_Hit]:
        """Every vote in normalised ``text``, grouped by dimension: terms, then patterns.

        The automaton reports every match; within one dimension the leftmost-longest terms
        win (没有受伤 shadows 受伤), while terms of different dimensions may overlap (一直没
        for nature, 没人回复 for the category).
        """
        found: list[tuple[int, int, int, _Vote, str]] = []  # (dimension, start, -length, vote, cue)
        entries = self._auto.values
        for i, start, end in self._auto.find(text):
            cued, edges = entries[i]
            if edges and _cuts_word(text, start, end):
                continue  # "12315" inside 13812315678 is part of a phone number, not a cue
            for v, cue in cued:
                found.append((v.dimension, start, start - end, v, cue))
        found.sort(key=_first_three)
        hits: list[_Hit] = []
        dim, reach = -1, 0
        for d, start, neg, v, cue in found:
            if d != dim:
                dim, reach = d, 0
            if start >= reach:
                reach = start - neg
                hits.append((start, reach, v, turn, cue))
        for rx, vote in self._patterns:
            for m in rx.finditer(text):
                if not _cuts_word(text, m.start(), m.end()):
                    hits.append((m.start(), m.end(), vote, turn, f"{vote.group}:{m.group()}"))
        return hits

    # -- one small function per dimension; each reads the hits of its own dimension

    def category(self, hits: list[_Hit]) -> tuple[int, int]:
        """(category index, subcategory index): highest summed weight, ties to the first listed."""
        cat: dict[int, float] = {}
        sub: dict[int, float] = {}
        for h in hits:
            v = h[2]
            if v.dim == _SUB:
                sub[v.target] = sub.get(v.target, 0.0) + v.weight
                c = self._sub_cat[v.target]
            else:
                c = v.target
            cat[c] = cat.get(c, 0.0) + v.weight
        if not cat:
            return self._sub_cat[self._fallback], self._fallback
        best = max(cat, key=lambda c: (cat[c], -c))
        subs = [i for i in sub if self._sub_cat[i] == best]
        if not subs:
            return best, self._default_sub[best]
        return best, max(subs, key=lambda i: (sub[i], -i))

    def nature(self, hits: list[_Hit], sub: int) -> int:
        """Nature rank: the subcategory's nature votes ``prior``, each nature group that fires once."""
        own = NATURES.index(self._subs[sub][1].nature)
        score = [0.0] * len(NATURES)
        score[own] = self.book.nature.prior
        fired: set[str] = set()
        for h in hits:
            v = h[2]
            if v.group not in fired:
                fired.add(v.group)
                score[v.target] += v.weight
        best = max(range(len(score)), key=score.__getitem__)
        return own if score[best] == score[own] else best

    def severity(self, hits: list[_Hit], sub: int) -> tuple[int, bool]:
        """(severity rank, safety): the highest of default, subcategory baseline and cues."""
        rank = max(
            SEVERITIES.index(self.book.severity.default), SEVERITIES.index(self._subs[sub][1].severity)
        )
        safety = False
        for h in hits:
            v = h[2]
            rank = max(rank, v.target)
            safety = safety or v.safety
        return rank, safety

    def urgency(
        self, hits: list[_Hit], safety: bool, emotion: EmotionResult | None, text: str
    ) -> tuple[int, list[tuple[int, int, str, float]]]:
        """Urgency rank, and the emotion evidence (start, end, cue, weight) that reached it.

        Cues count in the message itself only (not in history); emotion rules need ``emotion``.
        """
        u = self.book.urgency
        rank = URGENCIES.index(u.safety if safety else u.default)
        for h in hits:
            if h[3] is None:
                rank = max(rank, h[2].target)
        if emotion is None:
            return rank, []
        # Emotion evidence must point into this very text (spans of a stale result are ignored)
        # and not cut through a number or word (12345 inside a phone number is not a threat).
        spans = [
            e
            for e in emotion.evidence
            if text[e.start : e.end] == e.text and not _cuts_word(text, e.start, e.end)
        ]
        votes: list[tuple[int, int, int, str, float]] = []  # (rank, start, end, cue, weight)
        for r in u.emotion:
            if r.tier == emotion.tier and emotion.intensity >= r.min_intensity:
                er = URGENCIES.index(r.urgency)
                rank = max(rank, er)
                votes += [
                    (er, e.start, e.end, f"emotion:{e.cue}", e.weight) for e in spans if e.tier == r.tier
                ]
                break
        for cr in u.emotion_cues:
            er = URGENCIES.index(cr.urgency)
            for e in spans:
                if e.cue.startswith(cr.cue):
                    rank = max(rank, er)
                    votes.append((er, e.start, e.end, f"emotion:{e.cue}", e.weight))
        return rank, [(s, e, cue, w) for er, s, e, cue, w in votes if er == rank]

    def scope(self, hits: list[_Hit]) -> int:
        """Scope rank: the highest of default and scope cues."""
        rank = SCOPES.index(self.book.scope.default)
        for h in hits:
            rank = max(rank, h[2].target)
        return rank

    def level(
        self, category: str, severity: str, urgency: str, scope: str, safety: bool
    ) -> tuple[str, str | None]:
        """(level, rule id): the first rule whose conditions all hold, else the default."""
        for r in self._levels:
            if (
                (r.safety is None or r.safety == safety)
                and (r.severity is None or severity in r.severity)
                and (r.urgency is None or urgency in r.urgency)
                and (r.scope is None or scope in r.scope)
                and (r.category is None or category in r.category)
            ):
                return r.level, r.id
        return self.book.levels.default, None

    def deadlines(self, level: str, safety: bool, now: datetime | None) -> Deadlines:
        """The deadline row for (level, safety); with ``now``, also the wall-clock times."""
        d = self._deadlines[(level, safety)]
        if now is None:
            return d
        final_by = now + d.final
        return build(
            Deadlines,
            basis=d.basis,
            acknowledge=d.acknowledge,
            first_solution=d.first_solution,
            final=d.final,
            follow_up=d.follow_up,
            acknowledge_by=now + d.acknowledge,
            first_solution_by=now + d.first_solution,
            final_by=final_by,
            follow_up_by=final_by + d.follow_up,
        )

    # -- labels

    def sub_labels(self, sub: int) -> tuple[str, str, str, str]:
        ci, s = self._subs[sub]
        c = self._cats[ci]
        return c.id, c.label, s.id, s.label

    def category_of(self, vote: _Vote) -> int:
        return self._subs[vote.target][0] if vote.dim == _SUB else vote.target


def _is_word(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _cuts_word(text: str, start: int, end: int) -> bool:
    """Does ``text[start:end]`` begin or end inside a run of ASCII letters and digits?"""
    return (start > 0 and _is_word(text[start]) and _is_word(text[start - 1])) or (
        end < len(text) and _is_word(text[end - 1]) and _is_word(text[end])
    )


# A pattern may only start where _cuts_word allows: not between two ASCII letters or digits.
# Checked by the regex engine itself, in O(1) per position; otherwise a pattern like
# '[1-9][0-9]+人' is tried at every digit of a long number, and each try runs to the end of
# the number and back: quadratic time (17 s for 40,000 digits).
_WORD_START = "(?:(?<![0-9A-Za-z])|(?![0-9A-Za-z]))"
_GLOBAL_FLAGS = re.compile(r"(?:\(\?[aiLmsux]+\))*")  # (?i) must stay at the very start


def _compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled so that it never starts inside a run of ASCII letters and digits."""
    m = _GLOBAL_FLAGS.match(pattern)
    flags = m.group() if m else ""
    body = pattern[len(flags) :] + ("\n" if "x" in flags else "")  # a trailing '# comment'
    # The word-start test hides the pattern's first characters from the engine's prefilter;
    # a lookahead on them skips the other positions at once (half the cost of a search).
    starts = None if flags else start_class([body])
    gate = f"(?={starts})" if starts else ""
    return re.compile(f"{flags}{gate}{_WORD_START}(?:{body})")


def _by_dimension(hits: list[_Hit], into: list[list[_Hit]] | None = None) -> list[list[_Hit]]:
    """Hits in one list per dimension (index _CAT for categories and subcategories)."""
    out = [list(x) for x in into] if into is not None else [[] for _ in range(6)]
    for h in hits:
        out[h[2].dimension].append(h)
    return out


class _LevelRule(NamedTuple):
    """A level rule with its conditions as sets (None: any value)."""

    level: str
    id: str
    safety: bool | None
    severity: frozenset[str] | None
    urgency: frozenset[str] | None
    scope: frozenset[str] | None
    category: frozenset[str] | None


def _first_three(item: tuple[int, int, int, _Vote, str]) -> tuple[int, int, int]:
    return item[0], item[1], item[2]


# --- the analyser -----------------------------------------------------------------------


def _customer_text(turn: object, i: int) -> str | None:
    """What the customer said in one history turn; None for an agent's turn."""
    if isinstance(turn, str):
        return turn
    speaker: object
    said: object
    if isinstance(turn, Turn):
        speaker, said = turn.speaker, turn.text
    elif isinstance(turn, Mapping):
        speaker, said = turn.get("speaker", "customer"), turn.get("text")
    else:
        raise TypeError(f"history[{i}] must be str, Turn or a mapping, not {type(turn).__name__}")
    return None if speaker != "customer" else check_text(said, f"history[{i}].text")


def triager(phrasebook: Phrasebook) -> Triager:
    """The complaint triage of ``phrasebook``, compiled once and shared."""
    return phrasebook.cached("triage", lambda: Triager(phrasebook))


class Triager:
    """Complaint triage bound to one phrasebook; thread-safe, immutable."""

    def __init__(self, phrasebook: Phrasebook) -> None:
        self._normalizer = phrasebook.normalizer
        self._m = TriageMatcher(
            phrasebook.book("triage.yaml", TriageBook, _check_triage),
            phrasebook.normalizer,
            str(phrasebook.file("triage.yaml")),
        )

    def triage(
        self,
        text: str,
        *,
        history: Sequence[str | Turn | Mapping[str, Any]] | None = None,
        now: datetime | None = None,
        emotion: EmotionResult | None = None,
    ) -> Triage:
        """Triage one customer message (see :func:`agent_assist.triage`).

        ``history``: earlier turns of the conversation (strings are customer turns; agent
        turns — :class:`Turn` or dicts with ``speaker`` and ``text`` — are skipped). They
        supply the category when the message names none, and keep safety, severity and scope
        raised once they were raised. ``emotion``: the customer's emotion in ``text``, which
        can raise urgency.
        """
        check_text(text)
        return self.triage_normalized(
            self._normalizer.normalize(text), history=history, now=now, emotion=emotion
        )

    def triage_normalized(
        self,
        norm: Normalized,
        *,
        history: Sequence[str | Turn | Mapping[str, Any] | Normalized] | None = None,
        now: datetime | None = None,
        emotion: EmotionResult | None = None,
    ) -> Triage:
        """:meth:`triage` for a message already normalised by this phrasebook's normaliser.

        For callers that run several analysers on one message and normalise it once;
        ``history`` may hold customer turns as :class:`Normalized` too, for the same reason.
        """
        m = self._m
        text = norm.original
        now_hits = _by_dimension(m.scan(norm.text))
        norms: list[Normalized | None] = []
        past: list[_Hit] = []
        if history:
            for i, item in enumerate(history):
                if isinstance(item, Normalized):
                    n = item
                else:
                    said = _customer_text(item, i)
                    if said is None:
                        norms.append(None)
                        continue
                    n = self._normalizer.normalize(said)
                norms.append(n)
                past += m.scan(n.text, i)
        hits = _by_dimension(past, now_hits) if past else now_hits  # the whole conversation
        # Category and nature from this message; from the conversation if it names none.
        basis = now_hits if now_hits[_CAT] or not past else hits
        ci, sub = m.category(basis[_CAT])
        nat = m.nature(basis[_NATURE], sub)
        sev, safety = m.severity(hits[_SEVERITY], sub)
        urg, emo_spans = m.urgency(now_hits[_URGENCY], safety, emotion, text)
        scope = m.scope(hits[_SCOPE])
        cat_id, cat_label, sub_id, sub_label = m.sub_labels(sub)
        severity, urgency, scope_s = SEVERITIES[sev], URGENCIES[urg], SCOPES[scope]
        level, rule = m.level(cat_id, severity, urgency, scope_s, safety)

        # Evidence: the spans that voted for the labels chosen.
        cited: list[tuple[_Hit, str, str]] = []
        sub_label_id = f"{cat_id}.{sub_id}"
        for h in basis[_CAT]:
            v = h[2]
            if v.dim == _SUB and v.target == sub:
                cited.append((h, "category", sub_label_id))
            elif (m.category_of(v)) == ci:
                cited.append((h, "category", cat_id))
        cited += [(h, "nature", NATURES[nat]) for h in basis[_NATURE] if h[2].target == nat]
        for h in hits[_SEVERITY]:
            if h[2].safety:
                cited.append((h, "safety", "true"))
            if h[2].target == sev and sev > 0:
                cited.append((h, "severity", severity))
        cited += [(h, "urgency", urgency) for h in now_hits[_URGENCY] if h[2].target == urg]
        cited += [(h, "scope", scope_s) for h in hits[_SCOPE] if h[2].target == scope]
        evidence: list[TriageEvidence] = []
        for (s, e, v, turn, cue), rule_name, label in cited:
            src = norm if turn is None else norms[turn]
            assert src is not None
            o_start, o_end = src.span(s, e)
            evidence.append(
                build(
                    TriageEvidence,
                    start=o_start,
                    end=o_end,
                    text=src.original[o_start:o_end],
                    cue=cue,
                    rule=rule_name,
                    label=label,
                    weight=v.weight,
                    turn=turn,
                )
            )
        for s, e, cue, w in emo_spans:
            evidence.append(
                build(
                    TriageEvidence,
                    start=s,
                    end=e,
                    text=text[s:e],
                    cue=cue,
                    rule="urgency",
                    label=urgency,
                    weight=w,
                    turn=None,
                )
            )
        return build(
            Triage,
            category=cat_id,
            category_label=cat_label,
            subcategory=sub_id,
            subcategory_label=sub_label,
            nature=NATURES[nat],
            severity=severity,
            urgency=urgency,
            scope=scope_s,
            safety=safety,
            level=level,
            level_rule=rule,
            deadlines=m.deadlines(level, safety, now),
            evidence=evidence,
        )
