"""python -m bench.events [--quick] [--organizations N] [--managers M] [--interval-ms 10] [--duration S]

Live events under load (issue 17): one `serve` process (production settings) on a fresh embedded
PostgreSQL seeded as `python -m bench` seeds; N organizations × M managers, each manager signed in on
a WebSocket of their own (graphql-transport-ws, from a separate client process: bench/subscribers.py)
subscribed to their organization's events; then an event committed every `--interval-ms` through a
real transaction (a member's role changed and `resolvers.events.publish`, as the mutation does),
round-robin over the organizations, for `--duration` seconds. Prints the deliveries, the latency from
commit to receipt, the server's memory with no and with all subscriptions idle, the CPU per delivered
event, and the issue's targets with pass or fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psutil

from auth import tokens
from bench import cpu, dataset, runs, servers
from datasources.errors import GatewayError
from datasources.postgres import sessions
from resolvers import events
from resolvers.live import parse_cursor

ROOT = Path(__file__).resolve().parents[1]
# What the subscribers ask for: the portal's own subscription, as a client sends it (each event
# then reads the objects it changed, per subscriber); or the interface's fields alone, which read
# nothing: the transport's and the fan-out's own cost.
OPERATION = ROOT / "operations" / "organization_events.graphql"
SELECTIONS = {
    "portal": OPERATION.read_text(),
    "cursor": "subscription Cursor { organizationEvents { id type occurredAt cursor } }\n",
}
TARGET_P99_MS = 100.0
TARGET_MB_PER_1000_IDLE = 50.0
SETTLE_SECONDS = 3.0  # after connecting or warming, before RSS is read: the allocator settles
ROUND_SECONDS = 5.0  # between rounds of the events that prove the subscriptions live
TOKEN_SECONDS = 3 * 3600


@dataclass(frozen=True)
class Organization:
    id: uuid.UUID
    managers: list[uuid.UUID]  # each one a subscriber
    subject: uuid.UUID  # the MEMBER whose role the events change


@dataclass
class Committed:
    """The events of the measured phase: cursor-independent, by log id."""
    at: dict[int, float] = field(default_factory=dict)  # log id -> wall time just before COMMIT
    group: dict[int, int] = field(default_factory=dict)  # log id -> organization index
    behind: float = 0.0  # the most a commit started after its scheduled time
    seconds: float = 0.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10 s of events instead of 60")
    p.add_argument("--duration", type=float, default=None, help="seconds of events (default 60, quick 10)")
    p.add_argument("--interval-ms", type=float, default=10.0,
                   help="one event committed every this many ms (default 10)")
    p.add_argument("--organizations", type=int, default=100, help="organizations with subscribers (default 100)")
    p.add_argument("--managers", type=int, default=10,
                   help="subscribing managers (OWNER and ADMINs) per organization (default 10); subscribers = "
                        "organizations × managers, and each event reaches its organization's managers")
    p.add_argument("--selection", choices=sorted(SELECTIONS), default="portal",
                   help="portal: operations/organization_events.graphql (default); cursor: id, type, occurredAt "
                        "and cursor only (no object read per delivery)")
    p.add_argument("--no-compression", action="store_true",
                   help="do not offer permessage-deflate (browsers and the graphql-ws client under node offer it)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (gateway.log) at the end")
    return p


async def _organizations(conn: asyncpg.Connection, managers: int) -> list[Organization]:
    """Makes the first `managers` members of every organization (by email) its OWNER or ADMINs."""
    rows = await conn.fetch(
        "SELECT m.organization_id, m.account_id, m.role,"
        " row_number() OVER (PARTITION BY m.organization_id ORDER BY a.email) AS n"
        " FROM memberships m JOIN accounts a ON a.id = m.account_id ORDER BY m.organization_id, n")
    by_org: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for row in rows:
        by_org.setdefault(row["organization_id"], []).append(row)
    promoted = [(r["organization_id"], r["account_id"]) for members in by_org.values()
                for r in members[:managers] if r["role"] == "MEMBER"]
    await conn.executemany("UPDATE memberships SET role = 'ADMIN' WHERE organization_id = $1 AND account_id = $2",
                           promoted)
    return [Organization(org_id, [r["account_id"] for r in members[:managers]], members[managers]["account_id"])
            for org_id, members in sorted(by_org.items())]


async def _sign_in(conn: asyncpg.Connection, secret: str, account_ids: list[uuid.UUID]) -> list[str]:
    """A session and a bearer token per subscriber, as `login` makes them, without 1,000 argon2 checks."""
    expires = datetime.now(UTC) + timedelta(seconds=TOKEN_SECONDS)
    out = []
    for account_id in account_ids:
        session_id = uuid.uuid4()
        await sessions.create_session(conn, session_id, account_id, expires)
        out.append(tokens.issue(secret, session_id=session_id, account_id=account_id,
                                ttl_seconds=TOKEN_SECONDS)[0])
    return out


async def _commit_one(conn: asyncpg.Connection, org: Organization, role: str) -> tuple[int, float]:
    """A member's role changed and the event published in one transaction; (log id, time before COMMIT)."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("UPDATE memberships SET role = $3 WHERE organization_id = $1 AND account_id = $2",
                           org.id, org.subject, role)
        event = await events.publish(
            conn, "MEMBER_ROLE_CHANGED", organization_id=org.id, account_id=org.subject,
            actor_account_id=org.managers[0],
            data={"account_id": str(org.subject), "old_role": "ADMIN" if role == "MEMBER" else "MEMBER",
                  "new_role": role})
        assert event is not None
        at = time.time()
    except BaseException:
        await tx.rollback()
        raise
    await tx.commit()
    return event.id, at


