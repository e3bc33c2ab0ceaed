"""Slot extraction: the concrete facts a reply repeats back, and the numbers it must not.

A reply that says "您的A3音箱等了12天还没发货，这是您第三次来电" shows the customer was heard.
:func:`agent_assist.extract_slots` finds those facts in one message:

==========  ================================================  ===================================
slot        what                                              found by
==========  ================================================  ===================================
products    catalogue products (``products.yaml``), model     automaton; ASCII tokens matching
            codes (A3, B7), product words (冰箱)                ``products.model``
orders      order / ticket / tracking numbers                 a keyword before a token, or shape
waits       how long the customer waited: 等了12天, 三个星期   one regex built from ``waits``
contacts    how often they got in touch: 第三次, 打了五次      one regex built from ``contacts``
amounts     money: 199元, ¥29.9, 两百多块                      one regex built from ``amounts``
dates       2024年5月12日, 5月12号, 昨天                       one regex, and ``dates.relative``
sensitive   phone, ID and bank-card numbers, *masked*         ``sensitive`` rules on ASCII tokens
==========  ================================================  ===================================

Every item carries ``start``/``end`` offsets into the caller's original string and
``text == input[start:end]`` — except sensitive items, which carry only the masked form
(``masked``), so a result can be logged or echoed without leaking the number.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import ahocorasick
from pydantic import Field, field_validator

from .errors import PhrasebookError
from .phrasebook import Phrasebook, StrictModel, check_linear_regex, unique_ids
from .results import ResultModel, build
from .text import Normalized, Normalizer, check_text

OrderKind = Literal["order", "ticket", "tracking", "unknown"]


# --- schema of slots.yaml and products.yaml ------------------------------------------------


class _Book(StrictModel):
    """Shared validators: word lists have no blank words, regexes are linear-time."""

    @field_validator(
        "types",
        "terms",
        "verbs",
        "units",
        "prefixes",
        "qualifiers",
        "excluded_before",
        "excluded_after",
        "call_units",
        "aliases",
        check_fields=False,
    )
    @classmethod
    def _no_blank(cls, v: object) -> object:
        if isinstance(v, (list, dict)) and any(not str(w).strip() for w in v):
            raise ValueError("empty word")
        return v

    @field_validator("model", "regex", check_fields=False)
    @classmethod
    def _linear(cls, v: str) -> str:
        check_linear_regex(v)
        return v


class ProductRules(_Book):
    types: list[str] = Field(default_factory=list, description="Generic product words (冰箱).")
    model: str = Field(description="Regex an ASCII token must match whole to be a model code.")
    not_models: list[str] = Field(default_factory=list, description="Tokens never taken for models.")


class OrderContext(_Book):
    kind: OrderKind
    terms: list[str] = Field(min_length=1)


class OrderShape(_Book):
    id: str
    kind: OrderKind
    regex: str = Field(description="Regex a whole ASCII token must match.")


class OrderRules(StrictModel):
    contexts: list[OrderContext] = Field(default_factory=list)
    gap: int = Field(3, ge=0, le=10, description="Max characters between keyword and number.")
    joiners: str = Field(" :#", description="The only characters allowed in that gap.")
    min_length: int = Field(5, ge=1, le=40, description="Shorter tokens are not order numbers.")
    shapes: list[OrderShape] = Field(default_factory=list)


class WaitRules(_Book):
    units: dict[str, float] = Field(min_length=1, description="Seconds per unit word.")
    prefixes: list[str] = Field(default_factory=list)
    qualifiers: list[str] = Field(default_factory=list)
    excluded_before: list[str] = Field(default_factory=list)
    excluded_after: list[str] = Field(default_factory=list)
    needs_ge: list[str] = Field(default_factory=list, description="Units that need 个 (三个月, not 三月).")
    needs_prefix: list[str] = Field(default_factory=list, description="Units that need a prefix (等了12日).")

    @field_validator("units")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for k, s in v.items():
            if s <= 0:
                raise ValueError(f"unit {k!r} must be a positive number of seconds")
        return v


class ContactRules(_Book):
    verbs: list[str] = Field(min_length=1)
    units: list[str] = Field(min_length=1)
    call_units: list[str] = Field(default_factory=list)


_CURRENCY = re.compile(r"[A-Z]{3}")


def _currencies(v: dict[str, str]) -> dict[str, str]:
    for k, c in v.items():
        if not _CURRENCY.fullmatch(c):
            raise ValueError(f"{k!r}: currency must be an ISO 4217 code like CNY, not {c!r}")
    return v


class AmountRules(StrictModel):
    prefixes: dict[str, str] = Field(
        default_factory=dict, description="Symbol before the number -> currency."
    )
    units: dict[str, str] = Field(min_length=1, description="Word after the number -> currency.")
    measure_words: list[str] = Field(default_factory=list)

    @field_validator("prefixes", "units")
    @classmethod
    def _iso(cls, v: dict[str, str]) -> dict[str, str]:
        return _currencies(v)


class DateRules(StrictModel):
    relative: dict[str, int] = Field(default_factory=dict, description="Day words -> days from today.")
    not_after_day: str = Field("", description="Characters after N号 that make it no date.")


class SensitiveRule(_Book):
    id: str
    type: str = Field(pattern=r"^[a-z_]+$", description="phone, id_card, bank_card, ...")
    regex: str = Field(description="Regex a whole ASCII token must match.")
    check: Literal["none", "luhn"] = "none"
    keep_start: int = Field(0, ge=0, le=6)
    keep_end: int = Field(0, ge=0, le=6)


class SensitiveContext(_Book):
    type: str = Field(pattern=r"^[a-z_]+$")
    keep_start: int = Field(0, ge=0, le=6)
    keep_end: int = Field(0, ge=0, le=6)
    terms: list[str] = Field(min_length=1)


class SlotsBook(StrictModel):
    """``slots.yaml``: the rules of slot extraction."""

    version: int = 1
    products: ProductRules
    orders: OrderRules
    waits: WaitRules
    contacts: ContactRules
    amounts: AmountRules
    dates: DateRules
    sensitive: list[SensitiveRule] = Field(default_factory=list)
    sensitive_contexts: list[SensitiveContext] = Field(default_factory=list)


class Product(_Book):
    id: str
    name: str = Field(description="How a reply names it.")
    aliases: list[str] = Field(default_factory=list, description="What customers write; the name counts too.")


class ProductsBook(StrictModel):
    """``products.yaml``: the company's own product list."""

    version: int = 1
    products: list[Product] = Field(default_factory=list)


