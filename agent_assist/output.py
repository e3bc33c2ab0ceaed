"""Results as files: flat rows for CSV, Parquet and DataFrames, and atomic output files."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .qa import QAResult
from .results import to_json_bytes

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
        # JSONL: bytes as serialised (to_json_bytes never holds a lone surrogate); CSV:
        # backslashreplace, so a lone surrogate in an id cannot kill a million-line run.
        self._file: Any = None
        if self.suffix == ".jsonl":
            self._file = self.tmp.open("wb")
        elif self.suffix == ".csv":
            self._file = self.tmp.open("w", encoding="utf-8", errors="backslashreplace", newline="")
        if self.suffix == ".csv":
            assert self._file is not None
            self._file.write(csv_lines([FLAT_COLUMNS]))

    def write(self, r: QAResult) -> None:
        """Append one result."""
        if self.suffix == ".jsonl":
            self.write_bytes(to_json_bytes(r) + b"\n")
        elif self.suffix == ".csv":
            self.write_text(csv_lines([flat_row(r).values()]))
        else:
            self.write_rows([flat_row(r)])

    def write_text(self, text: str) -> None:
        """Append lines already serialised for this format (JSONL, or CSV without header)."""
        assert self._file is not None, "Parquet output takes rows, not text"
        self._file.write(text.encode("utf-8", "backslashreplace") if self.suffix == ".jsonl" else text)

    def write_bytes(self, data: bytes) -> None:
        """Append JSONL lines already serialised to UTF-8 (see :func:`serialise`)."""
        assert self.suffix == ".jsonl", "only JSONL output takes bytes"
        self._file.write(data)

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Append :func:`flat_row` rows (Parquet)."""
        self._rows.extend(rows)
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


FLAT_COLUMNS = tuple(flat_row(QAResult(id=None)).keys())


def serialise(results: list[QAResult], suffix: str) -> bytes | str | list[dict[str, Any]]:
    """Results in the shape :class:`AtomicOutput` appends for ``suffix``: UTF-8 lines
    (JSONL), text (CSV) or rows (Parquet)."""
    if suffix == ".jsonl":
        return b"".join([to_json_bytes(r) + b"\n" for r in results])
    rows = [flat_row(r) for r in results]
    return csv_lines(row.values() for row in rows) if suffix == ".csv" else rows


def csv_lines(rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()
