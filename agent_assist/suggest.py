"""Reply suggestions (黄金三步法): listen and confirm, empathise, offer a solution.

:func:`agent_assist.suggest` composes the analysers — emotion, triage, slots — and renders the
wording of ``phrasebooks/replies.yaml``:

==============  =============================================================  ============================
part            how                                                            where
==============  =============================================================  ============================
facts           product, wait, amount, contacts, symptom from slots + text     :meth:`Suggester._facts`
restated facts  the subject entry of the complaint's category (problem, topic)  ``subjects`` in replies.yaml
register        escalated when the tier worsened or the customer came back     :meth:`Suggester._register`
templates       the most specific that fit tier × category × nature × …        :meth:`Suggester._groups`
variants        rotated by a stable hash + earlier agent turns; used ones skip  :func:`_choose`
script          Traditional in, Traditional out (phrase fixes, then chars)      :class:`ScriptConverter`
watch_out       minefield kinds likely here: tier, safety, repeat, category     ``watch_out`` in replies.yaml
==============  =============================================================  ============================

Templates are jinja2, rendered in an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`
with :class:`~jinja2.StrictUndefined`, from computed values only: customer text is only ever
a value, never a template. When the phrasebook loads, every template is parsed; attribute or
item access (``''.__class__``), calls, loops, imports, unknown filters and unknown variables
are rejected with an error naming the file and the template id.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import Field, field_validator

from .errors import PhrasebookError
from .minefields import Kind, MinefieldBook, check_minefield_book
from .phrasebook import TIERS, Phrasebook, StrictModel, Tier, _line_of, _read_pairs, check_linear_regex
from .results import EmotionResult, ResultModel, Turn, build
from .slots import Slots, SlotsBook, _check_slots
from .triage import Nature, Triage, TriageBook, _check_triage

if TYPE_CHECKING:  # pragma: no cover
    from .assistant import Assistant

Script = Literal["simplified", "traditional"]
STEPS: tuple[str, ...] = ("listen_confirm", "repeat", "empathize", "solution")
SUBJECT_FIELDS: tuple[str, ...] = ("problem", "topic", "action", "safety_step")
#: Most replies one call may ask for.
MAX_REPLIES = 10

#: Values every template (step or subject) may use; documented in replies.yaml.
BASE_VARIABLES: frozenset[str] = frozenset(
    {
        "tier",
        "register",
        "category",
        "subcategory",
        "category_label",
        "subcategory_label",
        "nature",
        "level",
        "safety",
        "repeat",
        "escalated",
        "known",
        "asking",
        "product",
        "wait",
        "amount",
        "order_tail",
        "symptom",
        "contacts",
        "contact_count",
        "owner",
        "ack_within",
        "solution_within",
        "final_within",
        "follow_up_within",
        "commit_within",
        "choices",
    }
)
#: Values rendered from the ``subjects`` entry; step templates only.
STEP_VARIABLES: frozenset[str] = BASE_VARIABLES | frozenset(SUBJECT_FIELDS)
#: Filters a template may use (everything else, ``attr`` above all, is rejected on load).
ALLOWED_FILTERS: frozenset[str] = frozenset({"default", "trim", "replace", "upper", "lower"})
# Tiers in the order a neglected relationship decays (SPEC: calm < panic < anger <
# disappointment < indifference); a later tier than in earlier turns is a worsening.
_RANK = {t: i for i, t in enumerate(TIERS)}
_CN_DIGITS = "零一二三四五六七八九"


# --- schema of replies.yaml -------------------------------------------------------------------


class When(StrictModel):
    """Conditions a situation must meet for a template to fit; omitted ones always hold."""

    tiers: list[Tier] | None = Field(default=None, description="Emotion tiers it serves.")
    register_: Literal["normal", "escalated", "any"] = Field(
        default="normal",
        alias="register",
        description="normal, escalated (tier worsened or repeat contact), or any.",
    )
    natures: list[Nature] | None = Field(default=None, description="Natures of the fix it serves.")
    categories: list[str] | None = Field(default=None, description="Category or category.subcategory ids.")
    safety: bool | None = Field(
        default=None, description="Safety at stake; `true` outweighs every other condition."
    )
    repeat: bool | None = Field(default=None, description="The customer contacted us repeatedly.")
    known: bool | None = Field(default=None, description="The problem is known (category or facts found).")
    asking: bool | None = Field(default=None, description="The message asks a question.")

    def specificity(self) -> int:
        """How specific: ``safety: true`` outweighs everything; other conditions count one."""
        n = 10 if self.safety else (1 if self.safety is not None else 0)
        for v in (self.tiers, self.natures, self.categories, self.repeat, self.known, self.asking):
            n += v is not None
        return n


class TemplateSpec(StrictModel):
    """One wording of one step."""

    id: str = Field(description="Unique id, reported in ReplyCandidate.template_ids.")
    when: When = Field(default_factory=lambda: When.model_validate({}), description="When it fits.")
    requires: list[str] = Field(default_factory=list, description="Variables that must be non-empty.")
    text: str = Field(min_length=1, description="jinja2 template (sandboxed).")


class Subject(StrictModel):
    """What one kind of complaint is about: restated problem, topic, action, safety step."""

    id: str
    for_: list[str] | None = Field(
        default=None, alias="for", description="Category or category.subcategory ids."
    )
    problem: str | None = None
    topic: str | None = None
    action: str | None = None
    safety_step: str | None = None


class Symptoms(StrictModel):
    """Symptom words the restated problem may quote, unless negated or hypothetical."""

    window: int = Field(3, ge=0, le=8, description="Characters before a symptom searched for not_after.")
    not_after: list[str] = Field(default_factory=list)
    terms: list[str] = Field(default_factory=list)


class Deadlines(StrictModel):
    """Which deadline of the triage table each register commits to (``commit_within``)."""

    normal: Literal["acknowledge", "first_solution", "final"] = "first_solution"
    escalated: Literal["acknowledge", "first_solution", "final"] = "acknowledge"


class WatchOutSpec(StrictModel):
    max: int = Field(4, ge=1, le=11)
    tiers: dict[Tier, list[Kind]] = Field(default_factory=dict)
    safety: list[Kind] = Field(default_factory=list)
    repeat: list[Kind] = Field(default_factory=list)
    categories: dict[str, list[Kind]] = Field(default_factory=dict)
    natures: dict[Nature, list[Kind]] = Field(default_factory=dict)


class RepliesBook(StrictModel):
    """``replies.yaml``: the wording of reply suggestions."""

    version: int = 1
    deadlines: Deadlines = Field(default_factory=lambda: Deadlines.model_validate({}))
    question_cues: list[str] = Field(default_factory=list)
    waited_before: list[str] = Field(
        default_factory=list,
        description="Words after a duration that make it time already waited (一个月了).",
    )
    symptoms: Symptoms = Field(default_factory=lambda: Symptoms.model_validate({}))
    choices: dict[str, list[str]] = Field(default_factory=dict)
    subjects: list[Subject] = Field(min_length=1)
    listen_confirm: list[TemplateSpec] = Field(min_length=1)
    repeat: list[TemplateSpec] = Field(min_length=1)
    empathize: list[TemplateSpec] = Field(min_length=1)
    solution: list[TemplateSpec] = Field(min_length=1)
    watch_out: WatchOutSpec = Field(default_factory=lambda: WatchOutSpec.model_validate({}))

    @field_validator("question_cues", "waited_before")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        if any(not w.strip() for w in v):
            raise ValueError("empty cue")
        return v


# --- sandbox --------------------------------------------------------------------------------


def sandbox() -> Any:
    """The jinja2 environment every reply template is compiled and rendered in.

    Immutable sandbox, StrictUndefined (a missing value is an error, not an empty string), no
    autoescape (replies are plain text), no globals, and only :data:`ALLOWED_FILTERS`.
    """
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, cache_size=0
    )
    env.globals.clear()
    env.filters = {k: v for k, v in env.filters.items() if k in ALLOWED_FILTERS}
    return env


def _forbidden(ast: Any) -> str | None:
    """Why a parsed template is not allowed, or None. Only plain values, conditions and
    the allowed filters pass; attribute and item access, calls, loops, imports do not."""
    from jinja2 import nodes

    allowed = (
        nodes.Template,
        nodes.Output,
        nodes.TemplateData,
        nodes.Name,
        nodes.Const,
        nodes.If,
        nodes.CondExpr,
        nodes.Compare,
        nodes.Operand,
        nodes.And,
        nodes.Or,
        nodes.Not,
        nodes.Concat,
        nodes.Filter,
        nodes.Test,
        nodes.Keyword,
    )
    for node in ast.find_all(nodes.Node):
        if isinstance(node, nodes.Getattr):
            return f"reaches for attribute {node.attr!r}; templates may use plain values only"
        if isinstance(node, nodes.Getitem):
            key = node.arg.value if isinstance(node.arg, nodes.Const) else "…"
            return f"reaches for item {key!r}; templates may use plain values only"
        if isinstance(node, nodes.Call):
            return "calls a function; templates may use plain values only"
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            return f"uses filter {node.name!r}; allowed: {', '.join(sorted(ALLOWED_FILTERS))}"
        if isinstance(node, nodes.Name) and node.ctx != "load":
            return f"assigns {node.name!r}; templates may not set values"
        if not isinstance(node, allowed):
            return f"uses {type(node).__name__}, which reply templates do not allow"
    return None


def _line(path: Path, loc: tuple[int | str, ...]) -> int | None:
    try:
        node = yaml.compose(
            path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except (OSError, yaml.YAMLError):  # pragma: no cover - it loaded a moment ago
        return None
    return _line_of(node, loc)


def _parse(
    env: Any, path: Path, loc: tuple[int | str, ...], ident: str, source: str, names: frozenset[str]
) -> Any:
    """Parse one template and check it; raise a PhrasebookError naming the file and template."""
    from jinja2 import TemplateSyntaxError, meta

    key = ".".join(str(p) for p in loc)
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as e:
        raise PhrasebookError(
            str(path), f"template {ident!r}: {e.message}", key=key, line=_line(path, loc)
        ) from None
    why = _forbidden(ast)
    if why is not None:
        raise PhrasebookError(str(path), f"template {ident!r} {why}", key=key, line=_line(path, loc))
    unknown = sorted(meta.find_undeclared_variables(ast) - names)
    if unknown:
        raise PhrasebookError(
            str(path),
            f"template {ident!r} uses unknown variable(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(names))}",
            key=key,
            line=_line(path, loc),
        )
    return ast


def check_replies(path: Path, book: RepliesBook) -> None:
    """Load-time checks of ``replies.yaml`` that need no other file: unique ids, every
    template parses, stays inside the sandbox's allowed subset and uses known variables."""
    env = sandbox()
    seen: dict[str, str] = {}
    for step in STEPS:
        for i, t in enumerate(getattr(book, step)):
            loc: tuple[int | str, ...] = (step, i, "id")
            if t.id in seen:
                raise PhrasebookError(
                    str(path), f"duplicate id {t.id!r}", key=f"{step}.{i}.id", line=_line(path, loc)
                )
            seen[t.id] = step
            for name in t.requires:
                if name not in BASE_VARIABLES:
                    raise PhrasebookError(
                        str(path),
                        f"template {t.id!r} requires unknown variable {name!r}",
                        key=f"{step}.{i}.requires",
                        line=_line(path, (step, i, "requires")),
                    )
            _parse(env, path, (step, i, "text"), t.id, t.text, STEP_VARIABLES)
    for i, s in enumerate(book.subjects):
        if s.id in seen:
            raise PhrasebookError(str(path), f"duplicate id {s.id!r}", key=f"subjects.{i}.id")
        seen[s.id] = "subjects"
        for f in SUBJECT_FIELDS:
            source = getattr(s, f)
            if source is not None:
                _parse(env, path, ("subjects", i, f), f"{s.id}.{f}", source, BASE_VARIABLES)
    default = [s for s in book.subjects if s.for_ is None]
    if len(default) != 1 or any(getattr(default[0], f) is None for f in SUBJECT_FIELDS):
        raise PhrasebookError(
            str(path),
            "subjects need exactly one entry without `for`, giving every field "
            f"({', '.join(SUBJECT_FIELDS)})",
            key="subjects",
        )
    for w in book.symptoms.terms + book.symptoms.not_after:
        if not w.strip():
            raise PhrasebookError(str(path), "empty symptom word", key="symptoms")


