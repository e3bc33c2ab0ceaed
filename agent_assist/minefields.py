"""Minefield checks on agent replies (沟通雷区), with safer rewrites.

An agent's draft is normalised once (Traditional → Simplified, full-width → half-width,
plus the phrasebook's ``fold`` table: 你 → 您 …) and walked once by one Aho-Corasick
automaton holding every trigger phrase. Rule patterns that are finite (alternations of
words) are expanded into that automaton when the phrasebook loads; patterns with gaps
(``[^,.!?;]{0,8}``) are regexes tried only where one of their anchor words occurs. No rule
loops over the text. Only when there is a candidate do two smaller automata walk the
reply too: one for exceptions (不一定 clears 一定), one for context words (negators,
hedges, ownership, help and action words).

A trigger is a *candidate*; it becomes a hit unless one of its rule's context conditions
holds. Each condition is one small function below, named as in ``phrasebooks/minefields.yaml``
(``unless: [negated, ownership]``) and driven by data under ``conditions:`` there:

* :meth:`_Call.negated` – a negator or disowning word right before the trigger (我们绝不会…);
* :meth:`_Call.hedged` – an honest hedge in the same clause (我会尽力…);
* :meth:`_Call.concrete_time` – a concrete time in the sentence or the reply (2小时内, 今天18点前);
* :meth:`_Call.ownership` – the reply takes ownership somewhere (我们已经催促并全程跟进);
* :meth:`_Call.real_help` – the reply gives real help outside the trigger's clause;
* :meth:`_Call.reassured` – a concrete action follows in the same sentence (别担心，我们已经…);
* :meth:`_Call.customer_asked` – the customer asked for compensation (customer text, history);
* :meth:`_Call.not_whole_answer` – the reply says more than the trigger (嗯，知道了 alone);
* :meth:`_Call.says_more` – some clause holds no trigger of the kind (…续重2元，具体以称重为准);
* :meth:`_Call.customer_closing` – the customer only closed the conversation (好的，谢谢).

``suggested_reply`` replaces each clause that holds a hit with the hits' rewrites. Rewrites
hold no trigger (verified when the phrasebook loads), so the suggestion is clean by
construction unless a spared candidate's context was rewritten away; only then is it
checked again (:meth:`_Call.needs_recheck`), until clean.
"""

from __future__ import annotations

import itertools
import re
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from .automaton import WordFinder
from .errors import ModelError, PhrasebookError
from .minefield_model import MinefieldModel, load_minefield_model
from .patterns import RunSafeRegex
from .phrasebook import Phrasebook, StrictModel, bundled_models, check_linear_regex, unique_ids
from .results import ResultModel, Turn, build
from .text import Normalized, Normalizer

if sys.version_info >= (3, 11):
    import re._constants as _sre_c
    import re._parser as _sre
else:  # pragma: no cover - Python 3.10
    import sre_constants as _sre_c
    import sre_parse as _sre

Kind = Literal[
    "blame_shifting",
    "lecturing",
    "over_promising",
    "arguing",
    "dismissing_feelings",
    "blaming_customer",
    "perfunctory",
    "premature_compensation",
    "pressuring",
    "impatience",
    "badmouthing",
]
KINDS: tuple[str, ...] = get_args(Kind)
_COMPENSATION = KINDS.index("premature_compensation")
Severity = Literal["low", "medium", "high"]
Condition = Literal[
    "negated",
    "hedged",
    "concrete_time",
    "ownership",
    "real_help",
    "reassured",
    "customer_asked",
    "not_whole_answer",
    "says_more",
    "customer_closing",
]

_DEFAULT_UNLESS: tuple[Condition, ...] = ("negated",)
#: A finite pattern expanding to more phrases than this is an authoring mistake
#: (the biggest bundled one expands to about 14k); it must become a gapped regex.
MAX_EXPANSION = 20000
#: How often ``suggested_reply`` is re-checked and re-written before giving up on a clause.
_MAX_REWRITE_ROUNDS = 3


# --- phrasebook schema ---------------------------------------------------------------------


def _nonblank(v: list[str]) -> list[str]:
    for t in v:
        if not t.strip():
            raise ValueError("empty term")
    return v


def _linear_all(v: list[str]) -> list[str]:
    for p in v:
        check_linear_regex(p)
        if re.compile(p).fullmatch(""):
            raise ValueError(f"regex {p!r} matches the empty string")
    return v


class KindSpec(StrictModel):
    """What one minefield is, why it hurts, and the default safer wording."""

    severity: Severity = Field(description="low, medium or high.")
    principle: str = Field(description="One Chinese sentence: why this hurts the customer.")
    rewrite: str = Field(min_length=1, description="Default safer clause for a hit of this kind.")
    unless: list[Condition] = Field(
        default_factory=lambda: list(_DEFAULT_UNLESS),
        description="Default context conditions that clear a trigger.",
    )

    @field_validator("principle")
    @classmethod
    def _one_sentence(cls, v: str) -> str:
        v = v.strip()
        if not v.endswith("。") or sum(v.count(c) for c in "。！？!?") != 1:
            raise ValueError("principle must be exactly one sentence ending in 。")
        return v


class Words(StrictModel):
    """Context words: plain ``terms`` and finite ``patterns`` (expanded on load)."""

    terms: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)

    _t = field_validator("terms")(_nonblank)
    _p = field_validator("patterns")(_linear_all)


class Negation(Words):
    """Negators and disowning words: 我们绝不会推卸责任, 不能保证, 并不是只能这样."""

    scope: int = Field(4, ge=0, le=10, description="Max characters between a negator and the trigger.")
    adjacent: list[str] = Field(
        default_factory=list, description="One-character negators (不, 没) that must touch the trigger."
    )
    blockers: list[str] = Field(
        default_factory=list, description="Words containing a negator that negate nothing (不好意思)."
    )


class ConcreteTime(StrictModel):
    """Regexes for a concrete time (2小时内, 今天18点前)."""

    patterns: list[str] = Field(min_length=1)
    scope: Literal["sentence", "reply"] = Field(
        "reply", description="Where the time may stand: the trigger's sentence, or anywhere in the reply."
    )

    _p = field_validator("patterns")(_linear_all)


class CompensationRequest(StrictModel):
    """How a customer asks for compensation, and how they refuse it (我不要补偿)."""

    terms: list[str] = Field(min_length=1)
    refusals: list[str] = Field(default_factory=list)
    blockers: list[str] = Field(default_factory=list, description="Look-alikes: 赔礼道歉.")
    scope: int = Field(4, ge=0, le=10, description="Max characters between a refusal and the term.")

    _t = field_validator("terms", "refusals", "blockers")(_nonblank)


class Conditions(StrictModel):
    """Data behind the named context conditions (see the module docstring)."""

    negation: Negation
    hedge: Words
    concrete_time: ConcreteTime
    ownership: Words
    help: Words
    action: Words
    compensation_request: CompensationRequest
    closing: Words = Field(
        default_factory=lambda: Words(terms=["谢谢"]),
        description="What a customer says to close (好的谢谢, 没有了, 再见): a bare 好的 or 感谢您的反馈 "
        "answering it is no brush-off.",
    )


