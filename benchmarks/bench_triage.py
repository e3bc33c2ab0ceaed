"""Warm latency of ``triage`` + ``extract_slots`` on 60-character messages (a benchmark, not a test).

Three pools:

* ``reviews``: 500 negative online-shopping reviews (shared/data/polarity, when present), cut
  to 60 characters: real customer wording, about as dense in cues as a single complaint;
* ``dense``: consecutive messages of ``tests/data/triage_domain.jsonl`` joined and cut to 60
  characters (two or three complaints' cues in one message: a stress case);
* ``fixture``: the fixture's messages as written (23 characters on average).

Every message is run once to warm up; then each pool is timed ``--rounds`` times and the
best round is reported, per message. "once" normalises each message a single time and
calls ``triage_normalized`` / ``extract_normalized``, as a caller running both does.

    PYTHONPATH=. python benchmarks/bench_triage.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

from agent_assist import Phrasebook
from agent_assist.slots import slot_extractor
from agent_assist.triage import triager

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "data" / "triage_domain.jsonl"
REVIEWS = ROOT.parent / "shared" / "data" / "polarity" / "online_shopping_10_cats.jsonl"
LENGTH = 60


def _pools() -> dict[str, list[str]]:
    rows = [json.loads(line)["text"] for line in FIXTURE.open(encoding="utf-8")]
    pools = {
        "dense": ["，".join(rows[i : i + 4])[:LENGTH] for i in range(len(rows) - 4)],
        "fixture": rows,
    }
    if REVIEWS.is_file():
        neg = []
        with REVIEWS.open(encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                if r.get("label") == "negative" and len(r["text"]) >= LENGTH:
                    neg.append(r["text"][:LENGTH])
        random.Random(0).shuffle(neg)
        pools = {"reviews": neg[:500], **pools}
    return pools


def _best(f: Callable[[str], object], texts: list[str], rounds: int) -> float:
    """Best round's mean time per message, in µs."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for text in texts:
            f(text)
        best = min(best, (time.perf_counter_ns() - t0) / len(texts) / 1000)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    rounds = ap.parse_args().rounds
    pb = Phrasebook()
    t, s, nz = triager(pb), slot_extractor(pb), pb.normalizer

    def both(text: str) -> object:
        return t.triage(text), s.extract(text)

    def once(text: str) -> object:
        n = nz.normalize(text)
        return t.triage_normalized(n), s.extract_normalized(n)

    for name, texts in _pools().items():
        for text in texts:
            once(text)
        chars = sum(map(len, texts)) / len(texts)
        times = {
            label: _best(f, texts, rounds)
            for label, f in [("triage", t.triage), ("slots", s.extract), ("both", both), ("once", once)]
        }
        print(
            f"{name:8s} {len(texts):4d} messages, {chars:4.1f} chars: "
            + ", ".join(f"{k} {v:5.1f} µs" for k, v in times.items())
        )


if __name__ == "__main__":
    main()
