"""The learned half of the minefield check: loading, scoring, veto, firing, evidence, rewrites."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from agent_assist import Assistant, ModelError, Phrasebook, PhrasebookError
from agent_assist.minefield_model import BOS, EOS, MinefieldModel
from agent_assist.minefields import (
    KINDS,
    MinefieldBook,
    MinefieldChecker,
    check_minefield_book,
    minefield_rules_only,
)
from agent_assist.phrasebook import bundled_models, bundled_phrasebooks

K = len(KINDS)
DATA = Path(__file__).parent / "data"


def write_model(
    d: Path, weights: dict[str, dict[str, float]], intercept: float, veto: float, fire: float
) -> Path:
    """A tiny model: n-gram -> {kind: weight}; every kind's intercept the same."""
    grams = sorted(weights)
    coef = np.zeros((len(grams), K))
    for i, g in enumerate(grams):
        for kind, w in weights[g].items():
            coef[i, KINDS.index(kind)] = w
    np.savez(d / "minefields.npz", grams=np.array(grams), coef=coef, intercept=np.full(K, intercept))
    card = {"kinds": list(KINDS), "thresholds": {"veto": veto, "fire": fire}, "trained": "test"}
    (d / "minefields.json").write_text(json.dumps(card), encoding="utf-8")
    return d


def checker_with(model_dir: Path) -> MinefieldChecker:
    pb = Phrasebook()
    book = pb.book("minefields.yaml", MinefieldBook, check_minefield_book)
    return MinefieldChecker(book, pb.normalizer, "minefields.yaml", MinefieldModel(model_dir))


def reference_scores(model_dir: Path, text: str) -> np.ndarray:
    """The model written out longhand: binary 1-3 grams of the marked text, each scaled by
    1/sqrt(number of n-gram positions), times the weights, plus the intercept."""
    with np.load(model_dir / "minefields.npz") as z:
        grams, coef, icpt = [str(g) for g in z["grams"]], z["coef"], z["intercept"]
    t = BOS + text.rstrip(" ,.!?;:~…\n\t\u3000。！？；，、：～") + EOS  # the reply's end is not read
    present = {t[i : i + n] for n in (1, 2, 3) for i in range(len(t) - n + 1)}
    positions = sum(len(t) - n + 1 for n in (1, 2, 3))
    x = np.array([1.0 if g in present else 0.0 for g in grams]) / math.sqrt(positions)
    return x @ coef + icpt


@pytest.mark.parametrize(
    "text",
    [
        "",
        "好的",
        "这是物流的问题，和我们无关。",
        "您能不能先听我说完？我已经说过三遍了！",
        "您別生氣，我們馬上處理。",
    ],
)
def test_bundled_model_scores_as_written_out_longhand(text):
    model = MinefieldModel(bundled_models() / "minefields")
    assert np.allclose(model.scores(text), reference_scores(bundled_models() / "minefields", text), atol=1e-9)
    assert model.kinds == KINDS and model.veto < model.fire


def test_the_model_vetoes_a_rule_hit_it_scores_low(tmp_path):
    reply = "这是物流的问题，和我们无关。"
    assert Assistant().check_reply(reply).hits  # the bundled rules and model agree here
    vetoing = checker_with(write_model(tmp_path, {"物流": {"arguing": 1.0}}, -10.0, veto=-1.0, fire=5.0))
    assert vetoing.check(reply).ok


def test_the_model_raises_a_kind_the_rules_miss_on_its_sentence(tmp_path):
    c = checker_with(write_model(tmp_path, {"咕咕": {"impatience": 200.0}}, -10.0, veto=-20.0, fire=1.0))
    reply = "好的，我看一下。咕咕咕咕，您快说吧！我们今天处理。"
    r = c.check(reply)
    assert [h.kind for h in r.hits] == ["impatience"]
    h = r.hits[0]
    assert h.text == reply[h.start : h.end] == "咕咕咕咕，您快说吧"  # the sentence, trimmed
    assert h.rule == "model.impatience:咕咕"  # the rule and the n-gram that fired
    assert "咕" not in r.suggested_reply and c.check(r.suggested_reply).ok
    assert r.suggested_reply.startswith("好的，我看一下。") and r.suggested_reply.endswith("我们今天处理。")


def test_offsets_index_the_original_traditional_reply(tmp_path):
    c = checker_with(write_model(tmp_path, {"咕咕": {"impatience": 200.0}}, -10.0, veto=-20.0, fire=1.0))
    reply = "好的，  我看一下。咕咕咕咕，您快說吧！"
    h = c.check(reply).hits[0]
    assert reply[h.start : h.end] == h.text == "咕咕咕咕，您快說吧"
    simplified = c.check(reply.replace("說", "说")).hits[0].rewrite
    assert h.rewrite == Phrasebook().normalizer.to_traditional(simplified) != simplified  # the reply's script


