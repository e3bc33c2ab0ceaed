"""NgramTable: the batch n-gram lookup both models use, against a plain substring scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_assist import Assistant
from agent_assist.minefield_model import BOS, EOS, model_text
from agent_assist.ngrams import LazyNgramTable, NgramTable

DATA = Path(__file__).parent / "data"


def brute(grams: list[str], texts: list[str]) -> list[tuple[int, int]]:
    first: dict[str, int] = {}
    for i, g in enumerate(grams):
        first.setdefault(g, i)
    found = set()
    for d, t in enumerate(texts):
        for n in (1, 2, 3):
            for s in range(len(t) - n + 1):
                if t[s : s + n] in first:
                    found.add((d, first[t[s : s + n]]))
    return sorted(found)


def pairs(table: NgramTable, texts: list[str]) -> list[tuple[int, int]]:
    docs, ids = table.occurrences(texts)
    return list(zip(docs.tolist(), ids.tolist(), strict=True))


ALPHABET = "好的不行您\x00\x01\x02\x03 ,.1a😀𠀀"
GRAMS = [
    "好",
    "好的",
    "的不",
    "不行",
    "行您",
    "您",
    "\x02好",
    "的\x03",
    "😀",
    "𠀀好",
    "1a",
    "a",
    "好的不",
    "好",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=ALPHABET, max_size=12), max_size=6))
def test_occurrences_equal_a_substring_scan(texts):
    table = NgramTable(GRAMS)
    assert pairs(table, texts) == brute(GRAMS, texts)


def test_windows_across_two_texts_do_not_count():
    table = NgramTable(["好的", "的不", "不"])
    # "好" + "的" meet only across the boundary; a separator in the text changes nothing.
    assert pairs(table, ["好", "的", "x\x01不"]) == [(2, 2)]


def test_empty_inputs_and_a_repeated_gram():
    table = NgramTable(["好", "好"])
    assert pairs(table, []) == []
    assert pairs(table, ["", ""]) == []
    assert pairs(table, ["好好"]) == [(0, 0)]  # once per text, the first index of a repeat
    assert pairs(NgramTable([]), ["好"]) == []


@pytest.mark.parametrize("gram", ["", "好的不行", "\x01好", "a\x00"])
def test_grams_it_cannot_hold_are_refused(gram):
    with pytest.raises(ValueError, match="n-gram"):
        NgramTable(["好", gram])


def test_bundled_models_find_what_their_automata_find():
    a = Assistant()
    rows = [
        json.loads(line) for line in (DATA / "replies_dev.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    replies = [r["reply"] for r in rows[:300]] + [r["customer"] for r in rows[:300]]
    mf = a.minefields._model
    texts = [model_text(a.minefields._normalize(r).text) for r in replies]
    docs, ids = mf._table.get().occurrences([BOS + t + EOS for t in texts])
    for d, t in enumerate(texts):
        assert set(ids[docs == d].tolist()) == mf._ids(t)
    em = a.emotion._model
    norm = [a.phrasebook.normalizer.normalize(r).text for r in replies]
    docs, ids = em._table.get().occurrences(norm)
    for d, t in enumerate(norm):
        assert set(ids[docs == d].tolist()) == em.ngram_ids(t)
    assert isinstance(ids, np.ndarray)


def test_of_declines_what_it_cannot_hold():
    assert NgramTable.of(["好", "好的不行"]) is None
    assert NgramTable.of(["好", "好的"]) is not None


def test_lazy_table_is_built_once_on_first_use():
    calls = []
    lazy = LazyNgramTable(lambda: calls.append(1) or ["好", "好的"])
    assert calls == []
    assert lazy.get() is lazy.get() is not None
    assert calls == [1]
    assert LazyNgramTable(lambda: ["好的不行"]).get() is None
