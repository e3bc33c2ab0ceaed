"""Throughput and memory of batch QA scoring.

    python benchmarks/bench_qa.py [--n 3000] [--stream-lines 1000000] [--score-lines 20000]

1. Transcripts of exactly 20 turns, stitched from examples/transcripts.jsonl: transcripts
   per second on one process, and with 2 worker processes (speed-up ratio).
2. Memory while streaming: a JSONL file of --stream-lines 4-turn transcripts is read end to end
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


def throughput(items: list[dict], workers: int | None) -> tuple[float, float]:
    """(steady-state transcripts/s, seconds until the first result): worker processes load
    the phrasebooks and models once, which a long run amortises and a short one does not.
    ``workers=None``: in this process; a number: a pool of that many worker processes."""
    from agent_assist import score_transcripts
    from agent_assist.batch import _parallel, _Progress

    list(score_transcripts(items[:50]))  # warm this process's analysers
    t0 = time.perf_counter()
    first = None
    warm = max(1, len(items) // 10)
    results = score_transcripts(items) if workers is None else _parallel(items, workers, _Progress(False), None, False)
    for n, _ in enumerate(results, 1):
        if n == warm:
            first = time.perf_counter()
    assert first is not None
    return (len(items) - warm) / (time.perf_counter() - first), first - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=6000, help="20-turn transcripts for the throughput runs")
    p.add_argument("--stream-lines", type=int, default=1_000_000)
    p.add_argument("--score-lines", type=int, default=20_000)
    args = p.parse_args()

    items = twenty_turns(args.n)
    one, _ = throughput(items, None)
    pool1, _ = throughput(items, 1)
    pool2, start = throughput(items, 2)
    print(f"20-turn transcripts, steady state (after the first 10 %): in-process {one:,.0f}/s "
          f"({1e3 / one:.2f} ms each); pool of 1 worker {pool1:,.0f}/s; pool of 2 workers {pool2:,.0f}/s; "
          f"speed-up 1 -> 2 workers {pool2 / pool1:.2f}x, over in-process {pool2 / one:.2f}x "
          f"({os.cpu_count()} cores, shared with the parent process); workers ready after {start:.1f} s")

    from agent_assist import read_transcripts, score_transcripts
    from agent_assist.batch import AtomicOutput

    small = [t | {"turns": t["turns"][:4]} for t in twenty_turns(200)]  # 4 turns: ~0.5 kB a line
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
