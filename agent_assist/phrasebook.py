"""Loading and validating phrasebooks: the data every analyser runs on.

A phrasebook directory holds YAML files (``emotion.yaml`` …) and the script tables
(``script/t2s.tsv``, ``script/s2t.tsv``). A company's own directory only needs the files it
changes: any file it lacks is taken from the bundled default. Every file is validated on
load by typed models, and an error names the file, the key and, where known, the line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import PhrasebookError
from .patterns import check_linear_regex
from .text import Normalizer

Tier = Literal["calm", "panic", "anger", "disappointment", "indifference"]
TIERS: tuple[str, ...] = ("calm", "panic", "anger", "disappointment", "indifference")

#: Names a cue group or pattern may feed into the emotion model. They are part of the
#: model's input schema (the trained weights are per feature), so they are fixed here
#: while the words and weights behind them are data.
EMOTION_FEATURES: tuple[str, ...] = TIERS + (
    "negated",  # an emotion cue under negation: 不生气
    "positive",  # satisfaction or thanks: 满意, 谢谢
    "exclaim",  # runs of !
    "question",  # runs of ? or accusing rhetorical questions
    "repeat",  # repeated contact or recurrence: 第三次, 又
    "wait",  # waiting time: 等了12天
    "threat",  # escalation: 投诉, 12315, 律师
    "sarcasm",  # 呵呵, 真是好服务啊
    "resign",  # resignation: 算了, 随便吧
    "urgent",  # time pressure and safety: 马上, 着火
)
Feature = Literal[
    "calm",
    "panic",
    "anger",
    "disappointment",
    "indifference",
    "negated",
    "positive",
    "exclaim",
    "question",
    "repeat",
    "wait",
    "threat",
    "sarcasm",
    "resign",
    "urgent",
]


class StrictModel(BaseModel):
    """Base of every phrasebook schema: immutable, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)



class CueGroup(StrictModel):
    """Words that signal one tier, with the weight each hit adds to the group's feature."""

    id: str = Field(description="Unique id, shown as the evidence's cue, e.g. 'anger.threat'.")
    tier: Tier = Field(description="The tier this evidence speaks for.")
    feature: Feature = Field(description="The model input the weights add to.")
    weight: float = Field(gt=0, le=5, description="Weight of one hit before modifiers.")
    terms: list[str] = Field(min_length=1, description="Words or phrases, either script.")
    negated_tier: Tier = Field("calm", description="Tier the cue speaks for when negated.")
    negated_feature: Feature = Field("negated", description="Feature it adds to when negated.")
    negatable: bool = Field(True, description="False for cues a preceding 不 cannot flip.")

    @field_validator("terms")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        for t in v:
            if not t.strip():
                raise ValueError("empty term")
        return v


class PatternRule(StrictModel):
    """A regular expression for cues a word list cannot express (12 days, '!!!')."""

    id: str
    tier: Tier
    feature: Feature
    weight: float = Field(gt=0, le=5)
    regex: str = Field(description="Python regex over normalised text; linear-time subset only.")

    @field_validator("regex")
    @classmethod
    def _linear(cls, v: str) -> str:
        check_linear_regex(v)
        return v


class Negation(StrictModel):
    """Negators flip a cue that follows within ``scope`` characters (same clause)."""

    scope: int = Field(3, ge=0, le=8, description="Max characters between negator and cue.")
    terms: list[str] = Field(min_length=1)
    blockers: list[str] = Field(
        default_factory=list,
        description="Words containing a negator that negate nothing (不好意思, 不得不).",
    )


class Intensifiers(StrictModel):
    """Degree words multiplying the weight of the cue that follows."""

    scope: int = Field(2, ge=0, le=6)
    terms: dict[str, float] = Field(min_length=1)


class EmotionBook(StrictModel):
    """``emotion.yaml``: cue lexicon, modifiers, patterns and per-tier strategies."""

    version: int = 1
    negation: Negation
    intensifiers: Intensifiers
    groups: list[CueGroup] = Field(min_length=1)
    patterns: list[PatternRule] = Field(default_factory=list)
    strategies: dict[Tier, str] = Field(description="One-sentence handling strategy per tier.")

    @field_validator("strategies")
    @classmethod
    def _all_tiers(cls, v: dict[str, str]) -> dict[str, str]:
        missing = [t for t in TIERS if t not in v]
        if missing:
            raise ValueError(f"missing strategies for tiers: {', '.join(missing)}")
        return v


