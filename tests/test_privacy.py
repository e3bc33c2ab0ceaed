"""Redaction: what gets masked, and that masks only ever fall on ASCII/full-width letters and digits."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_assist import redact

_ALNUM = re.compile("[0-9A-Za-z\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")

_pieces = st.sampled_from(
    [
        "电话",
        "手机号",
        "身份证号",
        "卡号",
        "邮箱",
        "车牌",
        "是",
        "：",
        " ",
        "　",
        "一三八",
        "零",
        "13812345678",
        "１３８１２３４５６７８",
        "6222021234567890128",
        "110101199003074578",
        "zhang.san@example.com",
        "ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "粤B12345",
        "京A·D12345",
        "订单号",
        "20261123000012345",
        "①②",
        "٣٤",
        "é",
        "\u200b",
        "\ud800",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=6)), max_size=10).map("".join))
def test_masks_fall_only_on_ascii_or_full_width_letters_and_digits(text: str) -> None:
    masked = redact(text)
    assert len(masked) == len(text)
    for i, (a, b) in enumerate(zip(text, masked, strict=True)):
        if a != b:
            assert _ALNUM.match(a), (text, i)
            assert b == "*"


def test_what_is_masked() -> None:
    text = "电话13812345678，身份证110101199003074578，邮箱zhang.san@example.com，车牌粤B12345"
    masked = redact(text)
    assert "13812345678" not in masked and "138****5678" in masked
    assert "110101199003074578" not in masked
    assert "zhang.san" not in masked and "@example.com" in masked
    assert "粤B*****" in masked
    plain = "我等了三天还没收到，太让人失望了"
    assert redact(plain) == plain


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "电话13812345678",
                "，",
                "邮箱zhang.san@example.com",
                "車牌粵B12345",
                " \u200b ",
                "１３８１２３４５６７８",
                "订单号2024112300001",
                "您好",
                "\t\t",
                "身份证110101199003071234",
                "卡号6222 0212 3456 7890 123",
            ]
        ),
        max_size=6,
    ).map("".join)
)
def test_redacting_with_the_callers_normalised_text_changes_nothing(text: str) -> None:
    """QA hands the redactor the turn it normalised already; the masks must be the same."""
    from agent_assist import Assistant

    a = Assistant()
    norm = a.phrasebook.normalizer.normalize(text)
    assert a.redactor.redact(text, norm=norm) == a.redactor.redact(text) == redact(text)
