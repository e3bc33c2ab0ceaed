"""Linear-time regex helpers: the guarded search finds what a plain search finds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_assist.patterns import RunSafeRegex, guard_leading_run, start_class

TIME = [
    r"\d+\s*(个)?\s*(小时|分钟|工作日|天)(之内|以内|内)",
    r"[一二两三四五六七八九十半]+\s*(个)?\s*(小时|天)(之内|以内|内)",
    r"(今天|明天|本周[一二三]?)\s*(上午|下午)?\s*(前|之前)",
    r"(马上|立即)(为您|给您)?(安排|处理)",
]


def test_start_class_holds_every_first_character():
    assert start_class([r"\d+天", "(今天|明天)前"]) == r"[\d今明]"
    assert start_class(["[a-c]x", "y{2,3}"]) == "[a-cy]"
    cls = re.compile(start_class(TIME) or "")
    for ch in "7一半今明本马立":
        assert cls.fullmatch(ch)
    assert not cls.fullmatch("您")


@pytest.mark.parametrize("patterns", [["[^a]b"], ["a?b"], [".x"], ["(?i)ab"]])
def test_start_class_gives_up_where_the_start_is_not_a_plain_class(patterns):
    assert start_class(patterns) is None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123 一二半今明本周上午前之内小时天马上安排为您个", max_size=30), st.integers(0, 5))
def test_run_safe_search_equals_plain_search(text, pos):
    plain = re.compile("|".join(f"(?:{p})" for p in TIME))
    safe = RunSafeRegex(TIME)
    want = plain.search(text, pos)
    got = safe.search(text, pos)
    assert (got and got.span()) == (want and want.span())
    assert [m.span() for m in safe.finditer(text)] == [m.span() for m in plain.finditer(text)]


def test_guard_leaves_patterns_it_cannot_prove_alone():
    assert guard_leading_run("a?b") == "a?b"
    assert guard_leading_run(r"\d+天").startswith("(?!")