class Rule(StrictModel):
    """One family of risky phrasings of one kind."""

    id: str = Field(description="Unique id, reported with each hit, e.g. 'blame.disown'.")
    kind: Kind
    terms: list[str] = Field(default_factory=list, description="Literal phrases, either script.")
    patterns: list[str] = Field(
        default_factory=list,
        description="Regexes over normalised text. Finite ones are expanded into phrases; the "
        "others are tried where their leading word occurs.",
    )
    exceptions: list[str] = Field(
        default_factory=list, description="Phrases that clear an overlapping trigger of this kind."
    )
    unless: list[Condition] | None = Field(None, description="Conditions; default: the kind's.")
    yields_to: list[Kind] = Field(
        default_factory=list, description="Kinds that, hit in the same clause, take this one's place."
    )
    severity: Severity | None = None
    rewrite: str | None = Field(None, min_length=1, description="Safer clause; default: the kind's.")

    _t = field_validator("terms", "exceptions")(_nonblank)
    _p = field_validator("patterns")(_linear_all)

    @model_validator(mode="after")
    def _has_triggers(self) -> Rule:
        if not self.terms and not self.patterns:
            raise ValueError("a rule needs terms or patterns")
        return self


class ModelUse(StrictModel):
    """Whether the bundled minefield model (``models/minefields``) joins the rules."""

    enabled: bool = Field(
        False,
        description="Let the model veto rule hits it scores low and raise kinds the rules miss. "
        "Its thresholds were chosen with the bundled rules: a file with rules of its own should "
        "measure before turning it on.",
    )


class MinefieldBook(StrictModel):
    """``minefields.yaml``: kinds, context-condition data and rules."""

    version: int = 1
    fold: dict[str, str] = Field(
        default_factory=dict, description="Extra one-character folds applied after normalising: 你 → 您."
    )
    kinds: dict[Kind, KindSpec]
    conditions: Conditions
    rules: list[Rule] = Field(min_length=1)
    model: ModelUse = Field(default_factory=lambda: ModelUse(), description="The learned model's part.")

    @field_validator("kinds")
    @classmethod
    def _all_kinds(cls, v: dict[str, KindSpec]) -> dict[str, KindSpec]:
        missing = [k for k in KINDS if k not in v]
        if missing:
            raise ValueError(f"missing kinds: {', '.join(missing)}")
        return v

    @field_validator("fold")
    @classmethod
    def _single_chars(cls, v: dict[str, str]) -> dict[str, str]:
        for a, b in v.items():
            if len(a) != 1 or len(b) != 1:
                raise ValueError(f"fold {a!r}: {b!r} must map one character to one character")
        return v


def check_minefield_book(path: Path, book: MinefieldBook) -> None:
    """Load-time checks a schema cannot express (ids are unique)."""
    unique_ids(path, [(f"rules.{i}.id", r.id) for i, r in enumerate(book.rules)])


# --- result models -------------------------------------------------------------------------


class MinefieldHit(ResultModel):
    """One risky phrase in a reply, located in the caller's original string."""

    kind: Kind = Field(description="Which minefield, e.g. blame_shifting.")
    start: int = Field(description="Offset of the first character in the original reply.")
    end: int = Field(description="Offset one past the last character; text == reply[start:end].")
    text: str = Field(description="The original characters, exactly as given.")
    severity: Severity = Field(description="low, medium or high.")
    principle: str = Field(description="Why it hurts, in one Chinese sentence.")
    rewrite: str = Field(description="A safer wording for the clause holding this span.")
    rule: str = Field(description="Id of the rule in minefields.yaml that fired.")


class ReplyCheck(ResultModel):
    """The verdict on one agent reply."""

    ok: bool = Field(description="True when there are no hits.")
    hits: list[MinefieldHit] = Field(description="Minefield hits, in reply order.")
    suggested_reply: str = Field(
        description="The reply with every hit's clause replaced by its rewrite; itself free of hits."
    )
    truncated: bool = Field(False, description="The text was longer than the limit; only its start was read.")


# --- pattern expansion ---------------------------------------------------------------------

_LIT, _IN, _SUB, _BRANCH = _sre_c.LITERAL, _sre_c.IN, _sre_c.SUBPATTERN, _sre_c.BRANCH
_REPEATS = (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT)


def _expand_items(items: Any, limit: int) -> list[str] | None:
    """All strings a parsed regex matches, or None if infinite, open-ended or too many."""
    out = [""]
    for op, av in items:
        opts: list[str] | None
        if op == _LIT:
            opts = [chr(av)]
        elif op == _IN:
            opts = []
            for sop, sav in av:
                if sop == _LIT:
                    opts.append(chr(sav))
                elif sop == _sre_c.RANGE and sav[1] - sav[0] < 16:
                    opts.extend(chr(c) for c in range(sav[0], sav[1] + 1))
                else:
                    return None
        elif op == _SUB:
            opts = _expand_items(av[-1], limit)
        elif op == _BRANCH:
            opts = []
            for branch in av[1]:
                sub = _expand_items(branch, limit)
                if sub is None:
                    return None
                opts.extend(sub)
        elif op in _REPEATS:
            lo, hi, body = av
            if hi > 3:
                return None
            once = _expand_items(body, limit)
            if once is None:
                return None
            opts = []
            layer = [""]
            for k in range(hi + 1):
                if k >= lo:
                    opts.extend(layer)
                layer = [a + b for a in layer for b in once]
                if len(layer) > limit:
                    return None
        else:
            return None
        if opts is None:
            return None
        out = [a + b for a in out for b in dict.fromkeys(opts)]
        if len(out) > limit:
            return None
    return out


def _items(pattern: str) -> list[Any]:
    """The top-level items of a parsed regex."""
    parsed: Any = _sre.parse(pattern)
    return [parsed[i] for i in range(len(parsed))]


def expand_pattern(pattern: str, limit: int = MAX_EXPANSION) -> list[str] | None:
    """The phrases a finite pattern stands for (``'(和|跟)我们无关'`` → 2), else None."""
    got = _expand_items(_sre.parse(pattern), limit)
    return None if got is None else [s for s in dict.fromkeys(got) if s]


def leading_words(pattern: str) -> list[str]:
    """Words a gapped pattern must start with: the expansions of its leading finite parts
    (``'(再|多)?送您[^,]{0,8}券'`` → 再送您, 多送您, 送您)."""
    head: list[tuple[Any, Any]] = []
    for item in _items(pattern):
        if _expand_items([item], 2000) is None:
            break
        head.append(item)
        words = _expand_items(head, 2000)
        if words is None:
            head.pop()
            break
    words = _expand_items(head, 2000) if head else None
    if not words or "" in words:
        raise ValueError(
            f"pattern {pattern!r} has gaps, so it must start with a fixed word or a group of words"
        )
    return [w for w in dict.fromkeys(words) if w]


def anchor_words(pattern: str) -> tuple[list[str], bool]:
    """Where to try a gapped pattern: ``(words, at_start)``.

    The pattern is cut at its gaps into runs of finite parts; every match contains one
    word of each run that cannot be empty. The run whose shortest word is longest is the
    anchor (a head of 您 alone occurs in nearly every reply; 您…就应该 is better anchored on
    就应该). With ``at_start`` the regex is matched where a word starts (the head run),
    else it is searched around the word. Only these words go into the automaton.
    """
    head = leading_words(pattern)
    best, best_len, at_start = head, min(len(w) for w in head), True
    runs: list[list[Any]] = [[]]
    for item in _items(pattern):
        if _expand_items([item], 2000) is None:
            runs.append([])
        else:
            runs[-1].append(item)
    for run in runs[1:]:
        words = _expand_items(run, 2000) if run else None
        if not words or "" in words:
            continue
        shortest = min(len(w) for w in words)
        if shortest > best_len:
            best, best_len, at_start = [w for w in dict.fromkeys(words) if w], shortest, False
    return best, at_start


