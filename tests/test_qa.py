from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import read_jsonl

from agent_assist import Assistant, PhrasebookError, QAResult, score_transcript
from agent_assist.phrasebook import bundled_phrasebooks

GOOD = {"id": "good", "agent_id": "A1", "turns": [
    {"speaker": "客户", "text": "我的A3音箱维修等了12天还没修好，太失望了", "start": 0, "end": 6},
    {"speaker": "客服", "text": "非常抱歉让您久等了。您是说A3音箱送修已经12天还没修好，对吗？", "start": 8, "end": 14},
    {"speaker": "客户", "text": "对，就是这样", "start": 15, "end": 16},
    {"speaker": "客服", "text": "我马上联系维修中心加急处理，今天18点前给您回电告知进度。", "start": 17, "end": 22},
    {"speaker": "客户", "text": "好的，谢谢", "start": 23, "end": 24},
    {"speaker": "客服", "text": "那我们就按这个方案：今天18点前回电，修好后我再回访您。感谢您的耐心。", "start": 25, "end": 30},
]}
BAD = {"id": "bad", "agent_id": "A2", "turns": [
    {"speaker": "客户", "text": "我的A3音箱维修等了12天还没修好，太失望了", "start": 0, "end": 6},
    {"speaker": "客服", "text": "这是维修中心的问题，和我们无关。", "start": 70, "end": 72},
    {"speaker": "客户", "text": "你们就是这样推卸责任的？我要投诉！", "start": 73, "end": 75},
    {"speaker": "客服", "text": "您别激动，稍后会有人联系您。", "start": 76, "end": 78},
    {"speaker": "客户", "text": "算了，不用了", "start": 79, "end": 80},
]}


def item(r: QAResult, ident: str):
    return next(i for i in r.items if i.id == ident)


def test_good_handling_scores_high_with_evidence():
    r = score_transcript(GOOD)
    assert r.error is None and r.score >= 85 and r.grade in {"A", "B"}
    for ident in ("listen_confirm", "empathize", "solution_time", "close_thanks", "close_follow_up"):
        it = item(r, ident)
        assert it.passed is True and it.earned == it.points
        ev = it.evidence[0]
        assert ev.text == GOOD["turns"][ev.turn]["text"][ev.start : ev.end]
    assert r.first_response_seconds == 2.0
    assert r.start_tier == "disappointment"


def test_poor_handling_loses_points_at_the_offending_words():
    r = score_transcript(BAD)
    assert r.score < 50
    blame = item(r, "mine.blame_shifting")
    assert blame.passed is False and blame.earned < blame.points
    assert any(e.turn == 1 and e.text in BAD["turns"][1]["text"] and e.text for e in blame.evidence)
    assert item(r, "mine.dismissing_feelings").passed is False
    assert item(r, "first_response").passed is False  # 64 s after the customer stopped
    assert item(r, "empathize").passed is False
    assert r.end_tier == "indifference"
    assert {"churn_risk", "escalation_threat"} <= set(r.flags)
    assert [p.turn for p in r.trajectory] == [0, 2, 4]


def test_every_deduction_points_at_a_turn_and_words():
    for data in (GOOD, BAD):
        r = score_transcript(data)
        for it in r.items:
            if it.passed is False:
                assert it.evidence, it.id
                for e in it.evidence:
                    assert e.text == data["turns"][e.turn]["text"][e.start : e.end]


def test_items_without_timestamps_are_left_out():
    data = {"id": "x", "turns": [{"speaker": t["speaker"], "text": t["text"]} for t in GOOD["turns"]]}
    r = score_transcript(data)
    assert item(r, "first_response").passed is None and item(r, "agent_silence").passed is None
    assert r.first_response_seconds is None


def test_better_handling_scores_higher_in_every_pair():
    pairs = read_jsonl("qa_pairs.jsonl")
    assert len(pairs) >= 20
    for p in pairs:
        better, worse = score_transcript(p["better"]), score_transcript(p["worse"])
        assert better.error is None and worse.error is None
        assert better.score > worse.score, (p["pair"], better.score, worse.score, p["why"])


def test_results_share_one_fields_set_per_class_without_leaking_changes():
    # Results are built without validation and share a class's model_fields_set: copying
    # with an update must leave the other results' set alone, and results stay frozen.
    from pydantic import ValidationError

    from agent_assist.qa import QAItem

    r = score_transcript(BAD)
    a, b = r.items[0], r.items[1]
    assert a.model_fields_set == set(QAItem.model_fields) and a.model_fields_set is b.model_fields_set
    c = a.model_copy(update={"earned": 0.0, "note": "not a field"})
    assert "note" in c.model_fields_set and "note" not in b.model_fields_set
    with pytest.raises(ValidationError):
        b.earned = 1.0
    assert QAResult.model_validate_json(r.model_dump_json()) == r


def test_malformed_transcript_is_an_error_result_not_an_exception():
    r = score_transcript({"id": "b", "turns": [{"speaker": "客户", "text": None}]})
    assert r.error is not None and "turns[0].text" in r.error and r.score is None and r.id == "b"


def _custom(tmp_path, old: str, new: str):
    d = tmp_path / "pb"
    d.mkdir()
    text = (bundled_phrasebooks() / "qa.yaml").read_text(encoding="utf-8")
    assert old in text
    (d / "qa.yaml").write_text(text.replace(old, new), encoding="utf-8")
    return Assistant(d)


