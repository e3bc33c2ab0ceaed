"""Throughput and latency of the HTTP service (``agent-assist serve``) under concurrent load.

    python benchmarks/bench_server.py [--endpoint suggest] [--levels 1,4,16,64] [--seconds 5]
                                      [--soak 30] [--soak-connections 64]

Starts the server as its own process (one uvicorn worker, 127.0.0.1, a free port), then
drives ``POST /v1/<endpoint>`` with N concurrent keep-alive connections for a fixed time at
each level, and finally a longer soak run, sampling the server's RSS from /proc as it goes.
Requests are the 300 complaint-domain messages of tests/data/emotion_domain.jsonl, every
third one with two turns of history.

The client is a minimal HTTP/1.1 keep-alive client on asyncio streams (one process, one
coroutine per connection, pre-encoded requests): a general client such as httpx spends a few
hundred µs of Python per request, which on this 2-core machine would measure the client.
The client still shares the two cores with the server, so the figures are a lower bound for
a server that has a machine to itself. Loopback only; every loop is bounded by time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def bodies(endpoint: str) -> list[bytes]:
    with (ROOT / "tests" / "data" / "emotion_domain.jsonl").open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    out = []
    for i, text in enumerate(texts):
        history = (
            [
                {"speaker": "customer", "text": "我的订单怎么还没到"},
                {"speaker": "agent", "text": "您好，我马上为您查询"},
            ]
            if i % 3 == 0
            else None
        )
        body: dict[str, object]
        if endpoint == "suggest":
            body = {"customer_text": text, "history": history, "n": 3}
        elif endpoint == "check":
            body = {
                "reply": "非常抱歉让您久等了，我马上为您查询，今天18点前给您回复。",
                "customer_text": text,
                "history": history,
            }
        else:
            body = {"text": text}
        out.append(json.dumps({k: v for k, v in body.items() if v is not None}, ensure_ascii=False).encode())
    return out


def requests(endpoint: str) -> list[bytes]:
    return [
        (
            f"POST /v1/{endpoint} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies(endpoint)
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def connection(
    port: int, reqs: list[bytes], offset: int, stop: float, latencies: list[float], errors: list[str]
) -> None:
    """One keep-alive connection sending requests back to back until ``stop``."""
    reader, writer = await asyncio.open_connection(HOST, port)
    i = offset
    try:
        while time.perf_counter() < stop:
            req = reqs[i % len(reqs)]
            i += 1
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            status = head[9:12]
            if status != b"200":
                errors.append(status.decode())
                if b"connection: close" in head.lower():
                    return
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        errors.append(type(e).__name__)
    finally:
        writer.close()


async def run_level(
    port: int, reqs: list[bytes], conns: int, seconds: float, server_pid: int | None = None
) -> dict[str, float]:
    # Warm-up: one second at this concurrency, not counted.
    await asyncio.gather(
        *(connection(port, reqs, k * 37, time.perf_counter() + 1.0, [], []) for k in range(conns))
    )
    latencies: list[float] = []
    errors: list[str] = []
    rss: list[float] = []
    start = time.perf_counter()
    stop = start + seconds
    server_cpu0 = cpu_seconds(server_pid) if server_pid else float("nan")
    client_cpu0 = time.process_time()

    async def sample() -> None:
        while server_pid is not None and time.perf_counter() < stop:
            rss.append(rss_mb(server_pid))
            await asyncio.sleep(min(1.0, max(0.0, stop - time.perf_counter())))

    await asyncio.gather(
        sample(), *(connection(port, reqs, k * 37, stop, latencies, errors) for k in range(conns))
    )
    elapsed = time.perf_counter() - start
    server_cpu = (cpu_seconds(server_pid) if server_pid else float("nan")) - server_cpu0
    client_cpu = time.process_time() - client_cpu0
    latencies.sort()
    n = len(latencies)
    return {
        "connections": conns,
        "requests": n,
        "rps": n / elapsed,
        "p50_ms": latencies[n // 2] * 1e3 if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1e3 if n else float("nan"),
        "max_ms": latencies[-1] * 1e3 if n else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1e3 if n else float("nan"),
        "errors": len(errors),
        # CPU per request: less sensitive than wall-clock figures to other work on the machine.
        "server_cpu_us": server_cpu / n * 1e6 if n else float("nan"),
        "client_cpu_us": client_cpu / n * 1e6 if n else float("nan"),
        "rss_first_mb": rss[0] if rss else float("nan"),
        "rss_last_mb": rss[-1] if rss else float("nan"),
        "rss_max_mb": max(rss) if rss else float("nan"),
    }


def library_us(reqs_bodies: list[bytes], endpoint: str) -> float:
    """µs per call of the same work in-process (the call and the JSON dump), for comparison."""
    from agent_assist import default_assistant

    a = default_assistant()
    calls = {
        "suggest": lambda b: a.suggest(b["customer_text"], history=b.get("history"), n=b.get("n", 3)),
        "check": lambda b: a.check_reply(
            b["reply"], customer_text=b.get("customer_text"), history=b.get("history")
        ),
        "emotion": lambda b: a.detect_emotion(b["text"]),
        "triage": lambda b: a.triage(b["text"]),
    }
    call = calls[endpoint]
    parsed = [json.loads(b) for b in reqs_bodies]
    for b in parsed[:20]:
        call(b).model_dump_json()
    t0 = time.perf_counter()
    for b in parsed:
        call(b).model_dump_json()
    return (time.perf_counter() - t0) / len(parsed) * 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent_assist", "serve", "--host", HOST, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "AGENT_ASSIST_API_KEY": ""},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            with socket.create_connection((HOST, port), timeout=0.2) as s:
                s.sendall(f"GET /v1/health HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start in 60 s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", default="suggest", choices=["suggest", "check", "emotion", "triage"])
    p.add_argument("--levels", default="1,4,16,64", help="concurrent connections, comma-separated")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per level")
    p.add_argument("--soak", type=float, default=30.0, help="seconds of the soak run (0: skip)")
    p.add_argument("--soak-connections", type=int, default=64)
    p.add_argument("--port", type=int, default=None, help="use a server already running on this port")
    p.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = p.parse_args()

    reqs = requests(args.endpoint)
    lib = library_us(bodies(args.endpoint), args.endpoint)
    proc = None
    port = args.port
    if port is None:
        port = free_port()
        proc = start_server(port)
    pid = proc.pid if proc is not None else None
    results = []
    try:
        print(
            f"POST /v1/{args.endpoint}, one uvicorn worker on {HOST}:{port}; client and server share "
            f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start"
        )
        print(f"in-process, the same calls take {lib:.0f} µs each (call + JSON dump)")
        heads = ("conns", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "requests", "srv CPU µs/req")
        print(" ".join(f"{h:>{w}}" for h, w in zip(heads, (5, 8, 7, 7, 7, 6, 9, 15), strict=True)))
        for conns in [int(x) for x in args.levels.split(",")]:
            r = asyncio.run(run_level(port, reqs, conns, args.seconds, pid))
            results.append(r)
            print(
                f"{conns:>5} {r['rps']:>8.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.1f} "
                f"{r['errors']:>6} {r['requests']:>9} {r['server_cpu_us']:>15.0f}"
            )
        if args.soak > 0:
            rss_before = rss_mb(pid) if pid else float("nan")
            r = asyncio.run(run_level(port, reqs, args.soak_connections, args.soak, pid))
            rss_after = rss_mb(pid) if pid else float("nan")
            r.update(soak=True, rss_start_mb=rss_before, rss_end_mb=rss_after)
            results.append(r)
            print(
                f"soak: {args.soak:g} s at {args.soak_connections} connections: {r['requests']} requests, "
                f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                f"errors {r['errors']}"
            )
            print(
                f"server RSS: {rss_before:.1f} MB before, {r['rss_first_mb']:.1f} MB at the first second, "
                f"{rss_after:.1f} MB at the end (max {r['rss_max_mb']:.1f} MB)"
            )
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        if args.json:
            print(json.dumps(results))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
