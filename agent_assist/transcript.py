"""Recorded conversations as input: the ``Transcript`` model and streaming readers.

Readers never hold a whole file: they yield one :class:`Record` per transcript (a JSONL
line, or a run of CSV/Parquet rows sharing a ``conversation_id``), with the raw fields and
where they came from. Parsing into a :class:`Transcript` happens later, in whichever
process scores it, so a malformed record becomes an error result there instead of an
exception here. Only an unreadable file (missing, not CSV, required columns absent) raises.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .results import Turn

#: Columns of the long form (one row per turn) for CSV and Parquet.
LONG_COLUMNS = ("conversation_id", "turn_index", "speaker", "text")
OPTIONAL_COLUMNS = ("start", "end", "agent_id", "channel")


class Transcript(BaseModel):
    """One recorded conversation. Extra fields (industry, …) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(description="Conversation id, unique within a batch.")
    agent_id: str | None = Field(None, description="The agent who handled it, if known.")
    channel: str | None = Field(None, description="phone, chat, email …, if known.")
    turns: list[Turn] = Field(min_length=1, description="The turns in order.")

    @field_validator("id", "agent_id", mode="before")
    @classmethod
    def _number_ids(cls, v: Any) -> Any:
        # Ids exported from spreadsheets and databases are often numbers.
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


@dataclass(frozen=True, slots=True)
class Record:
    """A transcript as read, before validation: its fields or why they could not be read."""

    line: int  # 1-based line (JSONL) or first row (CSV, Parquet) in the input
    data: dict[str, Any] | None
    error: str | None = None

    @property
    def id(self) -> str | None:
        if isinstance(self.data, dict) and isinstance(self.data.get("id"), (str, int)):
            return str(self.data["id"])
        return None

    def texts(self) -> list[str] | None:
        """The turns' texts as read ("" where a turn has none), for showing them in reports."""
        turns = self.data.get("turns") if isinstance(self.data, dict) else None
        if not isinstance(turns, list):
            return None
        return [
            t.get("text") if isinstance(t, dict) and isinstance(t.get("text"), str) else "" for t in turns
        ]


class TranscriptError(ValueError):
    """A record that is not a valid transcript; the message says what and where."""


def parse_transcript(data: Any, speakers: Mapping[str, str], *, line: int | None = None) -> Transcript:
    """Validate raw fields as a :class:`Transcript`, mapping speaker aliases.

    ``speakers`` maps lower-cased aliases (客户, user, C …) to ``customer`` or ``agent``.
    Raises :class:`TranscriptError` naming the field (and line) that is wrong.
    """
    where = f"line {line}: " if line is not None else ""
    if not isinstance(data, Mapping):
        raise TranscriptError(f"{where}a transcript must be an object, not {type(data).__name__}")
    turns = data.get("turns")
    if isinstance(turns, list):
        mapped = []
        for i, turn in enumerate(turns):
            if isinstance(turn, Mapping):
                raw = turn.get("speaker", turn.get("role"))
                role = speakers.get(raw.strip().lower()) if isinstance(raw, str) else None
                if role is None:
                    raise TranscriptError(f"{where}turns[{i}].speaker: unknown speaker {raw!r}")
                turn = {**turn, "speaker": role}
                turn.pop("role", None)
                if isinstance(turn.get("text"), str):
                    turn["text"] = _no_surrogates(turn["text"])
            mapped.append(turn)
        data = {**data, "turns": mapped}
    data = {k: _no_surrogates(v) if isinstance(v, str) else v for k, v in data.items()}
    try:
        return Transcript.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        raise TranscriptError(f"{where}{loc or 'transcript'}: {err['msg']}") from None


def _no_surrogates(text: str) -> str:
    """Lone surrogates (undecodable bytes) become U+FFFD, one for one, so results can be
    written as UTF-8 and offsets stay valid."""
    # A surrogate is not printable: most turns pass the C-level test without a regex scan.
    return text if text.isascii() or text.isprintable() else _SURROGATE.sub("\ufffd", text)


_SURROGATE = re.compile("[\ud800-\udfff]")
#: Marks a CSV row that held bytes that are not UTF-8 (see :func:`read_csv`).
_UNDECODABLE = "\x00undecodable"


