"""Load generator for the local server, run as its own process: keep-alive HTTP from N threads.

    python bench/loadgen.py --port 8080 --body rows.csv --concurrency 8 --requests 400 [--fresh]
Prints one JSON line: requests/s, p50 and p99 latency in milliseconds, the count of answers other
than 200 (``errors``) and of requests that failed at the connection (``connection_errors``: reset,
refused, timed out). ``--fresh`` opens a new connection for every request instead of keeping one
alive per client.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from pathlib import Path


def worker(
    port: int,
    body: bytes,
    count: int,
    latencies: list[float],
    errors: list[int],
    dropped: list[str] | None = None,
    fresh: bool = False,
) -> None:
    connection = None
    for _ in range(count):
        start = time.perf_counter()
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request(
                "POST", "/invocations", body=body, headers={"Content-Type": "text/csv"}
            )
            response = connection.getresponse()
            response.read()
        except OSError as error:
            if dropped is None:
                raise
            dropped.append(repr(error))
            connection = None
            continue
        latencies.append(time.perf_counter() - start)
        if response.status != 200:
            errors.append(response.status)
        if fresh:
            connection.close()
            connection = None
    if connection is not None:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--fresh", action="store_true", help="a new connection per request")
    args = parser.parse_args()
    body = args.body.read_bytes()
    worker(args.port, body, args.warmup, [], [])
    latencies: list[float] = []
    errors: list[int] = []
    dropped: list[str] = []
    per_thread = max(1, args.requests // args.concurrency)
    threads = [
        threading.Thread(
            target=worker,
            args=(args.port, body, per_thread, latencies, errors, dropped, args.fresh),
        )
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
                "connection_errors": len(dropped),
            }
        )
    )


if __name__ == "__main__":
    main()
