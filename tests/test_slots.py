"""Slot extraction: one test per slot type and rule of phrasebooks/slots.yaml, plus masking."""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import read_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

import agent_assist
from agent_assist import Assistant, Phrasebook, PhrasebookError, Slots
from agent_assist.phrasebook import bundled_phrasebooks
from agent_assist.slots import SlotExtractor, mask_span, parse_number, slot_extractor


@pytest.fixture(scope="module")
def x() -> SlotExtractor:
    return slot_extractor(Phrasebook())


def _copy_default(tmp_path: Path) -> Path:
    target = tmp_path / "pb"
    shutil.copytree(bundled_phrasebooks(), target)
    return target


def _items(s: Slots) -> list:
    return [
        i
        for field in ("products", "orders", "waits", "contacts", "amounts", "dates")
        for i in getattr(s, field)
    ]


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("12", 12),
        ("1,299.5", 1299.5),
        ("三", 3),
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("两百", 200),
        ("一百零五", 105),
        ("一百九十九", 199),
        ("三千", 3000),
        ("两万", 20000),
        ("半", 0.5),
        ("几", None),
        ("十几", None),
        ("两三", None),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


# --- products ---------------------------------------------------------------------------------


def test_model_codes_and_product_words(x):
    s = x.extract("买的a3音箱和B7扫地机器人都坏了，5G信号也差")
    assert [(p.text, p.kind, p.name) for p in s.products] == [
        ("a3", "model", "A3"),
        ("音箱", "type", "音箱"),
        ("B7", "model", "B7"),
        ("扫地机器人", "type", "扫地机器人"),
    ]


def test_catalogue_from_the_company_product_list(tmp_path):
    d = tmp_path / "company"
    d.mkdir()
    (d / "products.yaml").write_text(
        "products:\n"
        "  - {id: a3, name: A3 智能音箱, aliases: [A3, 小A音箱]}\n"
        "  - {id: x9, name: X9 净水器, aliases: [X9, 净水器X9]}\n",
        encoding="utf-8",
    )
    s = Assistant(d).extract_slots("小A音箱连不上网，A30没问题，淨水器X9也漏水")
    cat = [(p.text, p.product_id, p.name) for p in s.products if p.kind == "catalogue"]
    assert cat == [("小A音箱", "a3", "A3 智能音箱"), ("淨水器X9", "x9", "X9 净水器")]  # not inside A30
    assert ("A30", "model") in [(p.text, p.kind) for p in s.products]


# --- order, ticket and tracking numbers -------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("订单号：DD20240512001，还没发货", "order", "DD20240512001"),
        ("訂單編號 123456789012 一直沒出貨", "order", "123456789012"),
        ("工单号是GD-7788-01，没人处理", "ticket", "GD-7788-01"),
        ("快递单号SF1234567890123查不到", "tracking", "SF1234567890123"),
        ("SF1234567890123 一直显示运输中", "tracking", "SF1234567890123"),  # by shape
        ("JD0012345678901 到哪了", "tracking", "JD0012345678901"),
        ("单号 20240512000123 请查一下", "order", "20240512000123"),
        ("20240512000123 这个订单还没到", "unknown", "20240512000123"),  # a long number, by shape
    ],
)
def test_orders(x, text, kind, value):
    s = x.extract(text)
    assert [(o.kind, o.value) for o in s.orders] == [(kind, value)]
    assert not s.sensitive


def test_short_tokens_after_an_order_word_are_no_order(x):
    assert not x.extract("订单号123").orders


# --- waits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, span, duration, approximate",
    [
        ("等了12天还没发货", "等了12天", timedelta(days=12), False),
        ("三个星期了还没到", "三个星期", timedelta(days=21), False),
        ("都一个多月了", "都一个多月", timedelta(days=30), True),
        ("半个月了没人管", "半个月", timedelta(days=15), False),
        ("一个半月还没修好", "一个半月", timedelta(days=45), False),
        ("快两周了", "快两周", timedelta(days=14), True),
        ("等了兩個禮拜", "等了兩個禮拜", timedelta(days=14), False),  # Traditional
        ("排了四十分钟的队", "排了四十分钟", timedelta(minutes=40), False),
        ("等了1.5小时", "等了1.5小时", timedelta(hours=1.5), False),
        ("一年半了还在修", "一年半", timedelta(days=365 * 1.5), False),
        ("十几天了", "十几天", None, True),  # not computable
        ("已经等了12日", "等了12日", timedelta(days=12), False),
    ],
)
def test_waits(x, text, span, duration, approximate):
    s = x.extract(text)
    assert [(w.text, w.duration, w.approximate) for w in s.waits] == [(span, duration, approximate)]


