"""Load generator for the local server, run as its own process: keep-alive HTTP from N threads.

    python bench/loadgen.py --port 8080 --body rows.csv --concurrency 8 --requests 400
Prints one JSON line: requests/s, p50 and p99 latency in milliseconds, and the error count.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from pathlib import Path


def worker(port: int, body: bytes, count: int, latencies: list[float], errors: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(count):
        start = time.perf_counter()
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 200:
            errors.append(response.status)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    body = args.body.read_bytes()
    worker(args.port, body, args.warmup, [], [])
    latencies: list[float] = []
    errors: list[int] = []
    per_thread = max(1, args.requests // args.concurrency)
    threads = [
        threading.Thread(target=worker, args=(args.port, body, per_thread, latencies, errors))
        for _ in range(args.concurrency)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    print(
        json.dumps(
            {
                "requests": len(ordered),
                "rps": len(ordered) / elapsed,
                "p50_ms": statistics.median(ordered) * 1000,
                "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
                "errors": len(errors),
            }
        )
    )


if __name__ == "__main__":
    main()