# --- result models --------------------------------------------------------------------------



class WatchOut(ResultModel):
    """A minefield the agent is most likely to step on in this situation."""

    kind: Kind = Field(description="The minefield kind, as in check_reply hits (blame_shifting …).")
    severity: Literal["low", "medium", "high"] = Field(description="Its severity in minefields.yaml.")
    principle: str = Field(description="Why it hurts, in one Chinese sentence (minefields.yaml).")


class ReplyCandidate(ResultModel):
    """One suggested reply: the three steps, the joined text, and the templates behind it."""

    text: str = Field(description="The whole reply: listen_confirm + empathize + solution.")
    listen_confirm: str = Field(
        description="Step 1 (倾听确认): the customer's problem restated, with a question."
    )
    empathize: str = Field(
        description="Step 2 (共情表达): the feeling acknowledged (after a repeat-contact apology, if any)."
    )
    solution: str = Field(description="Step 3 (解决方案): a concrete step, a concrete time, an honest hedge.")
    template_ids: list[str] = Field(description="Ids of the templates and subject entry used, in order.")


class Suggestion(ResultModel):
    """What to say to one customer message, and why."""

    emotion: EmotionResult = Field(description="The customer's emotion in this message.")
    triage: Triage = Field(description="Category, nature, grading and deadlines (with the history).")
    slots: Slots = Field(description="The facts found in this message.")
    strategy: str = Field(description="The tier's handling strategy, in one sentence (emotion.yaml).")
    escalated: bool = Field(
        description="Replies use the escalated register (more apology, a named owner, the earlier "
        "deadline): the tier worsened across turns, or the customer came back."
    )
    repeat_contact: bool = Field(description="The customer has contacted us about this repeatedly.")
    script: Script = Field(description="Script of the replies: that of the customer's message.")
    watch_out: list[WatchOut] = Field(description="Minefield kinds most likely here, most likely first.")
    replies: list[ReplyCandidate] = Field(description="Up to n distinct candidate replies, best fit first.")
    truncated: bool = Field(False, description="The text was longer than the limit; only its start was read.")


