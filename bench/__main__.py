"""python -m bench [--quick] [--duration S] [--concurrency N] [--operations dashboard,members]

Builds the dataset in a dedicated embedded PostgreSQL, starts the gateway (production settings,
one process) and PostGraphile v4 over the same database, drives both with the same load,
interleaved, and prints a table per operation ending with one line
`ratios: dashboard=1.23 members=0.98` (gateway/PostGraphile requests/s, normal tenant).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from bench import cpu, dataset, load, runs, servers, session

OPERATIONS_DIR = Path(__file__).parent / "operations"
OPERATIONS = ("dashboard", "members")
TENANTS = ("normal", "large")
STATEMENT_SAMPLES = 20


@dataclass
class Cell:
    """One operation against one tenant, on one server."""
    server: str
    operation: str
    tenant: str
    url: str
    request: bytes
    tally: load.Tally = field(default_factory=load.Tally)
    statements: float = float("nan")
    queries: float = float("nan")
    kilobytes: float = float("nan")
    objects: int = 0
    pid: int = 0
    cpu_server: float = 0.0  # CPU seconds during the measured phases: the server's process tree,
    cpu_postgres: float = 0.0  # every PostgreSQL process,
    cpu_client: float = 0.0  # and this load generator

    def cpu_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.tally.requests if self.tally.requests else float("nan")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small dataset (200 orgs of 30 + 2 of 5,000) and short phases: a few minutes")
    p.add_argument("--duration", type=float, default=None,
                   help="measured seconds per server per operation and tenant (default 30, quick 9)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per server (default 5, quick 2)")
    p.add_argument("--rounds", type=int, default=3, help="alternations gateway/PostGraphile per measurement")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent keep-alive connections")
    p.add_argument("--operations", default=",".join(OPERATIONS), help="comma-separated: dashboard,members")
    p.add_argument("--tenants", default=",".join(TENANTS),
                   help="comma-separated: normal (an org of 30 members), large (5,000 members)")
    p.add_argument("--pool-size", type=_positive, default=None, metavar="N",
                   help="the gateway's PostgreSQL connections (DB_POOL_MAX_SIZE; default: this machine's cores, "
                        "as PostgreSQL's guidance sizes them). PostGraphile keeps its default, 10, which "
                        "serves it best here")
    p.add_argument("--no-postgraphile", action="store_true", help="gateway only")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) at the end")
    p.add_argument("--readme", type=Path, default=None, metavar="FILE",
                   help="also write the summary table between FILE's bench-table markers (e.g. README.md)")
    return p


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {value!r}")
    return int(value)


def _list(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        raise SystemExit(f"python -m bench: unknown {what} {unknown or value!r}; choose from {', '.join(allowed)}")
    return chosen


def _count_objects(value: object) -> int:
    if isinstance(value, dict):
        return 1 + sum(_count_objects(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_objects(v) for v in value)
    return 0


def _tool_version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


async def _verify(cell: Cell) -> None:
    status, body = await load.one(cell.url, cell.request)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if status != 200 or not isinstance(parsed, dict) or parsed.get("errors") or not parsed.get("data"):
        raise RuntimeError(f"{cell.server} {cell.operation} ({cell.tenant}): first response is not clean: "
                           f"HTTP {status} {body[:600]!r}")
    cell.kilobytes = len(body) / 1024
    cell.objects = _count_objects(parsed["data"])


_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION", "SET ", "RESET", "SAVEPOINT", "RELEASE", "DISCARD")


async def _count_statements(conn: asyncpg.Connection, cell: Cell) -> None:
    """pg_stat_statements over STATEMENT_SAMPLES sequential requests, after the load phases.

    Counts every statement the server ran in the bench database (BEGIN/COMMIT included) and, as
    `queries`, those that are not transaction control or settings. The gateway's mail poller
    (mail_outbox) and this connection's own statements are left out, and so is any statement
    that ran fewer times than there were requests: each of the same sequential requests runs its
    own statements every time, so those are work in the background (a scheduler pass, the
    billing mirror's reconcile, a new connection's type introspection) that happened to fall in
    the window; they are printed.
    """
    await conn.execute("SELECT pg_stat_statements_reset()")
    for _ in range(STATEMENT_SAMPLES):
        await load.one(cell.url, cell.request)
    rows = await conn.fetch(
        "SELECT query, calls FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")
    total = queries = 0
    for r in rows:
        text = r["query"].lstrip()
        if "pg_stat_statements" in text or "mail_outbox" in text:
            continue
        if r["calls"] < STATEMENT_SAMPLES:
            print(f"bench: left out of SQL/req, {r['calls']} calls in {STATEMENT_SAMPLES} requests: "
                  f"{' '.join(text.split())[:100]}", flush=True)
            continue
        total += r["calls"]
        if not text.upper().startswith(_CONTROL) and "set_config(" not in text:
            queries += r["calls"]
    cell.statements = total / STATEMENT_SAMPLES
    cell.queries = queries / STATEMENT_SAMPLES


def _cpu_now(server: int, postmaster: int | None) -> tuple[float, float, float]:
    return (cpu.tree_seconds(server), cpu.tree_seconds(postmaster) if postmaster else float("nan"),
            time.process_time())


def _f(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _ratio(gateway: Cell | None, peer: Cell | None) -> str:
    if gateway is None or peer is None or not peer.tally.rps:
        return "n/a"
    return f"{gateway.tally.rps / peer.tally.rps:.2f}"


async def run(args: argparse.Namespace) -> int:
    sizes = dataset.QUICK if args.quick else dataset.FULL
    duration = args.duration if args.duration is not None else (9.0 if args.quick else 30.0)
    warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    rounds = max(1, args.rounds)
    operations = _list(args.operations, OPERATIONS, "operation")
    tenants = _list(args.tenants, TENANTS, "tenant")
    # Each server's pool where it serves best on this machine (bench/README.md, stop 34): a
    # pool of 10 runs the gateway's 8 statements at once on a PostgreSQL sharing 2 cores with
    # both servers and the load generator; PostGraphile, bound by its node process, loses
    # requests to queueing in its own pool when it has fewer connections than requests.
    pool_size = args.pool_size or os.cpu_count() or 2

    started_at = time.monotonic()
    async with runs.workspace("bench", args.keep) as workspace:
        root, started = workspace.root, workspace.started
        print(f"bench: {'quick' if args.quick else 'full'} run on {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, concurrency {args.concurrency}, "
              f"{duration:g} s per server per operation in {rounds} interleaved rounds after {warmup:g} s warm-up",
              flush=True)
        print(f"bench: working directory {root}", flush=True)

        postgres = await workspace.start_postgres()
        conn = await asyncpg.connect(postgres.dsn())
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            print(f"bench: loading {sizes.organizations:,} organizations of {sizes.members_per_org} members and "
                  f"{sizes.big_organizations} of {sizes.big_members:,} ({sizes.accounts:,} accounts) ...", flush=True)
            loaded = await dataset.create(conn, sizes)
            print("bench: loaded in {:.1f} s: {}".format(
                loaded.seconds, ", ".join(f"{t} {n:,}" for t, n in loaded.rows.items())), flush=True)

            peer_ok, peer_detail = (False, "--no-postgraphile: gateway only") if args.no_postgraphile \
                else servers.postgraphile_available()
            gateway = servers.start_gateway(postgres.dsn(), root, started, {"DB_POOL_MAX_SIZE": str(pool_size)})
            print(f"bench: gateway (production, one process, {pool_size} PostgreSQL connections) at {gateway.url}",
                  flush=True)
            postgraphile = None
            if peer_ok:
                try:
                    postgraphile = servers.start_postgraphile(peer_detail, postgres.node_connection_string(), root,
                                                              started)
                    print(f"bench: PostGraphile {servers.postgraphile_version(peer_detail)} on node "
                          f"{_tool_version(['node', '--version'])} (10 PostgreSQL connections) at {postgraphile.url}",
                          flush=True)
                except RuntimeError as exc:
                    print(f"bench: PostGraphile did not start ({str(exc)[:300]}): gateway only", flush=True)
            else:
                print(f"bench: {peer_detail}", flush=True)

            # The full data set's first scheduler pass (2,000 organizations and their licenses) takes minutes; the
            # sign-ins come after it, so their tokens outlive the measured phases.
            await session.settled(conn, gateway.process.pid, limit=180.0 if args.quick else 900.0)
            postmaster = cpu.postmaster_pid(postgres.server.pgdata)
            cells: dict[tuple[str, str, str], Cell] = {}
            for tenant_label in tenants:
                tenant = loaded.tenants[tenant_label]
                token = await session.login(gateway.url, tenant.admin_email)
                for op in operations:
                    query = (OPERATIONS_DIR / f"gateway_{op}.graphql").read_text()
                    cells[("gateway", op, tenant_label)] = Cell(
                        "gateway", op, tenant_label, gateway.url,
                        load.build_request(f"{gateway.url}/graphql", {"query": query}, token),
                        pid=gateway.process.pid)
                    if postgraphile is not None:
                        query = (OPERATIONS_DIR / f"postgraphile_{op}.graphql").read_text()
                        variables = {"org": str(tenant.organization_id), "account": str(tenant.admin_id)}
                        if op == "members":
                            variables.pop("account")
                        cells[("postgraphile", op, tenant_label)] = Cell(
                            "postgraphile", op, tenant_label, postgraphile.url,
                            load.build_request(f"{postgraphile.url}/graphql",
                                               {"query": query, "variables": variables}),
                        pid=postgraphile.process.pid)
            for cell in cells.values():
                await _verify(cell)
            print("bench: first responses verified (no errors); operations from bench/operations/: the dashboard "
                  "without billing (payment provider) and credit sums (no PostGraphile v4 equivalent)", flush=True)

            server_names = ["gateway"] + (["postgraphile"] if postgraphile is not None else [])
            for op in operations:
                for tenant_label in tenants:
                    group = [cells[(s, op, tenant_label)] for s in server_names]
                    for cell in group:
                        await load.drive(cell.url, cell.request, args.concurrency, warmup, None)
                    for _ in range(rounds):
                        for cell in group:
                            before = _cpu_now(cell.pid, postmaster)
                            await load.drive(cell.url, cell.request, args.concurrency, duration / rounds, cell.tally)
                            after = _cpu_now(cell.pid, postmaster)
                            cell.cpu_server += after[0] - before[0]
                            cell.cpu_postgres += after[1] - before[1]
                            cell.cpu_client += after[2] - before[2]
                    for cell in group:
                        await _count_statements(conn, cell)
                        await _verify(cell)  # still answering, not refusing (an expired token answers fast)
                    summary = "  ".join(f"{c.server} {c.tally.rps:,.0f} req/s" for c in group)
                    print(f"bench: measured {op} ({tenant_label}): {summary}", flush=True)
        finally:
            await conn.close()

        _print_table(cells, operations, tenants, server_names, loaded)
        table = _markdown_table(cells, operations, tenants, server_names, loaded)
        print(table)
        if args.readme is not None:
            _write_between_markers(args.readme, table)
            print(f"bench: wrote the table into {args.readme}")
        ratios = " ".join(f"{op}={_ratio(cells.get(('gateway', op, 'normal')), cells.get(('postgraphile', op, 'normal')))}"
                          for op in operations)
        print(f"bench: finished in {time.monotonic() - started_at:.0f} s")
        print(f"ratios: {ratios}")
        return 0


def _print_table(cells: dict[tuple[str, str, str], Cell], operations: list[str], tenants: list[str],
                 server_names: list[str], loaded: dataset.Loaded) -> None:
    print()
    header = (f"{'server':<13} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99/p50':>7} {'SQL/req':>7} "
              f"{'queries':>7} {'KB':>6} {'objects':>7} {'errors':>6} {'CPU ms/req: server':>18} {'postgres':>8} "
              f"{'client':>6}")
    for op in operations:
        for tenant_label in tenants:
            tenant = loaded.tenants[tenant_label]
            print(f"{op} — {tenant_label} tenant ({tenant.members:,} members), signed in as {tenant.admin_email}")
            print(header)
            for s in server_names:
                c = cells[(s, op, tenant_label)]
                t = c.tally
                p50, p99 = t.percentile(50), t.percentile(99)
                print(f"{s:<13} {t.rps:>8,.0f} {_f(p50):>8} {_f(p99):>8} {_f(p99 / p50 if p50 else float('nan'), 2):>7} "
                      f"{_f(c.statements):>7} {_f(c.queries):>7} {_f(c.kilobytes):>6} {c.objects:>7} "
                      f"{t.failures:>6} {_f(c.cpu_ms(c.cpu_server), 2):>18} {_f(c.cpu_ms(c.cpu_postgres), 2):>8} "
                      f"{_f(c.cpu_ms(c.cpu_client), 2):>6}")
                if t.first_failure:
                    print(f"    first error: {t.first_failure[:200]}")
            ratio = _ratio(cells.get(("gateway", op, tenant_label)), cells.get(("postgraphile", op, tenant_label)))
            print(f"ratio gateway/PostGraphile (req/s): {ratio}")
            print()
    if "normal" in tenants and "large" in tenants:
        parts = []
        for s in server_names:
            for op in operations:
                small, big = cells[(s, op, "normal")].tally, cells[(s, op, "large")].tally
                parts.append(f"{s} {op}={big.percentile(50) / small.percentile(50):.2f}")
        print("page cost, large/normal tenant (p50): " + "  ".join(parts))
        print("  (the members page is 25 rows for both tenants; the dashboard's first:100 pages are fuller for "
              "the large tenant, whose organization has more than 100 members: compare KB)")
    print("SQL/req: statements per request in pg_stat_statements over "
          f"{STATEMENT_SAMPLES} sequential requests after the load (BEGIN/COMMIT included; the gateway's mail "
          "poller excluded); queries: the same without transaction control and SET/set_config. KB and objects: "
          "size of one response and JSON objects in its data. CPU ms/req: user+system CPU during the measured "
          "phases divided by the requests answered, for the server's process, all PostgreSQL processes and this "
          "load generator; on 2 cores their sum bounds the throughput.")
    print("Operations: bench/operations/gateway_*.graphql (copies of operations/*.graphql; the dashboard "
          "without invoices, outstandingBalance, paymentMethods, creditAccess and creditPool) and their "
          "PostGraphile equivalents bench/operations/postgraphile_*.graphql.")


_MARKERS = ("<!-- bench-table -->\n", "<!-- /bench-table -->\n")
_OPERATION_NAMES = {"dashboard": "dashboard", "members": "members page"}


def _markdown_table(cells: dict[tuple[str, str, str], Cell], operations: list[str], tenants: list[str],
                    server_names: list[str], loaded: dataset.Loaded) -> str:
    """The summary the README shows, made here so that it is never copied by hand."""
    lines = ["| operation, tenant | gateway req/s | PostGraphile req/s | ratio | gateway p50 / p99 ms "
             "| SQL per request (gateway / PostGraphile) | CPU ms/req gateway + its PostgreSQL "
             "| CPU ms/req PostGraphile + its PostgreSQL |", "|---|---|---|---|---|---|---|---|"]
    for op in operations:
        for tenant_label in tenants:
            gateway, peer = cells[("gateway", op, tenant_label)], cells.get(("postgraphile", op, tenant_label))
            t = gateway.tally

            def cpu(c: Cell | None) -> str:
                return "n/a" if c is None else f"{_f(c.cpu_ms(c.cpu_server))} + {_f(c.cpu_ms(c.cpu_postgres))}"

            lines.append(
                f"| {_OPERATION_NAMES.get(op, op)}, {loaded.tenants[tenant_label].members:,} members "
                f"| {t.rps:,.0f} | {'n/a' if peer is None else f'{peer.tally.rps:,.0f}'} | {_ratio(gateway, peer)} "
                f"| {t.percentile(50):.0f} / {t.percentile(99):.0f} "
                f"| {_f(gateway.queries, 0)} / {'n/a' if peer is None else _f(peer.queries, 0)} "
                f"| {cpu(gateway)} | {cpu(peer)} |")
    return "\n".join(lines) + "\n"


def _write_between_markers(path: Path, table: str) -> None:
    text = path.read_text()
    start, end = text.find(_MARKERS[0]), text.find(_MARKERS[1])
    if start < 0 or end < start:
        raise RuntimeError(f"{path} has no {_MARKERS[0].strip()} ... {_MARKERS[1].strip()} markers")
    path.write_text(text[:start + len(_MARKERS[0])] + table + text[end:])


def main() -> None:
    runs.main("bench", _parser(), run)


if __name__ == "__main__":
    main()
