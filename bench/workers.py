"""python -m bench.workers [--quick] [--duration S] [--concurrency N]

Does a second process on the same port serve more? Loads the bench dataset (normal tenants),
then runs the gateway as `serve --workers 1` and as `serve --workers 2` (production settings,
one after the other, on the same PostgreSQL), drives the dashboard of a 30-member organization
at the same concurrency for the same time with each, and prints requests/s, latency and the CPU
each used per request: the gateway's whole process tree (the supervisor and its workers) and
PostgreSQL. Then the scaling factor, 2 workers' requests/s over 1 worker's.

On a 2-core machine the load generator and PostgreSQL share the cores with the workers, so the
factor there says how much of the cores one process left idle, not how a host with a core per
worker scales; the CPU per request says what each request costs either way.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench import cpu, dataset, load, runs, servers, session

OPERATION = Path(__file__).parent / "operations" / "gateway_dashboard.graphql"


@dataclass
class Measured:
    workers: int
    tally: load.Tally = field(default_factory=load.Tally)
    gateway_cpu: float = 0.0  # seconds, the server's process tree
    postgres_cpu: float = 0.0

    def per_request_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.tally.requests if self.tally.requests else float("nan")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 organizations and 9 s per run")
    p.add_argument("--organizations", type=int, default=None, help="organizations of 30 (default 2,000, quick 200)")
    p.add_argument("--duration", type=float, default=None, help="measured seconds per run (default 30, quick 9)")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent keep-alive connections")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) at the end")
    return p


async def run(args: argparse.Namespace) -> int:
    organizations = args.organizations or (200 if args.quick else 2_000)
    sizes = dataset.Sizes(organizations=organizations, members_per_org=30, big_organizations=0, big_members=0)
    duration = args.duration if args.duration is not None else (9.0 if args.quick else 30.0)
    results = []
    async with runs.workspace("bench.workers", args.keep) as workspace:
        print(f"bench.workers: {organizations:,} organizations of 30 on {os.cpu_count()} cores, the dashboard at "
              f"concurrency {args.concurrency}, {duration:g} s per run", flush=True)
        postgres = await workspace.start_postgres()
        conn = await asyncpg.connect(postgres.dsn())
        try:
            tenant = (await dataset.create(conn, sizes)).tenants["normal"]
            postmaster = cpu.postmaster_pid(postgres.server.pgdata)
            for workers in (1, 2):
                gateway = servers.start_gateway(postgres.dsn(), workspace.root, workspace.started, workers=workers)
                token = await session.login(gateway.url, tenant.admin_email)
                request = load.build_request(f"{gateway.url}/graphql", {"query": OPERATION.read_text()}, token)
                await session.settled(conn, gateway.process.pid)
                await load.drive(gateway.url, request, args.concurrency, 2.0, None)
                m = Measured(workers)
                before = cpu.tree_seconds(gateway.process.pid), cpu.tree_seconds(postmaster or 0)
                await load.drive(gateway.url, request, args.concurrency, duration, m.tally)
                m.gateway_cpu = cpu.tree_seconds(gateway.process.pid) - before[0]
                m.postgres_cpu = cpu.tree_seconds(postmaster or 0) - before[1]
                results.append(m)
                print(f"bench.workers: {workers} worker(s): {m.tally.rps:,.0f} req/s", flush=True)
                gateway.stop()
                time.sleep(0.5)  # the port and PostgreSQL's connections let go
        finally:
            await conn.close()
    return _summary(results)


def _summary(results: list[Measured]) -> int:
    print(f"\n{'workers':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failures':>8} "
          f"{'gateway CPU ms/req':>19} {'PostgreSQL CPU ms/req':>22}")
    for m in results:
        print(f"{m.workers:>7} {m.tally.rps:>8,.0f} {m.tally.percentile(50):>8.1f} {m.tally.percentile(99):>8.1f} "
              f"{m.tally.failures:>8} {m.per_request_ms(m.gateway_cpu):>19.2f} {m.per_request_ms(m.postgres_cpu):>22.2f}")
    one, two = results
    factor = two.tally.rps / one.tally.rps if one.tally.rps else float("nan")
    print(f"workers: scaling factor 2 workers / 1 worker = {factor:.2f} on {os.cpu_count()} cores shared with "
          "PostgreSQL and the load generator")
    return 0


def main() -> None:
    runs.main("bench.workers", _parser(), run)


if __name__ == "__main__":
    main()
