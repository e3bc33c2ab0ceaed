"""Scoring a whole file of transcripts into an output file, with a summary and a report.

With several workers and JSONL input, the parent process hands out byte ranges of the input
(whole lines) and gets back each range's output already serialised, plus small mergeable
tallies. It never parses, validates or pickles a transcript or a result, so it stays out
of the workers' way and two workers run about twice as fast as one. Other inputs (CSV,
Parquet) go through :func:`agent_assist.score_transcripts`.
"""

from __future__ import annotations

import io
import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from .assistant import Assistant, default_assistant
from .batch import _init_worker, _Progress, _safe_score_many, batch_gc, failed, score_transcripts
from .output import AtomicOutput, serialise
from .qa import QAResult
from .report import Report
from .results import ResultModel
from .transcript import Record, jsonl_record, read_transcripts

_BLOCK_BYTES = 1 << 18  # input per task: ~100 transcripts of 20 turns, ~0.1 s of work
_IN_FLIGHT_PER_WORKER = 3
_LOWEST = 5


class BatchSummary(ResultModel):
    """What a scoring run did, for the end of a log or a dashboard."""

    count: int = Field(description="Records read (every one has a result in the output).")
    errors: int = Field(description="Records that could not be scored (their result says why).")
    mean_score: float | None = Field(description="Mean score of the scored records; None if none.")
    lowest: list[tuple[str, float]] = Field(
        description=f"The {_LOWEST} lowest-scoring transcripts as (id, score), lowest first."
    )
    output: str = Field(description="The output file written.")
    report: str | None = Field(default=None, description="The HTML report written, if asked for.")


@dataclass
class _Tally:
    count: int = 0
    errors: int = 0
    total: float = 0.0
    lowest: list[tuple[float, str]] = field(default_factory=list)

    def add(self, r: QAResult) -> None:
        self.count += 1
        if r.error is not None or r.score is None:
            self.errors += 1
            return
        self.total += r.score
        if len(self.lowest) < _LOWEST or r.score < self.lowest[-1][0]:
            self.lowest = sorted([*self.lowest, (r.score, r.id or "?")])[:_LOWEST]

    def merge(self, other: _Tally) -> None:
        self.count += other.count
        self.errors += other.errors
        self.total += other.total
        self.lowest = sorted(self.lowest + other.lowest)[:_LOWEST]


def score_file(
    source: str | Path,
    output: str | Path,
    *,
    workers: int | None = None,
    redact: bool = True,
    report: str | Path | None = None,
    phrasebooks: str | Path | None = None,
    progress: bool = False,
) -> BatchSummary:
    """Score every transcript in ``source`` (.jsonl, .csv, .parquet) into ``output``.

    ``output`` (.jsonl, .csv or .parquet) appears only when the run completes: it is written
    under a temporary name and renamed. One result per record, in input order. ``redact``
    masks personal data in evidence texts and the report. ``report``: also write the HTML
    report there. Raises ``ValueError``/``OSError`` for an unreadable input or unwritable output.
    While it runs, CPython's garbage collector is tuned for the job (``gc.freeze`` of what is
    loaded, gen-0 threshold 50,000; restored at the end; left alone if the program froze
    objects itself).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "in.jsonl").write_text('{"id": "a", "turns": [{"speaker": "客户", "text": "还没到货"}]}\\n'
    ...                                  'not json\\n', encoding="utf-8")
    >>> s = score_file(d / "in.jsonl", d / "out.jsonl")
    >>> (s.count, s.errors, len((d / "out.jsonl").read_text(encoding="utf-8").splitlines()))
    (2, 1, 2)
    """
    source = Path(source)
    if not source.is_file():
        raise OSError(f"cannot read {source}")
    records = read_transcripts(source)  # checks the format before anything is created
    assistant = _assistant(phrasebooks)  # a bad phrasebook directory fails here, not in a worker
    out = AtomicOutput(output)
    pages = Report(redact=assistant.redact if redact else None) if report is not None else None
    tally = _Tally()
    bar = _Progress(progress)
    try:
        with batch_gc():  # a whole job: tune the collector for it (see batch._batch_gc)
            if source.suffix.lower() in (".jsonl", ".ndjson"):
                n = max(1, workers or 1)
                here = assistant if n == 1 else None  # one worker: this process, no pool
                _blocks_in_parallel(source, out, n, redact, pages, tally, bar, phrasebooks, here)
            else:
                mine, theirs = itertools.tee(records)
                results = score_transcripts(theirs, workers=workers, phrasebooks=phrasebooks, redact=redact)
                for record, r in zip(mine, results):
                    out.write(r)
                    tally.add(r)
                    if pages is not None:
                        pages.add(r, record.texts())
                    bar.tick()
        out.commit()
    except BaseException:
        out.abort()
        raise
    finally:
        bar.close()
    if pages is not None:
        pages.write(report)  # type: ignore[arg-type]
    scored = tally.count - tally.errors
    return BatchSummary(
        count=tally.count,
        errors=tally.errors,
        mean_score=tally.total / scored if scored else None,
        lowest=[(i, s) for s, i in tally.lowest],
        output=str(output),
        report=None if report is None else str(report),
    )