# --- the compiled checker -------------------------------------------------------------------

# Trigger automaton tags (scanned on every call).
_TRIG, _HEAD, _INNER = range(3)
# Context automaton tags (scanned only when a condition needs them).
_NEG, _NEG_ADJ, _BLOCK, _HEDGE, _OWN, _HELP, _ACTION = range(7)
# A gapped regex tried around an inner anchor looks this far either side of it.
_WINDOW = 24
# Markers in _Call.spared for candidates spared by context, or yielded to another kind.
_BY_CONTEXT, _YIELDED = -1, -2
# Ask automaton tags (customer side).
_ASK, _REFUSE, _ASK_BLOCK = range(3)

# Clause and sentence ends in normalised text (full-width punctuation is already half-width).
_CLAUSE_RX = re.compile(r"[,.!?;:~…\n]")
_CLAUSE_SPLIT_RX = re.compile(r"[\s,.!?;:~…]+")
# The same, except a full stop between digits (1.5小时) is a decimal point (see _Call._clause_breaks).
_DIGITS = frozenset("0123456789")
_SENTENCE_ENDS = frozenset(".!?;…\n")
_PUNCT_AND_SPACE = " ,.!?;:~…，。！？；：～、\n\t"


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    id: str
    kind: str
    kind_index: int
    severity: str
    principle: str
    rewrite: str
    rewrite_trad: str
    unless: tuple[Callable[..., bool], ...]  # the _Call condition functions
    yields_to: frozenset[str]