def _check_slots(path: Path, book: SlotsBook) -> None:
    unique_ids(
        path,
        [(f"sensitive.{i}.id", r.id) for i, r in enumerate(book.sensitive)]
        + [(f"orders.shapes.{i}.id", s.id) for i, s in enumerate(book.orders.shapes)],
    )


def _check_products(path: Path, book: ProductsBook) -> None:
    unique_ids(path, [(f"products.{i}.id", p.id) for i, p in enumerate(book.products)])


# --- result models ------------------------------------------------------------------------


class _Item(ResultModel):
    start: int = Field(description="Offset of the first character in the original input.")
    end: int = Field(description="Offset one past the last character; text == input[start:end].")
    text: str = Field(description="The original characters, exactly as given.")


class ProductSlot(_Item):
    """A product the customer names."""

    kind: Literal["catalogue", "model", "type"] = Field(
        description="catalogue: from products.yaml; model: a model code (A3); type: a product word (冰箱)."
    )
    name: str = Field(description="Catalogue name, the model code in upper case, or the product word.")
    product_id: str | None = Field(None, description="Catalogue id, for kind 'catalogue'.")


class OrderSlot(_Item):
    """An order, ticket or tracking number."""

    kind: OrderKind = Field(description="order, ticket, tracking, or unknown (recognised by shape).")
    value: str = Field(description="The number in upper case, half-width.")
    cue: str = Field(description="The keyword before it (订单号) or the shape rule id.")


class WaitSlot(_Item):
    """How long the customer has waited: 等了12天, 三个星期, 一个多月了."""

    duration: timedelta | None = Field(
        description="The time, where computable (几天: None); a month is 30 days."
    )
    approximate: bool = Field(description="多, 快, 将近, 几 …: the figure is a lower bound or a guess.")


class ContactSlot(_Item):
    """How many times the customer got in touch: 第三次, 打了五次电话."""

    kind: Literal["ordinal", "count"] = Field(description="ordinal: 第三次; count: 打了五次.")
    count: int | None = Field(description="The number, where given (好几次: None).")
    approximate: bool = Field(description="二十多次, 好几次.")


class AmountSlot(_Item):
    """An amount of money: 199元, ¥29.9, 两百多块."""

    value: float | None = Field(description="The amount.")
    currency: str = Field(description="ISO 4217 code (元 and 块 are taken as CNY).")
    approximate: bool = Field(description="两百多块: the figure is a lower bound.")


class DateSlot(_Item):
    """A date: 2024年5月12日, 5月12号, 12号, 昨天."""

    year: int | None = Field(None, description="Year, when written.")
    month: int | None = Field(None, description="Month, when written.")
    day: int | None = Field(None, description="Day of the month, when written.")
    offset_days: int | None = Field(None, description="For 昨天 / 前天 …: days relative to the message date.")


