"""Quality scoring (质检) of whole conversations against the rubric in ``phrasebooks/qa.yaml``.

Composition happens here: a transcript's customer turns go through emotion detection (the
trajectory), its agent turns through the minefield checker, the complaint through triage,
and each rubric item is one small ``_check_<kind>`` function fed by its YAML data. Every
deduction carries evidence: the turn, the span and the words that caused it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from .automaton import WordFinder
from .emotion import Mood
from .errors import PhrasebookError
from .minefields import AskedSoFar
from .patterns import RunSafeRegex
from .phrasebook import Phrasebook, StrictModel, Tier, check_linear_regex, unique_ids
from .results import ResultModel, build, build_all
from .text import Normalized
from .transcript import Record, Transcript, TranscriptError, _no_surrogates, parse_transcript
from .triage import Triage

if TYPE_CHECKING:
    from .assistant import Assistant
    from .minefields import MinefieldHit
    from .results import EmotionResult

CheckKind = Literal[
    "phrases", "solution_time", "talk_ratio", "first_response", "silence", "de_escalation", "minefield"
]
#: How far the relationship has decayed (SPEC: panic → anger → disappointment → indifference).
_DECAY = {"calm": 0, "panic": 1, "anger": 2, "disappointment": 3, "indifference": 4}


# --- rubric schema -------------------------------------------------------------------------



class RubricItem(StrictModel):
    """One line of the rubric: what is checked, what it is worth, and its data."""

    id: str
    name: str = Field(description="Display name (Chinese).")
    points: float = Field(gt=0, description="Points the item is worth.")
    check: CheckKind = Field(description="Which check function judges it.")
    fatal: bool = Field(False, description="A failure sets the whole score to 0.")
    principle: str = Field("", description="Why it matters, one Chinese sentence.")
    where: Literal["agent", "close"] = Field("agent", description="Agent turns searched by phrase checks.")
    only_if: Literal["compensation", "process", "cognition"] | None = Field(
        None, description="Judge only complaints of this nature (from triage)."
    )
    only_if_emotional: bool = Field(
        False, description="Judge only conversations where the customer shows an emotion other than calm."
    )
    phrases: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    kind: str | None = Field(None, description="Minefield kind, for check: minefield.")
    per_hit: float | None = Field(None, gt=0, description="Points lost per minefield hit.")
    max_agent_share: float | None = Field(None, gt=0, lt=1)
    max_seconds: float | None = Field(None, gt=0)
    max_gap_seconds: float | None = Field(None, gt=0)

    @field_validator("patterns")
    @classmethod
    def _linear(cls, v: list[str]) -> list[str]:
        for p in v:
            check_linear_regex(p)
        return v

    @model_validator(mode="after")
    def _data_for_check(self) -> RubricItem:
        need = {
            "phrases": ("phrases",),
            "solution_time": ("patterns",),
            "talk_ratio": ("max_agent_share",),
            "first_response": ("max_seconds",),
            "silence": ("max_gap_seconds",),
            "minefield": ("kind", "per_hit"),
        }.get(self.check, ())
        for field in need:
            if not getattr(self, field):
                raise ValueError(f"check {self.check!r} needs '{field}'")
        return self


class Grade(StrictModel):
    min: float = Field(ge=0, le=100)
    grade: str


class QABook(StrictModel):
    """``qa.yaml``."""

    version: int = 1
    speakers: dict[Literal["customer", "agent"], list[str]]
    grades: list[Grade] = Field(min_length=1)
    flags: dict[Literal["escalation_threat", "repeat_complaint"], list[str]]
    items: list[RubricItem] = Field(min_length=1)
    close_turns: int = Field(2, ge=1)

    @field_validator("grades")
    @classmethod
    def _descending(cls, v: list[Grade]) -> list[Grade]:
        if [g.min for g in v] != sorted((g.min for g in v), reverse=True) or v[-1].min != 0:
            raise ValueError("grades must be in descending order of min, ending with min 0")
        return v


def _check_book(path: Path, book: QABook) -> None:
    from .minefields import KINDS

    unique_ids(path, [(f"items.{i}.id", it.id) for i, it in enumerate(book.items)])
    for i, it in enumerate(book.items):
        if it.check == "minefield" and it.kind not in KINDS:
            raise PhrasebookError(str(path), f"unknown minefield kind {it.kind!r}", key=f"items.{i}.kind")
    seen: dict[str, str] = {}
    for role, aliases in book.speakers.items():
        for a in aliases:
            if seen.setdefault(a.lower(), role) != role:
                raise PhrasebookError(str(path), f"alias {a!r} is both customer and agent", key="speakers")


# --- result models -------------------------------------------------------------------------



class QAEvidence(ResultModel):
    """Where a rubric item was decided: a turn and the words in it."""

    turn: int = Field(description="Index of the turn in the transcript.")
    start: int = Field(description="Offset into that turn's text.")
    end: int = Field(description="Offset one past the end; text == turns[turn].text[start:end].")
    text: str = Field(description="The words, exactly as in the turn.")
    note: str = Field(description="What this evidence shows, in Chinese.")


class QAItem(ResultModel):
    """One rubric item's verdict."""

    id: str
    name: str
    points: float = Field(description="What the item is worth.")
    earned: float = Field(description="Points earned (0 … points).")
    passed: bool | None = Field(description="None when the item could not be judged.")
    fatal: bool = Field(description="A failed fatal item zeroes the score.")
    evidence: list[QAEvidence] = Field(description="Turns and words behind the verdict.")


