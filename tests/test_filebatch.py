"""score_file: the file-to-file run, serial and with worker processes over blocks of lines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from agent_assist import filebatch
from agent_assist.filebatch import BatchSummary, _blocks, score_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "transcripts.jsonl"


def _awkward_file(path: Path, copies: int = 6) -> Path:
    """The examples several times over, with every kind of line a reader can meet."""
    good = EXAMPLES.read_bytes()
    extra = (
        b"\n"  # blank line: no record
        + b"   \n"
        + b'{"id": "bad-bytes", "turns": [{"speaker": "\xff\xfe", "text": "x"}]}\n'  # not UTF-8
        + b"[1, 2]\n"  # JSON, not an object
        + '{"id": "no-newline-at-end", "turns": [{"speaker": "客户", "text": "还没到"}]}'.encode()
    )
    path.write_bytes("\ufeff".encode() + good * copies + extra)
    return path


def _records_in(path: Path) -> int:
    lines = path.read_bytes().split(b"\n")
    return sum(1 for raw in lines if raw.strip(b" \r\t"))


@pytest.fixture(scope="module")
def awkward(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _awkward_file(tmp_path_factory.mktemp("in") / "in.jsonl")


def test_blocks_cover_the_file_exactly_on_line_boundaries(awkward: Path) -> None:
    data = awkward.read_bytes()
    for size in (7, 64, 1000, 1 << 18):  # 7 bytes: most lines are longer than a block
        blocks = list(_blocks(awkward, size))
        assert b"".join(data[b.offset : b.offset + b.length] for b in blocks) == data
        for b in blocks:
            assert b.first_line == data.count(b"\n", 0, b.offset) + 1
            assert b.offset == 0 or data[b.offset - 1 : b.offset] == b"\n"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_two_workers_write_the_same_file_as_one(
    tmp_path: Path, awkward: Path, monkeypatch, suffix: str
) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(filebatch, "_BLOCK_BYTES", 4096)  # many blocks from a small file
    one = score_file(awkward, tmp_path / f"one{suffix}", workers=1)
    two = score_file(awkward, tmp_path / f"two{suffix}", workers=2)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(tmp_path / "one.parquet").equals(pq.read_table(tmp_path / "two.parquet"))
    else:
        assert (tmp_path / f"one{suffix}").read_bytes() == (tmp_path / f"two{suffix}").read_bytes()
    assert (one.count, one.errors, one.lowest) == (two.count, two.errors, two.lowest)
    assert one.mean_score == pytest.approx(two.mean_score)  # summed in another order
    assert one.count == _records_in(awkward)


_PIDS: Path | None = None
_SCORE_BLOCK = filebatch._score_block


def _score_block_noting_pid(*args, **kwargs):  # type: ignore[no-untyped-def]
    """_score_block, writing down which process ran it (module level: workers unpickle it)."""
    assert _PIDS is not None
    with _PIDS.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return _SCORE_BLOCK(*args, **kwargs)


def test_the_pool_with_one_worker_process_writes_what_this_process_writes(
    tmp_path: Path, awkward: Path, monkeypatch
) -> None:
    # score_file keeps one worker in-process; the pool path must still hold for one (the
    # benchmark measures a single worker process through it).
    from agent_assist.batch import _Progress
    from agent_assist.output import AtomicOutput

    monkeypatch.setattr(filebatch, "_BLOCK_BYTES", 4096)
    pids = tmp_path / "pids"
    monkeypatch.setattr(sys.modules[__name__], "_PIDS", pids)  # forked workers see it too
    monkeypatch.setattr(filebatch, "_score_block", _score_block_noting_pid)
    score_file(awkward, tmp_path / "here.jsonl", workers=1)
    assert set(pids.read_text().split()) == {str(os.getpid())}
    pids.unlink()
    out = AtomicOutput(tmp_path / "pool.jsonl")
    tally = filebatch._Tally()
    filebatch._blocks_in_parallel(awkward, out, 1, True, None, tally, _Progress(False), None)
    out.commit()
    assert str(os.getpid()) not in pids.read_text().split()
    assert (tmp_path / "pool.jsonl").read_bytes() == (tmp_path / "here.jsonl").read_bytes()
    assert tally.count == _records_in(awkward)


def test_every_line_gets_its_result_with_its_line_number(tmp_path: Path, awkward: Path, monkeypatch) -> None:
    monkeypatch.setattr(filebatch, "_BLOCK_BYTES", 2048)
    summary = score_file(awkward, tmp_path / "out.jsonl", workers=2)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == summary.count == _records_in(awkward)
    by_id = {r["id"]: r for r in rows if r["id"]}
    assert by_id["no-newline-at-end"]["error"] is None  # the last line without "\n" is read
    errors = [r for r in rows if r["error"]]
    assert summary.errors == len(errors)
    lines = awkward.read_bytes().split(b"\n")
    for r in errors:  # each error names its line, and that line is the culprit
        assert r["error"].startswith(f"line {r['line']}:")
        assert lines[r["line"] - 1].strip()
    assert any("not valid UTF-8" in r["error"] for r in errors)
    assert rows[0]["error"] is None  # the byte-order mark does not spoil the first line


def test_reports_from_two_workers_and_from_one_are_the_same_page(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(filebatch, "_BLOCK_BYTES", 4096)
    score_file(EXAMPLES, tmp_path / "a.jsonl", workers=1, report=tmp_path / "a.html")
    score_file(EXAMPLES, tmp_path / "b.jsonl", workers=2, report=tmp_path / "b.html")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def _fail_on_first_block(path, block, suffix, redact, with_report):  # type: ignore[no-untyped-def]
    if block.first_line == 1:
        raise RuntimeError("worker lost")
    return _real_score_block(path, block, suffix, redact, with_report)


_real_score_block = filebatch._score_block


def test_a_failing_block_marks_its_records_and_the_rest_are_scored(tmp_path: Path, monkeypatch) -> None:
    # Worker processes are forked from this one (Linux), so they see the patched function.
    monkeypatch.setattr(filebatch, "_BLOCK_BYTES", 4096)
    monkeypatch.setattr(filebatch, "_score_block", _fail_on_first_block)
    summary = score_file(EXAMPLES, tmp_path / "out.jsonl", workers=2, report=tmp_path / "r.html")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == summary.count == _records_in(EXAMPLES)
    lost = [r for r in rows if r["error"] and "worker lost" in r["error"]]
    assert lost and lost[0]["line"] == 1
    assert any(r["error"] is None for r in rows)
    assert (tmp_path / "r.html").exists()


def test_summary_and_errors_for_unusable_paths(tmp_path: Path) -> None:
    s = score_file(EXAMPLES, tmp_path / "out.csv")
    assert isinstance(s, BatchSummary)
    assert s.count == _records_in(EXAMPLES) and s.errors == 4
    assert s.mean_score is not None and 0 <= s.mean_score <= 100
    assert [score for _, score in s.lowest] == sorted(score for _, score in s.lowest)
    with pytest.raises(OSError):
        score_file(tmp_path / "missing.jsonl", tmp_path / "o.jsonl")
    with pytest.raises(ValueError, match="output format"):
        score_file(EXAMPLES, tmp_path / "o.txt")
    assert not list(tmp_path.glob(".*.tmp"))