# --- script conversion --------------------------------------------------------------------


def _read_phrase_pairs(path: Path) -> dict[str, str]:
    pairs: dict[str, str] = {}
    if not path.is_file():
        return pairs
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise PhrasebookError(
                str(path), "expected a Simplified phrase, a tab, its Traditional form", line=n
            )
        pairs[parts[0]] = parts[1]
    return pairs


class ScriptConverter:
    """Simplified → Traditional: phrase fixes (``script/s2t_phrases.tsv``) first, then the
    phrasebook's character table for the rest. Immutable, thread-safe."""

    __slots__ = ("_chars", "_phrases", "_rx")

    def __init__(self, to_traditional: Callable[[str], str], phrases: Mapping[str, str]) -> None:
        self._chars = to_traditional
        self._phrases = dict(phrases)
        alternation = "|".join(re.escape(p) for p in sorted(self._phrases, key=lambda p: (-len(p), p)))
        self._rx = re.compile(alternation) if alternation else None

    def to_traditional(self, text: str) -> str:
        if self._rx is None:
            return self._chars(text)
        out: list[str] = []
        pos = 0
        for m in self._rx.finditer(text):
            out += [self._chars(text[pos : m.start()]), self._phrases[m.group()]]
            pos = m.end()
        out.append(self._chars(text[pos:]))
        return "".join(out)