@pytest.mark.parametrize(
    "text",
    [
        "保修期一年",
        "2小时内给您回复",
        "三天后发货",
        "这两天手机老是死机",
        "每三天要充一次电",
        "5月买的",
        "12日到的",
    ],
)
def test_not_waits(x, text):
    assert not x.extract(text).waits


# --- contacts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind, count, approximate",
    [
        ("这已经是第三次打电话了", "ordinal", 3, False),
        ("第3次来找你们", "ordinal", 3, False),
        ("第二十次了", "ordinal", 20, False),
        ("我打了五次电话", "count", 5, False),
        ("打了三个电话都没人接", "count", 3, False),
        ("催了二十多次", "count", 20, True),
        ("找了好几次都没用", "count", None, True),
        ("這是我第三次打電話", "ordinal", 3, False),  # Traditional
    ],
)
def test_contacts(x, text, kind, count, approximate):
    s = x.extract(text)
    assert [(c.kind, c.count, c.approximate) for c in s.contacts] == [(kind, count, approximate)]


def test_a_count_without_a_contact_verb_is_no_contact(x):
    assert not x.extract("退款分两次到账").contacts


# --- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, span, value, currency, approximate",
    [
        ("扣了199元", "199元", 199, "CNY", False),
        ("退了¥29.9", "¥29.9", 29.9, "CNY", False),
        ("花了1,299.5元", "1,299.5元", 1299.5, "CNY", False),
        ("多扣了两百多块", "两百多块", 200, "CNY", True),
        ("贷款3万元", "3万元", 30000, "CNY", False),
        ("扣了一筆一百九十九元的年費", "一百九十九元", 199, "CNY", False),  # Traditional
        ("订金50刀", "50刀", 50, "USD", False),
        ("收了100港币", "100港币", 100, "HKD", False),
        ("退了 NT$ 350", "NT$ 350", 350, "TWD", False),
        ("五十块钱", "五十块钱", 50, "CNY", False),
    ],
)
def test_amounts(x, text, span, value, currency, approximate):
    s = x.extract(text)
    assert [(a.text, a.value, a.currency, a.approximate) for a in s.amounts] == [
        (span, value, currency, approximate)
    ]


def test_a_measure_word_is_no_money(x):
    assert not x.extract("一块屏幕碎了，三块玻璃").amounts


# --- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, span, ymd, offset",
    [
        ("2024年5月12日买的", "2024年5月12日", (2024, 5, 12), None),
        ("2024-05-12下的单", "2024-05-12", (2024, 5, 12), None),
        ("5月12号到的", "5月12号", (None, 5, 12), None),
        ("十二月三号下单", "十二月三号", (None, 12, 3), None),
        ("15号说好发货", "15号", (None, None, 15), None),
        ("昨天又坏了", "昨天", (None, None, None), -1),
        ("前天打过电话", "前天", (None, None, None), -2),
    ],
)
def test_dates(x, text, span, ymd, offset):
    s = x.extract(text)
    assert [(d.text, (d.year, d.month, d.day), d.offset_days) for d in s.dates] == [(span, ymd, offset)]


@pytest.mark.parametrize("text", ["坐1号线过去", "住在5号楼", "3日内答复", "13月40日"])
def test_not_dates(x, text):
    assert not x.extract(text).dates


