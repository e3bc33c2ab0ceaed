from __future__ import annotations

import math

import pytest
from conftest import read_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_assist import Assistant, EmotionResult, detect_emotion, detect_emotions
from agent_assist.evaluate import metrics
from agent_assist.text import default_normalizer

TIERS = {"calm", "panic", "anger", "disappointment", "indifference"}


def rules(result: EmotionResult) -> set[str]:
    return {e.cue.split(":")[0] for e in result.evidence}


def check_invariants(text: str, r: EmotionResult) -> None:
    assert set(r.scores) == TIERS
    assert math.isclose(sum(r.scores.values()), 1.0, abs_tol=1e-9)
    assert r.tier == max(r.scores, key=r.scores.get)
    assert 0.0 <= r.intensity <= 1.0
    for e in r.evidence:
        assert e.text == text[e.start : e.end]
        assert e.tier in TIERS


# --- one test per rule: each fails if the rule is removed -----------------------------


def test_negation_flips_the_cue():
    angry, calm = detect_emotion("我很生气"), detect_emotion("我不生气，就是问问进度")
    assert angry.tier == "anger"
    assert calm.tier == "calm"
    neg = [e for e in calm.evidence if e.rule == "negation"]
    assert neg and neg[0].text == "不生气" and neg[0].tier == "calm"


def test_double_negation_is_not_dissatisfaction():
    r = detect_emotion("我不是不满意，只是想确认一下发货时间")
    assert r.tier == "calm"
    ev = next(e for e in r.evidence if "不满意" in e.text)
    assert ev.rule == "negation" and ev.text == "不是不满意"
    assert detect_emotion("我很不满意").tier in {"disappointment", "anger"}


def test_negation_does_not_reach_across_words():
    # 不 belongs to 打不开, not to 怎么办
    r = detect_emotion("车门打不开怎么办")
    assert any(e.text == "怎么办" and e.rule == "lexicon" for e in r.evidence)
    assert r.tier == "panic"


def test_intensifier_raises_weight_and_intensity():
    plain, strong = detect_emotion("我生气"), detect_emotion("我非常生气")
    w_plain = next(e.weight for e in plain.evidence if e.cue.endswith("生气"))
    w_strong = next(e for e in strong.evidence if e.cue.endswith("生气"))
    assert w_strong.weight > w_plain
    assert w_strong.text == "非常生气"
    assert strong.intensity > plain.intensity


def test_exclamation_run_pushes_toward_anger(tmp_path):
    loud = detect_emotion("快递还没到！！！")
    assert "punct.exclaim_run" in rules(loud)
    flat = without(tmp_path, "punct.exclaim_run").detect_emotion("快递还没到！！！")
    assert loud.scores["anger"] > flat.scores["anger"]


def without(tmp_path, *ids: str) -> Assistant:
    """An Assistant whose emotion phrasebook lacks the given groups/patterns."""
    import yaml

    from agent_assist.phrasebook import bundled_phrasebooks

    book = yaml.safe_load((bundled_phrasebooks() / "emotion.yaml").read_text(encoding="utf-8"))
    book["groups"] = [g for g in book["groups"] if g["id"] not in ids]
    book["patterns"] = [p for p in book["patterns"] if p["id"] not in ids]
    (tmp_path / "emotion.yaml").write_text(yaml.safe_dump(book, allow_unicode=True), encoding="utf-8")
    return Assistant(tmp_path)


def test_repetition_is_evidence_of_anger(tmp_path):
    text = "这已经是我第三次打电话了，你们又没处理"
    r = detect_emotion(text)
    assert {"repeat.ordinal", "repeat.words"} <= rules(r)
    plain = without(tmp_path, "repeat.ordinal", "repeat.words").detect_emotion(text)
    assert r.scores["anger"] > plain.scores["anger"]


def test_waiting_time_is_recognised():
    r = detect_emotion("维修等了12天还没人来")
    assert "wait.elapsed" in rules(r)
    assert r.tier != "calm"
    assert "wait.already" in rules(detect_emotion("都一个月了还没退款"))


def test_escalation_threat_is_anger():
    r = detect_emotion("再不处理我就打12315投诉你们")
    assert "anger.threat" in rules(r)
    assert r.tier == "anger"


def test_ascii_cues_match_whole_tokens_only():
    assert "anger.threat" in rules(detect_emotion("我要打12315"))
    r = detect_emotion("我的电话是13812315678，快递单号SF1234567890123")
    assert "anger.threat" not in rules(r)


def test_sarcasm_is_anger():
    r = detect_emotion("呵呵，真是好服务啊")
    assert "anger.sarcasm" in rules(r)
    assert r.tier == "anger"


def test_resignation_is_indifference():
    for text in ["算了，随便吧", "不用了，你们看着办吧", "无所谓了，爱咋咋地"]:
        r = detect_emotion(text)
        assert r.tier == "indifference", text
        assert "indifference.resign" in rules(r)


def test_safety_is_panic():
    r = detect_emotion("充电器冒烟了，会不会爆炸")
    assert r.tier == "panic"
    assert "panic.safety" in rules(r)


