"""Throughput and memory of batch QA scoring.

    python benchmarks/bench_qa.py [--n 3000] [--stream-lines 1000000] [--score-lines 20000]

1. Transcripts of exactly 20 turns, stitched from examples/transcripts.jsonl (consecutive
   transcripts' turns, none repeated within one), scored file to
   file as ``agent-assist qa`` does (read, score, redact, write): transcripts per second in
   this process (``--workers 1``), and in a pool of 1 and of 2 worker processes (speed-up
   ratio); then score_transcripts
   over in-memory dicts, for the scoring cost alone.
2. Memory while streaming: a JSONL file of --stream-lines 4-turn transcripts is read end to end
   (reader only), and --score-lines of them are scored into a file by score_file with 2
   workers; the parent's and the workers' RSS are sampled along the way.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import threading
import time
from itertools import islice
from pathlib import Path

from agent_assist import score_file
from agent_assist.output import AtomicOutput

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # a process that just ended
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children() -> list[int]:
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


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
        # The next transcripts' turns fill it up to 20, so no turn repeats within a
        # transcript (per-call de-duplication, as in emotion, would flatter repeats).
        base = source[i % len(source)]
        turns = [dict(t) for t in base["turns"]]
        j = i + 1
        while len(turns) < 20:
            turns += [dict(t) for t in source[j % len(source)]["turns"]]
            j += 1
        out.append({"id": f"b{i}", "agent_id": base.get("agent_id"), "turns": turns[:20]})
    return out


def throughput(items: list[dict], workers: int | None) -> tuple[float, float]:
    """(steady-state transcripts/s, seconds until the first result) of score_transcripts:
    worker processes load the phrasebooks and models once, which a long run amortises and a
    short one does not. ``workers=None``: in this process; a number: that many processes."""
    from agent_assist import score_transcripts
    from agent_assist.batch import _parallel, _Progress

    list(score_transcripts(items[:50]))  # warm this process's analysers
    t0 = time.perf_counter()
    first = None
    warm = max(1, len(items) // 10)
    results = (
        score_transcripts(items)
        if workers is None
        else _parallel(items, workers, _Progress(False), None, False)
    )
    for n, _ in enumerate(results, 1):
        if n == warm:
            first = time.perf_counter()
    assert first is not None
    return (len(items) - warm) / (time.perf_counter() - first), first - t0


def file_throughput(source: Path, n: int, workers: int, *, pool: bool = True) -> float:
    """Transcripts/s of the CLI's whole job (read, score, redact, serialise, write), wall clock
    including worker start-up: in ``workers`` worker processes (one included), or with
    ``pool=False`` in this process (what ``--workers 1`` does)."""
    from agent_assist.batch import _Progress, batch_gc
    from agent_assist.filebatch import _blocks_in_parallel, _Tally, score_file

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        if pool:  # score_file's parallel path, which it takes for two workers or more
            out = AtomicOutput(Path(d) / "out.jsonl")
            with batch_gc():
                _blocks_in_parallel(source, out, workers, True, None, _Tally(), _Progress(False), None)
            out.commit()
        else:
            score_file(source, Path(d) / "out.jsonl", workers=1)
        return n / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=6000, help="20-turn transcripts for the throughput runs")
    p.add_argument("--stream-lines", type=int, default=1_000_000)
    p.add_argument("--score-lines", type=int, default=20_000)
    args = p.parse_args()

    items = twenty_turns(args.n)
    with tempfile.TemporaryDirectory() as d:
        source = Path(d) / "twenty.jsonl"
        with source.open("w", encoding="utf-8") as f:
            for t in items:
                f.write(json.dumps(t, ensure_ascii=False) + "\n")
        score_file(source, Path(d) / "warm.jsonl")  # load this process's analysers
        inproc = file_throughput(source, len(items), 1, pool=False)
        pool1 = file_throughput(source, len(items), 1)
        pool2 = file_throughput(source, len(items), 2)
    print(
        f"file to file, {len(items):,} transcripts of 20 turns (read, score, redact, write JSONL; "
        f"wall clock incl. worker start-up; {os.cpu_count()} cores):"
    )
    print(
        f"  in-process (--workers 1) {inproc:,.0f}/s = {1e3 / inproc:.2f} ms each; "
        f"1 worker process {pool1:,.0f}/s; 2 worker processes {pool2:,.0f}/s"
    )
    print(f"  speed-up 1 -> 2 workers {pool2 / pool1:.2f}x, over in-process {pool2 / inproc:.2f}x")

    one, _ = throughput(items, None)
    p1, _ = throughput(items, 1)
    p2, start = throughput(items, 2)
    print(
        f"score_transcripts over dicts (no I/O, no redaction), steady state after the first 10 %: "
        f"in-process {one:,.0f}/s; 1 worker {p1:,.0f}/s; 2 workers {p2:,.0f}/s "
        f"({p2 / p1:.2f}x: the parent re-validates every result); workers ready after {start:.1f} s"
    )

    from agent_assist import read_transcripts

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
        print(
            f"reading {args.stream_lines:,} lines ({size:,.0f} MB): {time.perf_counter() - t0:.1f} s; "
            f"RSS at each tenth (MB): {', '.join(f'{s:.0f}' for s in samples)} (before: {base:.0f})"
        )
        part = Path(d) / "part.jsonl"
        with path.open("rb") as src, part.open("wb") as dst:
            dst.writelines(islice(src, args.score_lines))
        samples = []
        done = threading.Event()

        def sample() -> None:  # parent and worker RSS, twice a second, while the run lasts
            while not done.wait(0.5):
                samples.append((rss_mb(), [rss_mb(pid) for pid in children()]))

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.perf_counter()
        score_file(part, Path(d) / "scores.jsonl", workers=2)
        done.set()
        sampler.join()
        parent = [p for p, _ in samples]
        workers = [max(w, default=0) for _, w in samples]
        print(
            f"scoring {args.score_lines:,} of them with 2 workers into a file: {time.perf_counter() - t0:.1f} s; "
            f"RSS over the run (MB): parent {min(parent, default=0):.0f}-{max(parent, default=0):.0f}, "
            f"largest worker {min(workers, default=0):.0f}-{max(workers, default=0):.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
