from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent_assist.text import default_normalizer


def test_traditional_folds_to_simplified_with_same_offsets():
    n = default_normalizer().normalize("還沒收到貨，說好的三天呢")
    assert n.text == "还没收到货,说好的三天呢"
    assert n.offsets is None  # length-preserving: identity map


def test_full_width_and_case_fold():
    n = default_normalizer().normalize("ＡＢＣ１２３！？")
    assert n.text == "abc123!?"


def test_whitespace_runs_and_zero_width_are_mapped_back():
    original = "气\u200b死  了\t\t!"
    n = default_normalizer().normalize(original)
    assert n.text == "气死 了 !"
    start = n.text.index("死")
    s, e = n.span(start, start + 1)
    assert original[s:e] == "死"
    s, e = n.span(0, len(n.text))
    assert (s, e) == (0, len(original))


def test_script_detection():
    nz = default_normalizer()
    assert nz.script("這個訂單還沒到") == "traditional"
    assert nz.script("这个订单还没到") == "simplified"
    assert nz.script("ok 123") == "none"


def test_to_traditional_round_trip_on_common_words():
    nz = default_normalizer()
    assert nz.to_traditional("还没收到货") == "還沒收到貨"


@given(st.text())
def test_any_text_spans_map_into_original(s):
    n = default_normalizer().normalize(s)
    for i in range(len(n.text)):
        a, b = n.span(i, i + 1)
        assert 0 <= a < b <= len(s)