class TierPoint(ResultModel):
    """The customer's emotion in one customer turn."""

    turn: int
    tier: Tier
    intensity: float


class QAResult(ResultModel):
    """The score of one transcript, or the reason it could not be scored (``error``)."""

    id: str | None = Field(description="Transcript id (None if it could not be read).")
    line: int | None = Field(None, description="Line (JSONL) or first row (CSV, Parquet) in the input.")
    error: str | None = Field(None, description="Why the record could not be scored; then all else is empty.")
    agent_id: str | None = None
    channel: str | None = None
    score: float | None = Field(None, description="0-100.")
    grade: str | None = None
    items: list[QAItem] = Field(default_factory=list)
    trajectory: list[TierPoint] = Field(default_factory=list, description="Tier per customer turn.")
    start_tier: Tier | None = None
    end_tier: Tier | None = None
    flags: list[str] = Field(
        default_factory=list,
        description="escalation_threat, repeat_complaint, churn_risk (ends in indifference), safety.",
    )
    triage: Triage | None = Field(None, description="Triage of the customer's opening complaint.")
    talk_ratio: float | None = Field(None, description="Customer's share of all characters said.")
    first_response_seconds: float | None = None
    turns: int = 0


def error_result(message: str, *, line: int | None = None, id: str | None = None) -> QAResult:
    """A result that says why a record could not be scored."""
    return QAResult(id=id, line=line, error=message)


# --- scoring -------------------------------------------------------------------------------


class _Conversation:
    """What the checks share about one transcript (computed once)."""

    def __init__(self, t: Transcript) -> None:
        self.t = t
        self.customer: list[int] = []
        self.agent: list[int] = []
        self.chars: list[int] = []  # per turn: the length of its text
        for i, turn in enumerate(t.turns):
            (self.customer if turn.speaker == "customer" else self.agent).append(i)
            self.chars.append(len(turn.text))
        #: per customer turn: a full result for the first and the last, a Mood between
        self.emotions: dict[int, EmotionResult | Mood] = {}
        self.checks: dict[int, list[MinefieldHit]] = {}  # agent turn -> its minefield hits
        self.mines: dict[str, list[tuple[int, MinefieldHit]]] = {}  # kind -> (turn, hit), in order
        self.all_calm = True  # every customer turn reads calm
        self.triage: Triage | None = None
        self.phrase_hits: dict[int, list[tuple[int, int, int]]] = {}  # item -> (turn, start, end)
        self.norms: list[Normalized] = []  # per turn: normalised once for every analyser
        self.replies: list[Normalized] = []  # per agent turn: as the minefield checker reads it
        self.scores: list[list[float] | None] = []  # per agent turn: the minefield model's


