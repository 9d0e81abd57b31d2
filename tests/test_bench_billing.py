"""`python -m bench.billing` as bench/README.md runs it, made small: 3 organizations, one second per
operation behind a provider 100 ms away. What a reader relies on: both dashboards answered without
failures, the first full dashboard really waited for the slow provider, and the verdict lines carry
real figures. Whether the target is met is the bench's business, not this test's."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.billing import BILLING_FIELDS, FULL, without_billing
from bench.slow_provider import SlowProvider

ROOT = Path(__file__).resolve().parents[1]


def test_the_dashboard_without_billing_is_the_full_one_minus_the_providers_fields():
    full, plain = FULL.read_text(), without_billing(FULL.read_text())
    for field in BILLING_FIELDS:
        assert re.search(rf"\b{field}\b", full) and not re.search(rf"\b{field}\b", plain)
    for field in ("members", "licenses", "subscriptions", "creditPool", "creditAccess"):
        assert re.search(rf"\b{field}\b", plain), field


async def test_the_slow_provider_delays_every_request_and_counts_it(services):
    slow = SlowProvider(services.stripe_api_base, 0.15)
    await slow.start()
    try:
        async with httpx.AsyncClient() as http:
            started = time.monotonic()
            answers = await asyncio.gather(*(http.get(f"{slow.url}/v1/customers/cus_none",
                                                      headers={"authorization": "Bearer sk_test_x"})
                                             for _ in range(3)))
            elapsed = time.monotonic() - started
        assert [a.status_code for a in answers] == [404] * 3  # localstripe's own answer, passed on
        assert 0.15 <= elapsed < 1.5 and slow.forwarded == 3
    finally:
        await slow.stop()


def test_bench_billing_compares_the_full_dashboard_with_the_one_without_billing():
    run = subprocess.run([sys.executable, "-m", "bench.billing", "--organizations", "3", "--duration", "1",
                          "--rounds", "1", "--latency-ms", "100", "--concurrency", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    first = re.search(r"first full dashboard \(billing mirror empty\): ([\d,]+) ms, (\d+) provider calls", out)
    assert first and int(first[1].replace(",", "")) >= 100 and int(first[2]) >= 3, out
    for name in ("without billing", "full \\(billing\\)"):
        row = re.search(rf"^{name} +([\d,]+) +[\d,]+ +[\d.]+ +[\d.]+ +0$", out, re.M)
        assert row and int(row[1].replace(",", "")) > 0, out
    for p in (50, 99):
        verdict = re.search(rf"^billing: full dashboard p{p} ([\d.]+) ms vs without billing ([\d.]+) ms: "
                            r"ratio ([\d.]+) \(target <= 1.5\): (PASS|FAIL)$", out, re.M)
        assert verdict and float(verdict[1]) > 0 and float(verdict[2]) > 0, out
