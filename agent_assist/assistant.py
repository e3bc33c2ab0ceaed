"""The :class:`Assistant`: one phrasebook and its models, and the module-level shortcuts.

Everything loads lazily and once: building an ``Assistant`` is free, the first call that
needs the emotion model loads it (thread-safely), and every later call reuses it. The
module-level functions share one default ``Assistant`` built from the bundled data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from .emotion import EmotionDetector, Mood
from .emotion_model import EmotionModel
from .minefields import MinefieldChecker, MinefieldHit, ReplyCheck, minefield_checker
from .phrasebook import Phrasebook, _Lazy, bundled_models
from .privacy import Redactor
from .qa import QAResult, QAScorer
from .results import EmotionResult, Turn
from .slots import SlotExtractor, Slots, slot_extractor
from .suggest import Suggester, Suggestion, suggester
from .text import Normalized, check_text
from .transcript import Transcript
from .triage import Triage, Triager, triager

DEFAULT_MAX_CHARS = 5000

R = TypeVar("R", bound=BaseModel)


def _truncated(result: R) -> R:
    return result.model_copy(update={"truncated": True})


class Assistant:
    """Analysers bound to one phrasebook directory (default: the bundled one).

    >>> from agent_assist import Assistant
    >>> a = Assistant()                 # or Assistant("my_company_phrasebooks/")
    >>> a.detect_emotion("算了，随便吧").tier
    'indifference'
    """

    def __init__(
        self,
        phrasebooks: str | Path | Phrasebook | None = None,
        *,
        models: str | Path | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        self.phrasebook = phrasebooks if isinstance(phrasebooks, Phrasebook) else Phrasebook(phrasebooks)
        self._models = Path(models) if models is not None else None
        if not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError("max_chars must be a positive int")
        #: Longer messages are analysed on their first ``max_chars`` characters and the
        #: result says ``truncated``: a pasted log or an attack cannot make a call slow.
        self.max_chars = max_chars
        self._lazy = _Lazy()

    @property
    def emotion(self) -> EmotionDetector:
        """The emotion detector (built on first use)."""
        return self._lazy.get(
            "emotion",
            lambda: EmotionDetector(self.phrasebook, _load_model(self._models)),
        )

    def detect_emotion(self, text: str) -> EmotionResult:
        """See :func:`agent_assist.detect_emotion`."""
        check_text(text)
        if len(text) > self.max_chars:
            return _truncated(self.emotion.detect(text[: self.max_chars]))
        return self.emotion.detect(text)

    def detect_emotions(self, texts: Sequence[str]) -> list[EmotionResult]:
        """See :func:`agent_assist.detect_emotions`."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, not a single str")
        texts = list(texts)
        bad = {i: t for i, t in enumerate(texts) if not isinstance(t, str)}
        long = {i for i, t in enumerate(texts) if i not in bad and len(t) > self.max_chars}
        clean = ["" if i in bad else t[: self.max_chars] for i, t in enumerate(texts)]
        out = self.emotion.detect_many(clean)
        for i, t in bad.items():
            out[i] = out[i].model_copy(update={"error": f"texts[{i}] must be str, not {type(t).__name__}"})
        for i in long:
            out[i] = _truncated(out[i])
        return out

    @property
    def minefields(self) -> MinefieldChecker:
        """The minefield checker for agent replies (built on first use)."""
        return minefield_checker(self.phrasebook)

    def check_reply(
        self,
        reply: str,
        *,
        customer_text: str | None = None,
        history: Sequence[Turn | Mapping[str, Any]] | None = None,
    ) -> ReplyCheck:
        """See :func:`agent_assist.check_reply`."""
        check_text(reply, "reply")
        if customer_text is not None:
            customer_text = check_text(customer_text, "customer_text")[: self.max_chars]
        if len(reply) > self.max_chars:
            return _truncated(
                self.minefields.check(reply[: self.max_chars], customer_text=customer_text, history=history)
            )
        return self.minefields.check(reply, customer_text=customer_text, history=history)

    def _cut(self, norm: Normalized) -> Normalized:
        """``norm`` of at most ``max_chars`` characters: itself unless its text is longer."""
        if len(norm.original) <= self.max_chars:
            return norm
        return self.phrasebook.normalizer.normalize(norm.original[: self.max_chars])

    def _turn_emotions(self, groups: list[list[Normalized]]) -> list[list[EmotionResult | Mood]]:
        """Emotions of the customer turns (normalised once by QA) of each of several
        conversations, with one model pass for all: full results for each conversation's
        first turn (triage reads it) and last (de-escalation quotes its evidence), the tier
        and intensity alone (:class:`Mood`) for the turns between."""
        jobs = []
        for norms in groups:
            cut = [self._cut(n) for n in norms]
            jobs.append((cut, [n.original for n in cut], {0, len(cut) - 1} if cut else ()))
        return self.emotion.detect_moods(jobs)

    def _replies(self, norms: list[Normalized]) -> list[Normalized]:
        """Agent turns QA has normalised, as the minefield checker reads them (cut to
        ``max_chars``, folded), for :meth:`_reply_scores` and :meth:`_reply_hits`."""
        folded = self.minefields.folded
        return [folded(self._cut(n)) for n in norms]

    def _reply_hits(
        self,
        reply: Normalized,
        customer_text: str | None,
        asked: Callable[[], bool],
        scores: list[float] | None = None,
    ) -> list[MinefieldHit]:
        """:meth:`check_reply`'s hits alone for QA scoring (which has no use for the rewrite),
        of a reply from :meth:`_replies`; ``asked``: has the customer asked for compensation
        before this reply? ``scores``: the model's, from :meth:`_reply_scores`."""
        if customer_text is not None:
            customer_text = customer_text[: self.max_chars]
        return self.minefields.hits(
            reply.original, customer_text=customer_text, asked=asked, norm=reply, scores=scores
        )

    def _reply_scores(self, replies: list[Normalized]) -> list[list[float] | None]:
        """The minefield model's scores of many agent turns from :meth:`_replies` (a block of
        conversations'), in one pass."""
        return self.minefields.model_scores(replies)

    def _triage_turns(self, first: Normalized, later: list[Normalized], emotion: EmotionResult) -> Triage:
        """:meth:`triage` of a conversation's first customer turn, the later ones as history,
        all normalised once by QA."""
        result = self.triager.triage_normalized(self._cut(first), history=later, emotion=emotion)
        return _truncated(result) if len(first.original) > self.max_chars else result

    @property
    def triager(self) -> Triager:
        """Complaint triage (built on first use)."""
        return triager(self.phrasebook)

    def triage(
        self,
        text: str,
        *,
        history: Sequence[str | Turn | Mapping[str, Any]] | None = None,
        now: datetime | None = None,
        emotion: EmotionResult | None = None,
    ) -> Triage:
        """See :func:`agent_assist.triage`. ``emotion``: pass it if already computed for ``text``."""
        check_text(text)
        cut = text[: self.max_chars]
        if emotion is None:
            emotion = self.detect_emotion(cut)
        result = self.triager.triage(cut, history=history, now=now, emotion=emotion)
        return _truncated(result) if len(text) > self.max_chars else result

    @property
    def slots(self) -> SlotExtractor:
        """Slot extraction (built on first use)."""
        return slot_extractor(self.phrasebook)

    def extract_slots(self, text: str) -> Slots:
        """See :func:`agent_assist.extract_slots`."""
        check_text(text)
        if len(text) > self.max_chars:
            return _truncated(self.slots.extract(text[: self.max_chars]))
        return self.slots.extract(text)

    def mask_sensitive(self, text: str) -> str:
        """See :func:`agent_assist.mask_sensitive`."""
        return self.slots.mask(text)

    def validate(self) -> None:
        """Load, validate and compile every phrasebook file and model now.

        Raises the first :class:`PhrasebookError` (file, key and line) or :class:`ModelError`;
        ``agent-assist validate DIR`` runs this on a company's directory.
        """
        _ = (self.phrasebook.normalizer, self.emotion, self.minefields, self.triager, self.slots,
             self.qa, self.redactor, self.suggester)

    @property
    def redactor(self) -> Redactor:
        """Personal-data masking (built on first use)."""
        return self._lazy.get("redactor", lambda: Redactor(self.phrasebook, self.slots.mask))

    def redact(self, text: str) -> str:
        """See :func:`agent_assist.redact`."""
        return self.redactor.redact(text)

    @property
    def qa(self) -> QAScorer:
        """Conversation quality scoring with this phrasebook's rubric (built on first use)."""
        return self._lazy.get("qa", lambda: QAScorer(self))

    def score_transcript(self, transcript: Transcript | Mapping[str, Any]) -> QAResult:
        """See :func:`agent_assist.score_transcript`."""
        return self.qa.score_record(transcript)

    @property
    def suggester(self) -> Suggester:
        """Reply suggestions with this phrasebook's ``replies.yaml`` (compiled on first use)."""
        return suggester(self.phrasebook)

    def suggest(
        self,
        customer_text: str,
        *,
        history: Sequence[str | Turn | Mapping[str, Any]] | None = None,
        n: int = 3,
        agent_name: str | None = None,
    ) -> Suggestion:
        """See :func:`agent_assist.suggest`."""
        return self.suggester.suggest(self, customer_text, history=history, n=n, agent_name=agent_name)


