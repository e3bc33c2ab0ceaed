"""Scoring many transcripts: streaming, in order, optionally in several processes.

N records in, N results out, in input order: a record that cannot be scored becomes a
result with ``error`` set, never an exception that stops the batch. Memory stays flat
because at most a few chunks per worker are in flight at any time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .qa import QAResult, error_result
from .results import to_json
from .transcript import Record, Transcript

Item = Record | Transcript | Mapping[str, Any]

_CHUNK = 32  # transcripts per task sent to a worker
_IN_FLIGHT_PER_WORKER = 4  # chunks queued per worker: keeps both sides busy, memory bounded


def _score_chunk(chunk: list[tuple[int, Item]], redact: bool) -> list[dict[str, Any]]:
    from .assistant import _worker_assistant

    scorer = _worker_assistant().qa
    # Plain dicts cross the process boundary: pickling them is ~4x cheaper than pickling
    # the nested pydantic models, and the parent's re-validation is cheaper still.
    return [_safe_score(scorer, item, pos, redact).model_dump() for pos, item in chunk]


def _safe_score(scorer: Any, item: Item, pos: int, redact: bool = False) -> QAResult:
    try:
        return scorer.score_record(item, redact=redact)  # type: ignore[no-any-return]
    except Exception as e:  # noqa: BLE001 - one bad record must not stop the batch
        line = item.line if isinstance(item, Record) else None
        return error_result(f"record {pos + 1}: internal error {type(e).__name__}: {e}", line=line)


def _init_worker(phrasebooks: str | None) -> None:
    from .assistant import _set_worker_assistant

    _set_worker_assistant(phrasebooks)


class _Progress:
    """A one-line counter on stderr, refreshed at most twice a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.n = 0
        self.t0 = self.last = time.monotonic()

    def tick(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.5:
            self.last = now
            rate = self.n / max(now - self.t0, 1e-9)
            sys.stderr.write(f"\r  scored {self.n:,} transcripts ({rate:,.0f}/s)")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write(f"\r  scored {self.n:,} transcripts{' ' * 20}\n")
            sys.stderr.flush()


def score_transcripts(
    items: Iterable[Item],
    *,
    workers: int | None = None,
    progress: bool = False,
    phrasebooks: str | Path | None = None,
    redact: bool = False,
) -> Iterator[QAResult]:
    """Score transcripts lazily, in input order; ``workers`` > 1 uses that many processes.

    ``items``: :class:`Transcript` objects, dicts, or records from
    :func:`agent_assist.read_transcripts` (which carry line numbers into error results).
    ``redact``: mask personal data in the evidence texts (the CLI does by default).

    >>> from agent_assist import score_transcripts
    >>> rows = [{"id": "1", "turns": [{"speaker": "客户", "text": "还没到货"},
    ...                               {"speaker": "客服", "text": "抱歉，今天18点前给您回复"}]},
    ...         {"id": "2", "turns": []}]
    >>> [(r.id, r.error is None) for r in score_transcripts(rows)]
    [('1', True), ('2', False)]
    """
    bar = _Progress(progress)
    try:
        if not workers or workers <= 1:
            from .assistant import Assistant, default_assistant

            assistant = Assistant(phrasebooks) if phrasebooks is not None else default_assistant()
            scorer = assistant.qa
            for pos, item in enumerate(items):
                yield _safe_score(scorer, item, pos, redact)
                bar.tick()
            return
        yield from _parallel(items, workers, bar, None if phrasebooks is None else str(phrasebooks), redact)
    finally:
        bar.close()


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[tuple[int, Item]]]:
    chunk: list[tuple[int, Item]] = []
    for pos, item in enumerate(items):
        chunk.append((pos, item))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _parallel(
    items: Iterable[Item], workers: int, bar: _Progress, phrasebooks: str | None, redact: bool
) -> Iterator[QAResult]:
    pending: deque[tuple[list[tuple[int, Item]], Future[list[dict[str, Any]]]]] = deque()
    limit = workers * _IN_FLIGHT_PER_WORKER
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(phrasebooks,)) as pool:
        for chunk in _chunks(items, _CHUNK):
            pending.append((chunk, pool.submit(_score_chunk, chunk, redact)))
            while len(pending) >= limit:
                yield from _collect(*pending.popleft(), bar)
        while pending:
            yield from _collect(*pending.popleft(), bar)


def _collect(
    chunk: list[tuple[int, Item]], fut: Future[list[dict[str, Any]]], bar: _Progress
) -> Iterator[QAResult]:
    try:
        dumped = fut.result()
    except Exception as e:  # noqa: BLE001 - a dead worker costs its chunk, marked, not the batch
        dumped = [e] * len(chunk)
    results = []
    for (pos, item), d in zip(chunk, dumped):
        try:
            if isinstance(d, Exception):
                raise d
            results.append(QAResult.model_validate(d))
        except Exception as e:  # noqa: BLE001 - one record's failure stays that record's
            line = item.line if isinstance(item, Record) else None
            results.append(error_result(f"record {pos + 1}: worker failed: {type(e).__name__}: {e}", line=line))
    bar.tick(len(results))
    yield from results


