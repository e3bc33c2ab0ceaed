import ahocorasick
import pytest

from agent_assist.automaton import WordFinder


def _walk(words, text):
    """What an Aho-Corasick walk (pyahocorasick, the finder it replaced) reports."""
    auto = ahocorasick.Automaton()
    for w in words:
        auto.add_word(w, w)
    auto.make_automaton()
    return [(w, last + 1 - len(w), last + 1) for last, w in auto.iter(text)]


def _found(words, text):
    f = WordFinder({w: w for w in words})
    return [(f.values[i], s, e) for i, s, e in f.find(text)]


@pytest.mark.parametrize(
    "text",
    [
        "这样不行，真的不行不行",
        "不是不是，是不是？",
        "abc你好😀你好bc",  # a character outside the BMP is one offset, as in Python
        "",
        "没有",
    ],
)
def test_same_matches_in_the_same_order_as_an_aho_corasick_walk(text):
    words = ["不行", "行", "不是", "是不是", "是", "ab", "abc", "bc", "c", "你好", "好", "😀你"]
    assert _found(words, text) == _walk(words, text)


def test_a_lone_surrogate_keeps_every_offset():
    text = "不\ud800行不行"
    assert _found(["不行", "行"], text) == [("行", 2, 3), ("不行", 3, 5), ("行", 4, 5)]


def test_no_words_and_empty_words_find_nothing():
    assert WordFinder({}).find("不行") == []
    f = WordFinder({"": 0, "行": 1})
    assert len(f) == 1 and [(f.values[i], s, e) for i, s, e in f.find("不行")] == [(1, 1, 2)]


def test_longest_gives_the_leftmost_longest_words_without_overlaps():
    f = WordFinder({w: w for w in ["不行", "行", "不是", "是不是", "是"]}, longest=True)
    assert [(f.values[i], s, e) for i, s, e in f.find("是不是不行，行")] == [
        ("是不是", 0, 3),
        ("不行", 3, 5),
        ("行", 6, 7),
    ]


def test_longest_finds_a_word_after_a_longer_one_fails():
    # pyahocorasick's iter_long, which the emotion lexicon used before, gave nothing here:
    # having followed 找不到人 to 找不到 it did not go back for 不.
    f = WordFinder({w: w for w in ["不", "找不到人"]}, longest=True)
    assert [(f.values[i], s, e) for i, s, e in f.find("客服都找不到")] == [("不", 4, 5)]