def script_converter(phrasebook: Phrasebook) -> ScriptConverter:
    """The Simplified → Traditional converter of ``phrasebook``, built once."""
    return phrasebook.cached(
        "script.s2t_phrases",
        lambda: ScriptConverter(
            phrasebook.normalizer.to_traditional,
            _read_phrase_pairs(phrasebook.file("script/s2t_phrases.tsv")),
        ),
    )


# --- small helpers ----------------------------------------------------------------------------


def within(d: timedelta) -> str:
    """A deadline as Chinese: 30分钟内, 2小时内, 1.5 h → 90分钟内, 96 h → 4天内."""
    minutes = max(1, round(d.total_seconds() / 60))
    if minutes < 60 or minutes % 60:
        return f"{minutes}分钟内"
    hours = minutes // 60
    if hours <= 72 or hours % 24:
        return f"{hours}小时内"
    return f"{hours // 24}天内"


def chinese_number(n: int) -> str:
    """1-99 as Chinese numerals (三, 十二, 二十); larger numbers in digits."""
    if not 0 < n < 100:
        return str(n)
    tens, ones = divmod(n, 10)
    if tens == 0:
        return _CN_DIGITS[ones]
    return ("" if tens == 1 else _CN_DIGITS[tens]) + "十" + (_CN_DIGITS[ones] if ones else "")


def join_choices(items: Sequence[str]) -> str:
    """['换货', '退款'] → '换货还是退款'; three or more: 'A、B还是C'."""
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return "、".join(items[:-1]) + "还是" + items[-1]


def _turns(history: Sequence[str | Turn | Mapping[str, Any]] | None) -> tuple[list[str], list[str]]:
    """(customer texts, agent texts) of a history; strings are customer turns."""
    customer: list[str] = []
    agent: list[str] = []
    for i, turn in enumerate(history or ()):
        if isinstance(turn, str):
            customer.append(turn)
            continue
        speaker: object
        text: object
        if isinstance(turn, Turn):
            speaker, text = turn.speaker, turn.text
        elif isinstance(turn, Mapping):
            speaker, text = turn.get("speaker", "customer"), turn.get("text")
        else:
            raise TypeError(f"history[{i}] must be str, Turn or a mapping, not {type(turn).__name__}")
        if not isinstance(text, str):
            raise TypeError(f"history[{i}].text must be str")
        (customer if speaker == "customer" else agent).append(text)
    return customer, agent


@dataclass(frozen=True, slots=True)
class _Template:
    id: str
    when: When
    requires: tuple[str, ...]
    names: frozenset[str]  # variables it reads
    specificity: int
    render: Callable[[Mapping[str, Any]], str]
    constant: tuple[str, str] | None = None  # (Simplified, Traditional) when it reads no variable


@dataclass(frozen=True, slots=True)
class _Situation:
    """Everything template choice depends on; hashable, so choices are memoised."""

    tier: str
    register: str
    category: str
    subcategory: str
    nature: str
    safety: bool
    repeat: bool
    known: bool
    asking: bool
    present: tuple[bool, ...]  # per Suggester._requirable: is that variable non-empty?


class _Recall:
    """Per-Assistant memo of what earlier customer turns said (their tier and contacts),
    so a conversation's history is analysed once, not at every turn."""

    def __init__(self, assistant: Assistant) -> None:
        detect = assistant.emotion.detect
        extract = assistant.slots.extract

        @lru_cache(maxsize=4096)
        def tier(text: str) -> str:
            return detect(text).tier

        @lru_cache(maxsize=4096)
        def contacts(text: str) -> tuple[int, bool]:
            return _contact_count(extract(text))

        self.tier = tier
        self.contacts = contacts


def _contact_count(slots: Slots) -> tuple[int, bool]:
    """(largest known contact count, whether any says the customer came back: count ≥ 2 or 好几次)."""
    best, again = 0, False
    for c in slots.contacts:
        if c.count is None:
            again = again or c.approximate
        elif c.count >= 2:
            best, again = max(best, c.count), True
    return best, again


def suggester(phrasebook: Phrasebook) -> Suggester:
    """The reply suggester of ``phrasebook``, compiled once and shared."""
    return phrasebook.cached("suggest", lambda: Suggester(phrasebook))


