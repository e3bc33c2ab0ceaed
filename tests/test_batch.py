from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent_assist import read_transcripts, score_frame, score_transcripts
from agent_assist.output import FLAT_COLUMNS, AtomicOutput

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "transcripts.jsonl"


def _records(n: int) -> list[dict]:
    good = {"id": "", "agent_id": "A1", "turns": [
        {"speaker": "客户", "text": "快递等了五天还没到，怎么回事"},
        {"speaker": "客服", "text": "非常抱歉让您久等，我马上催促，今天18点前给您回复。"},
        {"speaker": "客户", "text": "好的，谢谢"},
    ]}
    out = []
    for i in range(n):
        rec = dict(good, id=f"t{i}")
        if i % 7 == 3:
            rec = {"id": f"t{i}", "turns": []}  # malformed
        if i % 11 == 5:
            rec = {"id": f"t{i}", "turns": [{"speaker": "客户", "text": None}]}
        out.append(rec)
    return out


def test_n_in_n_out_in_order_with_errors_marked():
    items = _records(40) + [None, "just a string"]  # type: ignore[list-item]
    results = list(score_transcripts(items))
    assert len(results) == len(items)
    for i, r in enumerate(results[:40]):
        assert r.id == f"t{i}"
        assert (r.error is not None) == (i % 7 == 3 or i % 11 == 5)
    assert all(r.error for r in results[40:])


def test_a_block_scores_as_each_record_alone():
    """Batch scoring runs the models over a whole block of transcripts at once; every
    result must equal scoring its record alone (bad records included)."""
    from agent_assist import Assistant

    qa = Assistant().qa
    records = list(read_transcripts(EXAMPLES)) + _records(20)
    block = qa.score_records(records, redact=True)
    assert len(block) == len(records)
    assert [r.model_dump() for r in block] == [qa.score_record(r, redact=True).model_dump() for r in records]
    assert sum(r.error is None for r in block) > 60


def test_a_record_that_breaks_the_block_costs_only_itself(monkeypatch):
    from agent_assist.qa import QAScorer

    conclude = QAScorer._conclude

    def fragile(self, conv, line):
        if conv.t.id == "t4":
            raise RuntimeError("boom")
        return conclude(self, conv, line)

    monkeypatch.setattr(QAScorer, "_conclude", fragile)
    results = list(score_transcripts(_records(40)))
    assert [r.id for r in results if r.error is None] == [
        f"t{i}" for i in range(40) if i != 4 and i % 7 != 3 and i % 11 != 5
    ]
    assert "internal error RuntimeError: boom" in results[4].error and "record 5" in results[4].error


def test_parallel_matches_serial():
    items = _records(150)
    serial = list(score_transcripts(items))
    parallel = list(score_transcripts(items, workers=2))
    assert [r.model_dump() for r in parallel] == [r.model_dump() for r in serial]


def test_line_numbers_reach_error_results(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps(_records(1)[0]) + "\n\nnot json\n" + json.dumps({"id": "z", "turns": []}) + "\n",
                 encoding="utf-8")
    results = list(score_transcripts(read_transcripts(f)))
    assert [r.line for r in results] == [1, 3, 4]
    assert results[0].error is None and "line 3" in results[1].error and "line 4" in results[2].error


def test_atomic_output_leaves_nothing_under_the_final_name_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    out = AtomicOutput(target)
    for r in score_transcripts(_records(3)):
        out.write(r)
    out.abort()
    assert not target.exists() and not list(tmp_path.iterdir())
    out = AtomicOutput(target)
    for r in score_transcripts(_records(3)):
        out.write(r)
    out.commit()
    assert len(target.read_text(encoding="utf-8").splitlines()) == 3


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent_assist", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_cli_qa_writes_every_record(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"scores{suffix}"
    done = _cli("qa", str(EXAMPLES), "-o", str(out), "--report", str(tmp_path / "r.html"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    n_in = sum(1 for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip())
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    elif suffix == ".csv":
        import csv

        with out.open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
    assert len(rows) == n_in
    assert sum(1 for r in rows if r["error"]) == 4
    assert "could not be scored" in done.stdout and (tmp_path / "r.html").is_file()


def test_cli_qa_exit_codes(tmp_path):
    assert _cli("qa", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o.jsonl"), cwd=tmp_path).returncode == 2
    assert _cli("qa", str(EXAMPLES), "-o", str(tmp_path / "o.txt"), cwd=tmp_path).returncode == 2
    assert _cli("qa", str(EXAMPLES), "-o", str(tmp_path / "nodir" / "o.jsonl"), cwd=tmp_path).returncode == 2
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n", encoding="utf-8")
    done = _cli("qa", str(bad_csv), "-o", str(tmp_path / "o.jsonl"), cwd=tmp_path)
    assert done.returncode == 2 and "missing column" in done.stderr
    assert not (tmp_path / "o.jsonl").exists()


def _frame():
    pd = pytest.importorskip("pandas")
    rows = []
    for c in range(6):
        rows += [
            {"conversation_id": f"c{c}", "turn_index": 0, "speaker": "客户", "text": "第三次打电话了，还没人处理！"},
            {"conversation_id": f"c{c}", "turn_index": 1, "speaker": "客服", "text": "非常抱歉，我今天18点前给您回电。"},
        ]
    return pd.DataFrame(rows)


def test_score_frame_one_row_per_conversation():
    out = score_frame(_frame())
    assert list(out.columns) == list(FLAT_COLUMNS)
    assert list(out["id"]) == [f"c{i}" for i in range(6)]
    assert out["error"].isna().all() and (out["score"] > 0).all()
    assert all("repeat_complaint" in f for f in out["flags"])


def test_spark_schema_names_every_column_once():
    from agent_assist.batch import spark_schema

    names = [part.split("`")[1] for part in spark_schema().split(", ")]
    assert names == list(FLAT_COLUMNS)
    assert "`score` double" in spark_schema()


def test_dask_map_partitions_on_a_local_cluster():
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    df = _frame()
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    meta = score_frame(df.head(0))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        out = ddf.map_partitions(score_frame, meta=meta).compute()
    assert sorted(out["id"]) == [f"c{i}" for i in range(6)]
    expected = score_frame(df).set_index("id")["score"]
    assert (out.set_index("id")["score"].sort_index() == expected.sort_index()).all()


def test_batch_gc_restores_the_collector_and_respects_a_programs_own_freeze():
    import gc

    from agent_assist.batch import batch_gc

    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with batch_gc():
        assert gc.get_threshold()[0] > before[0]
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    gc.freeze()  # the program tuned the collector itself: left alone
    try:
        frozen = gc.get_freeze_count()
        with batch_gc():
            assert gc.get_threshold() == before
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_score_file_leaves_the_collector_as_it_found_it(tmp_path):
    import gc

    from agent_assist import score_file

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "turns": [{"speaker": "客户", "text": "还没到货"}]}) + "\n", encoding="utf-8")
    before = gc.get_threshold()
    score_file(src, tmp_path / "out.jsonl")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
