from __future__ import annotations

import json

import pytest

from agent_assist import read_transcripts
from agent_assist.transcript import TranscriptError, parse_transcript

SPEAKERS = {"客户": "customer", "customer": "customer", "c": "customer", "客服": "agent", "agent": "agent", "a": "agent"}


def test_aliases_are_normalised():
    t = parse_transcript({"id": 7, "turns": [{"speaker": "C", "text": "在吗"}, {"speaker": "客服", "text": "在的"}]},
                         SPEAKERS)
    assert t.id == "7" and [x.speaker for x in t.turns] == ["customer", "agent"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"id": "x", "turns": []}, "turns: List should have at least 1 item"),
        ({"id": "x"}, "turns: Field required"),
        ({"id": "x", "turns": [{"speaker": "客户", "text": 12}]}, "turns[0].text"),
        ({"id": "x", "turns": [{"speaker": "robot", "text": "hi"}]}, "unknown speaker 'robot'"),
        (["not", "an", "object"], "must be an object"),
    ],
)
def test_bad_records_name_the_field_and_line(data, message):
    with pytest.raises(TranscriptError) as e:
        parse_transcript(data, SPEAKERS, line=12)
    assert message in str(e.value) and "line 12" in str(e.value)


def test_jsonl_reader_marks_broken_lines(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"id": "a", "turns": []}\n\n{broken\n', encoding="utf-8")
    recs = list(read_transcripts(f))
    assert [r.line for r in recs] == [1, 3]
    assert recs[0].data["id"] == "a" and recs[1].error.startswith("line 3: not valid JSON")


def test_csv_long_form_groups_and_orders_turns(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text(
        "conversation_id,turn_index,speaker,text,start,end\n"
        "c1,1,客服,您好,2.0,3.0\n"
        "c1,0,客户,快递没到,0.0,1.5\n"
        "c2,0,客户,算了,,\n"
        "c2,x,客服,好的,,\n",
        encoding="utf-8",
    )
    recs = list(read_transcripts(f))
    assert recs[0].line == 2 and recs[0].data["id"] == "c1"
    assert [t["text"] for t in recs[0].data["turns"]] == ["快递没到", "您好"]
    assert recs[0].data["turns"][0]["end"] == 1.5
    assert recs[1].error is not None and "turn_index" in recs[1].error and recs[1].line == 4


def test_csv_bytes_that_are_not_utf8_mark_their_conversation_and_the_rest_is_read(tmp_path):
    from agent_assist import score_file

    f = tmp_path / "t.csv"
    f.write_bytes(
        "conversation_id,turn_index,speaker,text\n"
        "c1,0,客户,快递没到\n"
        "c2,0,客户,退款\n".encode()
        + "c2,1,客服,好的".encode("gbk")  # a GBK export: not UTF-8
        + "\nc3,0,客户,算了\n".encode()
    )
    recs = list(read_transcripts(f))
    assert [r.line for r in recs] == [2, 3, 5]
    assert recs[0].data["turns"][0]["text"] == "快递没到" and recs[2].data["id"] == "c3"
    assert recs[1].data is None and recs[1].error == "csv row 4: conversation 'c2' is not valid UTF-8"
    summary = score_file(f, tmp_path / "out.jsonl")
    assert (summary.count, summary.errors) == (3, 1)


def test_csv_missing_columns_is_unreadable(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("id,text\n1,hi\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing column"):
        list(read_transcripts(f))


def test_parquet_long_form(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({
        "conversation_id": ["c1", "c1", "c2"],
        "turn_index": [0, 1, 0],
        "speaker": ["客户", "客服", "用户"],
        "text": ["等了三天", "抱歉，今天18点前回复您", "算了"],
        "start": [0.0, 5.0, None],
    })
    pq.write_table(table, tmp_path / "t.parquet")
    recs = list(read_transcripts(tmp_path / "t.parquet"))
    assert [r.data["id"] for r in recs] == ["c1", "c2"]
    assert recs[0].data["turns"][1]["start"] == 5.0 and "start" not in recs[1].data["turns"][0]


def test_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown input format"):
        read_transcripts(tmp_path / "t.xlsx")


def test_example_file_parses_except_the_deliberately_bad(data_dir):
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "transcripts.jsonl"
    if not path.is_file():
        pytest.skip("examples not beside the tests")
    recs = list(read_transcripts(path))
    assert len(recs) == sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["id"] == recs[0].data["id"]
