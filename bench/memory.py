"""python -m bench.memory [--quick] [--requests N] [--warmup N]

Does one gateway process keep its memory under steady load? Loads the bench dataset, starts the
gateway (production settings, one process), waits for its startup work, sends `--warmup`
requests (the dashboard and members page of both tenants, in turn), reads its resident set
size, then sends `--requests` more, reading it after each tenth, and prints the growth against
the target: under 10% after warm-up.

An hour of one process: 100,000 requests (the full run's default) is an hour at 28 requests a
second, about a tenth of what one process serves flat out (bench/CAPACITY.md), as a portal's
process runs most of its day; the quick run sends a fifth of that.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import asyncpg

from bench import dataset, load, runs, servers, session

OPERATIONS = Path(__file__).parent / "operations"
TARGET = 10.0  # percent


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the quick dataset and 20,000 requests")
    p.add_argument("--requests", type=int, default=None, help="requests after warm-up (default 100,000, quick 20,000)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up requests (default 10,000, quick 4,000)")
    p.add_argument("--organizations", type=int, default=None,
                   help="organizations of 30 (default: the bench dataset's), with no 5,000-member ones when set")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent keep-alive connections")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) at the end")
    return p


def rss_mib(pid: int) -> float:
    """Resident set size from /proc, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def run(args: argparse.Namespace) -> int:
    sizes = dataset.QUICK if args.quick else dataset.FULL
    if args.organizations:
        sizes = dataset.Sizes(organizations=args.organizations, members_per_org=30, big_organizations=0, big_members=0)
    count = args.requests or (20_000 if args.quick else 100_000)
    warmup = args.warmup if args.warmup is not None else (4_000 if args.quick else 10_000)
    async with runs.workspace("bench.memory", args.keep) as workspace:
        print(f"bench.memory: {sizes.accounts:,} accounts on {os.cpu_count()} cores; {warmup:,} warm-up requests, "
              f"then {count:,} (an hour of one process at {count / 3600:.0f} req/s), concurrency "
              f"{args.concurrency}", flush=True)
        postgres = await workspace.start_postgres()
        conn = await asyncpg.connect(postgres.dsn())
        try:
            loaded = await dataset.create(conn, sizes)
            gateway = servers.start_gateway(postgres.dsn(), workspace.root, workspace.started)
            requests = []
            for tenant in loaded.tenants.values():
                token = await session.login(gateway.url, tenant.admin_email)
                requests += [load.build_request(f"{gateway.url}/graphql",
                                                {"query": (OPERATIONS / f"gateway_{op}.graphql").read_text()}, token)
                             for op in ("dashboard", "members")]
            await session.settled(conn, gateway.process.pid)
        finally:
            await conn.close()
        pid = gateway.process.pid
        started_at = rss_mib(pid)
        tally = load.Tally()
        await load.send_count(gateway.url, requests, args.concurrency, warmup, tally)
        samples = [(0, rss_mib(pid))]
        step = max(1, count // 10)
        for done in range(step, count + 1, step):
            await load.send_count(gateway.url, requests, args.concurrency, step, tally)
            samples.append((done, rss_mib(pid)))
    return _summary(started_at, samples, tally)


def _summary(started_at: float, samples: list[tuple[int, float]], tally: load.Tally) -> int:
    print(f"\nRSS at start (idle, after the startup work): {started_at:.1f} MiB")
    print(f"{'requests after warm-up':>24} {'RSS MiB':>9}")
    for done, mib in samples:
        print(f"{done:>24,} {mib:>9.1f}")
    print(f"answered {tally.requests:,} requests ({tally.rps:,.0f} req/s), {tally.failures} failures"
          + (f": first {tally.first_failure}" if tally.failures else ""))
    first, last = samples[0][1], samples[-1][1]
    growth = (last - first) / first * 100
    verdict = "PASS" if growth < TARGET and not tally.failures else "FAIL"
    print(f"memory: RSS after warm-up {first:.1f} MiB, after {samples[-1][0]:,} requests {last:.1f} MiB, "
          f"growth {growth:.1f}% (target < {TARGET:g}%): {verdict}")
    return 0


def main() -> None:
    runs.main("bench.memory", _parser(), run)


if __name__ == "__main__":
    main()
