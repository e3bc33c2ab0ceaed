"""Scoring many transcripts: streaming, in order, optionally in several processes.

N records in, N results out, in input order: a record that cannot be scored becomes a
result with ``error`` set, never an exception that stops the batch. Memory stays flat
because at most a few chunks per worker are in flight at any time.
"""

from __future__ import annotations

import gc
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .output import FLAT_COLUMNS, flat_row
from .qa import QAResult, error_result
from .transcript import Record, Transcript

Item = Record | Transcript | Mapping[str, Any]

_CHUNK = 32  # transcripts per task sent to a worker
_IN_FLIGHT_PER_WORKER = 4  # chunks queued per worker: keeps both sides busy, memory bounded


def _score_chunk(chunk: list[tuple[int, Item]], redact: bool) -> list[str]:
    from .assistant import _worker_assistant

    scorer = _worker_assistant().qa
    # JSON text crosses the process boundary: one string per result pickles ~10x faster
    # than the nested dicts of model_dump(), and the parent's model_validate_json (in
    # pydantic-core) builds the result without first allocating those dicts.
    return [r.model_dump_json() for r in _safe_score_many(scorer, chunk, redact)]


def _safe_score(scorer: Any, item: Item, pos: int | None, redact: bool = False) -> QAResult:
    try:
        return scorer.score_record(item, redact=redact)  # type: ignore[no-any-return]
    except Exception as e:  # noqa: BLE001 - one bad record must not stop the batch
        return failed(item, pos, f"internal error {type(e).__name__}: {e}")


def _safe_score_many(
    scorer: Any, chunk: list[tuple[int | None, Item]], redact: bool = False
) -> list[QAResult]:
    """Results of a chunk of (position, item), scored together (one model pass); if that
    fails, one by one, so the failure stays with the records that cause it."""
    try:
        return scorer.score_records([item for _, item in chunk], redact=redact)  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - retried record by record below
        return [_safe_score(scorer, item, pos, redact) for pos, item in chunk]


def failed(item: Item, pos: int | None, why: str) -> QAResult:
    """An error result for ``item``, located by its input line when known, else its position."""
    line = item.line if isinstance(item, Record) else None
    where = f"line {line}" if line is not None else f"record {(pos or 0) + 1}"
    return error_result(f"{where}: {why}", line=line)


def _init_worker(phrasebooks: str | None) -> None:
    from .assistant import _set_worker_assistant

    _set_worker_assistant(phrasebooks)
    _batch_gc()  # the worker process is ours and only ever scores: for its whole life


_GEN0_THRESHOLD = 50_000


def _batch_gc() -> tuple[int, int, int] | None:
    """Tune CPython's collector for scoring; returns the settings to restore (``None``: left
    alone, because the program froze objects itself and knows better).

    Scoring allocates many small containers (results, evidence, lists) that live until the
    result is written. With the default gen-0 threshold of 700 the collector runs every few
    turns, and each run that reaches the oldest generation walks every loaded phrasebook
    and model object: ~20 % of a run's time. Freezing what is loaded (``gc.freeze``) and
    collecting gen 0 only every 50,000 allocations removes most of that; scoring makes no
    reference cycles, so garbage does not pile up.
    """
    if gc.get_freeze_count():
        return None
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(_GEN0_THRESHOLD, *before[1:])
    return before


@contextmanager
def batch_gc() -> Iterator[None]:
    """:func:`_batch_gc` for the length of a ``with`` block, then the settings as they were."""
    before = _batch_gc()
    try:
        yield
    finally:
        if before is not None:
            gc.set_threshold(*before)
            gc.unfreeze()


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
            # Chunks, not single records: the models read a chunk's turns in one pass.
            for chunk in _chunks(items, _CHUNK):
                for r in _safe_score_many(scorer, chunk, redact):
                    yield r
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
    pending: deque[tuple[list[tuple[int, Item]], Future[list[str]]]] = deque()
    limit = workers * _IN_FLIGHT_PER_WORKER
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(phrasebooks,)) as pool:
        for chunk in _chunks(items, _CHUNK):
            pending.append((chunk, pool.submit(_score_chunk, chunk, redact)))
            while len(pending) >= limit:
                yield from _collect(*pending.popleft(), bar)
        while pending:
            yield from _collect(*pending.popleft(), bar)


def _collect(
    chunk: list[tuple[int, Item]], fut: Future[list[str]], bar: _Progress
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
            results.append(QAResult.model_validate_json(d))
        except Exception as e:  # noqa: BLE001 - one record's failure stays that record's
            results.append(failed(item, pos, f"worker failed: {type(e).__name__}: {e}"))
    bar.tick(len(results))
    yield from results


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