# --- loading ---------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _bundled_dir(name: str) -> Path:
    """``phrasebooks`` or ``models``: inside the wheel, or at the top of a source checkout."""
    packaged = resources.files("agent_assist") / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


def bundled_phrasebooks() -> Path:
    """Directory of the phrasebooks shipped with the library."""
    return _bundled_dir("phrasebooks")


def bundled_models() -> Path:
    """Directory of the model artefacts shipped with the library."""
    return _bundled_dir("models")


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree to a line number."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == part), None)
            if nxt is None:
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read ``path`` and validate it as ``model``; raise :class:`PhrasebookError` on failure."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PhrasebookError(name, f"cannot read: {e.strerror or e}") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise PhrasebookError(
            name, f"invalid YAML: {getattr(e, 'problem', e)}", line=mark.line + 1 if mark else None
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or None
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise PhrasebookError(name, err["msg"] + more, key=key, line=_line_of(node, loc)) from None


def _read_pairs(path: Path) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        a, sep, b = line.partition("\t")
        if not sep or len(a) != 1 or len(b) != 1:
            raise PhrasebookError(str(path), "expected one character, a tab, one character", line=n)
        pairs[a] = b
    return pairs


class _Lazy:
    """Build a value once, on first use, from any number of threads.

    Re-entrant, because building one value may need another (the emotion matcher needs
    the emotion book) from the same object.
    """

    __slots__ = ("_lock", "_values")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._values: dict[str, Any] = {}

    def get(self, key: str, build: Callable[[], T]) -> T:
        try:
            return self._values[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        with self._lock:
            if key not in self._values:
                self._values[key] = build()
            return self._values[key]  # type: ignore[no-any-return]


class Phrasebook:
    """A validated set of phrasebook files, loaded lazily and shared between threads.

    >>> from agent_assist import Phrasebook
    >>> pb = Phrasebook()                      # the bundled default
    >>> sorted(pb.emotion.strategies)[:2]
    ['anger', 'calm']
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None and not self.path.is_dir():
            raise PhrasebookError(str(self.path), "not a directory")
        self._lazy = _Lazy()

    def file(self, name: str) -> Path:
        """Where ``name`` comes from: the custom directory if it has it, else the default."""
        if self.path is not None and (self.path / name).is_file():
            return self.path / name
        return bundled_phrasebooks() / name

    @property
    def normalizer(self) -> Normalizer:
        return self._lazy.get(
            "normalizer",
            lambda: Normalizer(
                _read_pairs(self.file("script/t2s.tsv")), _read_pairs(self.file("script/s2t.tsv"))
            ),
        )

    @property
    def emotion(self) -> EmotionBook:
        return self.book("emotion.yaml", EmotionBook, _check_emotion)

    def book(self, name: str, model: type[M], check: Callable[[Path, M], None] | None = None) -> M:
        """The YAML file ``name`` validated as ``model`` (and by ``check``), loaded once.

        Analysers declare their own schema and call this, so adding one needs no change here.
        """

        def load() -> M:
            path = self.file(name)
            value = load_yaml_model(path, model)
            if check is not None:
                check(path, value)
            return value

        return self._lazy.get("book:" + name, load)

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """Memoise something derived from this phrasebook (compiled matchers …)."""
        return self._lazy.get(key, build)

    def validate(self) -> None:
        """Load every file now, raising the first :class:`PhrasebookError`."""
        _ = self.normalizer, self.emotion


def unique_ids(path: Path, items: list[tuple[str, str]]) -> None:
    """Raise if an id repeats; ``items`` are (key path, id) pairs."""
    seen: set[str] = set()
    for key, ident in items:
        if ident in seen:
            raise PhrasebookError(str(path), f"duplicate id {ident!r}", key=key)
        seen.add(ident)


def _check_emotion(path: Path, book: EmotionBook) -> None:
    unique_ids(
        path,
        [(f"groups.{i}.id", g.id) for i, g in enumerate(book.groups)]
        + [(f"patterns.{i}.id", p.id) for i, p in enumerate(book.patterns)],
    )


_default: Phrasebook | None = None
_default_lock = threading.Lock()


def default_phrasebook() -> Phrasebook:
    """The bundled phrasebook, created once per process."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Phrasebook()
    return _default