class MinefieldChecker:
    """``minefields.yaml`` compiled for one phrasebook; immutable, safe to share across threads.

    Three Aho-Corasick automata: the trigger automaton (phrases, the anchor words of gapped
    regexes) walks every reply; the exception automaton and the context automaton
    (negators, hedges, ownership, help and action words) walk a reply only when one of its
    candidates needs them, so a clean reply pays for one walk.
    """

    def __init__(
        self,
        book: MinefieldBook,
        normalizer: Normalizer,
        source: str = "minefields.yaml",
        model: MinefieldModel | None = None,
    ):
        self._normalizer = normalizer
        self._source = source
        self._fold = {ord(a): ord(b) for a, b in book.fold.items()}
        self._fold_rx = re.compile("[" + re.escape("".join(book.fold)) + "]") if book.fold else None
        cond = book.conditions
        self._neg_scope = cond.negation.scope
        self._ask_scope = cond.compensation_request.scope
        self._time_rx = RunSafeRegex(cond.concrete_time.patterns)  # linear on a long number
        self._time_in_sentence = cond.concrete_time.scope == "sentence"

        trig: dict[str, list[tuple[Any, ...]]] = {}
        ctx: dict[str, list[int]] = {}
        exc: dict[str, list[int]] = {}

        def key_of(term: str, where: str) -> str:
            key = self.fold(term)
            if not key:
                raise PhrasebookError(source, f"term {term!r} is empty after normalisation", key=where)
            if any(c in key for c in ",.!?;"):
                raise PhrasebookError(source, f"term {term!r} contains clause punctuation", key=where)
            return key

        def add(table: dict[str, list[Any]], term: str, entry: Any, where: str) -> None:
            bucket = table.setdefault(key_of(term, where), [])
            if entry not in bucket:
                bucket.append(entry)

        def add_words(words: Words, tag: int, where: str) -> None:
            for t in words.terms:
                add(ctx, t, tag, where + ".terms")
            for j, p in enumerate(words.patterns):
                for t in self._finite(p, f"{where}.patterns.{j}"):
                    add(ctx, t, tag, f"{where}.patterns.{j}")

        add_words(cond.negation, _NEG, "conditions.negation")
        for t in cond.negation.adjacent:
            add(ctx, t, _NEG_ADJ, "conditions.negation.adjacent")
        for t in cond.negation.blockers:
            add(ctx, t, _BLOCK, "conditions.negation.blockers")
        add_words(cond.hedge, _HEDGE, "conditions.hedge")
        add_words(cond.ownership, _OWN, "conditions.ownership")
        add_words(cond.help, _HELP, "conditions.help")
        add_words(cond.action, _ACTION, "conditions.action")

        self._rules: list[_CompiledRule] = []
        for i, r in enumerate(book.rules):
            where = f"rules.{i}"
            spec = book.kinds[r.kind]
            for t in r.terms:
                add(trig, t, (_TRIG, i), where + ".terms")
            for j, p in enumerate(r.patterns):
                pw = f"{where}.patterns.{j}"
                folded = self._fold_pattern(p)
                phrases = expand_pattern(folded)
                if phrases is not None:
                    for t in phrases:
                        add(trig, t, (_TRIG, i), pw)
                    continue
                try:
                    words, at_start = anchor_words(folded)
                except ValueError as e:
                    raise PhrasebookError(source, str(e), key=pw) from None
                rx = re.compile(folded)
                crosses = _crosses_commas(folded)
                for w in words:
                    add(trig, w, (_HEAD if at_start else _INNER, i, rx, crosses), pw)
            for t in r.exceptions:
                add(exc, t, KINDS.index(r.kind), where + ".exceptions")
            rewrite = (r.rewrite or spec.rewrite).strip()
            self._rules.append(
                _CompiledRule(
                    id=r.id,
                    kind=r.kind,
                    kind_index=KINDS.index(r.kind),
                    severity=r.severity or spec.severity,
                    principle=spec.principle,
                    rewrite=rewrite,
                    rewrite_trad=normalizer.to_traditional(rewrite),
                    unless=tuple(_CONDITIONS[c] for c in (spec.unless if r.unless is None else r.unless)),
                    yields_to=frozenset(r.yields_to),
                )
            )
        self._auto = WordFinder({k: tuple(v) for k, v in trig.items()})
        self._ctx = WordFinder({k: tuple(v) for k, v in ctx.items()})
        self._exc = WordFinder({k: frozenset(v) for k, v in exc.items()})
        self._exc_kinds = frozenset(k for v in exc.values() for k in v)

        self._model = model
        self._model_rules: list[int] = []  # per kind: the index of its "model.<kind>" rule
        if model is not None:
            if model.kinds != KINDS:
                raise ModelError(f"minefield model kinds {model.kinds} do not match {KINDS}")
            for k, kind in enumerate(KINDS):
                spec = book.kinds[kind]
                self._model_rules.append(len(self._rules))
                self._rules.append(
                    _CompiledRule(
                        id=f"model.{kind}",
                        kind=kind,
                        kind_index=k,
                        severity=spec.severity,
                        principle=spec.principle,
                        rewrite=spec.rewrite.strip(),
                        rewrite_trad=normalizer.to_traditional(spec.rewrite.strip()),
                        unless=(),
                        yields_to=frozenset(),
                    )
                )

        req = cond.compensation_request
        ask: dict[str, int] = {}
        for tag, terms in ((_ASK, req.terms), (_REFUSE, req.refusals), (_ASK_BLOCK, req.blockers)):
            for t in terms:
                ask.setdefault(self.fold(t), tag)
        self._ask = WordFinder(ask)
        # A customer message made only of closing words (好的谢谢, 嗯没有了, 再见), clause by clause.
        closing = sorted({self.fold(t) for t in cond.closing.terms}, key=len, reverse=True)
        self._closing_rx = re.compile("(?:" + "|".join(map(re.escape, closing)) + ")+")

        # Script of a reply with hits, so rewrites come back in the reply's script: the
        # characters the normaliser changes (Traditional) against those it would change
        # back (Simplified-only), counted by two character classes in C.
        trad, simp = [], []
        for cp in range(0x3400, 0xA000):
            ch = chr(cp)
            if normalizer.fold(ch) != ch:
                trad.append(ch)
            elif normalizer.to_traditional(ch) != ch:
                simp.append(ch)
        self._trad_rx = re.compile("[" + "".join(trad) + "]") if trad else None
        self._simp_rx = re.compile("[" + "".join(simp) + "]") if simp else None

        self._check_rewrites(book)

    # -- building helpers

    def fold(self, text: str) -> str:
        """Normalise a phrase the way replies are normalised (script, width, case, fold table)."""
        return self._normalizer.fold(text).translate(self._fold)

    def _fold_pattern(self, pattern: str) -> str:
        # Fold only non-ASCII characters, so regex syntax (\d, [^…]) is left alone.
        return "".join(c if c < "\x80" else self.fold(c) or c for c in pattern)

    def _finite(self, pattern: str, where: str) -> list[str]:
        phrases = expand_pattern(self._fold_pattern(pattern))
        if phrases is None:
            raise PhrasebookError(
                self._source, f"pattern {pattern!r} is not a finite list of words", key=where
            )
        return phrases

    def _check_rewrites(self, book: MinefieldBook) -> None:
        """Every rewrite must hold no trigger at all (whatever the context), nor read as a
        minefield to the model; else the file is wrong. This is what lets ``suggested_reply``
        be clean by construction."""
        sources = [(f"kinds.{k}.rewrite", s.rewrite) for k, s in book.kinds.items()]
        sources += [(f"rules.{i}.rewrite", r.rewrite) for i, r in enumerate(book.rules) if r.rewrite]
        whole = _CONDITIONS["not_whole_answer"]
        for key, text in sources:
            norm = self._normalize(text.strip())
            call = _Call(self, norm, None)
            # A whole-answer phrase (好的, 给您添麻烦了) only counts where the rewrite is
            # made of nothing else: spliced into a reply, the rest of it still says more.
            found = [
                (s, e, ri)
                for s, e, ri in call.candidates()
                if whole not in self._rules[ri].unless or not call.not_whole_answer(s, e, ri)
            ]
            if found:
                s, e, ri = found[0]
                r = self._rules[ri]
                raise PhrasebookError(
                    self._source,
                    f"rewrite {text!r} itself contains {norm.text[s:e]!r} ({r.kind}, rule {r.id})",
                    key=key,
                )
            if self._model is not None:
                z = self._model.scores(norm.text)
                worst = max(range(len(z)), key=z.__getitem__)
                if z[worst] >= self._model.fire:
                    raise PhrasebookError(
                        self._source,
                        f"rewrite {text!r} reads as {KINDS[worst]} to the minefield model",
                        key=key,
                    )

    # -- checking

    def _normalize(self, text: str) -> Normalized:
        return self.folded(self._normalizer.normalize(text))

    def folded(self, norm: Normalized) -> Normalized:
        """``norm`` (by the phrasebook's normaliser) with this checker's fold table applied:
        what :meth:`hits` and :meth:`model_scores` read."""
        if self._fold_rx is not None and self._fold_rx.search(norm.text):
            return Normalized(norm.original, norm.text.translate(self._fold), norm.offsets)
        return norm

    def _traditional(self, text: str) -> bool:
        if self._trad_rx is None:
            return False
        trad = len(self._trad_rx.findall(text))
        return trad > 0 and trad > (len(self._simp_rx.findall(text)) if self._simp_rx else 0)

    def check(
        self,
        reply: str,
        *,
        customer_text: str | None = None,
        history: Sequence[Turn | Mapping[str, Any]] | None = None,
    ) -> ReplyCheck:
        """See :func:`agent_assist.check_reply`."""
        norm, found, call, customer = self._find(reply, customer_text, history)
        if not found:
            return build(ReplyCheck, ok=True, hits=[], suggested_reply=reply)
        trad = self._traditional(reply)
        hits = [self._hit(norm, h, trad) for h in found]
        return build(
            ReplyCheck,
            ok=False,
            hits=hits,
            suggested_reply=self._suggest(norm, found, call, customer, trad),
        )

    def hits(
        self,
        reply: str,
        *,
        customer_text: str | None = None,
        history: Sequence[Turn | Mapping[str, Any]] | None = None,
        asked: Callable[[], bool] | None = None,
        norm: Normalized | None = None,
        scores: list[float] | None = None,
    ) -> list[MinefieldHit]:
        """The hits of :meth:`check` without the suggested reply (QA scoring needs no rewrite).

        ``asked`` answers "has the customer asked for compensation?" in place of scanning
        ``customer_text`` and ``history``: QA walks a whole conversation and would otherwise
        re-read every earlier turn for each agent turn (see :class:`AskedSoFar`). ``norm``:
        ``reply`` as :meth:`folded` gives it, if the caller has it already (QA folds each
        agent turn once, for the model and the rules); ``scores``: the model's
        :meth:`MinefieldModel.scores` of it, likewise (see :meth:`model_scores`).
        """
        norm, found, _, _ = self._find(reply, customer_text, history, asked, norm, scores)
        if not found:
            return []
        trad = self._traditional(reply)
        return [self._hit(norm, h, trad) for h in found]

    def _find(
        self,
        reply: str,
        customer_text: str | None,
        history: Sequence[Turn | Mapping[str, Any]] | None,
        asked: Callable[[], bool] | None = None,
        norm: Normalized | None = None,
        scores: list[float] | None = None,
    ) -> tuple[Normalized, list[_Found], _Call, _CustomerSide]:
        if not isinstance(reply, str):
            raise TypeError(f"reply must be str, not {type(reply).__name__}")
        if customer_text is not None and not isinstance(customer_text, str):
            raise TypeError(f"customer_text must be str or None, not {type(customer_text).__name__}")
        customer = _CustomerSide(self, customer_text, history, asked)
        norm = self._normalize(reply) if norm is None else norm
        call = _Call(self, norm, customer)
        found = call.hits()
        if self._model is not None:
            found = self._judge(norm.text, found, customer, call, scores)
        return norm, found, call, customer

    def model_scores(self, norms: list[Normalized]) -> list[list[float] | None]:
        """The model's scores of many replies (each as :meth:`folded` gives it) in one pass,
        for :meth:`hits`; ``None`` each without a model."""
        if self._model is None:
            return [None] * len(norms)
        return list(self._model.scores_many([n.text for n in norms]))

    def _settled(self, text: str, found: list[_Found], call: _Call, customer: _CustomerSide) -> bool:
        """Whether the model leaves suggestion ``text`` clean, when the rules cannot have new
        hits there: it fires on no kind, and no rule hit it vetoed (outside the rewritten
        clauses) now scores high enough to stand. The model reads the reply as a whole, so
        a rewrite anywhere can move its verdict on the rest."""
        model = self._model
        assert model is not None
        norm_text = self._normalize(text).text
        z = model.scores(norm_text)
        if model.may_raise(norm_text) and any(
            zk >= model.fire
            for k, zk in enumerate(z)
            if k not in call.cleared and not (k == _COMPENSATION and customer.asked)
        ):
            return False
        # A vetoed hit outside the rewritten clauses stays vetoed if neither the new reply's
        # score nor its sentence's (unchanged unless a rewritten clause lies in it) lifts it.
        if not call.vetoed:
            return True
        # replaced_before[i]: characters of rewritten clauses before offset i (O(1) per question).
        replaced = bytearray(len(call.text))
        for f in found:
            replaced[f.cs : f.ce] = b"\x01" * (f.ce - f.cs)
        replaced_before = [0, *itertools.accumulate(replaced)]
        for v in call.vetoed:
            if replaced[v.start]:
                continue  # rewritten away with its clause
            if z[self._rules[v.rule].kind_index] >= model.veto:
                return False
            ss, se = call.sentence(v.start, v.end)
            if replaced_before[se] > replaced_before[ss]:
                return False
        return True

    def _judge(
        self,
        text: str,
        found: list[_Found],
        customer: _CustomerSide,
        call: _Call,
        z: list[float] | None = None,
    ) -> list[_Found]:
        """The model's say: rule hits of a kind it scores below ``veto`` fall (remembered in
        ``call.vetoed``: a rewrite elsewhere may lift the score); a kind it scores at or above
        ``fire`` with no rule hit is raised on the sentence that carries it. ``z``: the
        model's scores of ``text``, if known."""
        model = self._model
        assert model is not None
        if z is None:
            z = model.scores(text)
        if not found and (max(z) < model.fire or not model.may_raise(text)):
            return found  # most replies: no rule hit to judge, no kind to raise
        kept = []
        by_span: dict[tuple[int, int], list[float]] = {}
        for f in found:
            k = self._rules[f.rule].kind_index
            if z[k] < model.veto:
                # A long reply dilutes the n-grams of one bad clause: the sentence and then
                # the clause holding the hit get their own say (the model was trained on
                # replies of a sentence or three).
                for span in (call.sentence(f.start, f.end), (f.cs, f.ce)):
                    if span == (0, len(text)):
                        continue
                    if span not in by_span:
                        by_span[span] = model.scores(text[span[0] : span[1]])
                    if by_span[span][k] >= model.veto:
                        kept.append(f)
                        break
                else:
                    call.vetoed.append(f)
                continue
            kept.append(f)
        if max(z) < model.fire or not model.may_raise(text):  # most replies: nothing to raise
            return kept
        have = {self._rules[f.rule].kind_index for f in kept}
        for k, zk in enumerate(z):
            if zk < model.fire or k in have or k in call.cleared or (k == _COMPENSATION and customer.asked):
                continue
            where = model.locate(text, k)
            if where is not None:
                kept.append(
                    _Found(where.start, where.end, self._model_rules[k], where.start, where.end, where.ngram)
                )
        if len(kept) > len(found) - len(call.vetoed):
            kept.sort(key=lambda f: (f.start, f.end))
        return kept

    def _hit(self, norm: Normalized, h: _Found, trad: bool) -> MinefieldHit:
        r = self._rules[h.rule]
        start, end = norm.span(h.start, h.end)
        return build(
            MinefieldHit,
            kind=r.kind,
            start=start,
            end=end,
            text=norm.original[start:end],
            severity=r.severity,
            principle=r.principle,
            rewrite=r.rewrite_trad if trad else r.rewrite,
            rule=r.id if h.cue is None else f"{r.id}:{h.cue}",
        )

    def _suggest(
        self, norm: Normalized, found: list[_Found], call: _Call, customer: _CustomerSide, trad: bool
    ) -> str:
        """Replace the clause of every hit by its rewrite; re-check when that could matter.

        Rewrites hold no trigger (checked on load) and triggers never cross punctuation, so
        the new text can only hold a hit again where a candidate outside the rewritten
        clauses was spared by a context that may have been rewritten away, or where a
        gapped regex could reach across a comma into a rewrite. Only then is the suggestion
        checked again, until clean.
        """
        text = _rewrite(norm, found, self._rules, trad)
        if not call.needs_recheck(found) and (
            self._model is None or self._settled(text, found, call, customer)
        ):
            return text
        for _ in range(_MAX_REWRITE_ROUNDS):
            again = self._normalize(text)
            call = _Call(self, again, customer)
            left = call.hits()
            if self._model is not None:
                left = self._judge(again.text, left, customer, call)
            if not left:
                return text
            text = _rewrite(again, left, self._rules, trad)
        # Still not clean (a pathological phrasebook): drop the offending clauses.
        again = self._normalize(text)
        call = _Call(self, again, customer)
        left = call.hits()
        if self._model is not None:
            left = self._judge(again.text, left, customer, call)
        return _rewrite(again, left, self._rules, trad, drop=True) if left else text