# --- the suggester ------------------------------------------------------------------------


class Suggester:
    """``replies.yaml`` compiled once per phrasebook: every template parsed, checked and
    compiled in the sandbox on load. Immutable apart from a memo of template choices per
    situation, so one instance serves any number of threads."""

    def __init__(self, phrasebook: Phrasebook) -> None:
        self.phrasebook = phrasebook
        path = phrasebook.file("replies.yaml")
        self.source = str(path)
        book = phrasebook.book("replies.yaml", RepliesBook, check_replies)
        self.book = book
        triage_book = phrasebook.book("triage.yaml", TriageBook, _check_triage)
        self._fallback = (triage_book.fallback.category, triage_book.fallback.subcategory)
        self._normalizer = phrasebook.normalizer
        self._script = script_converter(phrasebook)
        self._t2s = {
            ord(t): ord(s) for t, s in _read_pairs(phrasebook.file("script/t2s.tsv")).items() if t != s
        }
        self._check_categories(path, triage_book)

        env = sandbox()
        compiled: dict[str, list[_Template]] = {}
        for step in STEPS:
            compiled[step] = [
                self._compile(env, t.id, t.text, t.when, tuple(t.requires)) for t in getattr(book, step)
            ]
        self._steps = compiled
        self._requirable: tuple[str, ...] = tuple(
            sorted({name for step in STEPS for t in compiled[step] for name in t.requires})
        )
        self._subjects = self._subject_table(env, triage_book)
        self._choices = {k: join_choices(v) for k, v in book.choices.items()}
        self._check_coverage(path, triage_book)

        fold = self._normalizer.fold
        cues = sorted({fold(c) for c in book.question_cues}, key=lambda w: (-len(w), w))
        self._question = re.compile("|".join(map(re.escape, cues))) if cues else None
        terms = sorted({fold(w) for w in book.symptoms.terms}, key=lambda w: (-len(w), w))
        self._symptom_rx = re.compile("|".join(map(re.escape, terms))) if terms else None
        self._not_after = tuple(fold(w) for w in book.symptoms.not_after)
        slots_book = phrasebook.book("slots.yaml", SlotsBook, _check_slots)
        self._wait_prefixes = tuple(
            sorted({fold(p) for p in slots_book.waits.prefixes}, key=len, reverse=True)
        )
        self._waited_before = tuple(book.waited_before) + tuple(
            self._script.to_traditional(w) for w in book.waited_before
        )
        for rx in (self._question, self._symptom_rx):
            if rx is not None:
                check_linear_regex(rx.pattern)

        mines = phrasebook.book("minefields.yaml", MinefieldBook, check_minefield_book)
        self._mines = {
            k: build(WatchOut, kind=k, severity=spec.severity, principle=spec.principle)
            for k, spec in mines.kinds.items()
        }
        self._groups_memo: dict[_Situation, tuple[tuple[tuple[_Template, ...], ...], ...]] = {}
        self._memo_lock = threading.Lock()

    # -- loading

    def _compile(self, env: Any, ident: str, source: str, when: When, requires: tuple[str, ...]) -> _Template:
        from jinja2 import meta

        self_script = self._script

        template = env.from_string(source.strip())
        names = frozenset(meta.find_undeclared_variables(env.parse(source.strip())))
        root, context, concat = template.root_render_func, template.new_context, env.concat

        def render(values: Mapping[str, Any]) -> str:
            # Template.render without its copy of the values (shared=True: the template has
            # no globals to add) and its traceback rewriting; still the sandbox's code.
            return concat(root(context(values, shared=True)))  # type: ignore[no-any-return]

        constant = None
        if not names:  # rendered once, here, in the sandbox; every call reuses the text
            text = render({})
            constant = (text, self_script.to_traditional(text))
        return _Template(ident, when, requires, names, when.specificity() + len(requires), render, constant)

    def _check_categories(self, path: Path, triage_book: TriageBook) -> None:
        """Every category id named in replies.yaml exists in triage.yaml."""
        known = {c.id for c in triage_book.categories} | {
            f"{c.id}.{s.id}" for c in triage_book.categories for s in c.subcategories
        }

        def check(ids: Sequence[str] | None, loc: tuple[int | str, ...]) -> None:
            for ident in ids or ():
                if ident not in known:
                    raise PhrasebookError(
                        str(path),
                        f"unknown category {ident!r} (not in triage.yaml)",
                        key=".".join(map(str, loc)),
                        line=_line(path, loc),
                    )

        for step in STEPS:
            for i, t in enumerate(getattr(self.book, step)):
                check(t.when.categories, (step, i, "when", "categories"))
        for i, s in enumerate(self.book.subjects):
            check(s.for_, ("subjects", i, "for"))
        check(list(self.book.choices), ("choices",))
        check(list(self.book.watch_out.categories), ("watch_out", "categories"))

    def _subject_table(
        self, env: Any, triage_book: TriageBook
    ) -> dict[tuple[str, str], tuple[tuple[str, _Template], ...]]:
        """(category, subcategory) → per subject field, (entry id, compiled template)."""
        compiled = {
            (s.id, f): self._compile(env, f"{s.id}.{f}", getattr(s, f), When.model_validate({}), ())
            for s in self.book.subjects
            for f in SUBJECT_FIELDS
            if getattr(s, f) is not None
        }
        table = {}
        for c in triage_book.categories:
            for sub in c.subcategories:
                keys = (f"{c.id}.{sub.id}", c.id, None)
                row = []
                for f in SUBJECT_FIELDS:
                    entry = next(
                        s
                        for key in keys
                        for s in self.book.subjects
                        if getattr(s, f) is not None
                        and ((s.for_ is None) if key is None else key in (s.for_ or ()))
                    )
                    row.append((entry.id, compiled[(entry.id, f)]))
                table[(c.id, sub.id)] = tuple(row)
        return table

    def _check_coverage(self, path: Path, triage_book: TriageBook) -> None:
        """Every situation finds a template in every step, even with no optional value known."""
        used = {cat for step in STEPS for t in self._steps[step] for cat in (t.when.categories or ())}
        # One representative (category, subcategory) per distinct set of category conditions
        # it meets: the others choose exactly like it.
        reps: dict[frozenset[str], tuple[str, str]] = {}
        for c in triage_book.categories:
            for sub in c.subcategories:
                signature = frozenset(k for k in used if k in (c.id, f"{c.id}.{sub.id}"))
                reps.setdefault(signature, (c.id, sub.id))
        cats = list(reps.values())
        nothing = tuple(False for _ in self._requirable)
        for tier in TIERS:
            for register in ("normal", "escalated"):
                for cat, subcat in cats:
                    for nature in ("compensation", "process", "cognition"):
                        for flags in range(16):
                            s = _Situation(
                                tier,
                                register,
                                cat,
                                subcat,
                                nature,
                                bool(flags & 1),
                                bool(flags & 2),
                                bool(flags & 4),
                                bool(flags & 8),
                                nothing,
                            )
                            for step in STEPS:
                                if step == "repeat" and not s.repeat:
                                    continue  # used only for a repeat contact
                                if not self._eligible(step, s):
                                    raise PhrasebookError(
                                        str(path),
                                        f"{step}: no template fits tier={tier} register={register} "
                                        f"category={cat}.{sub} nature={nature} safety={s.safety} "
                                        f"repeat={s.repeat} known={s.known} asking={s.asking} "
                                        "when no optional value is known; add a fallback",
                                        key=step,
                                    )

    # -- choosing templates

    def _eligible(self, step: str, s: _Situation) -> list[_Template]:
        present = dict(zip(self._requirable, s.present, strict=True))
        out = []
        for t in self._steps[step]:
            w = t.when
            if (
                (w.tiers is None or s.tier in w.tiers)
                and (w.register_ == "any" or w.register_ == s.register)
                and (w.natures is None or s.nature in w.natures)
                and (
                    w.categories is None
                    or s.category in w.categories
                    or f"{s.category}.{s.subcategory}" in w.categories
                )
                and (w.safety is None or w.safety == s.safety)
                and (w.repeat is None or w.repeat == s.repeat)
                and (w.known is None or w.known == s.known)
                and (w.asking is None or w.asking == s.asking)
                and all(present[r] for r in t.requires)
            ):
                out.append(t)
        return out

    def _groups(self, s: _Situation) -> tuple[tuple[tuple[_Template, ...], ...], ...]:
        """Per step, the fitting templates grouped by specificity, most specific group first."""
        got = self._groups_memo.get(s)
        if got is not None:
            return got
        result = []
        for step in STEPS:
            fit = self._eligible(step, s)
            levels = sorted({t.specificity for t in fit}, reverse=True)
            result.append(tuple(tuple(t for t in fit if t.specificity == lv) for lv in levels))
        got = tuple(result)
        with self._memo_lock:
            if len(self._groups_memo) > 50_000:  # bounded: situations are few in practice
                self._groups_memo.clear()
            self._groups_memo[s] = got
        return got

    # -- the facts

    def _facts(self, original: str, norm_text: str, slots: Slots) -> dict[str, Any]:
        """Values restated from the message: product, wait, amount, order tail, symptom."""
        fold = self._normalizer.fold
        product = ""
        catalogue = [p for p in slots.products if p.kind == "catalogue"]
        if catalogue:
            product = catalogue[0].name
        elif slots.products:
            run = [slots.products[0]]
            for p in slots.products[1:]:
                if p.start != run[-1].end:
                    break
                run.append(p)
            product = "".join(p.name for p in run)
        if len(product) > 20:
            product = ""
        wait = ""
        # Only time already waited (等了12天, 一个月了), not a promise (说好的七天无理由).
        waits = [
            w
            for w in slots.waits
            if fold(w.text).startswith(self._wait_prefixes) or original.startswith(self._waited_before, w.end)
        ]
        if waits:
            longest = max(waits, key=lambda w: w.duration or timedelta(0))
            wait = fold(longest.text)
            stripped = True
            while stripped:
                stripped = False
                for prefix in self._wait_prefixes:
                    if wait.startswith(prefix) and len(wait) > len(prefix):
                        wait, stripped = wait[len(prefix) :], True
                        break
            wait = wait.rstrip("了")
        amount = fold(slots.amounts[0].text) if slots.amounts else ""
        order_tail = slots.orders[0].value[-4:] if slots.orders else ""
        symptom = ""
        if self._symptom_rx is not None:
            window = self.book.symptoms.window
            for m in self._symptom_rx.finditer(norm_text):
                before = norm_text[max(0, m.start() - window) : m.start()]
                if not any(w in before for w in self._not_after):
                    symptom = m.group()
                    break
        return {
            "product": product,
            "wait": wait,
            "amount": amount,
            "order_tail": order_tail,
            "symptom": symptom,
        }

    def _register(
        self,
        assistant: Assistant,
        emotion: EmotionResult,
        slots: Slots,
        customer: list[str],
        agent: list[str],
    ) -> tuple[str, bool, int]:
        """(register, repeat contact, contact count).

        Escalated when this turn's tier is later in the decay order than an earlier
        customer turn's, or when the customer came back: a contact count of two or more
        (第三次, 打了五次, 好几次) in this message or an earlier one, or — after an agent
        reply — repetition words in this one (又, 还是没, 再次).
        """
        count, again = _contact_count(slots)
        worse = False
        if customer:
            recall: _Recall = assistant._lazy.get("suggest.recall", lambda: _Recall(assistant))
            rank = _RANK[emotion.tier]
            limit = getattr(assistant, "max_chars", None)
            for said in customer:
                if said.strip():
                    said = said[:limit]
                    worse = worse or rank > _RANK[recall.tier(said)]
                    c, a = recall.contacts(said)
                    count, again = max(count, c), again or a
        if agent and not again:
            again = any(e.cue.startswith("repeat.") for e in emotion.evidence)
        return ("escalated" if worse or again else "normal"), again, count

    def _watch_out(self, tier: str, triage: Triage, repeat: bool) -> list[WatchOut]:
        w = self.book.watch_out
        kinds: list[Kind] = []
        groups: tuple[Sequence[Kind], ...] = (
            w.tiers.get(tier, ()),  # type: ignore[call-overload]
            w.safety if triage.safety else (),
            w.repeat if repeat else (),
            w.categories.get(f"{triage.category}.{triage.subcategory}", ()),
            w.categories.get(triage.category, ()),
            w.natures.get(triage.nature, ()),
        )
        for group in groups:
            for k in group:
                if k not in kinds:
                    kinds.append(k)
        return [self._mines[k] for k in kinds[: w.max]]

    # -- the call

    def suggest(
        self,
        assistant: Assistant,
        customer_text: str,
        *,
        history: Sequence[str | Turn | Mapping[str, Any]] | None = None,
        n: int = 3,
        agent_name: str | None = None,
    ) -> Suggestion:
        """See :func:`agent_assist.suggest`."""
        if not isinstance(customer_text, str):
            raise TypeError(f"customer_text must be str, not {type(customer_text).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REPLIES:
            raise ValueError(f"n must be an int from 1 to {MAX_REPLIES}, not {n!r}")
        if agent_name is not None and not isinstance(agent_name, str):
            raise TypeError("agent_name must be str or None")
        customer, agent = _turns(history)
        limit = getattr(assistant, "max_chars", None) or len(customer_text)
        text = customer_text[:limit]
        norm = self._normalizer.normalize(text)
        emotion = assistant.emotion.detect(text)
        triage = assistant.triager.triage_normalized(norm, history=history, emotion=emotion)
        slots = assistant.slots.extract_normalized(norm)
        truncated = len(customer_text) > limit
        if truncated:  # say so on every result, as the analysers' own methods do
            emotion = emotion.model_copy(update={"truncated": True})
            triage = triage.model_copy(update={"truncated": True})
            slots = slots.model_copy(update={"truncated": True})
        register, repeat, count = self._register(assistant, emotion, slots, customer, agent)

        v = self._facts(text, norm.text, slots)
        cat, sub = triage.category, triage.subcategory
        d = triage.deadlines
        commit = getattr(self.book.deadlines, register)
        v.update(
            tier=emotion.tier,
            register=register,
            category=cat,
            subcategory=sub,
            category_label=triage.category_label,
            subcategory_label=triage.subcategory_label,
            nature=triage.nature,
            level=triage.level,
            safety=triage.safety,
            repeat=repeat,
            escalated=register == "escalated",
            contacts=chinese_number(count) if count >= 2 else "",
            contact_count=count,
            owner=(agent_name or "").strip(),
            ack_within=within(d.acknowledge),
            solution_within=within(d.first_solution),
            final_within=within(d.final),
            follow_up_within=within(d.follow_up),
            commit_within=within(getattr(d, commit)),
            choices=self._choices.get(f"{cat}.{sub}") or self._choices.get(cat, ""),
        )
        v["known"] = (cat, sub) != self._fallback or any(
            v[k] for k in ("product", "wait", "amount", "order_tail", "symptom", "contacts")
        )
        v["asking"] = self._question is not None and self._question.search(norm.text) is not None
        situation = _Situation(
            emotion.tier,
            register,
            cat,
            sub,
            triage.nature,
            triage.safety,
            repeat,
            v["known"],
            v["asking"],
            tuple(bool(v[name]) for name in self._requirable),
        )
        # Most messages hold no Traditional-only character: one C-level translate says so.
        trad = text.translate(self._t2s) != text and self._normalizer.script(text) == "traditional"
        replies = self._compose(situation, v, text, agent, n, trad)
        return build(
            Suggestion,
            emotion=emotion,
            triage=triage,
            slots=slots,
            strategy=self.phrasebook.emotion.strategies[emotion.tier],
            escalated=register == "escalated",
            repeat_contact=repeat,
            script="traditional" if trad else "simplified",
            watch_out=self._watch_out(emotion.tier, triage, repeat),
            replies=replies,
            truncated=truncated,
        )

    def _compose(
        self, s: _Situation, v: dict[str, Any], customer_text: str, agent: list[str], n: int, trad: bool
    ) -> list[ReplyCandidate]:
        groups = self._groups(s)
        subjects = self._subjects.get((s.category, s.subcategory)) or self._subjects[self._fallback]
        convert = self._script.to_traditional
        subject_ids: dict[str, str] = {}

        def render(t: _Template) -> str:
            if t.constant is not None:
                return t.constant[trad]
            for name in t.names:
                if name not in v and name in SUBJECT_FIELDS:
                    ident, tmpl = subjects[SUBJECT_FIELDS.index(name)]
                    v[name] = tmpl.render(v)
                    subject_ids[name] = ident
            text = t.render(v)
            return convert(text) if trad else text

        h = zlib.crc32(customer_text.encode("utf-8", "surrogatepass"))
        turns = len(agent)
        picked: list[list[tuple[_Template | None, str]]] = []
        for i, step in enumerate(STEPS):
            if step == "repeat" and not s.repeat:
                picked.append([(None, "")])
                continue
            start = (h >> (7 * i)) + turns
            picked.append(_choose(groups[i], start, n, agent, render))  # type: ignore[arg-type]
        earlier = set(agent)
        out: list[ReplyCandidate] = []
        texts: set[str] = set()
        for combo in _combinations([len(p) for p in picked], n * 4):
            (lt, lc), (rt, rp), (et, em), (st, so) = (picked[k][combo[k]] for k in range(4))
            empathize = rp + em
            text = lc + empathize + so
            if text in texts or text in earlier:
                continue
            texts.add(text)
            ids = [lt.id] if lt is not None else []
            ids += [subject_ids[f] for f in SUBJECT_FIELDS if f in subject_ids and f in _names(lt, et, st)]
            ids += [t.id for t in (rt, et, st) if t is not None]
            ids = list(dict.fromkeys(ids))
            out.append(
                build(
                    ReplyCandidate,
                    text=text,
                    listen_confirm=lc,
                    empathize=empathize,
                    solution=so,
                    template_ids=ids,
                )
            )
            if len(out) == n:
                break
        return out


def _names(*templates: _Template | None) -> frozenset[str]:
    names: frozenset[str] = frozenset()
    for t in templates:
        if t is not None:
            names |= t.names
    return names


def _choose(
    groups: tuple[tuple[_Template, ...], ...],
    start: int,
    k: int,
    used: list[str],
    render: Callable[[_Template], str],
) -> list[tuple[_Template, str]]:
    """Up to ``k`` variants of one step, rendered, in rotation order from ``start``.

    The most specific group is used; a variant whose text an earlier agent turn already
    contains is skipped, and only when a whole group was used does the next group step in.
    When every variant was used, the used ones come back (a reply is better than none).
    """
    stale: list[tuple[_Template, str]] = []
    for group in groups:
        chosen: list[tuple[_Template, str]] = []
        size = len(group)
        for j in range(size):
            t = group[(start + j) % size]
            text = render(t)
            if used and any(text in u for u in used):
                stale.append((t, text))
                continue
            chosen.append((t, text))
            if len(chosen) == k:
                break
        if chosen:
            return chosen
    return stale[:k]


def _combinations(sizes: list[int], limit: int) -> Iterator[tuple[int, ...]]:
    """Index tuples into each step's variants: the diagonal first (every step varies from
    one reply to the next), then the remaining combinations; at most ``limit``."""
    seen: set[tuple[int, ...]] = set()
    for i in range(max(sizes)):
        combo = tuple(i % s for s in sizes)
        if combo not in seen:
            seen.add(combo)
            yield combo
            if len(seen) == limit:
                return
    total = 1
    for s in sizes:
        total *= s
    for i in range(total):
        rest, parts = i, []
        for s in sizes:
            rest, r = divmod(rest, s)
            parts.append(r)
        combo = tuple(parts)
        if combo not in seen:
            seen.add(combo)
            yield combo
            if len(seen) == limit:
                return
