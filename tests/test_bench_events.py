"""`python -m bench.events` as its README runs it, made small: 3 organizations × 2 managers on
WebSockets for one second of events. It exits 0 only when every event reached every manager of
its organization once and no one else; the figures are the bench's business, not this test's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_events_delivers_every_event_once_to_each_manager_of_its_organization():
    run = subprocess.run([sys.executable, "-m", "bench.events", "--organizations", "3", "--managers", "2",
                          "--duration", "1", "--interval-ms", "20"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line and not line.startswith("bench")}
    assert re.match(r"delivered +(\d+) of \1 \(0 missing, 0 duplicates", lines["delivered"]), run.stdout
    assert "6 = 3 organizations × 2 managers" in lines["subscribers"]
    for figure in ("latency", "memory", "CPU", "targets"):
        assert figure in lines, run.stdout