def _crosses_commas(pattern: str) -> bool:
    """Whether a gapped pattern's gaps admit a comma, so one match can span two clauses."""

    def walk(items: Any) -> bool:
        for op, av in items:
            if op == _sre_c.ANY:
                return True
            if op == _IN and av and av[0][0] == _sre_c.NEGATE and (_LIT, ord(",")) not in av:
                return True
            if op == _IN:
                continue
            if (
                (op == _SUB and walk(av[-1]))
                or (op == _BRANCH and any(walk(b) for b in av[1]))
                or (op in _REPEATS and walk(av[2]))
            ):
                return True
        return False

    return walk(_sre.parse(pattern))


class _Found:
    __slots__ = ("start", "end", "rule", "cs", "ce", "cue")

    def __init__(self, start: int, end: int, rule: int, cs: int, ce: int, cue: str | None = None) -> None:
        self.start, self.end, self.rule, self.cs, self.ce = start, end, rule, cs, ce
        self.cue = cue  # the model's top n-gram, for a hit only the model raised


def _rewrite(
    norm: Normalized, found: list[_Found], rules: list[_CompiledRule], trad: bool, drop: bool = False
) -> str:
    """The original text with each hit clause replaced by the (distinct) rewrites of its hits.

    Neighbouring clauses (only punctuation between them) whose hits are of kinds already
    rewritten just before are dropped, so 别生气，这点小事 becomes one empathy clause, not two.
    """
    by_clause: dict[tuple[int, int], tuple[list[str], set[str]]] = {}
    for h in found:
        r = rules[h.rule]
        rw = "" if drop else (r.rewrite_trad if trad else r.rewrite)
        texts, kinds = by_clause.setdefault(norm.span(h.cs, h.ce), ([], set()))
        kinds.add(r.kind)
        if rw not in texts:
            texts.append(rw)
    original = norm.original
    out: list[str] = []
    pos = 0
    prev_kinds: set[str] = set()
    for (start, end), (texts, kinds) in sorted(by_clause.items()):
        if start < pos:  # a hit spanning a comma: its clauses are already replaced
            pos = max(pos, end)
            continue
        gap = original[pos:start]
        if prev_kinds and kinds <= prev_kinds and not gap.strip(_PUNCT_AND_SPACE):
            pos = end
            continue
        out.append(gap)
        out.append("，".join(texts))
        prev_kinds = kinds
        pos = end
    out.append(original[pos:])
    return "".join(out)