# --- contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_is_calm_without_evidence(text):
    r = detect_emotion(text)
    assert r.tier == "calm" and r.evidence == [] and r.intensity == 0.0
    check_invariants(text, r)


@pytest.mark.parametrize("bad", [None, 12, b"bytes", ["list"]])
def test_non_string_raises_type_error_and_is_an_error_record_in_a_batch(bad):
    with pytest.raises(TypeError, match="must be str"):
        detect_emotion(bad)
    out = detect_emotions(["气死了！！", bad, "算了"])
    assert len(out) == 3 and out[0].tier == "anger" and out[2].tier == "indifference"
    assert out[1].error == f"texts[1] must be str, not {type(bad).__name__}" and out[1].evidence == []
    assert out[0].error is None


def test_long_text_is_read_up_to_the_limit_and_marked():
    a = Assistant(max_chars=50)
    text = "我很生气！！" + "的" * 100 + "算了"
    r = a.detect_emotion(text)
    assert r.truncated and all(e.end <= 50 for e in r.evidence)
    assert not a.detect_emotion("我很生气").truncated
    assert [x.truncated for x in a.detect_emotions([text, "好"])] == [True, False]
    assert a.check_reply("这不归我们管" + "。" * 60).truncated
    assert a.triage("冒烟了" + "。" * 60).truncated
    assert a.extract_slots("A3" + "。" * 60).truncated
    with pytest.raises(ValueError):
        Assistant(max_chars=0)


def test_offsets_index_original_traditional_full_width_text():
    text = "我　已經等了１２天！！還沒到，太失望了"
    r = detect_emotion(text)
    check_invariants(text, r)
    assert {e.text for e in r.evidence} >= {"等了１２天", "！！", "太失望"}


def test_batch_equals_single_calls():
    texts = [row["text"] for row in read_jsonl("emotion_domain.jsonl")[:60]] + ["", "算了"]
    batch = detect_emotions(texts)
    assert len(batch) == len(texts)
    for t, b in zip(texts, batch):
        s = detect_emotion(t)
        assert b.tier == s.tier and b.evidence == s.evidence
        for k in s.scores:
            assert math.isclose(b.scores[k], s.scores[k], rel_tol=1e-9, abs_tol=1e-12)


def test_moods_are_the_results_tier_and_intensity():
    """QA's middle turns come back as moods: the same tier and intensity as the full result,
    and the positions whose evidence is read as full results."""
    from agent_assist.emotion import Mood

    a = Assistant()
    texts = [row["text"] for row in read_jsonl("emotion_domain.jsonl")[:40]] + ["", "算了", "算了"]
    groups = []
    for at in range(0, len(texts), 9):
        chunk = texts[at : at + 9]
        norms = [a.phrasebook.normalizer.normalize(t) for t in chunk]
        groups.append((norms, chunk, {0, len(chunk) - 1}))
    full = a.emotion.detect_groups(groups)
    moods = a.emotion.detect_moods(groups)
    for (_, _, wanted), f, m in zip(groups, full, moods, strict=True):
        for i, (fr, mr) in enumerate(zip(f, m, strict=True)):
            assert (mr.tier, mr.intensity) == (fr.tier, fr.intensity)
            if i in wanted:
                assert mr == fr and not isinstance(mr, Mood)
    assert any(isinstance(mr, Mood) for m in moods for mr in m)


def test_traditional_classifies_as_its_simplified_twin():
    nz = default_normalizer()
    simplified = [r["text"] for r in read_jsonl("emotion_domain.jsonl") if r["script"] == "simplified"]
    for text in simplified:
        twin = nz.to_traditional(text)
        a, b = detect_emotion(text), detect_emotion(twin)
        assert a.tier == b.tier, (text, twin)
        check_invariants(twin, b)


def test_results_are_deterministic_and_json_serialisable():
    text = "第三次打电话了，到底有没有人管？！"
    a, b = detect_emotion(text), detect_emotion(text)
    assert a == b
    assert EmotionResult.model_validate_json(a.model_dump_json()) == a


def test_assistant_instances_share_behaviour():
    text = "孩子还在车里，车门锁了打不开"
    assert Assistant().detect_emotion(text) == detect_emotion(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_unicode_never_raises(text):
    check_invariants(text, detect_emotion(text))


def test_domain_examples_meet_the_floor():
    rows = read_jsonl("emotion_domain.jsonl")
    pred = [r.tier for r in detect_emotions([row["text"] for row in rows])]
    m = metrics([row["tier"] for row in rows], pred)
    assert m["macro_f1"] >= 0.85, m
    assert min(m["per_tier"][t]["recall"] for t in TIERS) >= 0.75, m


def test_detect_many_builds_evidence_only_where_asked():
    from agent_assist import Assistant

    detector = Assistant().emotion
    texts = ["气死我了！！", "我真的很失望", "气死我了！！", "等了一周还没到"]
    full = detector.detect_many(texts)
    some = detector.detect_many(texts, evidence_for={0})
    assert [r.tier for r in some] == [r.tier for r in full]
    assert [r.scores for r in some] == [r.scores for r in full]
    assert some[0] == full[0] and some[0].evidence
    assert some[2] == full[2]  # the same text as position 0: the same result
    assert some[1].evidence == [] and full[1].evidence