def _assistant(phrasebooks: str | Path | None) -> Assistant:
    if phrasebooks is None:
        return default_assistant()
    assistant = Assistant(phrasebooks)
    assistant.validate()
    return assistant


# --- the parallel path: blocks of lines in, serialised output out ---------------------------


@dataclass
class _Block:
    offset: int
    length: int
    first_line: int


@dataclass
class _BlockOut:
    data: bytes | str | list[dict[str, Any]]
    tally: _Tally
    report: Report | None


def _blocks(path: Path, size: int | None = None) -> Iterator[_Block]:
    """Consecutive byte ranges of whole lines, about ``size`` each, with their first line number.

    Only newlines are looked at, so this costs the parent a memchr over the file.
    """
    size = size or _BLOCK_BYTES
    offset, line, carried = 0, 1, 0  # carried: bytes read since the last newline
    with path.open("rb") as f:
        while buf := f.read(size):
            cut = buf.rfind(b"\n") + 1
            if not cut:  # a line longer than a block: keep reading until it ends
                carried += len(buf)
                continue
            length = carried + cut
            yield _Block(offset, length, line)
            line += buf.count(b"\n", 0, cut)
            offset += length
            carried = len(buf) - cut
    if carried:
        yield _Block(offset, carried, line)


def _block_records(path: Path, block: _Block) -> list[Record]:
    with path.open("rb") as f:
        f.seek(block.offset)
        data = f.read(block.length)
    # BytesIO splits exactly as iterating the file does (on b"\n", keeping it).
    records = (jsonl_record(block.first_line + i, raw) for i, raw in enumerate(io.BytesIO(data)))
    return [r for r in records if r is not None]


def _score_block(
    path: Path,
    block: _Block,
    suffix: str,
    redact: bool,
    with_report: bool,
    assistant: Assistant | None = None,
) -> _BlockOut:
    """Read, score and serialise one block (in a worker: with the worker's assistant)."""
    from .assistant import _worker_assistant

    assistant = assistant or _worker_assistant()
    scorer = assistant.qa
    pages = Report(redact=assistant.redact if redact else None) if with_report else None
    tally = _Tally()
    records = _block_records(path, block)
    results = _safe_score_many(scorer, [(None, r) for r in records], redact)
    for record, r in zip(records, results, strict=True):
        tally.add(r)
        if pages is not None:
            pages.add(r, record.texts())
    if pages is not None:
        pages.redact = None  # a bound method of the worker's Assistant: not worth pickling
    return _BlockOut(serialise(results, suffix), tally, pages)


def _blocks_in_parallel(
    path: Path,
    out: AtomicOutput,
    workers: int,
    redact: bool,
    pages: Report | None,
    tally: _Tally,
    bar: _Progress,
    phrasebooks: str | Path | None,
    assistant: Assistant | None = None,
) -> None:
    """Score ``path`` block by block into ``out``: in this process with ``assistant`` if
    given, else in ``workers`` processes (one included)."""

    def take(done: _BlockOut) -> None:
        if isinstance(done.data, bytes):
            out.write_bytes(done.data)
        elif isinstance(done.data, str):
            out.write_text(done.data)
        else:
            out.write_rows(done.data)
        tally.merge(done.tally)
        if pages is not None and done.report is not None:
            pages.merge(done.report)
        bar.tick(done.tally.count)

    if assistant is not None:  # the same blocks in this process: one code path, no per-record writes
        for block in _blocks(path):
            take(_score_block(path, block, out.suffix, redact, pages is not None, assistant))
        return
    pending: deque[tuple[_Block, Future[_BlockOut]]] = deque()
    initargs = (None if phrasebooks is None else str(phrasebooks),)
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=initargs) as pool:

        def drain(limit: int) -> None:
            while len(pending) > limit:
                block, fut = pending.popleft()
                try:
                    done = fut.result()
                except Exception as e:  # noqa: BLE001 - a dead worker costs its block's results, marked
                    done = _failed_block(path, block, out.suffix, f"worker failed: {type(e).__name__}: {e}")
                take(done)

        for block in _blocks(path):
            pending.append(
                (block, pool.submit(_score_block, path, block, out.suffix, redact, pages is not None))
            )
            drain(workers * _IN_FLIGHT_PER_WORKER)
        drain(0)


def _failed_block(path: Path, block: _Block, suffix: str, why: str) -> _BlockOut:
    results = [failed(record, None, why) for record in _block_records(path, block)]
    tally = _Tally()
    pages = Report()
    for r in results:
        tally.add(r)
        pages.add(r)
    return _BlockOut(serialise(results, suffix), tally, pages)
