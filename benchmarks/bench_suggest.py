"""Warm latency of ``suggest`` (emotion + triage + slots + template rendering), a benchmark.

Messages: every message of 40-80 characters in ``tests/data/emotion_domain.jsonl`` (complaint
messages of all five tiers, a fifth of them Traditional), plus a pool cut or padded to
exactly 60 characters. Each message is suggested once to warm up (loads the phrasebook and
model, compiles the templates), then timed ``--rounds`` times with ``time.perf_counter_ns``;
p50/p99 are over all timed calls. ``--history`` adds a four-turn conversation before each
message (the earlier turns' analysis is memoised, as in a live chat).

    python benchmarks/bench_suggest.py [--rounds 20] [--n 3] [--history]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path

from agent_assist import Assistant

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "emotion_domain.jsonl"
HISTORY = [
    {"speaker": "customer", "text": "你好，我的订单一直没有发货"},
    {"speaker": "agent", "text": "您好，我帮您查询一下订单的发货进度，请稍等。"},
    {"speaker": "customer", "text": "都等了五天了"},
    {"speaker": "agent", "text": "非常抱歉让您久等了，我马上联系仓库，今天18点前给您回复。"},
]


def messages() -> tuple[list[str], list[str]]:
    """(messages of 40-80 characters, the same messages cut or padded to 60 characters)."""
    texts = [
        json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    mid = [t for t in texts if 40 <= len(t) <= 80]
    sixty = []
    for t in mid:
        while len(t) < 60:
            t += "，" + t
        sixty.append(t[:60])
    return mid, sixty


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench(assistant: Assistant, pool: list[str], rounds: int, n: int, history: list | None) -> list[float]:
    for text in pool:
        assistant.suggest(text, n=n, history=history)
    times: list[float] = []
    gc.collect()
    for _ in range(rounds):
        for text in pool:
            t0 = time.perf_counter_ns()
            assistant.suggest(text, n=n, history=history)
            times.append((time.perf_counter_ns() - t0) / 1000)
    times.sort()
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=20, help="timed passes over each pool")
    p.add_argument("--n", type=int, default=3, help="replies per call")
    p.add_argument("--history", action="store_true", help="add a four-turn history to every call")
    args = p.parse_args()
    assistant = Assistant()
    t0 = time.perf_counter()
    assistant.suggest("你好")
    print(f"first call (loads phrasebook, model, templates): {(time.perf_counter() - t0) * 1000:.0f} ms")
    history = HISTORY if args.history else None
    mid, sixty = messages()
    for name, pool in (("40-80 chars", mid), ("60 chars", sixty)):
        times = bench(assistant, pool, args.rounds, args.n, history)
        print(
            f"suggest n={args.n}{' +history' if history else ''}, {name}: "
            f"{len(pool)} messages x {args.rounds} rounds"
            f"   p50 {percentile(times, 0.50):6.1f} µs   p99 {percentile(times, 0.99):6.1f} µs"
            f"   mean {statistics.fmean(times):6.1f} µs"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