def read_jsonl(path: Path) -> Iterator[Record]:
    """One record per non-blank line; a line that is not JSON (or not UTF-8) is an error record."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            record = jsonl_record(n, raw)
            if record is not None:
                yield record


def jsonl_record(n: int, raw: bytes) -> Record | None:
    """Line ``n`` of a JSONL file as a record; ``None`` for a blank line.

    Decoding per line keeps one stray non-UTF-8 byte from ending a million-line run.
    """
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Record(n, None, f"line {n}: not valid UTF-8 (byte {e.start + 1} of the line)")
    if n == 1:
        line = line.removeprefix("\ufeff")  # a byte-order mark some editors write
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return Record(n, None, f"line {n}: not valid JSON ({e.msg})")
    return Record(n, obj if isinstance(obj, dict) else {"_value": obj})


def _group_long_rows(rows: Iterable[tuple[int, Mapping[str, Any]]], source: str) -> Iterator[Record]:
    """Consecutive rows with the same conversation_id form one transcript."""
    current: str | None = None
    first_line = 0
    turns: list[tuple[Any, dict[str, Any]]] = []
    meta: dict[str, Any] = {}
    undecodable: int | None = None  # the first row of the conversation that was not UTF-8

    def flush() -> Record:
        if undecodable is not None:
            return Record(
                first_line,
                None,
                f"{source} row {undecodable}: conversation {current!r} is not valid UTF-8",
            )
        try:
            ordered = sorted(turns, key=lambda t: float(t[0]))
        except (TypeError, ValueError):
            bad = next(t[0] for t in turns if not _is_number(t[0]))
            return Record(
                first_line,
                None,
                f"{source} row {first_line}: conversation {current!r} "
                f"has a turn_index that is not a number: {bad!r}",
            )
        return Record(first_line, {"id": current, **meta, "turns": [t for _, t in ordered]})

    for line, row in rows:
        cid = row.get("conversation_id")
        cid = None if cid is None else str(cid)
        if cid != current and turns:
            yield flush()
            turns, meta, undecodable = [], {}, None
        if not turns:
            current, first_line = cid, line
            meta = {k: row[k] for k in ("agent_id", "channel") if _present(row.get(k))}
        if undecodable is None and row.get(_UNDECODABLE):
            undecodable = line
        turn = {"speaker": row.get("speaker"), "text": row.get("text")}
        for k in ("start", "end"):
            if _present(row.get(k)):
                turn[k] = _number(row[k])
        turns.append((row.get("turn_index"), turn))
    if turns:
        yield flush()


def _present(v: Any) -> bool:
    """Not missing: None, '' and NaN (pandas' empty cell) all count as missing."""
    return v is not None and v != "" and v == v


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _number(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v  # left as is: validation reports it with its place
    return v


def read_csv(path: Path) -> Iterator[Record]:
    """Long-form CSV (``conversation_id, turn_index, speaker, text, start, end``).

    A byte that is not UTF-8 makes its conversation an error record, as a bad line of JSONL
    does, instead of ending the run: bytes are read as lone surrogates, which valid UTF-8
    never decodes to, and the rows holding one are marked.
    """
    f = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.DictReader(f)
        missing = [c for c in LONG_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")

        def rows() -> Iterator[tuple[int, dict[str, Any]]]:
            # Line numbers: the header is line 1 (multi-line quoted cells would shift them).
            for i, row in enumerate(reader):
                if any(isinstance(v, str) and _SURROGATE.search(v) for v in row.values()):
                    row[_UNDECODABLE] = True
                yield i + 2, row

        yield from _group_long_rows(rows(), "csv")
    finally:
        f.close()


def read_parquet(path: Path, batch_size: int = 8192) -> Iterator[Record]:
    """Long-form Parquet, read in batches (needs ``pyarrow``: the ``[parquet]`` extra)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("reading Parquet needs pyarrow: pip install 'agent_assist[parquet]'") from None
    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    missing = [c for c in LONG_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    columns = [c for c in LONG_COLUMNS + OPTIONAL_COLUMNS if c in names]

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        n = 0
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            for row in batch.to_pylist():
                n += 1
                yield n, row

    yield from _group_long_rows(rows(), "parquet")


def read_transcripts(path: str | Path) -> Iterator[Record]:
    """Records from a ``.jsonl``, ``.csv`` or ``.parquet`` file, streamed."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return read_jsonl(p)
    if suffix == ".csv":
        return read_csv(p)
    if suffix in (".parquet", ".pq"):
        return read_parquet(p)
    raise ValueError(f"{p}: unknown input format {suffix!r} (use .jsonl, .csv or .parquet)")