class SensitiveSlot(ResultModel):
    """A personal number. Its digits are never stored: only the masked form is."""

    start: int = Field(description="Offset of the first character in the original input.")
    end: int = Field(description="Offset one past the last character.")
    type: str = Field(description="phone, id_card, bank_card, ...")
    masked: str = Field(description="input[start:end] with all but a few letters and digits as '*'.")
    rule: str = Field(description="The sensitive rule id, or 'context:<keyword>'.")


class Slots(ResultModel):
    """The facts found in one message, each located in the original string."""

    products: list[ProductSlot] = Field(description="Products, model codes and product words.")
    orders: list[OrderSlot] = Field(description="Order, ticket and tracking numbers.")
    waits: list[WaitSlot] = Field(description="Waiting times.")
    contacts: list[ContactSlot] = Field(description="Repeated contacts.")
    amounts: list[AmountSlot] = Field(description="Amounts of money.")
    dates: list[DateSlot] = Field(description="Dates.")
    sensitive: list[SensitiveSlot] = Field(description="Personal numbers (masked): never echo them.")
    truncated: bool = Field(False, description="The text was longer than the limit; only its start was read.")


# --- numbers --------------------------------------------------------------------------------

_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUM = "零〇一二两三四五六七八九十百千万"


def parse_number(s: str) -> float | None:
    """Arabic or Chinese numerals to a number; None when not exact (几, 两三).

    >>> parse_number("十二"), parse_number("一百零五"), parse_number("两万"), parse_number("1,299.5")
    (12.0, 105.0, 20000.0, 1299.5)
    """
    if not s:
        return None
    if s[0].isascii():
        try:
            return float(s.replace(",", ""))
        except ValueError:
            return None
    if s == "半":
        return 0.5
    total = section = 0
    digit: int | None = None
    for ch in s:
        if ch in _CN_DIGITS:
            if digit is not None:  # 两三: a range, not a number
                return None
            digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            section += (1 if digit is None else digit) * _CN_UNITS[ch]
            digit = None
        elif ch == "万":
            total += (section + (digit or 0)) * 10000
            section, digit = 0, None
        elif ch not in "零〇":
            return None  # 几, 半 inside a number
    return float(total + section + (digit or 0))


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask_span(original: str, keep_start: int, keep_end: int) -> str:
    """Replace letters and digits with '*' except the first ``keep_start`` and last ``keep_end``.

    Separators stay, so the masked form has the original's length: ``138****5678``.
    """
    positions = [i for i, c in enumerate(original) if c.isalnum()]
    if keep_start + keep_end >= len(positions):  # too short to show anything safely
        keep_start = keep_end = 0
    hide = set(positions[keep_start : len(positions) - keep_end])
    return "".join("*" if i in hide else c for i, c in enumerate(original))


# --- the compiled matcher -------------------------------------------------------------------

_ORDER_CTX, _SENS_CTX, _CATALOGUE, _TYPE, _RELATIVE = range(5)
# An ASCII token: letters and digits, with single '-' or ' ' between runs (138 1234 5678).
_TOKEN = re.compile(r"\+?[0-9a-z]+(?:[- ][0-9a-z]+)*")
_DIGIT = re.compile(r"[0-9]")
_APPROX = frozenset({"快", "将近", "差不多", "超过", "至少", "大概"})
_NUM = r"[0-9]+(?:\.[0-9]+)?|[" + _CN_NUM + "半几]+"
_ANUM = r"[0-9][0-9,]*(?:\.[0-9]+)?|[" + _CN_NUM + "]+"
# Where a number-led slot can start: every maximal run of digits or Chinese numerals.
_NUM_RUN = re.compile(r"[0-9]+|[" + _CN_NUM + "半几]+")
_ORDINAL = ("第 ", "第")
_MAGNITUDE = {"万": 10000, "千": 1000, "百": 100}
# A wait of more than this is a misreading (2024年 is a year, not a wait).
_MAX_WAIT = timedelta(days=365 * 30)


# Intermediate results, in normalised coordinates (start, end, ...):
_Keyword = tuple[int, int, tuple[Any, ...]]  # (end, start, (kind, payload, term)): automaton hits
_Sensitive = tuple[int, int, str, int, int, str]  # type, keep_start, keep_end, rule id
_Order = tuple[int, int, str, str, str]  # kind, token, cue
_Model = tuple[int, int, str]  # token
_Candidate = tuple[int, int, int, tuple[Any, ...]]  # family (0 wait … 3 date), payload


def _width(pattern: str) -> tuple[int, int]:
    """Shortest and longest string ``pattern`` can match."""
    try:
        import re._parser as sre_parse  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse  # type: ignore[no-redef,unused-ignore]
    lo, hi = sre_parse.parse(pattern).getwidth()
    return int(lo), int(hi)