class QAScorer:
    """Scores transcripts with one Assistant's analysers and its phrasebook's rubric."""

    def __init__(self, assistant: Assistant) -> None:
        self._a = assistant
        pb: Phrasebook = assistant.phrasebook
        self.book = pb.book("qa.yaml", QABook, _check_book)
        self.speakers = {a.lower(): role for role, aliases in self.book.speakers.items() for a in aliases}
        fold = pb.normalizer.fold
        self._normalize = pb.normalizer.normalize
        entries: dict[str, list[int]] = {}
        for idx, item in enumerate(self.book.items):
            if item.check == "phrases":
                for p in item.phrases:
                    entries.setdefault(fold(p), []).append(idx)
        self._phrases = WordFinder({key: tuple(idxs) for key, idxs in entries.items()})
        self._checks = [getattr(self, f"_check_{item.check}") for item in self.book.items]
        # Searched in whole agent turns: RunSafeRegex keeps \d+… linear on a long number.
        self._time_rx = {
            idx: RunSafeRegex(item.patterns)
            for idx, item in enumerate(self.book.items)
            if item.check == "solution_time"
        }
        self._flags = WordFinder({fold(w): flag for flag, words in self.book.flags.items() for w in words})

    # -- entry points --

    def score_record(
        self,
        record: Record | Transcript | Mapping[str, Any],
        line: int | None = None,
        *,
        redact: bool = False,
    ) -> QAResult:
        """Score one record; a malformed one yields a result whose ``error`` says why.

        ``redact``: mask personal data (phones, IDs, cards, e-mails, plates) in every piece
        of echoed text; offsets stay valid because masks keep the length.
        """
        return self.score_records([record], redact=redact, line=line)[0]

    def score_records(
        self,
        records: Sequence[Record | Transcript | Mapping[str, Any]],
        *,
        redact: bool = False,
        line: int | None = None,
    ) -> list[QAResult]:
        """:meth:`score_record` of each record, in order, with the emotion and minefield
        models run once over all of their turns: numpy's fixed cost per call is paid once
        per block of transcripts instead of twice per transcript. ``line``: of a lone
        record that is not a :class:`Record`."""
        parsed = [self._parse(r, line) for r in records]
        convs = [self._prepare(p[0]) for p in parsed if not isinstance(p, QAResult)]
        self._run_models(convs)
        out: list[QAResult] = []
        todo = iter(convs)
        for p in parsed:
            if isinstance(p, QAResult):
                out.append(p)
                continue
            conv = next(todo)
            result = self._conclude(conv, p[1])
            out.append(self.redact_result(result, conv.t, conv.norms) if redact else result)
        return out

    def _parse(
        self, record: Record | Transcript | Mapping[str, Any], line: int | None
    ) -> tuple[Transcript, int | None] | QAResult:
        if isinstance(record, Record):
            if record.error is not None or record.data is None:
                return error_result(record.error or f"line {record.line}: empty record", line=record.line)
            line, data = record.line, record.data
        else:
            data = record
        if isinstance(data, Transcript):
            return data, line
        try:
            return parse_transcript(data, self.speakers, line=line), line
        except TranscriptError as e:
            ident = data.get("id") if isinstance(data, Mapping) else None
            ident = _no_surrogates(str(ident)) if ident is not None else None
            return error_result(str(e), line=line, id=ident)

    def redact_result(
        self, r: QAResult, t: Transcript, norms: Sequence[Normalized] | None = None
    ) -> QAResult:
        """``r`` with personal data masked in its evidence texts (``norms``: the turns
        normalised, if at hand)."""
        cache: dict[int, str | None] = {}

        def masked(turn: int) -> str | None:  # None: nothing to mask in the turn (most turns)
            if turn not in cache:
                text = t.turns[turn].text
                m = self._a.redactor.redact(text, norm=None if norms is None else norms[turn])
                cache[turn] = None if m == text else m
            return cache[turn]

        def fix(ev: list[Any], turn_of: Any) -> list[Any] | None:
            out = None
            for j, e in enumerate(ev):
                m = masked(turn_of(e))
                if m is not None and m[e.start : e.end] != e.text:
                    out = out or list(ev)
                    out[j] = e.model_copy(update={"text": m[e.start : e.end]})
            return out

        customer = [i for i, turn in enumerate(t.turns) if turn.speaker == "customer"]

        def triage_turn(e: Any) -> int:
            return customer[0] if e.turn is None else customer[1 + e.turn]

        # Most transcripts quote no personal data at all: then nothing is rebuilt.
        quoted = {e.turn for it in r.items for e in it.evidence}
        quoted.update(triage_turn(e) for e in (r.triage.evidence if r.triage is not None else ()))
        if all(masked(i) is None for i in quoted):
            return r
        update: dict[str, Any] = {}
        items = []
        for it in r.items:
            ev = fix(it.evidence, lambda e: e.turn)
            items.append(it if ev is None else it.model_copy(update={"evidence": ev}))
        if any(a is not b for a, b in zip(items, r.items)):
            update["items"] = items
        if r.triage is not None:
            ev = fix(r.triage.evidence, triage_turn)
            if ev is not None:
                update["triage"] = r.triage.model_copy(update={"evidence": ev})
        return r.model_copy(update=update) if update else r

    def score(self, t: Transcript, *, line: int | None = None) -> QAResult:
        """Score a validated transcript."""
        conv = self._prepare(t)
        self._run_models([conv])
        return self._conclude(conv, line)

    def _conclude(self, conv: _Conversation, line: int | None) -> QAResult:
        """The score of a conversation the models have read (:meth:`_run_models`)."""
        self._analyse(conv)
        t = conv.t
        items = [self._item(conv, idx, item) for idx, item in enumerate(self.book.items)]
        applicable = [it for it in items if it.passed is not None]
        total = sum(it.points for it in applicable)
        earned = sum(it.earned for it in applicable)
        score = round(100.0 * earned / total, 1) if total else 100.0
        if any(it.fatal and it.passed is False for it in items):
            score = 0.0
        grade = next(g.grade for g in self.book.grades if score >= g.min)
        trajectory = [
            build_all(TierPoint, {"turn": i, "tier": e.tier, "intensity": e.intensity})
            for i in conv.customer
            for e in (conv.emotions[i],)
        ]
        return build(
            QAResult,
            id=t.id,
            line=line,
            error=None,
            agent_id=t.agent_id,
            channel=t.channel,
            score=score,
            grade=grade,
            items=items,
            trajectory=trajectory,
            start_tier=trajectory[0].tier if trajectory else None,
            end_tier=trajectory[-1].tier if trajectory else None,
            flags=self._conversation_flags(conv, trajectory),
            triage=conv.triage,
            talk_ratio=_talk_share(conv, "customer"),
            first_response_seconds=_first_response(conv),
            turns=len(t.turns),
        )

    # -- analysis shared by the checks --

    def _prepare(self, t: Transcript) -> _Conversation:
        conv = _Conversation(t)
        conv.norms = [self._normalize(turn.text) for turn in t.turns]
        return conv

    def _run_models(self, convs: list[_Conversation]) -> None:
        """Both models over the turns of every conversation at once."""
        emotions = self._a._turn_emotions([[c.norms[i] for i in c.customer] for c in convs])
        replies = self._a._replies([c.norms[i] for c in convs for i in c.agent])
        scores = self._a._reply_scores(replies)
        at = 0
        for conv, found in zip(convs, emotions, strict=True):
            conv.emotions = dict(zip(conv.customer, found, strict=True))
            conv.replies = replies[at : at + len(conv.agent)]
            conv.scores = scores[at : at + len(conv.agent)]
            at += len(conv.agent)

    def _analyse(self, conv: _Conversation) -> None:
        turns, norms = conv.t.turns, conv.norms
        customer = [norms[i] for i in conv.customer]
        asked = AskedSoFar(self._a.minefields, turns, norms)
        replies, scores = iter(conv.replies), iter(conv.scores)
        phrase_items = self._phrases.values
        last_customer: str | None = None
        for i, turn in enumerate(turns):
            if turn.speaker == "customer":
                last_customer = turn.text
                continue
            norm = norms[i]
            hits = self._a._reply_hits(next(replies), last_customer, partial(asked.before, i), next(scores))
            conv.checks[i] = hits
            for h in hits:
                conv.mines.setdefault(h.kind, []).append((i, h))
            for p, start, end in self._phrases.find(norm.text):
                start, end = norm.span(start, end)
                for idx in phrase_items[p]:
                    conv.phrase_hits.setdefault(idx, []).append((i, start, end))
        conv.all_calm = all(conv.emotions[i].tier == "calm" for i in conv.customer)
        if customer:
            opening = conv.emotions[conv.customer[0]]
            assert not isinstance(opening, Mood)  # the first turn's result is a full one
            conv.triage = self._a._triage_turns(customer[0], customer[1:], opening)

    def _conversation_flags(self, conv: _Conversation, trajectory: list[TierPoint]) -> list[str]:
        # One walk over all the customer's turns: normalised text holds no control
        # character, so no flag word reaches across the separator.
        said = "\x00".join([conv.norms[i].text for i in conv.customer])
        values = self._flags.values
        found: set[str] = {values[f] for f, _, _ in self._flags.find(said)}
        if trajectory and trajectory[-1].tier == "indifference":
            found.add("churn_risk")
        if conv.triage is not None and conv.triage.safety:
            found.add("safety")
        return sorted(found)

    # -- the checks: one function per `check` kind --

    def _item(self, conv: _Conversation, idx: int, item: RubricItem) -> QAItem:
        if item.only_if is not None and (conv.triage is None or conv.triage.nature != item.only_if):
            return _verdict(item, None, [])
        if item.only_if_emotional and conv.all_calm:
            return _verdict(item, None, [])
        passed, earned, evidence = self._checks[idx](conv, idx, item)
        return _verdict(item, passed, evidence, earned)

    def _scope(self, conv: _Conversation, item: RubricItem) -> list[int]:
        return conv.agent[-self.book.close_turns :] if item.where == "close" else conv.agent

    def _check_phrases(self, conv: _Conversation, idx: int, item: RubricItem) -> _Check:
        scope = set(self._scope(conv, item))
        if not scope:
            return None, 0.0, []
        for turn, start, end in conv.phrase_hits.get(idx, []):
            if turn in scope:
                return True, item.points, [_ev(conv, turn, start, end, f"做到了：{item.name}")]
        return False, 0.0, [_expected_at(conv, item, scope)]

    def _check_solution_time(self, conv: _Conversation, idx: int, item: RubricItem) -> _Check:
        if not conv.agent:
            return None, 0.0, []
        rx = self._time_rx[idx]
        for i in conv.agent:
            norm = conv.norms[i]
            m = rx.search(norm.text)
            if m:
                start, end = norm.span(m.start(), m.end())
                return True, item.points, [_ev(conv, i, start, end, "给出了具体时间")]
        return False, 0.0, [_expected_at(conv, item, set(conv.agent))]

    def _check_minefield(self, conv: _Conversation, idx: int, item: RubricItem) -> _Check:
        evidence = [
            _ev(conv, i, h.start, h.end, f"{item.name}：{h.principle} 建议：{h.rewrite}")
            for i, h in conv.mines.get(item.kind or "", ())
        ]
        if not conv.agent:
            return None, 0.0, []
        lost = min(item.points, len(evidence) * (item.per_hit or item.points))
        return not evidence, item.points - lost, evidence

    def _check_talk_ratio(self, conv: _Conversation, idx: int, item: RubricItem) -> _Check:
        share = _talk_share(conv, "agent")
        if share is None or not conv.agent:
            return None, 0.0, []
        if share <= (item.max_agent_share or 1):
            return True, item.points, []
        longest = max(conv.agent, key=lambda i: len(conv.t.turns[i].text))
        text = conv.t.turns[longest].text
        return False, 0.0, [_ev(conv, longest, 0, len(text), f"客服说话占比 {share:.0%}，最长的一段")]

    def _check_first_response(self, conv: _Conversation, idx: int, item: RubricItem) -> _Check:
        seconds = _first_response(conv)
        if seconds is None:
            return None, 0.0, []
        first_agent = conv.agent[0]
        if seconds <= (item.max_seconds or 0):
            return True, item.points, []
        text = conv.t.turns[first_agent].text
        return False, 0.0, [_ev(conv, first_agent, 0, len(text), f"客户开口 {seconds:.0f} 秒后才首次响应")]

    def _check_silence(self, conv: _Conversation, idx: int, item: RubricItem) -> _Check:
        turns = conv.t.turns
        gaps = []
        for i in conv.agent:
            if i == 0:
                continue
            before, here = turns[i - 1], turns[i]
            end = before.end if before.end is not None else before.start
            if end is None or here.start is None:
                continue
            gaps.append((here.start - end, i))
        if not gaps:
            return None, 0.0, []
        long = [(g, i) for g, i in gaps if g > (item.max_gap_seconds or 0)]
        if not long:
            return True, item.points, []
        evidence = [_ev(conv, i, 0, len(turns[i].text), f"此前客服沉默了 {g:.0f} 秒") for g, i in long]
        return False, 0.0, evidence

    def _check_de_escalation(self, conv: _Conversation, idx: int, item: RubricItem) -> _Check:
        if not conv.customer:
            return None, 0.0, []
        if conv.all_calm:
            return None, 0.0, []
        first, last = conv.emotions[conv.customer[0]], conv.emotions[conv.customer[-1]]
        assert not isinstance(last, Mood)  # the last turn's result is a full one
        better = last.tier == "calm" or (
            last.tier != "indifference"
            and _DECAY[last.tier] <= _DECAY[first.tier]
            and last.intensity < first.intensity
        )
        turn = conv.customer[-1]
        note = f"客户情绪 {first.tier} → {last.tier}"
        evidence = [_ev(conv, turn, e.start, e.end, note) for e in last.evidence if e.tier == last.tier][:3]
        if not evidence:
            text = conv.t.turns[turn].text
            evidence = [_ev(conv, turn, 0, len(text), note)]
        return (True, item.points, evidence) if better else (False, 0.0, evidence)