_models_lock = threading.Lock()
_models_cache: dict[Path, EmotionModel] = {}


def _load_model(directory: Path | None) -> EmotionModel:
    # Models are keyed by directory so several Assistants (one per tenant phrasebook)
    # share one copy of the weights.
    path = (directory or bundled_models() / "emotion").resolve()
    with _models_lock:
        if path not in _models_cache:
            _models_cache[path] = EmotionModel(path)
        return _models_cache[path]


_default: Assistant | None = None
_default_lock = threading.Lock()


def default_assistant() -> Assistant:
    """The shared :class:`Assistant` over the bundled phrasebook and models."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Assistant()
    return _default


def detect_emotion(text: str) -> EmotionResult:
    """How the customer feels in one message: tier, scores, intensity and evidence.

    >>> from agent_assist import detect_emotion
    >>> r = detect_emotion("第三次打电话了，到底有没有人管？！")
    >>> r.tier
    'anger'
    >>> [e.text for e in r.evidence][:3]
    ['第三次', '到底', '有没有人管']
    """
    return default_assistant().detect_emotion(text)


def detect_emotions(texts: Sequence[str]) -> list[EmotionResult]:
    """:func:`detect_emotion` for a list, faster per message than a loop.

    >>> from agent_assist import detect_emotions
    >>> [r.tier for r in detect_emotions(["在吗？想问下发票怎么开", "气死我了！！"])]
    ['calm', 'anger']
    """
    return default_assistant().detect_emotions(texts)


def check_reply(
    reply: str,
    *,
    customer_text: str | None = None,
    history: Sequence[Turn | Mapping[str, Any]] | None = None,
) -> ReplyCheck:
    """Does an agent's draft step on a minefield (推诿, 说教, 过度承诺 …)? With safer rewrites.

    ``customer_text`` is the message being answered and ``history`` the conversation so far
    (:class:`Turn` objects or dicts with ``speaker`` and ``text``); they decide context rules
    such as whether the customer already asked for compensation.

    >>> from agent_assist import check_reply
    >>> r = check_reply("这是物流的问题，和我们无关。")
    >>> r.ok, [(h.kind, h.text) for h in r.hits]
    (False, [('blame_shifting', '是物流的问题'), ('blame_shifting', '和我们无关')])
    >>> check_reply("物流延误了，我们已经催促并全程跟进，今天18点前给您回复。").ok
    True
    """
    return default_assistant().check_reply(reply, customer_text=customer_text, history=history)


def triage(
    text: str,
    *,
    history: Sequence[str | Turn | Mapping[str, Any]] | None = None,
    now: datetime | None = None,
) -> Triage:
    """Category, nature, severity, urgency, scope, priority level and deadlines of a complaint.

    ``history``: earlier turns of the conversation (they supply the category when the message
    names none, and keep safety, severity and scope raised). ``now``: when the complaint was
    received; the deadlines then also carry wall-clock times. Every label has evidence spans.

    >>> from agent_assist import triage
    >>> t = triage("新买的电水壶用了三天底座就冒烟了，还有一股烧焦的味道")
    >>> t.category, t.subcategory, t.nature, t.safety, t.level, str(t.deadlines.acknowledge)
    ('product_quality', 'malfunction', 'compensation', True, 'P1', '0:30:00')
    >>> triage("退款说三个工作日到账，现在都两周了还没收到").category
    'billing'
    """
    return default_assistant().triage(text, history=history, now=now)


def extract_slots(text: str) -> Slots:
    """Facts a reply should repeat back: products, order numbers, waits, contacts, amounts, dates.

    Phone, ID and bank-card numbers are reported in ``sensitive``, masked, never in clear.

    >>> from agent_assist import extract_slots
    >>> s = extract_slots("A3音箱等了三个星期还没到，这是第三次打电话了，电话13812345678")
    >>> [p.name for p in s.products], s.waits[0].duration.days, s.contacts[0].count
    (['A3', '音箱'], 21, 3)
    >>> s.sensitive[0].type, s.sensitive[0].masked
    ('phone', '138****5678')
    """
    return default_assistant().extract_slots(text)


def mask_sensitive(text: str) -> str:
    """``text`` with phone, ID and bank-card numbers masked (same length, so offsets still hold).

    >>> from agent_assist import mask_sensitive
    >>> mask_sensitive("我的手机号是138-1234-5678，身份证110101199003071234")
    '我的手机号是138-****-5678，身份证**************1234'
    """
    return default_assistant().mask_sensitive(text)


def redact(text: str) -> str:
    """``text`` with phone, ID-card and bank-card numbers, e-mails and plate numbers masked.

    Same length as the input, so offsets computed on the original still hold.

    >>> from agent_assist import redact
    >>> redact("电话13812345678，邮箱zhang.san@example.com，车牌粤B12345")
    '电话138****5678，邮箱z****.***@example.com，车牌粤B*****'
    """
    return default_assistant().redact(text)


def score_transcript(transcript: Transcript | Mapping[str, Any]) -> QAResult:
    """Quality score (质检) of one conversation: 0-100, grade, and every rubric item with the
    turn and words behind it. A malformed transcript gives a result whose ``error`` says why.

    >>> from agent_assist import score_transcript
    >>> r = score_transcript({"id": "c1", "turns": [
    ...     {"speaker": "客户", "text": "等了12天还没到货，太失望了"},
    ...     {"speaker": "客服", "text": "非常抱歉让您久等了，您是说订单已经等了12天，对吗？"},
    ...     {"speaker": "客户", "text": "对"},
    ...     {"speaker": "客服", "text": "我马上为您催促物流，今天18点前给您回电，感谢您的耐心。"}]})
    >>> r.score > 80, r.start_tier, [i.id for i in r.items if i.passed is False][:2]
    (True, 'disappointment', ['close_restate'])
    """
    return default_assistant().score_transcript(transcript)


def suggest(
    customer_text: str,
    *,
    history: Sequence[str | Turn | Mapping[str, Any]] | None = None,
    n: int = 3,
    agent_name: str | None = None,
) -> Suggestion:
    """What to say next: up to ``n`` distinct replies in three steps (倾听确认, 共情表达,
    解决方案), with the emotion, triage, handling strategy and minefields to watch.

    ``history``: earlier turns (strings are customer turns; :class:`Turn` objects or dicts
    with ``speaker`` and ``text`` for both sides). A repeat contact is acknowledged, an
    earlier agent reply is not offered again, and a worsening tier (or a repeat contact)
    moves the replies to the escalated register. ``agent_name`` is named as the owner in
    escalated replies. Replies come back in the customer's script.

    >>> from agent_assist import suggest
    >>> s = suggest("A3音箱等了12天还没到，太失望了")
    >>> s.emotion.tier, s.triage.category, s.escalated
    ('disappointment', 'delivery', False)
    >>> s.replies[0].listen_confirm
    '跟您核对一下，A3音箱已经等了12天还没有送到，我理解得对吗？'
    >>> len({r.text for r in s.replies})
    3
    >>> suggest("等了三個星期還沒到貨，太失望了").script
    'traditional'
    """
    return default_assistant().suggest(customer_text, history=history, n=n, agent_name=agent_name)


_worker: Assistant | None = None


def _set_worker_assistant(phrasebooks: str | None) -> None:
    """Build (and warm) this worker process's Assistant, so its first task is not slow."""
    global _worker
    _worker = Assistant(phrasebooks) if phrasebooks is not None else default_assistant()
    _ = _worker.qa


def _worker_assistant() -> Assistant:
    return _worker if _worker is not None else default_assistant()
