"""Throughput and memory of batch QA scoring.

    python benchmarks/bench_qa.py [--n 3000] [--stream-lines 1000000] [--score-lines 20000]

1. Transcripts of exactly 20 turns, stitched from examples/transcripts.jsonl: transcripts
   per second on one process, and with 2 worker processes (speed-up ratio).
2. Memory while streaming: a JSONL file of --stream-lines transcripts is read end to end
   (reader only), and --score-lines of them are scored and written the way the CLI does
   (reader → score_transcripts → output file); peak RSS is sampled along the way.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def twenty_turns(n: int) -> list[dict]:
    source = []
    for line in (ROOT / "examples" / "transcripts.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        turns = obj.get("turns")
        if isinstance(turns, list) and len(turns) >= 4 and all(isinstance(t.get("text"), str) for t in turns):
            source.append(obj)
    out = []
    for i in range(n):
        base = source[i % len(source)]
        turns = [dict(t) for t in base["turns"]]
        while len(turns) < 20:
            turns += [dict(t) for t in base["turns"][1:]]
        out.append({"id": f"b{i}", "agent_id": base.get("agent_id"), "turns": turns[:20]})
    return out


def throughput(items: list[dict], workers: int | None) -> float:
    from agent_assist import score_transcripts

    list(score_transcripts(items[:50], workers=workers))  # warm up (and start the pool once)
    t0 = time.perf_counter()
    n = sum(1 for _ in score_transcripts(items, workers=workers))
    return n / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=3000, help="20-turn transcripts for the throughput runs")
    p.add_argument("--stream-lines", type=int, default=1_000_000)
    p.add_argument("--score-lines", type=int, default=20_000)
    args = p.parse_args()

    items = twenty_turns(args.n)
    one = throughput(items, None)
    two = throughput(items, 2)
    print(f"20-turn transcripts: 1 process {one:,.0f}/s ({1e3 / one:.2f} ms each); "
          f"2 workers {two:,.0f}/s; speed-up {two / one:.2f}x on {os.cpu_count()} cores")

    from agent_assist import read_transcripts, score_transcripts
    from agent_assist.batch import AtomicOutput

    small = twenty_turns(200)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for i in range(args.stream_lines):
                f.write(json.dumps(small[i % len(small)] | {"id": f"s{i}"}, ensure_ascii=False) + "\n")
        size = path.stat().st_size / 1e6
        base = rss_mb()
        samples = []
        t0 = time.perf_counter()
        for i, _ in enumerate(read_transcripts(path)):
            if i % (args.stream_lines // 10 or 1) == 0:
                samples.append(rss_mb())
        print(f"reading {args.stream_lines:,} lines ({size:,.0f} MB): {time.perf_counter() - t0:.1f} s; "
              f"RSS at each tenth (MB): {', '.join(f'{s:.0f}' for s in samples)} (before: {base:.0f})")
        out = AtomicOutput(Path(d) / "scores.jsonl")
        samples = []
        t0 = time.perf_counter()
        for i, r in enumerate(score_transcripts(islice(read_transcripts(path), args.score_lines), workers=2)):
            out.write(r)
            if i % (args.score_lines // 10 or 1) == 0:
                samples.append(rss_mb())
        out.commit()
        print(f"scoring {args.score_lines:,} of them with 2 workers into a file: {time.perf_counter() - t0:.1f} s; "
              f"parent RSS at each tenth (MB): {', '.join(f'{s:.0f}' for s in samples)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