_Check = tuple[bool | None, float, list[QAEvidence]]


def _verdict(
    item: RubricItem, passed: bool | None, evidence: list[QAEvidence], earned: float = 0.0
) -> QAItem:
    return build_all(
        QAItem,
        {
            "id": item.id,
            "name": item.name,
            "points": item.points,
            "earned": earned if passed is not None else 0.0,
            "passed": passed,
            "fatal": item.fatal,
            "evidence": evidence,
        },
    )


def _ev(conv: _Conversation, turn: int, start: int, end: int, note: str) -> QAEvidence:
    return build_all(
        QAEvidence,
        {"turn": turn, "start": start, "end": end, "text": conv.t.turns[turn].text[start:end], "note": note},
    )


def _expected_at(conv: _Conversation, item: RubricItem, scope: set[int]) -> QAEvidence:
    """Evidence for a missing step: the last agent turn where it should have been."""
    turn = max(scope)
    text = conv.t.turns[turn].text
    return _ev(conv, turn, 0, len(text), f"缺少：{item.name}。{item.principle}")


def _talk_share(conv: _Conversation, who: str) -> float | None:
    chars = conv.chars
    total = sum(chars)
    if not total:
        return None
    mine = sum([chars[i] for i in (conv.customer if who == "customer" else conv.agent)])
    return round(mine / total, 4)


def _first_response(conv: _Conversation) -> float | None:
    if not conv.customer or not conv.agent:
        return None
    turns = conv.t.turns
    first_agent = conv.agent[0]
    opener = next((i for i in conv.customer if i < first_agent), None)
    if opener is None:
        return None
    said = turns[opener].end if turns[opener].end is not None else turns[opener].start
    if said is None or turns[first_agent].start is None:
        return None
    return round(max(0.0, turns[first_agent].start - said), 2)
