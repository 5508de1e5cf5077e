"""S2's load: events posted to POST /api/v1/events of a real server.

Phase 1: N events in batches of B, from C threads (each with its own
keep-alive connection). Then it prints "batches-done" and waits for "go" on
stdin (bench/run.py lets the engine drain first). Phase 2: M single-event
posts, one after the other, each timed.

    python bench/s2_client.py --url http://127.0.0.1:PORT --key KEY --events N --out FILE
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx


def make_batch(*, start: int, size: int, customers: int, prefix: str, occurred_at: str) -> bytes:
    events = [
        {
            "id": f"{prefix}-{i}",
            "customer": f"c{(i % customers) + 1}",
            "type": "bench_order",
            "occurred_at": occurred_at,
            "payload": {"order_id": i, "total": 42.5},
        }
        for i in range(start, start + size)
    ]
    return json.dumps({"events": events}).encode()


def post(client: httpx.Client, body: bytes) -> tuple[float, int, dict]:
    started = time.perf_counter()
    response = client.post("/api/v1/events", content=body)
    elapsed = time.perf_counter() - started
    try:
        data = response.json()
    except ValueError:
        data = {"text": response.text[:300]}
    return elapsed, response.status_code, data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--customers", type=int, required=True, help="spread events over c1..cK")
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    headers = {"Authorization": f"Api-Key {args.key}", "Content-Type": "application/json"}
    occurred_at = datetime.now(UTC).isoformat()
    starts = list(range(0, args.events, args.batch))
    lock = threading.Lock()
    results: list[tuple[float, int, dict]] = []

    def worker() -> None:
        with httpx.Client(base_url=args.url, headers=headers, timeout=120) as client:
            while True:
                with lock:
                    if not starts:
                        return
                    start = starts.pop(0)
                size = min(args.batch, args.events - start)
                body = make_batch(
                    start=start, size=size, customers=args.customers, prefix="b", occurred_at=occurred_at
                )
                outcome = post(client, body)
                with lock:
                    results.append(outcome)

    t_start = time.time()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    t_end = time.time()
    accepted = sum(data.get("accepted", 0) for _, status, data in results if status == 202)
    errors = [(status, data) for _, status, data in results if status != 202]
    print("batches-done", flush=True)
    sys.stdin.readline()  # "go"

    singles: list[float] = []
    single_errors = []
    with httpx.Client(base_url=args.url, headers=headers, timeout=30) as client:
        for i in range(args.singles):
            body = make_batch(
                start=i,
                size=1,
                customers=args.customers,
                prefix="s",
                occurred_at=datetime.now(UTC).isoformat(),
            )
            elapsed, status, data = post(client, body)
            singles.append(elapsed)
            if status != 202:
                single_errors.append((status, data))
    Path(args.out).write_text(
        json.dumps(
            {
                "t_start": t_start,
                "t_end": t_end,
                "accepted": accepted,
                "requests": len(results),
                "errors": errors[:5],
                "error_count": len(errors),
                "batch_latencies": sorted(elapsed for elapsed, _, _ in results),
                "single_latencies": sorted(singles),
                "single_errors": single_errors[:5],
                "single_error_count": len(single_errors),
            }
        )
    )


if __name__ == "__main__":
    main()