class Subscribers:
    """The client process (bench/subscribers.py) and its line protocol."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, config: dict) -> Subscribers:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.subscribers", cwd=ROOT, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 30, start_new_session=True)
        assert process.stdin is not None
        process.stdin.write(json.dumps(config).encode() + b"\n")
        return cls(process)

    def send(self, command: str) -> asyncio.Task:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command.encode() + b"\n")
        return asyncio.ensure_future(self._reply(command))

    async def _reply(self, command: str) -> dict:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the subscribers' process ended during {command!r} "
                               f"(exit {await self.process.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"subscribers, {command}: {reply['error']}")
        return reply

    async def stop(self) -> None:
        if self.process.returncode is None:
            try:
                await asyncio.wait_for(self.send("stop"), 30)
                await asyncio.wait_for(self.process.wait(), 10)
            except (TimeoutError, RuntimeError, BrokenPipeError, ConnectionResetError):
                with contextlib.suppress(ProcessLookupError):  # it may have ended on its own
                    self.process.kill()
                await self.process.wait()


async def _publish_until(reply: asyncio.Task, conn: asyncpg.Connection, orgs: list[Organization],
                         interval: float, what: str) -> dict:
    """Commits events round-robin over `orgs`, one per `interval`, until the client's reply comes:
    a subscription has no acknowledgement, so the first event it receives is the proof it is live."""
    roles: dict[uuid.UUID, str] = {}
    deadline = time.monotonic() + 180
    while not reply.done():
        if time.monotonic() > deadline:
            reply.cancel()
            raise RuntimeError(f"{what}: the subscribers received no event in 180 s")
        for org in orgs:
            roles[org.id] = "ADMIN" if roles.get(org.id) == "MEMBER" else "MEMBER"
            await _commit_one(conn, org, roles[org.id])
            await asyncio.wait([reply], timeout=interval)
            if reply.done():
                break
        # A round reaches every subscriber once: give the server time to deliver it before another.
        await asyncio.wait([reply], timeout=ROUND_SECONDS)
    return reply.result()


async def _quiet(server: psutil.Process, limit: float = 120) -> float:
    """Waits until the server uses under 5% of a core over a second (it has delivered all it had);
    returns the seconds waited."""
    started = time.monotonic()
    server.cpu_percent()
    while time.monotonic() - started < limit:
        await asyncio.sleep(1)
        if server.cpu_percent() < 5:
            break
    return time.monotonic() - started


async def _publish(conn: asyncpg.Connection, orgs: list[Organization], interval: float, seconds: float) -> Committed:
    """An event every `interval` seconds on a fixed schedule (a late commit does not shift the next)."""
    done = Committed()
    count = int(seconds / interval)
    roles: dict[uuid.UUID, str] = {}
    started = time.monotonic()
    for i in range(count):
        due = started + i * interval
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            done.behind = max(done.behind, -wait)
        org_index = i % len(orgs)
        org = orgs[org_index]
        roles[org.id] = "ADMIN" if roles.get(org.id) == "MEMBER" else "MEMBER"
        log_id, at = await _commit_one(conn, org, roles[org.id])
        done.at[log_id], done.group[log_id] = at, org_index
    done.seconds = time.monotonic() - started
    return done


def _selection(name: str) -> str:
    return f"operations/{OPERATION.name}" if name == "portal" else "id, type, occurredAt, cursor"


def _log_id(cursor: str) -> int | None:
    """The event log id in a subscriber's cursor, read as the gateway reads `after`."""
    try:
        return parse_cursor(cursor, 3650).last_id
    except GatewayError:
        return None