def _alt(words: Iterable[str]) -> str:
    """Regex alternation of literal words, longest first (Python takes the first that fits)."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


class SlotMatcher:
    """``slots.yaml`` + ``products.yaml`` compiled once per phrasebook; immutable, thread-safe."""

    def __init__(
        self,
        book: SlotsBook,
        products: ProductsBook,
        normalizer: Normalizer,
        source: str = "slots.yaml",
        products_source: str = "products.yaml",
    ) -> None:
        self.book = book
        fold = normalizer.fold
        auto = ahocorasick.Automaton()
        owner: dict[str, str] = {}

        def add(term: str, value: tuple[object, ...], where: str, src: str, override: bool = False) -> None:
            key = fold(term)
            if not key:
                raise PhrasebookError(src, f"term {term!r} is empty after normalisation", key=where)
            if key in owner and not override:
                raise PhrasebookError(
                    src, f"term {term!r} appears twice ({owner[key]} and {where})", key=where
                )
            owner[key] = where
            auto.add_word(key, (value[0], len(key), *value[1:]))

        for c in book.orders.contexts:
            for t in c.terms:
                add(t, (_ORDER_CTX, c.kind, fold(t)), f"orders.contexts[{c.kind}]", source)
        for sc in book.sensitive_contexts:
            for t in sc.terms:
                add(
                    t,
                    (_SENS_CTX, (sc.type, sc.keep_start, sc.keep_end), fold(t)),
                    f"sensitive_contexts[{sc.type}]",
                    source,
                )
        for t in book.products.types:
            add(t, (_TYPE, t, None), "products.types", source)
        for t, days in book.dates.relative.items():
            add(t, (_RELATIVE, days, None), "dates.relative", source)
        seen_alias: set[str] = set()
        for i, p in enumerate(products.products):
            for alias in dict.fromkeys([p.name, *p.aliases]):
                where = f"products.{i}.aliases"
                if fold(alias) in seen_alias:
                    raise PhrasebookError(products_source, f"alias {alias!r} appears twice", key=where)
                seen_alias.add(fold(alias))
                # The company's list wins over the generic words of slots.yaml.
                add(alias, (_CATALOGUE, p.id, p.name), where, products_source, override=True)
        if len(auto):
            auto.make_automaton()
        self._auto = auto if len(auto) else None

        # Each rule with the token lengths it can match, to skip it cheaply on the others.
        self._sensitive = [(re.compile(r.regex), r, *_width(r.regex)) for r in book.sensitive]
        self._shapes = [(re.compile(s.regex), s, *_width(s.regex)) for s in book.orders.shapes]
        self._model = re.compile(book.products.model)
        self._not_models = frozenset(fold(t) for t in book.products.not_models)
        self._joiners = frozenset((fold(ch) or " ") for ch in book.orders.joiners)
        self._build_regexes(fold)

    def _build_regexes(self, f: Callable[[str], str]) -> None:
        """Compile the number-led patterns from the word lists, normalised like the text.

        Each pattern starts at a number, so the numeric pass finds number runs once and tries
        each pattern anchored there; the words before a number (等了, 第, ¥) are checked with
        ``str.endswith`` instead of inside the regexes, which keeps every regex a cheap,
        anchored, linear match.
        """
        b = self.book

        def words(ws: Iterable[str]) -> tuple[str, ...]:
            return tuple(sorted({f(w) for w in ws}, key=lambda w: (-len(w), w)))

        w = b.waits
        self._wait_units = {f(k): v for k, v in w.units.items()}
        self._wait_pre, self._wait_q = words(w.prefixes), words(w.qualifiers)
        self._wait_xb, self._wait_xa = words(w.excluded_before), words(w.excluded_after)
        self._wait_needs_ge, self._wait_needs_pre = (
            frozenset(words(w.needs_ge)),
            frozenset(words(w.needs_prefix)),
        )
        self._wait = re.compile(
            rf"(?P<num>{_NUM}) ?(?P<ge>个)?(?P<more>多|半)? ?"
            rf"(?P<unit>{_alt(self._wait_units)})(?P<half>半)?(?P<more2>多)?"
        )
        c = b.contacts
        self._contact_verbs = words(c.verbs)
        self._ordinal_units = frozenset(words(c.units))
        self._contact = re.compile(
            rf"(?P<n>[0-9]+|[一二两三四五六七八九十几]+) ?(?P<more>多)? ?"
            rf"(?P<unit>{_alt(words(c.units + c.call_units))})"
        )
        a = b.amounts
        self._prefix_cur = {f(k): v for k, v in a.prefixes.items()}
        self._prefixes = words(self._prefix_cur)
        self._unit_cur = {f(k): v for k, v in a.units.items()}
        self._measure = frozenset(words(a.measure_words))
        self._amount = re.compile(
            rf"(?P<num>{_ANUM})(?P<mag>万|千|百)?(?P<more>多)? ?(?P<unit>{_alt(self._unit_cur)})?"
        )
        self._stop = frozenset(b.dates.not_after_day)
        cnd = "[一二三四五六七八九十]{1,3}"
        self._date = re.compile(
            r"(?P<y>(?:19|20)[0-9]{2}) ?[-/.年] ?(?P<m>[0-9]{1,2}) ?[-/.月] ?(?P<d>[0-9]{1,2})(?: ?[日号])?"
            rf"|(?:(?P<y2>(?:19|20)[0-9]{{2}}) ?年 ?)?(?P<m2>[0-9]{{1,2}}|{cnd}) ?月"
            rf" ?(?:(?P<d2>[0-9]{{1,2}}|{cnd}) ?[日号])?"
            rf"|(?P<d3>[0-9]{{1,2}}|{cnd}) ?[日号]"
        )

        # Which families (0 waits, 1 contacts, 2 amounts, 3 dates) can match, by the character
        # right after a number run; the others are not tried there.
        follows: list[set[str]] = [
            {u[0] for u in self._wait_units} | set("个多半. "),
            {u[0] for u in words(c.units + c.call_units)} | set("多 "),
            {u[0] for u in self._unit_cur} | set("万千百多,. "),
            set("年月日号-/. "),
        ]
        by_next: dict[str, tuple[int, ...]] = {}
        for family, chars in enumerate(follows):
            for ch in chars | set("0123456789"):  # a run may end inside a longer number (1.5, 1,299)
                by_next[ch] = (*by_next.get(ch, ()), family)
        self._by_next = by_next
        self._prefix_end = frozenset(p[-1] for p in self._prefixes)
        self._families = (
            (self._wait, self._add_wait),
            (self._contact, self._add_contact),
            (self._amount, self._add_amount),
            (self._date, self._add_date),
        )

    # -- the token pass: sensitive numbers, order numbers and model codes

    def tokens(self, t: str, contexts: list[_Keyword]) -> tuple[list[_Sensitive], list[_Order], list[_Model]]:
        """(sensitive, orders, models) as (start, end, ...) in normalised coordinates."""
        sensitive: list[_Sensitive] = []
        orders: list[_Order] = []
        models: list[_Model] = []
        for m in _TOKEN.finditer(t):
            tok = m.group()
            if not _DIGIT.search(tok):
                continue
            if not self._classify(t, m.start(), tok, contexts, sensitive, orders, models) and " " in tok:
                pos = m.start()
                for part in tok.split(" "):
                    if _DIGIT.search(part):
                        self._classify(t, pos, part, contexts, sensitive, orders, models)
                    pos += len(part) + 1
        return sensitive, orders, models

    def _context(self, t: str, start: int, contexts: list[_Keyword]) -> tuple[Any, ...] | None:
        gap = self.book.orders.gap
        # The last keyword ending at or before ``start`` (keywords are in text order); a search,
        # not a walk back over every later keyword, which is quadratic over many tokens.
        i = bisect_right(contexts, start, key=_end_of)
        if i == 0:
            return None
        c_end, _, value = contexts[i - 1]
        if start - c_end <= gap and all(ch in self._joiners for ch in t[c_end:start]):
            return value
        return None

    def _classify(
        self,
        t: str,
        start: int,
        tok: str,
        contexts: list[_Keyword],
        sensitive: list[_Sensitive],
        orders: list[_Order],
        models: list[_Model],
    ) -> bool:
        end = start + len(tok)
        ctx = self._context(t, start, contexts) if contexts else None
        digits = sum(ch.isdigit() for ch in tok)
        if ctx is not None and ctx[0] == _ORDER_CTX and len(tok) >= self.book.orders.min_length:
            orders.append((start, end, ctx[1], tok, ctx[2]))
            return True
        if digits >= 6:
            n = len(tok)
            for rx, rule, lo, hi in self._sensitive:
                if (
                    lo <= n <= hi
                    and rx.fullmatch(tok)
                    and (rule.check != "luhn" or _luhn("".join(filter(str.isdigit, tok))))
                ):
                    sensitive.append((start, end, rule.type, rule.keep_start, rule.keep_end, rule.id))
                    return True
            if ctx is not None and ctx[0] == _SENS_CTX and digits >= 7:
                # No rule knows this shape, but the word before says what it is (卡号 …).
                typ, ks, ke = ctx[1]
                sensitive.append((start, end, typ, ks, ke, f"context:{ctx[2]}"))
                return True
            for rx, shape, lo, hi in self._shapes:
                if lo <= n <= hi and rx.fullmatch(tok):
                    orders.append((start, end, shape.kind, tok, shape.id))
                    return True
        if self._model.fullmatch(tok) and tok not in self._not_models:
            models.append((start, end, tok))
            return True
        return False

    # -- the numeric pass: waits, contacts, amounts, dates

    def numeric(self, t: str, skip: list[tuple[int, int]]) -> list[_Candidate]:
        """Candidates (start, end, family, payload); family 0 waits, 1 contacts, 2 amounts, 3 dates.

        Number runs inside ``skip`` (phone, order and model tokens) start nothing.
        """
        out: list[_Candidate] = []
        n = len(t)
        by_next, prefix_end, families = self._by_next, self._prefix_end, self._families
        blocked = _cover(n, skip)
        # End of the number of the last amount match: a run after a comma before it (the 299
        # of 1,299) starts no amount of its own. Its match would end where that one does, so
        # a long 1,1,1,… would be matched again from every run: quadratic time.
        amount_reach = 0
        for run in _NUM_RUN.finditer(t):
            s, e = run.span()
            # Which patterns can start here depends on the character after the number (天 for
            # a wait, 次 for a contact …) and, for money, on a currency sign before it.
            tried = by_next.get(t[e], ()) if e < n else ()
            if s and (t[s - 1] in prefix_end or (t[s - 1] == " " and s > 1 and t[s - 2] in prefix_end)):
                tried = (*tried, 2) if 2 not in tried else tried
            if not tried or blocked[s]:
                continue  # 一直, 一下: nothing a slot needs comes after this number
            for family in tried:
                if family == 2 and s < amount_reach and t[s - 1] == ",":
                    continue
                rx, add = families[family]
                m = rx.match(t, s)
                if m is not None:
                    if family == 2:
                        amount_reach = m.end("num")
                    add(t, m, out)
        return out

    def _add_wait(self, t: str, m: re.Match[str], out: list[_Candidate]) -> None:
        start = m.start()
        q = _word_before(t, start, self._wait_q)
        pos = start if q is None else q
        pre = _word_before(t, pos, self._wait_pre)
        excluded = _word_before(t, pos, self._wait_xb)
        if excluded is not None and (pre is None or excluded <= pre):
            return  # 保修期一年, 这两天, 每三天
        unit = m["unit"]
        if unit in self._wait_needs_ge and not m["ge"] and m["num"] != "半":
            return  # 三月 is March; 三个月 is three months
        if unit in self._wait_needs_pre and pre is None:
            return  # 12日 is a date; 等了12日 is a wait
        if t.startswith(self._wait_xa, m.end()):
            return  # 2小时内, 三天后: a time to come
        n = parse_number(m["num"])
        if n is None:
            duration, approx = None, True
        else:
            if m["more"] == "半" or m["half"]:
                n += 0.5
            seconds = n * self._wait_units[unit]
            if seconds > _MAX_WAIT.total_seconds():
                return  # also keeps timedelta from overflowing on 等了99999999999天
            duration = timedelta(seconds=seconds)
            approx = "多" in (m["more"], m["more2"]) or (q is not None and t[q:start] in _APPROX)
        first = pre if pre is not None else pos
        out.append((first, m.end(), 0, (duration, approx)))

    def _add_contact(self, t: str, m: re.Match[str], out: list[_Candidate]) -> None:
        start = m.start()
        n = parse_number(m["n"])
        count = None if n is None else int(n)
        ordinal = _word_before(t, start, _ORDINAL) if m["unit"] in self._ordinal_units else None
        if ordinal is not None:
            out.append((ordinal, m.end(), 1, ("ordinal", count, n is None)))
            return
        pos = start - 1 if start and t[start - 1] == "好" else start  # 好几次
        if pos and t[pos - 1] == " ":
            pos -= 1
        if pos and t[pos - 1] == "了":
            pos -= 1
        verb = _word_before(t, pos, self._contact_verbs)
        if verb is not None:
            out.append((verb, m.end(), 1, ("count", count, n is None or m["more"] is not None)))

    def _add_amount(self, t: str, m: re.Match[str], out: list[_Candidate]) -> None:
        start = m.start()
        cur = _word_before(t, start, self._prefixes)
        if cur is None and start >= 2 and t[start - 1] == " ":
            cur = _word_before(t, start - 1, self._prefixes)
        unit, num, mag = m["unit"], m["num"], m["mag"]
        if cur is None and unit is None:
            return
        chinese = not num[0].isascii()
        if (
            cur is None
            and unit in self._measure
            and chinese
            and not mag
            and not any(c in "十百千万" for c in num)
        ):
            return  # 一块屏幕: a measure word, not money
        currency = self._unit_cur[unit] if unit else self._prefix_cur[t[cur:start].strip()]
        value = parse_number(num)
        if value is not None and mag:
            value *= _MAGNITUDE[mag]
        end = m.end() if unit else m.end("more") if m["more"] else m.end("mag") if mag else m.end("num")
        out.append((start if cur is None else cur, end, 2, (value, currency, m["more"] is not None)))

    def _add_date(self, t: str, m: re.Match[str], out: list[_Candidate]) -> None:
        if m["d3"] is not None and m.end() < len(t) and t[m.end()] in self._stop:
            return  # 1号线, 5号楼, 3日内
        y, mo, d = m["y"] or m["y2"], m["m"] or m["m2"], m["d"] or m["d2"] or m["d3"]
        month = int(parse_number(mo) or 0) if mo else None
        day = int(parse_number(d) or 0) if d else None
        if (month is not None and not 1 <= month <= 12) or (day is not None and not 1 <= day <= 31):
            return
        out.append((m.start(), m.end(), 3, (int(y) if y else None, month, day)))


def _word_before(t: str, pos: int, words: tuple[str, ...]) -> int | None:
    """Start of the longest of ``words`` ending at ``pos``, or None."""
    if not words or not t.endswith(words, 0, pos):  # one C call for the usual miss
        return None
    for w in words:
        if t.endswith(w, 0, pos):
            return pos - len(w)
    return None


# --- the analyser ---------------------------------------------------------------------------


def slot_extractor(phrasebook: Phrasebook) -> SlotExtractor:
    """The slot extraction of ``phrasebook``, compiled once and shared."""
    return phrasebook.cached("slots", lambda: SlotExtractor(phrasebook))


def _end_of(keyword: _Keyword) -> int:
    return keyword[0]


def _cover(n: int, spans: Iterable[tuple[int, int]]) -> bytearray:
    """One byte per character of a text of length ``n``: 1 inside one of ``spans``, else 0.

    Tests whether a span overlaps any of them (``cover.find(1, start, end) >= 0``) in time
    proportional to its own length, where comparing it with each would be quadratic.
    """
    cover = bytearray(n)
    for s, e in spans:
        cover[s:e] = b"\x01" * (e - s)
    return cover


class SlotExtractor:
    """Slot extraction bound to one phrasebook; thread-safe, immutable."""

    def __init__(self, phrasebook: Phrasebook) -> None:
        self._normalizer = phrasebook.normalizer
        self._m = SlotMatcher(
            phrasebook.book("slots.yaml", SlotsBook, _check_slots),
            phrasebook.book("products.yaml", ProductsBook, _check_products),
            phrasebook.normalizer,
            str(phrasebook.file("slots.yaml")),
            str(phrasebook.file("products.yaml")),
        )

    def _keywords(self, t: str) -> list[_Keyword]:
        """Automaton hits (end, start, value) in order; catalogue aliases respect ASCII edges."""
        auto = self._m._auto
        if auto is None:
            return []
        out = []
        for last, value in auto.iter_long(t):
            end = last + 1
            start = end - value[1]
            if value[0] == _CATALOGUE and (
                (
                    t[start].isascii()
                    and t[start].isalnum()
                    and start > 0
                    and t[start - 1].isascii()
                    and t[start - 1].isalnum()
                )
                or (
                    t[end - 1].isascii()
                    and t[end - 1].isalnum()
                    and end < len(t)
                    and t[end].isascii()
                    and t[end].isalnum()
                )
            ):
                continue
            out.append((end, start, (value[0], *value[2:])))
        return out

    def extract(self, text: str) -> Slots:
        """The slots of one message (see :func:`agent_assist.extract_slots`)."""
        check_text(text)
        return self.extract_normalized(self._normalizer.normalize(text))

    def extract_normalized(self, norm: Normalized) -> Slots:
        """:meth:`extract` for a message already normalised by this phrasebook's normaliser."""
        t = norm.text
        m = self._m
        keywords = self._keywords(t)
        contexts = [k for k in keywords if k[2][0] in (_ORDER_CTX, _SENS_CTX)]
        sens, orders, models = m.tokens(t, contexts)
        taken = [(s[0], s[1]) for s in sens] + [(o[0], o[1]) for o in orders]
        numeric = m.numeric(t, taken + [(s, e) for s, e, _ in models])
        chosen: list[_Candidate] = []
        covered = _cover(len(t), taken)
        # Longest first, then waits > contacts > amounts > dates; never over a number token.
        for cand in sorted(numeric, key=lambda c: (c[0] - c[1], c[2], c[0])) if len(numeric) > 1 else numeric:
            s, e = cand[0], cand[1]
            if covered.find(1, s, e) < 0:
                covered[s:e] = b"\x01" * (e - s)
                chosen.append(cand)
        chosen.sort()
        return self._result(norm, keywords, sens, orders, models, chosen)

    def mask(self, text: str, norm: Normalized | None = None) -> str:
        """``text`` with every sensitive number masked (same length; see :func:`mask_sensitive`);
        ``text`` itself when there is none. ``norm``: ``text`` normalised, if at hand."""
        check_text(text)
        if norm is None:
            norm = self._normalizer.normalize(text)
        if sum(map(norm.text.count, "0123456789")) < 6:
            return text  # a sensitive number has six digits at least (_classify): most texts have fewer
        contexts = [k for k in self._keywords(norm.text) if k[2][0] in (_ORDER_CTX, _SENS_CTX)]
        sens, _, _ = self._m.tokens(norm.text, contexts)
        if not sens:
            return text
        out, pos = [], 0
        for s, e, _, ks, ke, _ in sens:
            o_start, o_end = norm.span(s, e)
            out += [text[pos:o_start], mask_span(text[o_start:o_end], ks, ke)]
            pos = o_end
        out.append(text[pos:])
        return "".join(out)

    def _result(
        self,
        norm: Normalized,
        keywords: list[_Keyword],
        sens: list[_Sensitive],
        orders: list[_Order],
        models: list[_Model],
        chosen: list[_Candidate],
    ) -> Slots:
        original = norm.original

        def span(s: int, e: int) -> tuple[int, int, str]:
            o_start, o_end = norm.span(s, e)
            return o_start, o_end, original[o_start:o_end]

        products: list[ProductSlot] = []
        dates: list[DateSlot] = []
        catalogue_spans = []
        for end, start, value in keywords:
            kind = value[0]
            if kind == _CATALOGUE:
                catalogue_spans.append((start, end))
                a, b, txt = span(start, end)
                products.append(
                    build(
                        ProductSlot,
                        start=a,
                        end=b,
                        text=txt,
                        kind="catalogue",
                        name=value[2],
                        product_id=value[1],
                    )
                )
            elif kind == _TYPE:
                a, b, txt = span(start, end)
                products.append(
                    build(ProductSlot, start=a, end=b, text=txt, kind="type", name=value[1], product_id=None)
                )
            elif kind == _RELATIVE:
                a, b, txt = span(start, end)
                dates.append(
                    build(
                        DateSlot,
                        start=a,
                        end=b,
                        text=txt,
                        year=None,
                        month=None,
                        day=None,
                        offset_days=value[1],
                    )
                )
        in_catalogue = _cover(len(norm.text), catalogue_spans) if catalogue_spans else None
        for s, e, tok in models:
            if in_catalogue is None or in_catalogue.find(1, s, e) < 0:
                a, b, txt = span(s, e)
                products.append(
                    build(
                        ProductSlot, start=a, end=b, text=txt, kind="model", name=tok.upper(), product_id=None
                    )
                )
        order_items = []
        for s, e, kind, tok, cue in orders:
            a, b, txt = span(s, e)
            order_items.append(
                build(OrderSlot, start=a, end=b, text=txt, kind=kind, value=tok.upper(), cue=cue)
            )
        sensitive = []
        for s, e, typ, ks, ke, rule in sens:
            a, b, txt = span(s, e)
            sensitive.append(
                build(SensitiveSlot, start=a, end=b, type=typ, masked=mask_span(txt, ks, ke), rule=rule)
            )
        waits, contacts, amounts = [], [], []
        for s, e, family, p in chosen:
            a, b, txt = span(s, e)
            if family == 0:
                waits.append(build(WaitSlot, start=a, end=b, text=txt, duration=p[0], approximate=p[1]))
            elif family == 1:
                contacts.append(
                    build(ContactSlot, start=a, end=b, text=txt, kind=p[0], count=p[1], approximate=p[2])
                )
            elif family == 2:
                amounts.append(
                    build(AmountSlot, start=a, end=b, text=txt, value=p[0], currency=p[1], approximate=p[2])
                )
            else:
                dates.append(
                    build(
                        DateSlot, start=a, end=b, text=txt, year=p[0], month=p[1], day=p[2], offset_days=None
                    )
                )
        if len(products) > 1:
            products.sort(key=lambda p: p.start)
        if len(dates) > 1:
            dates.sort(key=lambda d: d.start)
        return build(
            Slots,
            products=products,
            orders=order_items,
            waits=waits,
            contacts=contacts,
            amounts=amounts,
            dates=dates,
            sensitive=sensitive,
        )