def test_rubric_weights_are_data(tmp_path):
    heavy = _custom(tmp_path, "{id: mine.blame_shifting, name: 推诿, points: 6, per_hit: 6,",
                    "{id: mine.blame_shifting, name: 推诿, points: 60, per_hit: 60,")
    assert heavy.score_transcript(BAD).score < score_transcript(BAD).score


def test_fatal_item_zeroes_the_score(tmp_path):
    a = _custom(tmp_path, "{id: mine.blame_shifting, name: 推诿, points: 6, per_hit: 6, check: minefield,",
                "{id: mine.blame_shifting, name: 推诿, points: 6, per_hit: 6, fatal: true, check: minefield,")
    assert a.score_transcript(BAD).score == 0.0
    assert a.score_transcript(GOOD).score > 0


def test_rubric_validation_names_file_and_key(tmp_path):
    with pytest.raises(PhrasebookError) as e:
        _custom(tmp_path, "check: minefield, kind: lecturing}", "check: minefield, kind: shouting}").qa
    assert "qa.yaml" in str(e.value) and "kind" in str(e.value)
    shutil.rmtree(tmp_path / "pb")
    with pytest.raises(PhrasebookError, match="needs 'max_seconds'"):
        _custom(tmp_path, "    max_seconds: 30\n", "\n").qa


def _examples() -> list[dict]:
    import json
    from pathlib import Path

    out = []
    for line in (Path(__file__).parent.parent / "examples" / "transcripts.jsonl").read_text("utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj.get("turns"), list) and obj["turns"]:
            out.append(obj)
    return out


def _analysed(a: Assistant, convs: list[dict]) -> Iterator[tuple[dict, Any, Any]]:
    """(record, transcript, QA's analysis) of each record that is a valid transcript, all
    analysed as one block, as batch scoring does (the models read every turn in one pass)."""
    from agent_assist.transcript import parse_transcript

    valid = []
    for obj in convs:
        try:
            valid.append((obj, parse_transcript(obj, a.qa.speakers)))
        except Exception:  # noqa: BLE001 - the deliberately bad example records
            continue
    for (obj, t), conv in zip(valid, _analyse(a, [t for _, t in valid]), strict=True):
        yield obj, t, conv


def _analyse(a: Assistant, transcripts: list[Any]) -> list[Any]:
    qa = a.qa
    convs = [qa._prepare(t) for t in transcripts]
    qa._run_models(convs)
    for conv in convs:
        qa._analyse(conv)
    return convs


def test_qa_emotions_and_triage_equal_the_single_message_calls():
    """QA normalises each turn once and hands it to every analyser (and batches the models
    over the conversation); what it reads must equal the per-message public calls,
    including a turn longer than max_chars and one in Traditional script."""
    a = Assistant(max_chars=200)
    convs = _examples() + [
        {
            "id": "long",
            "turns": [
                {"speaker": "customer", "text": "我要投訴！你們的快遞一直不到，" * 30},
                {"speaker": "agent", "text": "非常抱歉，" * 60 + "我们今天下午5点前给您回复。"},
                {"speaker": "customer", "text": "算了，隨便吧。"},
            ],
        },
    ]
    compared = 0
    for obj, t, conv in _analysed(a, convs):
        customer = [i for i, turn in enumerate(t.turns) if turn.speaker == "customer"]
        for i in customer:
            alone = a.detect_emotion(t.turns[i].text)
            assert (conv.emotions[i].tier, conv.emotions[i].intensity) == (alone.tier, alone.intensity)
            compared += 1
        if customer:
            first, rest = customer[0], [t.turns[i].text for i in customer[1:]]
            expected = a.triage(
                t.turns[first].text, history=rest, emotion=a.detect_emotion(t.turns[first].text)
            )
            assert conv.triage == expected, obj.get("id")
    assert compared > 200


def test_qa_minefield_hits_equal_check_reply_with_the_whole_history():
    """QA reads each customer turn once for "asked for compensation?" (AskedSoFar); its hits
    must equal what check_reply says given the last customer turn and the whole history."""
    from agent_assist.transcript import parse_transcript

    a = Assistant()
    convs = _examples() + [
        {"id": "ask-late", "turns": [
            {"speaker": "customer", "text": "快递三天没到。"},
            {"speaker": "agent", "text": "给您补偿一张20元优惠券。"},
            {"speaker": "customer", "text": "我要求退款并赔偿。"},
            {"speaker": "agent", "text": "可以给您补偿一张20元优惠券。"},
            {"speaker": "customer", "text": "好的，谢谢。"},
            {"speaker": "agent", "text": "好的。"},
        ]},
    ]
    compared = compensation = 0
    for obj, t, conv in _analysed(a, convs):
        last = None
        for i, turn in enumerate(t.turns):
            if turn.speaker == "customer":
                last = turn.text
                continue
            expected = a.check_reply(turn.text, customer_text=last, history=list(t.turns[:i])).hits
            assert conv.checks[i] == expected, (obj.get("id"), i)
            compared += 1
            compensation += any(h.kind == "premature_compensation" for h in expected)
    assert compared > 200
    [late] = _analyse(a, [parse_transcript(convs[-1], a.qa.speakers)])
    assert [h.kind for h in late.checks[1]] == ["premature_compensation"]
    assert late.checks[3] == []
    assert late.checks[5] == []  # a bare 好的 answering 好的，谢谢 closes well
