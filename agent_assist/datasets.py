"""Labelled data for training and evaluation (development-time only, never on the hot path).

The public emotion corpora live outside the package (``shared/data`` beside the checkout,
or ``$AGENT_ASSIST_DATA``); only the weights trained from them ship. The train/dev split is
a pure function of the data and :data:`SPLIT_SEED`, so training and evaluation agree on it
without writing the text anywhere.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .phrasebook import TIERS

SPLIT_SEED = 20261123
DEV_FRACTION = 0.15


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    tier: str
    source: str


def default_data_dir() -> Path:
    """``$AGENT_ASSIST_DATA``, else ``shared/data`` next to the source checkout."""
    env = os.environ.get("AGENT_ASSIST_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a broken line raises with its number."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not JSON: {e.msg}") from None


def read_labelled(path: Path, label_key: str = "tier") -> list[Example]:
    """Rows with ``text`` and a tier label; rows whose label is not a tier are skipped."""
    out = []
    for _, obj in read_jsonl(path):
        tier = obj.get(label_key)
        if tier in TIERS and isinstance(obj.get("text"), str):
            out.append(Example(obj["text"], tier, str(obj.get("source", path.name))))
    return out


def public_emotion(data_dir: Path | None = None) -> list[Example]:
    """Every public row with a tier, deduplicated; texts labelled two ways are dropped."""
    folder = (data_dir or default_data_dir()) / "emotion"
    if not folder.is_dir():
        raise FileNotFoundError(f"no emotion data at {folder} (set AGENT_ASSIST_DATA)")
    by_text: dict[str, Example | None] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for ex in read_labelled(path):
            text = ex.text.strip()
            if not text:
                continue
            prev = by_text.get(text, ...)
            if prev is ...:
                by_text[text] = Example(text, ex.tier, ex.source)
            elif prev is not None and prev.tier != ex.tier:
                by_text[text] = None
    return [ex for ex in by_text.values() if ex is not None]


def split_public(data_dir: Path | None = None) -> tuple[list[Example], list[Example]]:
    """The fixed (train, dev) split of the public emotion data."""
    rows = sorted(public_emotion(data_dir), key=lambda e: e.text)
    random.Random(SPLIT_SEED).shuffle(rows)
    cut = int(len(rows) * DEV_FRACTION)
    return rows[cut:], rows[:cut]


def domain_train() -> list[Example]:
    """Complaint-domain examples written for training (incl. the indifference tier)."""
    return read_labelled(domain_train_path())


def domain_train_path() -> Path:
    """``models/training/emotion_domain_train.jsonl``, in the repository or the installed wheel."""
    path = Path(__file__).resolve().parent.parent / "models" / "training" / "emotion_domain_train.jsonl"
    if not path.is_file():
        from .phrasebook import bundled_models

        path = bundled_models() / "training" / "emotion_domain_train.jsonl"
    return path