class _CustomerSide:
    """Whether the customer asked for compensation, and whether they are only closing the
    conversation; each computed at most once per call."""

    __slots__ = ("_checker", "_customer_text", "_history", "_asked", "_ask", "_closing")

    def __init__(
        self,
        checker: MinefieldChecker,
        customer_text: str | None,
        history: Sequence[Turn | Mapping[str, Any]] | None,
        asked: Callable[[], bool] | None = None,
    ) -> None:
        self._checker = checker
        self._customer_text = customer_text
        self._history = history
        self._asked: bool | None = None
        self._ask = asked
        self._closing: bool | None = None
        if history is not None and asked is None:  # fail fast on a malformed history, whatever the reply
            for i, turn in enumerate(history):
                _turn(turn, i)

    @property
    def asked(self) -> bool:
        if self._asked is None:
            if self._ask is not None:
                self._asked = self._ask()
                return self._asked
            texts = [self._customer_text] if self._customer_text else []
            for i, turn in enumerate(self._history or ()):
                speaker, text = _turn(turn, i)
                if speaker == "customer" and text:
                    texts.append(text)
            self._asked = any(_asks(self._checker, t) for t in texts)
        return self._asked


    @property
    def closing(self) -> bool:
        """Is the customer's message (``customer_text``) only a close: 好的，谢谢 / 没有了，再见?"""
        if self._closing is None:
            c = self._checker
            text = c._normalize(self._customer_text).text if self._customer_text else ""
            clauses = [t for t in _CLAUSE_SPLIT_RX.split(text) if t]
            self._closing = bool(clauses) and all(c._closing_rx.fullmatch(t) for t in clauses)
        return self._closing


class AskedSoFar:
    """Whether a customer turn before turn ``i`` of a conversation asks for compensation,
    reading each customer turn at most once however many agent turns ask (QA's walk)."""

    __slots__ = ("_checker", "_turns", "_norms", "_next", "_found")

    def __init__(
        self, checker: MinefieldChecker, turns: Sequence[Turn], norms: Sequence[Normalized] | None = None
    ) -> None:
        self._checker = checker
        self._turns = turns
        self._norms = norms  # the turns normalised by the phrasebook's normaliser, if at hand
        self._next = 0  # turns before this one have been read
        self._found = False

    def before(self, i: int) -> bool:
        turns = self._turns
        while not self._found and self._next < i:
            at = self._next
            turn = turns[at]
            self._next += 1
            said = turn.text if self._norms is None else self._norms[at]
            if turn.speaker == "customer" and turn.text and _asks(self._checker, said):
                self._found = True
        return self._found


def _asks(c: MinefieldChecker, text: str | Normalized) -> bool:
    """Does customer ``text`` ask for compensation (not refuse it)?"""
    t = (c._normalize(text) if isinstance(text, str) else c.folded(text)).text
    refusals: list[int] = []
    blocked: list[tuple[int, int]] = []
    asks: list[tuple[int, int]] = []
    tags = c._ask.values
    for i, start, end in c._ask.find(t):
        tag = tags[i]
        if tag == _ASK:
            asks.append((start, end))
        elif tag == _REFUSE:
            refusals.append(end)
        else:
            blocked.append((start, end))
    if not asks:
        return False
    blockers = _Spans(blocked)
    for s, e in asks:
        if blockers.around(s, e):
            continue
        # Refusals end in text order: those within reach are a slice, not a scan of all.
        near = refusals[bisect_left(refusals, s - c._ask_scope) : bisect_right(refusals, s)]
        if any(not _CLAUSE_RX.search(t, r, s) for r in near):
            continue
        return True
    return False


def _turn(turn: Turn | Mapping[str, Any], i: int) -> tuple[str, str]:
    if isinstance(turn, Turn):
        return turn.speaker, turn.text
    if isinstance(turn, Mapping):
        speaker, text = turn.get("speaker"), turn.get("text")
        if isinstance(speaker, str) and isinstance(text, str):
            return speaker, text
    raise TypeError(f"history[{i}] must be a Turn or a mapping with str 'speaker' and 'text'")


class _Spans:
    """Spans (of context marks or exceptions) indexed so that each question a condition asks
    takes O(log n): an ``any`` over every span per trigger is quadratic in the text length."""

    __slots__ = ("starts", "min_end_from", "max_end_upto")

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        spans = sorted(spans)
        self.starts = [s for s, _ in spans]
        self.min_end_from = [e for _, e in spans]  # min end of spans[i:]
        for i in range(len(spans) - 2, -1, -1):
            self.min_end_from[i] = min(self.min_end_from[i], self.min_end_from[i + 1])
        self.max_end_upto = [e for _, e in spans]  # max end of spans[:i + 1]
        for i in range(1, len(spans)):
            self.max_end_upto[i] = max(self.max_end_upto[i], self.max_end_upto[i - 1])

    def within(self, lo: int, hi: int) -> bool:
        """Does a span lie inside [lo, hi]?"""
        i = bisect_left(self.starts, lo)
        return i < len(self.starts) and self.min_end_from[i] <= hi

    def outside(self, lo: int, hi: int) -> bool:
        """Does a span end at or before ``lo``, or start at or after ``hi``?"""
        return bool(self.starts) and (self.min_end_from[0] <= lo or self.starts[-1] >= hi)

    def around(self, lo: int, hi: int) -> bool:
        """Does a span contain [lo, hi]?"""
        i = bisect_right(self.starts, lo)
        return i > 0 and self.max_end_upto[i - 1] >= hi

    def overlaps(self, lo: int, hi: int) -> bool:
        """Does a span overlap [lo, hi)?"""
        i = bisect_left(self.starts, hi)
        return i > 0 and self.max_end_upto[i - 1] > lo


