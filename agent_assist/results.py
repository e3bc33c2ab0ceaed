"""Result models shared by every analyser: evidence spans and the emotion result."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Tier = Literal["calm", "panic", "anger", "disappointment", "indifference"]


class ResultModel(BaseModel):
    """Base of every result the library returns: immutable."""

    model_config = ConfigDict(frozen=True)


R = TypeVar("R", bound=BaseModel)
_SHAPES: dict[type, tuple[int, dict[str, Any]]] = {}
_ALL_FIELDS: dict[type, set[str]] = {}
_set = object.__setattr__
_new = object.__new__
# The slots every pydantic model has, set through their descriptors: a quarter cheaper
# than object.__setattr__ looking each one up by name (builds run ~60 times per transcript).
_fields_set = vars(BaseModel)["__pydantic_fields_set__"].__set__
_extra = vars(BaseModel)["__pydantic_extra__"].__set__
_private = vars(BaseModel)["__pydantic_private__"].__set__


def build(cls: type[R], **values: Any) -> R:
    """Construct a result from values the library computed itself, skipping validation.

    ``model_construct`` costs ~5 µs per object because it still walks every field for
    defaults; results are built on the hot path many times per message, from values whose
    types the code guarantees (the tests validate round-trips), so set the fields directly.
    Fields not given take their declared defaults.
    """
    shape = _SHAPES.get(cls)
    if shape is None:  # once per class: reading ``model_fields`` costs a descriptor call
        fields = cls.model_fields
        defaults = {
            n: f.get_default(call_default_factory=True) for n, f in fields.items() if not f.is_required()
        }
        shape = _SHAPES[cls] = (len(fields), defaults)
    if len(values) < shape[0]:
        for k, v in shape[1].items():
            if k not in values:
                values[k] = v
    return build_all(cls, values)


def build_all(cls: type[R], values: dict[str, Any]) -> R:
    """:func:`build` from a dict naming every field of ``cls`` (no defaults looked up, no
    keyword arguments packed): for the results built dozens of times per transcript.

    Every result built here has every field set, so all of a class share one
    ``model_fields_set`` (QA builds ~100 results per transcript; a set each cost ~4 % of a
    run): the models are frozen, and pydantic copies the set before adding to it
    (``model_copy(update=...)``).
    """
    obj = _new(cls)
    _set(obj, "__dict__", values)
    fields = _ALL_FIELDS.get(cls)
    if fields is None:
        fields = _ALL_FIELDS[cls] = set(cls.model_fields)
    _fields_set(obj, fields)
    _extra(obj, None)
    _private(obj, None)
    return obj


class Evidence(ResultModel):
    """One piece of text that moved a result, located in the caller's original string."""

    start: int = Field(description="Offset of the first character in the original input.")
    end: int = Field(description="Offset one past the last character; text == input[start:end].")
    text: str = Field(description="The original characters, exactly as given.")
    cue: str = Field(description="What matched: '<group or pattern id>:<term>' or 'model:<n-gram>'.")
    rule: str = Field(
        description="Which rule fired: lexicon, negation, pattern or model; a modifier "
        "(intensifier) is named in the cue."
    )
    tier: Tier = Field(description="The tier this evidence speaks for.")
    weight: float = Field(description="Weight after intensifiers and negation.")


class EmotionResult(ResultModel):
    """How a customer feels in one message.

    ``scores`` always has the five tiers as keys and sums to 1; ``tier`` is the highest.
    """

    tier: Tier = Field(description="calm, panic, anger, disappointment or indifference.")
    scores: dict[str, float] = Field(description="Probability per tier; sums to 1.")
    intensity: float = Field(ge=0, le=1, description="How strongly the emotion is expressed.")
    evidence: list[Evidence] = Field(description="Spans that produced the result.")
    truncated: bool = Field(False, description="The text was longer than the limit; only its start was read.")
    error: str | None = Field(None, description="Set, in a batch, when the item was not a string.")


class Turn(ResultModel):
    """One turn of a conversation."""

    speaker: Literal["customer", "agent"] = Field(description="Who spoke.")
    text: str = Field(description="What was said.")
    start: float | None = Field(None, description="Seconds from the start of the call, if known.")
    end: float | None = Field(None, description="Seconds from the start of the call, if known.")


def to_json(model: BaseModel) -> str:
    """``model_dump_json``, but never failing on lone surrogates in echoed text.

    A message can carry a lone surrogate (broken copy-paste, bad upstream decoding); UTF-8
    cannot encode it, so pydantic refuses. Fall back to escaping it (``\\udc80``) instead.
    """
    try:
        return model.model_dump_json()
    except ValueError:
        return _escaped_json(model)


def to_json_bytes(model: BaseModel) -> bytes:
    """:func:`to_json` as the UTF-8 bytes a file gets: pydantic serialises to bytes, so a
    writer skips decoding them to ``str`` and encoding them back (QA output files)."""
    try:
        return model.__pydantic_serializer__.to_json(model)
    except ValueError:
        return _escaped_json(model).encode()


def _escaped_json(model: BaseModel) -> str:
    import json

    return json.dumps(model.model_dump(mode="json"), ensure_ascii=True)
