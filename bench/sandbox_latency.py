"""Latency of the HTX sandbox over keep-alive HTTP: N signed calls to /v1/account/accounts.

Run from the repository root: .venv/bin/python bench/sandbox_latency.py [N]
Prints `name: value unit` lines. Target: about 1 ms a call on loopback (the Nagle +
delayed-ACK stall this guards against costs ~40 ms a call).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from exchanges.venues.htx import signing  # noqa: E402
from exchanges.venues.htx.sandbox import HtxSandbox, load_accounts, load_tickers  # noqa: E402

TARGET_MS = 1.0
PATH = "/v1/account/accounts"


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def main(n: int = 2000) -> None:
    accounts = load_accounts()
    access_key = next(k for k, v in accounts.items() if v["note"].startswith("demo: good key"))
    secret = accounts[access_key]["secret"]
    with HtxSandbox(accounts, load_tickers()) as sandbox, requests.Session() as session:
        sandbox.rate_limit = 10**9  # HTX allows 100 per 2 s; lift it to measure the server
        host = urlsplit(sandbox.url).netloc

        def call() -> float:
            query = signing.signed_query(
                method="GET",
                host=host,
                path=PATH,
                access_key=access_key,
                secret=secret,
                timestamp=signing.htx_timestamp(datetime.now(UTC)),
            )
            started = time.perf_counter()
            response = session.get(f"{sandbox.url}{PATH}?{query}", timeout=5)
            elapsed = (time.perf_counter() - started) * 1000
            if response.json().get("status") != "ok":
                raise SystemExit(f"unexpected answer: {response.text}")
            return elapsed

        for _ in range(50):  # warm up: connection, caches
            call()
        wall = time.perf_counter()
        samples = sorted(call() for _ in range(n))
        wall = time.perf_counter() - wall

    p50 = statistics.median(samples)
    print(f"sandbox_calls: {n} calls")
    print(f"sandbox_mean_ms: {statistics.fmean(samples):.3f} ms")
    print(f"sandbox_p50_ms: {p50:.3f} ms")
    print(f"sandbox_p95_ms: {percentile(samples, 0.95):.3f} ms")
    print(f"sandbox_p99_ms: {percentile(samples, 0.99):.3f} ms")
    print(f"sandbox_max_ms: {samples[-1]:.3f} ms")
    print(f"sandbox_req_per_s: {n / wall:.0f} req/s")
    print(f"sandbox_target_p50_ms: {TARGET_MS:.1f} ms")
    verdict = "within" if p50 <= TARGET_MS * 1.5 else "above"
    print(f"sandbox_p50_vs_target: {p50 / TARGET_MS:.2f} x ({verdict} ~1 ms target)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