# --- flat rows (CSV, Parquet, DataFrames) --------------------------------------------------


def flat_row(r: QAResult) -> dict[str, Any]:
    """One result as a flat dict of scalars: for CSV, Parquet and DataFrames."""
    t = r.triage
    row: dict[str, Any] = {
        "id": r.id,
        "line": r.line,
        "error": r.error,
        "agent_id": r.agent_id,
        "channel": r.channel,
        "score": r.score,
        "grade": r.grade,
        "start_tier": r.start_tier,
        "end_tier": r.end_tier,
        "trajectory": ">".join(p.tier for p in r.trajectory),
        "flags": ",".join(r.flags),
        "category": t.category if t else None,
        "subcategory": t.subcategory if t else None,
        "nature": t.nature if t else None,
        "level": t.level if t else None,
        "safety": t.safety if t else None,
        "talk_ratio": r.talk_ratio,
        "first_response_seconds": r.first_response_seconds,
        "turns": r.turns,
        "failed_items": ",".join(it.id for it in r.items if it.passed is False),
        "deductions": json.dumps(
            [
                {
                    "item": it.id,
                    "lost": it.points - it.earned,
                    "evidence": [e.model_dump() for e in it.evidence],
                }
                for it in r.items
                if it.passed is False
            ],
            ensure_ascii=False,
        ),
    }
    return row


# --- writing output atomically -------------------------------------------------------------


class AtomicOutput:
    """Write results to ``path`` through a temporary file renamed into place at the end.

    Until :meth:`commit`, nothing exists under the final name, so an interrupted run never
    leaves a half-written file that looks complete.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in (".jsonl", ".csv", ".parquet"):
            raise ValueError(
                f"{self.path}: unknown output format {self.suffix!r} (use .jsonl, .csv or .parquet)"
            )
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._rows: list[dict[str, Any]] = []
        self._writer: Any = None
        if self.suffix == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ValueError(
                    "writing Parquet needs pyarrow: pip install 'agent_assist[parquet]'"
                ) from None
        # backslashreplace: a lone surrogate in an id must not kill a million-line run.
        self._file = (
            None
            if self.suffix == ".parquet"
            else self.tmp.open("w", encoding="utf-8", errors="backslashreplace", newline="")
        )
        self._csv: Any = None

    def write(self, r: QAResult) -> None:
        if self.suffix == ".jsonl":
            assert self._file is not None
            self._file.write(to_json(r) + "\n")
        elif self.suffix == ".csv":
            import csv

            row = flat_row(r)
            if self._csv is None:
                self._csv = csv.DictWriter(self._file, fieldnames=list(row))  # type: ignore[arg-type]
                self._csv.writeheader()
            self._csv.writerow(row)
        else:
            self._rows.append(flat_row(r))
            if len(self._rows) >= 4096:
                self._flush_parquet()

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=self._writer.schema if self._writer else None)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, table.schema)
        self._writer.write_table(table)
        self._rows = []

    def commit(self) -> None:
        if self.suffix == ".parquet":
            self._flush_parquet()
            if self._writer is None:  # no rows at all: still write a valid, empty file
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table({"id": pa.array([], pa.string())}), self.tmp)
            else:
                self._writer.close()
        elif self._file is not None:
            self._file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if self._file is not None:
                self._file.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def score_frame(df: Any, *, phrasebooks: str | Path | None = None) -> Any:
    """Score a pandas DataFrame of turns in long form; one output row per conversation.

    Columns in: ``conversation_id, turn_index, speaker, text`` (+ ``start, end, agent_id,
    channel``). Rows of a conversation must be contiguous (as ``groupby``/``sort_values``
    or a Dask ``set_index('conversation_id')`` leave them). Columns out: :func:`flat_row`.
    Pure and process-local, so it runs unchanged under ``dask.dataframe.map_partitions``
    or Spark's ``mapInPandas``.
    """
    import pandas as pd

    from .transcript import _group_long_rows

    rows = ((i + 1, rec) for i, rec in enumerate(df.to_dict("records")))
    records = _group_long_rows(rows, "frame")
    out = [flat_row(r) for r in score_transcripts(records, phrasebooks=phrasebooks)]
    return pd.DataFrame(out, columns=list(FLAT_COLUMNS))


FLAT_COLUMNS = tuple(flat_row(QAResult(id=None)).keys())

_NUMERIC = {
    "line": "bigint",
    "turns": "bigint",
    "score": "double",
    "talk_ratio": "double",
    "first_response_seconds": "double",
    "safety": "boolean",
}


def spark_schema() -> str:
    """The DDL schema of :func:`score_frame`'s output, for Spark's ``mapInPandas``."""
    return ", ".join(f"`{c}` {_NUMERIC.get(c, 'string')}" for c in FLAT_COLUMNS)
