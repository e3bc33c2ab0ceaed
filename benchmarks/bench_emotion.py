"""Latency of ``detect_emotion`` beside SnowNLP's sentiment, in one run.

    python benchmarks/bench_emotion.py [--snownlp/--no-snownlp] [--rounds 5]

Messages: the complaint-domain examples (tests/data/emotion_domain.jsonl) plus, when the
public data is present, the public dev split; only messages of at most 100 characters.
Prints warm µs per call (p50, p99), batch throughput, cold start (a fresh process: import
and first call) and peak RSS, for agent_assist and for SnowNLP, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COLD = """
import resource, sys, time
t0 = time.perf_counter()
{setup}
t1 = time.perf_counter()
print(t1 - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
OURS_SETUP = "import agent_assist\nagent_assist.detect_emotion('快递等了12天还没到，太失望了')"
SNOW_SETUP = "from snownlp import SnowNLP\nSnowNLP('快递等了12天还没到，太失望了').sentiments"


def messages() -> list[str]:
    out = []
    with (ROOT / "tests" / "data" / "emotion_domain.jsonl").open(encoding="utf-8") as f:
        out += [json.loads(line)["text"] for line in f if line.strip()]
    try:
        from agent_assist.datasets import split_public

        out += [e.text for e in split_public()[1]]
    except FileNotFoundError:
        pass
    return [m for m in out if 0 < len(m) <= 100]


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] * 1e6, s[min(len(s) - 1, int(len(s) * 0.99))] * 1e6


def warm(fn, texts: list[str], rounds: int) -> list[float]:
    for t in texts[:200]:
        fn(t)
    samples = []
    clock = time.perf_counter
    for _ in range(rounds):
        for t in texts:
            t0 = clock()
            fn(t)
            samples.append(clock() - t0)
    return samples


def cold(setup: str) -> tuple[float, float]:
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", COLD.format(setup=setup)], capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append((float(out[0]), float(out[1])))
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-snownlp", action="store_true")
    args = p.parse_args()

    from agent_assist import detect_emotion, detect_emotions

    texts = messages()
    lengths = sorted(len(t) for t in texts)
    print(f"# {len(texts)} messages, length median {lengths[len(lengths) // 2]}, max {lengths[-1]}")

    p50, p99 = percentiles(warm(detect_emotion, texts, args.rounds))
    def best_rate(run) -> float:  # messages per second, best of 5 passes
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        return len(texts) / best

    loop = best_rate(lambda: [detect_emotion(t) for t in texts])
    batch = best_rate(lambda: detect_emotions(texts))
    c_time, c_rss = cold(OURS_SETUP)
    print(f"agent_assist  warm p50 {p50:7.1f} µs  p99 {p99:7.1f} µs  | batch {batch:9.0f} msg/s "
          f"(loop {loop:.0f} msg/s)  | cold start {c_time:.2f} s  peak RSS {c_rss:.0f} MB")

    long = [t for t in texts if len(t) > 60]
    if long:
        lp50, lp99 = percentiles(warm(detect_emotion, long, args.rounds))
        print(f"  messages of 61-100 characters ({len(long)}): p50 {lp50:.1f} µs  p99 {lp99:.1f} µs")

    if not args.no_snownlp:
        try:
            from snownlp import SnowNLP
        except ImportError:
            print("snownlp not installed (pip install '.[eval]'); skipped")
            return 0
        sample = texts[:: max(1, len(texts) // 1000)]
        s50, s99 = percentiles(warm(lambda t: SnowNLP(t).sentiments, sample, 1))
        s_time, s_rss = cold(SNOW_SETUP)
        print(f"snownlp       warm p50 {s50:7.1f} µs  p99 {s99:7.1f} µs  | cold start {s_time:.2f} s  "
              f"peak RSS {s_rss:.0f} MB  ({len(sample)} messages)")
        print(f"ratio (snownlp / agent_assist): warm p50 {s50 / p50:.0f}x, p99 {s99 / p99:.0f}x, "
              f"cold start {s_time / c_time:.1f}x, RSS {s_rss / c_rss:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