def test_context_the_rules_cleared_is_not_overruled(tmp_path):
    # The rules read 不是不归我们管 as negated; a model that loves 归我们 may not raise it.
    c = checker_with(
        write_model(tmp_path, {"归我们": {"blame_shifting": 200.0}}, -10.0, veto=-20.0, fire=1.0)
    )
    assert c.check("这不是不归我们管的事，我马上为您处理。").ok
    assert not c.check("这件事归我们跟进。").ok  # the same model fires where nothing cleared it


def test_compensation_is_left_to_the_rules_once_the_customer_asked(tmp_path):
    c = checker_with(
        write_model(tmp_path, {"礼品卡": {"premature_compensation": 200.0}}, -10.0, veto=-20.0, fire=1.0)
    )
    reply = "给您一张礼品卡。"
    assert {h.kind for h in c.check(reply, customer_text="快递丢了").hits} == {"premature_compensation"}
    assert c.check(reply, customer_text="快递丢了，你们怎么赔偿？").ok


def test_a_phrasebook_can_turn_the_model_off(tmp_path):
    text = (bundled_phrasebooks() / "minefields.yaml").read_text(encoding="utf-8")
    assert "  enabled: true" in text
    (tmp_path / "minefields.yaml").write_text(
        text.replace("  enabled: true", "  enabled: false"), encoding="utf-8"
    )
    off, on = Assistant(tmp_path), Assistant()
    rules = minefield_rules_only(Phrasebook())
    lines = (DATA / "replies_dev5.jsonl").read_text(encoding="utf-8").splitlines()
    replies = [json.loads(line)["reply"] for line in lines[:150]]
    assert all(off.check_reply(r) == rules.check(r) for r in replies)  # off: the rules alone
    assert any(on.check_reply(r) != rules.check(r) for r in replies)  # on: the model has its say


def test_broken_model_files_raise_model_error(tmp_path):
    with pytest.raises(ModelError):
        MinefieldModel(tmp_path)  # nothing there
    write_model(tmp_path, {"甲": {"arguing": 1.0}}, 0.0, 0.0, 1.0)
    card = json.loads((tmp_path / "minefields.json").read_text(encoding="utf-8"))
    card["kinds"] = card["kinds"][:3]
    (tmp_path / "minefields.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelError, match="shapes"):
        MinefieldModel(tmp_path)


def test_a_rewrite_the_model_reads_as_a_minefield_is_rejected_at_load(tmp_path):
    # A model that reads the blame-shifting rewrite (这件事由我们负责跟进…) as lecturing.
    model = write_model(tmp_path, {"负责跟进": {"lecturing": 500.0}}, -10.0, veto=-20.0, fire=1.0)
    with pytest.raises(PhrasebookError, match="reads as lecturing"):
        checker_with(model)


@pytest.mark.parametrize(
    "turn",
    [
        "您好，请稍等。",
        "您好，请讲。",
        "好的，请稍等，我查一下。",
        "您好，请问有什么可以帮您？",
        "感谢您的耐心等待。",
        "還有其他可以幫您的嗎？",
    ],
)
def test_ordinary_turns_are_not_minefields(turn):
    # The first model read a final 。 as trouble and flagged 您好，请稍等。 as perfunctory.
    assert Assistant().check_reply(turn).ok


def test_the_end_of_a_reply_does_not_move_the_model():
    model = MinefieldModel(bundled_models() / "minefields")
    for text in ("您好，请稍等", "这个我也没办法", "您应该先看说明书"):
        assert (
            model.scores(text) == model.scores(text + "。") == model.scores(text + "!! ")
        )  # normalised text


def test_scores_of_many_replies_equal_one_call_each():
    """QA scores a conversation's agent turns in one pass; it must read each as alone."""
    model = MinefieldModel(bundled_models() / "minefields")
    rows = [
        json.loads(line) for line in (DATA / "replies_dev.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    checker = Assistant().minefields
    texts = [checker._normalize(r["reply"]).text for r in rows[:400]] + ["", "好的", "😀"]
    many = model.scores_many(texts)
    assert len(many) == len(texts)
    for text, z in zip(texts, many):
        np.testing.assert_allclose(z, model.scores(text), rtol=0, atol=1e-9)
    assert model.scores_many([]) == []


def test_a_model_with_longer_ngrams_scores_many_replies_one_by_one(tmp_path):
    model = MinefieldModel(
        write_model(tmp_path, {"负责跟进": {"perfunctory": 3.0}, "好": {"arguing": 1.0}}, -2.0, -1.0, 1.0)
    )
    texts = ["我们会负责跟进", "好的", ""]
    assert model.scores_many(texts) == [model.scores(t) for t in texts]