def _percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _mb(rss: int) -> float:
    return rss / (1024 * 1024)


def _f(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


@dataclass
class Measured:
    """What one run measured, for the summary."""
    groups: list[int]  # the organization index of each subscriber
    compressed: int  # connections on which permessage-deflate was negotiated
    rss_none: int
    rss_idle: int
    committed: Committed
    report: dict  # the subscribers' receipts and counts
    server_cpu: float  # seconds, from the first commit to the last delivery
    postgres_cpu: float
    client_cpu: float
    seconds: float  # from the first commit to the last delivery


async def run(args: argparse.Namespace) -> int:
    duration = args.duration if args.duration is not None else (10.0 if args.quick else 60.0)
    if args.organizations < 1 or args.managers < 1 or args.interval_ms <= 0 or duration <= 0:
        raise SystemExit("python -m bench.events: --organizations, --managers, --interval-ms and --duration "
                         "must be positive")
    began = time.monotonic()
    print(f"bench.events: {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.organizations * args.managers:,} subscribers = {args.organizations} organizations × "
          f"{args.managers} managers, each subscribed to organizationEvents ({_selection(args.selection)}) on a "
          f"WebSocket of its own; an event every {args.interval_ms:g} ms for {duration:g} s, round-robin over the "
          "organizations", flush=True)
    async with runs.workspace("bench.events", args.keep) as workspace:
        postgres = await workspace.start_postgres()
        conn = await asyncpg.connect(postgres.dsn())
        try:
            measured = await _measure(args, duration, workspace, postgres, conn)
        finally:
            await conn.close()
    code = _summary(args, measured)
    print(f"bench.events: finished in {time.monotonic() - began:.0f} s")
    return code


async def _measure(args: argparse.Namespace, duration: float, workspace: runs.Run, postgres: servers.Postgres,
                   conn: asyncpg.Connection) -> Measured:
    interval = args.interval_ms / 1000
    sizes = dataset.Sizes(organizations=args.organizations, members_per_org=max(30, args.managers + 5),
                          big_organizations=0, big_members=0)
    loaded = await dataset.create(conn, sizes)
    orgs = await _organizations(conn, args.managers)
    print(f"bench.events: seeded {loaded.rows['organizations']:,} organizations of {sizes.members_per_org} members "
          f"in {loaded.seconds:.1f} s; the first {args.managers} of each (by email) are its OWNER and ADMINs",
          flush=True)
    secret = secrets.token_urlsafe(36)[:48]
    signed = await _sign_in(conn, secret, [m for org in orgs for m in org.managers])
    gateway = servers.start_gateway(postgres.dsn(), workspace.root, workspace.started, {"SECRET_KEY": secret})
    server = psutil.Process(gateway.process.pid)
    postmaster = cpu.postmaster_pid(postgres.server.pgdata)
    print(f"bench.events: gateway (production, one process) at {gateway.url}", flush=True)

    groups = [i for i, org in enumerate(orgs) for _ in org.managers]
    client = await Subscribers.start({
        "url": gateway.url.replace("http://", "ws://") + "/graphql", "query": SELECTIONS[args.selection],
        "compression": not args.no_compression,
        "subscribers": [{"token": t, "group": g} for t, g in zip(signed, groups, strict=True)]})
    try:
        # One subscriber receives one event and leaves: the code paths are loaded, none is held.
        await _publish_until(client.send("warm"), conn, orgs[:1], 0.3, "warm-up")
        await asyncio.sleep(SETTLE_SECONDS)
        rss_none = server.memory_info().rss

        connected = await asyncio.wait_for(client.send("connect"), 600)
        print(f"bench.events: {len(groups):,} subscribers connected and subscribed in {connected['seconds']:.1f} s "
              f"(permessage-deflate on {connected['compressed']:,})", flush=True)
        if connected["errors"]:
            raise RuntimeError(f"subscribers failed: {connected['errors']}")
        live = await _publish_until(client.send("idle"), conn, orgs, interval, "every subscription live")
        await _quiet(server)
        await asyncio.sleep(SETTLE_SECONDS)
        rss_idle = server.memory_info().rss
        print(f"bench.events: every subscription received an event; server RSS {_mb(rss_none):.1f} MB → "
              f"{_mb(rss_idle):.1f} MB idle", flush=True)

        server_before, postgres_before = _cpu_seconds(server), _postgres_seconds(postmaster)
        started = time.monotonic()
        committed = await _publish(conn, orgs, interval, duration)
        report = await asyncio.wait_for(client.send("report"), 600)  # once the deliveries stopped
        return Measured(groups, connected["compressed"], rss_none, rss_idle, committed, report,
                        server_cpu=_cpu_seconds(server) - server_before,
                        postgres_cpu=_postgres_seconds(postmaster) - postgres_before,
                        client_cpu=report["cpu"] - live["cpu"], seconds=time.monotonic() - started)
    finally:
        await client.stop()  # before the gateway stops: their ends are no error


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _postgres_seconds(postmaster: int | None) -> float:
    return cpu.tree_seconds(postmaster) if postmaster else math.nan


def _summary(args: argparse.Namespace, m: Measured) -> int:
    """Prints the figures and the targets; 1 when a delivery is missing or doubled."""
    committed, report = m.committed, m.report
    latencies, seen, unknown, duplicates = [], set(), 0, 0
    for index, cursor, at in report["receipts"]:
        log_id = _log_id(cursor)
        if log_id not in committed.at:
            unknown += 1  # a proof-of-life event, or a cursor this bench cannot read
            continue
        if (index, log_id) in seen:
            duplicates += 1
            continue
        if committed.group[log_id] != m.groups[index]:
            raise RuntimeError(f"subscriber {index} received an event of another organization ({cursor})")
        seen.add((index, log_id))
        latencies.append((at - committed.at[log_id]) * 1000)
    latencies.sort()
    last_commit = max(committed.at.values(), default=math.nan)
    trailing = max((at for _, _, at in report["receipts"]), default=last_commit) - last_commit
    events, delivered, expected = len(committed.at), len(seen), len(committed.at) * args.managers
    p50, p99 = _percentile(latencies, 50), _percentile(latencies, 99)
    per_1000 = _mb(m.rss_idle - m.rss_none) * 1000 / len(m.groups)

    def per_event(seconds: float) -> str:
        return _f(seconds * 1000 / events if events else math.nan, 2)

    print()
    print(f"subscribers   {len(m.groups):,} = {args.organizations} organizations × {args.managers} managers "
          f"(organizationEvents, {_selection(args.selection)}; permessage-deflate on {m.compressed:,})")
    print(f"committed     {events:,} events in {committed.seconds:.1f} s ({events / committed.seconds:,.1f}/s; "
          f"scheduled every {args.interval_ms:g} ms, at most {committed.behind * 1000:.1f} ms late)")
    print(f"delivered     {delivered:,} of {expected:,} ({expected - delivered:,} missing, {duplicates} duplicates, "
          f"{report['partial']:,} with errors beside their data, {report['error_count']} subscriptions ended, "
          f"{report['closed']} closed" + (f", {unknown} unmatched)" if unknown else ")"))
    print(f"latency       p50 {_f(p50)} ms   p99 {_f(p99)} ms   max {_f(latencies[-1] if latencies else math.nan)} ms"
          "   (wall clock from just before COMMIT to the subscriber's receipt); the last delivery "
          f"{trailing:.1f} s after the last commit")
    print(f"memory        server RSS {_mb(m.rss_none):.1f} MB with 0 subscriptions, {_mb(m.rss_idle):.1f} MB with "
          f"{len(m.groups):,} idle → {per_1000:.1f} MB per 1,000 idle subscriptions")
    print(f"CPU           server {_f(m.server_cpu * 1e6 / delivered if delivered else math.nan)} µs per delivered "
          f"event ({per_event(m.server_cpu)} ms per committed event, {m.server_cpu / m.seconds * 100:.0f}% of a core "
          f"over the {m.seconds:.0f} s until the last delivery); PostgreSQL {per_event(m.postgres_cpu)} ms per "
          f"committed event; the subscribers' process {m.client_cpu / m.seconds * 100:.0f}% of a core")
    print(f"targets       p99 < {TARGET_P99_MS:g} ms: {_verdict(p99 < TARGET_P99_MS)} ({_f(p99)} ms);  "
          f"< {TARGET_MB_PER_1000_IDLE:g} MB per 1,000 idle subscriptions: "
          f"{_verdict(per_1000 < TARGET_MB_PER_1000_IDLE)} ({per_1000:.1f} MB)")
    if report["first_partial"]:
        print(f"first errors beside an event's data: {report['first_partial']}")
    if report["errors"]:
        print(f"first subscriptions ended: {report['errors'][:3]}")
    return 0 if delivered == expected and not duplicates else 1


def main() -> None:
    runs.main("bench.events", _parser(), run)


if __name__ == "__main__":
    main()