# --- sensitive numbers and masking ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, number, type_, masked",
    [
        ("我电话13812345678", "13812345678", "phone", "138****5678"),
        ("手机 138-1234-5678 打不通", "138-1234-5678", "phone", "138-****-5678"),
        ("联系我 +86 138 1234 5678", "+86 138 1234 5678", "phone", "+86 1** **** 5678"),
        ("座机010-87654321", "010-87654321", "phone", "010-****4321"),
        ("身份证110101199003071234", "110101199003071234", "id_card", "**************1234"),
        ("身份证号11010119900307123X", "11010119900307123X", "id_card", "**************123X"),
        ("卡号6222 0212 3456 7890 128", "6222 0212 3456 7890 128", "bank_card", "**** **** **** ***0 128"),
        ("我的卡4111111111111111被盗刷了", "4111111111111111", "bank_card", "************1111"),  # Luhn
        ("我的手機0912-345-678", "0912-345-678", "phone", "0912-***-678"),
        ("身分證A123456789", "A123456789", "id_card", "A******789"),
        ("电话１３８１２３４５６７８", "１３８１２３４５６７８", "phone", "１３８****５６７８"),  # full-width
    ],
)
def test_sensitive_numbers_are_masked(x, text, number, type_, masked):
    s = x.extract(text)
    assert [(v.type, v.masked) for v in s.sensitive] == [(type_, masked)]
    v = s.sensitive[0]
    assert text[v.start : v.end] == number and len(v.masked) == len(number)
    assert agent_assist.mask_sensitive(text) == text.replace(number, masked)


def _digit_runs(number: str, n: int = 5) -> set[str]:
    digits = re.sub(r"\D", "", number.translate({c: c - 0xFEE0 for c in range(0xFF10, 0xFF1A)}))
    return {digits[i : i + n] for i in range(len(digits) - n + 1)}


LEAKY = [
    "我的手机号是13812345678，订单号DD20240512001，身份证110101199003071234",
    "电话：138-1234-5678，等了12天还没发货，第三次打电话了",
    "银行卡6222021234567890128被扣了199元",
    "卡号 4111 1111 1111 1111，账单多扣了两百块",
    "+86 139 8765 4321 这是我老婆的电话，我的是13712345678",
    "手機0912345678，身分證A123456789",
]


@pytest.mark.parametrize("text", LEAKY)
def test_masking_never_leaks_digits(x, text):
    s = x.extract(text)
    masked = x.mask(text)
    dumped = s.model_dump_json()
    assert len(masked) == len(text)
    for v in s.sensitive:
        number = text[v.start : v.end]
        for run in _digit_runs(number):
            assert run not in masked, (run, masked)
            assert run not in dumped, (run, dumped)
            assert run not in v.masked


def test_a_slot_never_overlaps_a_sensitive_number(x):
    s = x.extract("电话13812345678元，15912345678号")
    assert len(s.sensitive) == 2 and not s.amounts and not s.dates


def test_mask_span_keeps_separators_and_length():
    assert mask_span("138-1234-5678", 3, 4) == "138-****-5678"
    assert mask_span("1234", 3, 4) == "****"  # too short to show anything


def test_order_numbers_are_not_masked(x):
    text = "订单号123456789012345678"
    assert x.mask(text) == text
    assert x.extract(text).orders[0].kind == "order"


# --- offsets and scripts ----------------------------------------------------------------------


def test_offsets_point_into_the_original(x):
    for row in read_jsonl("triage_domain.jsonl") + [{"text": t} for t in LEAKY]:
        text = row["text"]
        for item in _items(x.extract(text)):
            assert text[item.start : item.end] == item.text, (text, item)


def test_offsets_survive_non_identity_normalisation(x):
    text = "A3  音箱\u200b等了１２天，\t第三次\u3000打电话，订单号：DD2024０５１２００１"
    s = x.extract(text)
    assert [w.duration for w in s.waits] == [timedelta(days=12)]
    assert s.orders[0].value == "DD20240512001"
    for item in _items(s):
        assert text[item.start : item.end] == item.text


@given(
    st.text(
        alphabet="0123456789一二三十两半几个多天月次第元块号日年等了打电话订单 -:：１２３abc\u200b\u3000",
        max_size=40,
    )
)
@settings(max_examples=300, deadline=None)
def test_any_text_gives_valid_offsets_and_same_length_masks(text):
    x = slot_extractor(Phrasebook())
    s = x.extract(text)
    for item in _items(s):
        assert text[item.start : item.end] == item.text
    for v in s.sensitive:
        assert len(v.masked) == v.end - v.start
    assert len(x.mask(text)) == len(text)