class _Call:
    """The state of checking one text: candidates, context marks and clause bounds."""

    __slots__ = (
        "c",
        "text",
        "customer",
        "cands",
        "spared",
        "vetoed",
        "cleared",
        "_marks",
        "_negs",
        "_breaks",
        "_sent",
        "_memo",
    )

    def __init__(self, checker: MinefieldChecker, norm: Normalized, customer: _CustomerSide | None) -> None:
        self.c = checker
        self.text = norm.text
        self.customer = customer
        self.cands: list[tuple[int, int, int]] = []
        #: (start, end, reach): anchors of gapped regexes that can reach across a comma
        #: (reach: the regex window), candidates spared by a context outside their clause
        #: (reach _BY_CONTEXT) and candidates that yielded to another kind (_YIELDED).
        #: See :meth:`needs_recheck`.
        self.spared: list[tuple[int, int, int]] = []
        self.vetoed: list[_Found] = []  # rule hits the model overruled
        #: Kinds with a trigger that context cleared (negated, hedged, an exception …): the
        #: rules have judged that wording in context, and the model may not overrule them.
        self.cleared: set[int] = set()
        self._marks: dict[int, list[tuple[int, int]]] | None = None
        self._negs: list[tuple[int, int]] = []
        self._breaks: list[int] | None = None
        self._sent: list[int] | None = None
        #: Per-call caches of the conditions: marks by tag as _Spans, answers per rule or sentence.
        self._memo: dict[Any, Any] = {}

    # -- scanning

    def candidates(self) -> list[tuple[int, int, int]]:
        """Every trigger (start, end, rule) in the text, before context conditions."""
        text = self.text
        cands = self.cands
        buckets = self.c._auto.values
        for i, start, end in self.c._auto.find(text):
            for entry in buckets[i]:
                tag = entry[0]
                if tag == _TRIG:
                    cands.append((start, end, entry[1]))
                elif tag == _HEAD:
                    m = entry[2].match(text, start)
                    if m is not None:
                        cands.append((start, m.end(), entry[1]))
                    if entry[3]:
                        self.spared.append((start, end, _WINDOW))
                elif tag == _INNER:
                    for m in entry[2].finditer(text, max(0, start - _WINDOW), end + _WINDOW):
                        if m.start() <= start and end <= m.end():
                            cands.append((m.start(), m.end(), entry[1]))
                            break
                    if entry[3]:
                        self.spared.append((start, end, _WINDOW))
        rules = self.c._rules
        if cands and any(rules[ri].kind_index in self.c._exc_kinds for _, _, ri in cands):
            # Exceptions (不一定 for 一定, 赔礼道歉 for 赔): a small automaton of their own.
            kinds_of = self.c._exc.values
            spans = [(start, end, kinds_of[i]) for i, start, end in self.c._exc.find(text)]
            if spans:
                by_kind: dict[int, list[tuple[int, int]]] = {}
                for xs, xe, ks in spans:
                    for k in ks:
                        by_kind.setdefault(k, []).append((xs, xe))
                exc = {k: _Spans(v) for k, v in by_kind.items()}
                before = cands[:]
                cands[:] = [
                    (s, e, ri)
                    for s, e, ri in cands
                    if (x := exc.get(rules[ri].kind_index)) is None or not x.overlaps(s, e)
                ]
                if len(cands) < len(before):
                    self.cleared.update(rules[c[2]].kind_index for c in set(before) - set(cands))
        return cands

    @property
    def marks(self) -> dict[int, list[tuple[int, int]]]:
        """Context words (negators, hedges, ownership …) by tag; scanned on first use."""
        return self._marks if self._marks is not None else self._scan_marks()

    def _scan_marks(self) -> dict[int, list[tuple[int, int]]]:
        if self._marks is None:
            marks: dict[int, list[tuple[int, int]]] = {}
            tags_of = self.c._ctx.values
            for i, start, end in self.c._ctx.find(self.text):
                for tag in tags_of[i]:
                    marks.setdefault(tag, []).append((start, end))
            # Negators that no blocker (不好意思, 能不能) swallows, as (end, reach).
            blocked = marks.get(_BLOCK)
            blockers = _Spans(blocked) if blocked else None
            scope = self.c._neg_scope
            self._negs = [
                (ne, reach)
                for tag, reach in ((_NEG, scope), (_NEG_ADJ, 0))
                for ns, ne in marks.get(tag, ())
                if blockers is None or not blockers.around(ns, ne)
            ]
            self._marks = marks
        return self._marks

    def hits(self) -> list[_Found]:
        """Candidates that survive their rules' conditions, merged per kind, in text order."""
        cands = self.candidates()
        if not cands:
            return []
        rules = self.c._rules
        # One candidate per rule and stretch of text (a pattern's expansions overlap).
        spans: list[list[int]] = []
        # dict, not set: deduplicated in text order, which the sort is fast on (a set's hash
        # order made it 3x slower per doubling of the text).
        for ri, s, e in sorted(dict.fromkeys([(ri, s, e) for s, e, ri in cands])):
            if spans and spans[-1][0] == ri and s < spans[-1][2]:
                spans[-1][2] = max(spans[-1][2], e)
            else:
                spans.append([ri, s, e])
        alive = []
        for ri, s, e in spans:
            r = rules[ri]
            for cond in r.unless:
                if cond(self, s, e, ri):
                    if cond in _NONLOCAL:  # its context may be rewritten away
                        self.spared.append((s, e, _BY_CONTEXT))
                    if cond not in _PHRASE_ONLY:
                        self.cleared.add(r.kind_index)
                    break
            else:
                alive.append((r.kind_index, s, -e, ri))
        if not alive:
            return []
        # Merge overlapping hits of one kind; the longest trigger names the rule.
        alive.sort()
        merged: list[list[int]] = []
        for k, s, neg_e, ri in alive:
            e = -neg_e
            if merged and merged[-1][4] == k and s < merged[-1][1]:
                m = merged[-1]
                if e - s > m[3]:
                    m[2], m[3] = ri, e - s
                m[1] = max(m[1], e)
            else:
                merged.append([s, e, ri, e - s, k])
        found = []
        for s, e, ri, _, _ in merged:
            cs, ce = self.clause(s, e)
            found.append(_Found(s, e, ri, cs, ce))
        # A rule that yields to another kind steps back when that kind hits the same sentence.
        if any(rules[f.rule].yields_to for f in found):
            # The hits of each kind, in text order and disjoint (merged above), with their ends:
            # the first two ending after a sentence's start are all a test needs (not every pair).
            of_kind: dict[str, list[_Found]] = {}
            for f in found:
                of_kind.setdefault(rules[f.rule].kind, []).append(f)
            ends = {k: [g.end for g in gs] for k, gs in of_kind.items()}
            kept = []
            for f in found:
                if rules[f.rule].yields_to:
                    ss, se = self.sentence(f.start, f.end)
                    if any(
                        g is not f and g.start < se
                        for k in rules[f.rule].yields_to
                        if k in of_kind
                        for i in (bisect_left(ends[k], ss + 1),)  # first g with g.end > ss
                        for g in of_kind[k][i : i + 2]
                    ):
                        self.spared.append((f.start, f.end, _YIELDED))
                        continue
                kept.append(f)
            found = kept
        found.sort(key=lambda f: (f.start, f.end))
        return found

    def needs_recheck(self, found: list[_Found]) -> bool:
        """Whether rewriting the clauses of ``found`` could leave a hit in the suggestion.

        Only a spared candidate outside the rewritten clauses can: one that yielded to a
        hit now rewritten away; one whose sparing context (time, ownership, help, action
        words) sat in a rewritten clause; or a gapped regex whose reach takes in a rewrite.
        """
        # 1 at each character of a rewritten clause: a span overlaps one of them iff
        # ``replaced.find(1, start, end) >= 0``, without comparing every pair (quadratic).
        replaced = bytearray(len(self.text))
        for cs, ce in {(f.cs, f.ce) for f in found}:
            replaced[cs:ce] = b"\x01" * (ce - cs)
        evidence_replaced: bool | None = None  # does any sparing context lie in a rewritten clause?
        for s, e, reach in self.spared:
            if replaced.find(1, s, e) >= 0:
                continue  # rewritten away with its clause
            if reach == _YIELDED:
                return True
            if reach == _BY_CONTEXT:
                if evidence_replaced is None:
                    marks = self.marks
                    evidence = [m for tag in (_OWN, _HELP, _ACTION) for m in marks.get(tag, ())]
                    evidence += [m.span() for m in self.c._time_rx.finditer(self.text)]
                    evidence_replaced = any(replaced.find(1, xs, xe) >= 0 for xs, xe in evidence)
                if evidence_replaced:
                    return True
            elif replaced.find(1, max(0, s - reach), e + reach) >= 0:
                return True
        return False

    # -- clause and sentence bounds (computed only when a candidate needs them)

    def _clause_breaks(self) -> list[int]:
        if self._breaks is None:
            # One character class is a fast scan in the engine; lookarounds for the decimal
            # point made every position a branch, so full stops are checked here instead.
            t = self.text
            breaks = [m.start() for m in _CLAUSE_RX.finditer(t)]
            if "." in t:
                last = len(t) - 1
                breaks = [
                    i
                    for i in breaks
                    if t[i] != "." or not (0 < i < last and t[i - 1] in _DIGITS and t[i + 1] in _DIGITS)
                ]
            self._breaks = breaks
        return self._breaks

    def _sentence_breaks(self) -> list[int]:
        if self._sent is None:
            t = self.text
            self._sent = [i for i in self._clause_breaks() if t[i] in _SENTENCE_ENDS]
        return self._sent

    @staticmethod
    def _bounds(breaks: list[int], s: int, e: int, n: int) -> tuple[int, int]:
        i = bisect_left(breaks, s)
        start = breaks[i - 1] + 1 if i > 0 else 0
        j = bisect_left(breaks, e)
        end = breaks[j] if j < len(breaks) else n
        return start, end

    def clause(self, s: int, e: int) -> tuple[int, int]:
        """The clause (between commas, full stops …) holding the span [s, e)."""
        return self._bounds(self._clause_breaks(), s, e, len(self.text))

    def sentence(self, s: int, e: int) -> tuple[int, int]:
        """The sentence (between 。！？；) holding the span [s, e)."""
        return self._bounds(self._sentence_breaks(), s, e, len(self.text))

    def _break_between(self, a: int, b: int) -> bool:
        br = self._clause_breaks()
        i = bisect_left(br, a)
        return i < len(br) and br[i] < b

    # -- context conditions: one small function each, named as in minefields.yaml

    def negated(self, s: int, e: int, ri: int) -> bool:
        """A negator or disowning word ends within ``negation.scope`` characters before the
        trigger (one-character negators must touch it), in the same clause: 我们绝不会推卸责任."""
        if self._marks is None:
            self._scan_marks()  # fills self._negs
        if "negs" not in self._memo:  # the longest reach of the negators ending at each position
            negs: dict[int, int] = {}
            for ne, reach in self._negs:
                negs[ne] = max(reach, negs.get(ne, -1))
            self._memo["negs"] = negs, max(negs.values(), default=0)
        negs, longest = self._memo["negs"]
        return any(
            ne in negs and s - ne <= negs[ne] and not self._break_between(ne, s)
            for ne in range(max(0, s - longest), s + 1)
        )

    def _spans(self, tag: int) -> _Spans:
        """The marks of ``tag``, indexed once per call."""
        if tag not in self._memo:
            self._memo[tag] = _Spans(self.marks.get(tag, ()))
        return self._memo[tag]  # type: ignore[no-any-return]

    def hedged(self, s: int, e: int, ri: int) -> bool:
        """An honest hedge (尽力, 尽量, 争取) in the same clause: 我会尽力今天解决."""
        cs, ce = self.clause(s, e)
        return self._spans(_HEDGE).within(cs, ce)

    def concrete_time(self, s: int, e: int, ri: int) -> bool:
        """A concrete time in the reply (or, with ``scope: sentence``, in the same sentence):
        2小时内给您回电, 我们会尽快处理。明天中午12点前给您回电。"""
        if self.c._time_in_sentence:
            ss, se = self.sentence(s, e)
        else:
            ss, se = 0, len(self.text)
        key = ("time", ss, se)  # one search per sentence (or reply), not one per trigger
        if key not in self._memo:
            self._memo[key] = self.c._time_rx.search(self.text, ss, se) is not None
        return self._memo[key]  # type: ignore[no-any-return]

    def ownership(self, s: int, e: int, ri: int) -> bool:
        """The reply takes ownership somewhere: 我们已经催促并全程跟进."""
        return self._spans(_OWN).outside(s, e)

    def real_help(self, s: int, e: int, ri: int) -> bool:
        """Real help (steps, actions, explanations) outside the trigger's clause."""
        cs, ce = self.clause(s, e)
        return self._spans(_HELP).outside(cs, ce)

    def reassured(self, s: int, e: int, ri: int) -> bool:
        """A concrete action follows in the same sentence: 别担心，我们已经为您冻结账户."""
        ss, se = self.sentence(s, e)
        return self._spans(_ACTION).within(e, se)

    def customer_asked(self, s: int, e: int, ri: int) -> bool:
        """The customer asked for compensation (in customer_text or a customer turn)."""
        return self.customer is not None and self.customer.asked

    def says_more(self, s: int, e: int, ri: int) -> bool:
        """Some clause of the reply holds no trigger of this rule's kind: the reply does more
        than brush off (…续重每公斤2元，具体以称重为准 answers; 一切以页面为准 alone does not)."""
        kind = self.c._rules[ri].kind_index
        key = ("more", kind)  # the answer depends on the kind only: computed once per call
        if key not in self._memo:
            rules = self.c._rules
            mine = _Spans([(cs, ce) for cs, ce, r in self.cands if rules[r].kind_index == kind])
            self._memo[key] = any(not mine.overlaps(a, b) for a, b in self._clause_bodies())
        return self._memo[key]  # type: ignore[no-any-return]

    def customer_closing(self, s: int, e: int, ri: int) -> bool:
        """The customer only closed the conversation (好的，谢谢): a bare 好的 answers it well."""
        return self.customer is not None and self.customer.closing

    def not_whole_answer(self, s: int, e: int, ri: int) -> bool:
        """Some clause of the reply is more than one of this rule's phrases: the reply is
        not just the phrase (嗯，知道了 alone is perfunctory; 嗯，我马上查 and 可行的方案 are not)."""
        key = ("whole", ri)  # the answer depends on the rule only: computed once per call
        if key not in self._memo:
            own = {(cs, ce) for cs, ce, r in self.cands if r == ri}
            self._memo[key] = any(span not in own for span in self._clause_bodies())
        return self._memo[key]  # type: ignore[no-any-return]

    def _clause_bodies(self) -> Iterator[tuple[int, int]]:
        """(start, end) of every clause's text without its surrounding space, in order (a
        generator: the conditions asking stop at the first clause that answers them)."""
        t = self.text
        start = 0
        for b in self._clause_breaks() + [len(t)]:
            seg = t[start:b]
            body = seg.strip()
            if body:
                lead = start + len(seg) - len(seg.lstrip())
                yield lead, lead + len(body)
            start = b + 1


