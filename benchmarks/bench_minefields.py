"""Warm latency of ``check_reply`` on 60-character replies (a benchmark, not a test).

Replies come from our development set ``tests/data/replies_dev.jsonl`` (never from the
evaluation set). Two pools, both of replies exactly 60 characters long:

* ``single``: every dev reply, padded to 60 characters with sentences taken from the dev
  set's clean replies (a draft with that row's minefields, if any, and nothing else);
* ``dense``: consecutive dev replies joined and cut to 60 characters (two or three
  replies' minefields in one draft: a stress case, about four hits a reply).

Each reply is checked once to warm up, then every reply is timed ``--rounds`` times with
``time.perf_counter_ns``; p50/p99 are over all timed calls.

    PYTHONPATH=. python benchmarks/bench_minefields.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from agent_assist import Assistant

DEV = Path(__file__).resolve().parent.parent / "tests" / "data" / "replies_dev.jsonl"
LENGTH = 60


def _rows() -> list[dict]:
    return [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]


def single_replies(n: int = LENGTH) -> list[tuple[str, str]]:
    """Each dev reply padded to ``n`` characters with clean dev replies, with its customer text."""
    rows = _rows()
    filler = [r["reply"] for r in rows if not r["kinds"] and not r["hard_negative"]]
    out = []
    for i, row in enumerate(rows):
        text = row["reply"]
        j = i
        while len(text) < n:
            text += filler[j % len(filler)]
            j += 1
        out.append((text[:n], row["customer"]))
    return out


def replies_of_length(n: int = LENGTH) -> list[tuple[str, str]]:
    """Consecutive dev replies joined and cut to ``n`` characters (the dense pool)."""
    rows = _rows()
    out: list[tuple[str, str]] = []
    buf, customer = "", ""
    for row in rows:
        buf = buf + row["reply"] if buf else row["reply"]
        customer = customer or row["customer"]
        if len(buf) >= n:
            out.append((buf[:n], customer))
            buf, customer = "", ""
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench(check, pool: list[tuple[str, str]], rounds: int, clock=time.perf_counter_ns) -> dict[str, list[float]]:
    for reply, customer in pool:  # warm: loads and compiles the phrasebook, fills caches
        check(reply, customer_text=customer)
    out: dict[str, list[float]] = {"all": [], "clean": [], "with hits": []}
    for _ in range(rounds):
        for reply, customer in pool:
            t0 = clock()
            r = check(reply, customer_text=customer)
            dt = (clock() - t0) / 1000
            out["all"].append(dt)
            out["clean" if r.ok else "with hits"].append(dt)
    for values in out.values():
        values.sort()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=20, help="timed passes over each pool")
    p.add_argument(
        "--cpu", action="store_true",
        help="time with the thread's CPU clock instead of the wall clock (steadier on a busy machine)",
    )
    args = p.parse_args()
    check = Assistant().check_reply
    clock = time.thread_time_ns if args.cpu else time.perf_counter_ns
    print(f"clock: {'thread CPU time' if args.cpu else 'wall clock'}")
    for name, pool in (("single", single_replies()), ("dense", replies_of_length())):
        times = bench(check, pool, args.rounds, clock)
        n_hit = len(times["with hits"]) // args.rounds
        print(f"{name}: check_reply on {len(pool)} replies of {LENGTH} characters x {args.rounds} rounds "
              f"({len(pool) - n_hit} clean, {n_hit} with hits)")
        for part, values in times.items():
            if values:
                p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
                print(f"  {part:<10} p50 {p50:6.1f} µs   p99 {p99:6.1f} µs"
                      f"   mean {statistics.fmean(values):6.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