# --- the result model and the API -------------------------------------------------------------


def test_result_round_trips_through_validation(x):
    s = x.extract(
        "A3等了三个星期，第三次打电话，扣了199元，5月12号下单，电话13812345678，订单号DD20240512001"
    )
    assert all(getattr(s, f) for f in Slots.model_fields if f != "truncated")
    assert Slots.model_validate(s.model_dump()) == s
    assert Slots.model_validate_json(s.model_dump_json()) == s


def test_module_level_functions_and_exports():
    s = agent_assist.extract_slots("等了12天")
    assert s.waits[0].duration == timedelta(days=12)
    assert agent_assist.mask_sensitive("13812345678") == "138****5678"
    for name in ("extract_slots", "mask_sensitive", "Slots"):
        assert name in agent_assist.__all__


def test_bad_input_type(x):
    with pytest.raises(TypeError):
        x.extract(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        x.mask(b"13812345678")  # type: ignore[arg-type]


def test_thread_safe(x):
    texts = [row["text"] for row in read_jsonl("triage_domain.jsonl")] + LEAKY
    expected = [x.extract(t) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(x.extract, texts)) == expected


# --- a company's own phrasebook directory and validation errors -------------------------------


def test_custom_slots_rules(tmp_path):
    d = tmp_path / "company"
    d.mkdir()
    src = (bundled_phrasebooks() / "slots.yaml").read_text(encoding="utf-8")
    src = src.replace("      terms: [工单号, 工单,", "      terms: [报障号, 工单号, 工单,")
    src = src.replace(
        "sensitive:\n",
        "sensitive:\n  - {id: member_card, type: member_card, keep_end: 2, regex: 'vip[0-9]{8}'}\n",
    )
    (d / "slots.yaml").write_text(src, encoding="utf-8")
    s = Assistant(d).extract_slots("报障号 T20250101 还没人处理，会员卡VIP12345678")
    assert [(o.kind, o.value) for o in s.orders] == [("ticket", "T20250101")]
    assert [(v.type, v.masked) for v in s.sensitive] == [("member_card", "*********78")]


@pytest.mark.parametrize(
    "file, old, new, key, message",
    [
        ("slots.yaml", "元: CNY,", "元: RMB元,", "amounts.units", "ISO 4217"),
        (
            "slots.yaml",
            "regex: '[a-z]{1,4}[0-9]{8,24}'",
            "regex: '([a-z]+)+[0-9]'",
            "orders.shapes.1.regex",
            "nests",
        ),
        ("slots.yaml", "  gap: 3 ", "  gap: 30 ", "orders.gap", "less than or equal"),
        ("slots.yaml", "check: luhn", "check: crc", "sensitive.1.check", "luhn"),
        (
            "products.yaml",
            "products: []",
            "products: [{id: a, name: A}, {id: a, name: B}]",
            "products.1.id",
            "duplicate id",
        ),
        ("products.yaml", "products: []", "products: [{id: a}]", "products.0.name", "required"),
    ],
)
def test_yaml_errors_name_the_file_and_key(tmp_path, file, old, new, key, message):
    d = _copy_default(tmp_path)
    src = (d / file).read_text(encoding="utf-8")
    assert old in src
    (d / file).write_text(src.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PhrasebookError, match=message) as e:
        slot_extractor(Phrasebook(d))
    assert e.value.file.endswith(file) and e.value.key == key
    assert file in str(e.value)


def test_a_term_in_two_roles_is_rejected(tmp_path):
    d = _copy_default(tmp_path)
    src = (d / "slots.yaml").read_text(encoding="utf-8")
    (d / "slots.yaml").write_text(src.replace("  types: [手机,", "  types: [订单号, 手机,"), encoding="utf-8")
    with pytest.raises(PhrasebookError, match="appears twice"):
        slot_extractor(Phrasebook(d))


def test_json_of_a_result_is_plain(x):
    data = json.loads(x.extract("等了12天，扣了199元").model_dump_json())
    assert data["waits"][0]["duration"] == "P12D" and data["amounts"][0]["currency"] == "CNY"