#: Condition name (as in the YAML) -> the function above.
_CONDITIONS = {name: getattr(_Call, name) for name in Condition.__args__}  # type: ignore[attr-defined]
#: Conditions that clear a phrase without judging the reply: 好的 is no brush-off when more
#: follows, but the rest may still be one, so the model keeps its say on the kind.
_PHRASE_ONLY = frozenset(_CONDITIONS[n] for n in ("not_whole_answer", "says_more"))
#: Conditions whose evidence may lie outside the trigger's clause.
_NONLOCAL = frozenset(
    _CONDITIONS[n]
    for n in ("concrete_time", "ownership", "real_help", "reassured", "not_whole_answer", "says_more")
)


def minefield_checker(phrasebook: Phrasebook) -> MinefieldChecker:
    """The compiled checker of ``phrasebook`` (built once, shared), with the bundled model
    when the file's ``model.enabled`` says so."""

    def build_checker() -> MinefieldChecker:
        book = phrasebook.book("minefields.yaml", MinefieldBook, check_minefield_book)
        model = load_minefield_model(bundled_models() / "minefields") if book.model.enabled else None
        return MinefieldChecker(book, phrasebook.normalizer, str(phrasebook.file("minefields.yaml")), model)

    return phrasebook.cached("minefields.checker", build_checker)


def minefield_rules_only(phrasebook: Phrasebook) -> MinefieldChecker:
    """The checker of ``phrasebook`` without the model (what the model is trained beside)."""
    book = phrasebook.book("minefields.yaml", MinefieldBook, check_minefield_book)
    return MinefieldChecker(book, phrasebook.normalizer, str(phrasebook.file("minefields.yaml")))
