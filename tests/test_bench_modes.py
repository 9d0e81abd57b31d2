"""`python -m bench.memory` and `python -m bench.workers` as bench/README.md runs them, made small
(5 organizations, a few hundred requests, a few seconds). What a reader relies on: every request
answered, RSS read before and after, both worker counts served, and the verdict lines carry real
figures. Whether the targets are met is the bench's business, not this test's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench(*argv: str) -> str:
    run = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def test_bench_memory_reads_the_processes_memory_over_a_fixed_number_of_requests():
    out = bench("bench.memory", "--organizations", "5", "--warmup", "100", "--requests", "300")
    assert re.search(r"^answered 400 requests \([\d,]+ req/s\), 0 failures$", out, re.M), out
    samples = re.findall(r"^ +([\d,]+) +([\d.]+)$", out, re.M)
    assert [int(n.replace(",", "")) for n, _ in samples] == list(range(0, 301, 30)), out
    verdict = re.search(r"^memory: RSS after warm-up ([\d.]+) MiB, after 300 requests ([\d.]+) MiB, "
                        r"growth (-?[\d.]+)% \(target < 10%\): (PASS|FAIL)$", out, re.M)
    assert verdict and float(verdict[1]) > 50 and float(verdict[2]) > 50, out  # a gateway's real RSS
    assert float(verdict[1]) == float(samples[0][1]) and float(verdict[2]) == float(samples[-1][1])


def test_bench_workers_serves_the_dashboard_with_one_and_two_workers():
    out = bench("bench.workers", "--organizations", "5", "--duration", "2", "--concurrency", "4")
    rows = re.findall(r"^ +([12]) +([\d,]+) +[\d.]+ +[\d.]+ +0 +([\d.]+) +([\d.]+)$", out, re.M)
    assert [r[0] for r in rows] == ["1", "2"], out
    for _, rps, gateway_ms, postgres_ms in rows:
        assert int(rps.replace(",", "")) > 0 and float(gateway_ms) > 0 and float(postgres_ms) > 0, out
    factor = re.search(r"^workers: scaling factor 2 workers / 1 worker = ([\d.]+) on \d+ cores", out, re.M)
    assert factor and float(factor[1]) > 0, out
