"""The scheduler's statements: which time-based events are due, the claim that reports each once,
the credit pools' alert state, and the session lock that lets one process at a time run them.

A due event is claimed in the transaction that publishes it: its dedupe key goes into
`scheduler_reports` (migration 0011) with ON CONFLICT DO NOTHING, so of two schedulers racing the
second waits on the first's key and finds it taken. The table remembers a key for as long as it
can come up again, longer than the event log keeps the event itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from datasources.errors import DatabaseUnavailable
from datasources.postgres.database import Executor

# The scheduler's session advisory lock; it must differ from the other advisory locks' (migrations
# "gate", seed "seed", the event log "even").
SCHEDULER_LOCK = 0x7363_6864  # "schd"
# An expiry older than this is history, not news: a scheduler that was stopped longer, or a
# database that meets the scheduler for the first time, does not report it.
REPORT_WINDOW_DAYS = 30


@dataclass(frozen=True)
class Due:
    """A time-based event that is due and was not reported yet."""

    kind: str
    dedupe_key: str
    organization_id: UUID
    relevant_until: datetime  # until when the key could come up again
    subject_id: UUID  # the license or invitation
    moment: datetime  # the expiry
    days_left: int | None = None  # LICENSE_EXPIRING: whole days left, rounded up
    email: str | None = None  # INVITATION_EXPIRED: who was invited


_NOT_REPORTED = "NOT EXISTS (SELECT 1 FROM scheduler_reports r WHERE r.dedupe_key = due.dedupe_key)"
# A timestamp in the key as UTC seconds: an extended license has a new key, so it warns again.
_AT = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


async def licenses_expiring(db: Executor, thresholds: Sequence[int], at: datetime | None = None) -> list[Due]:
    """Each unexpired license within the largest threshold (days) of its expiry, with the
    nearest threshold it is within: a license first seen 5 days before gets the 7-day warning
    only, never the 30-day one too. `at`: the moment to judge by, now unless given (tests)."""
    rows = await db.fetch(
        f"""SELECT * FROM (
              SELECT l.id AS subject_id, l.organization_id, l.expires_at AS moment, l.expires_at AS relevant_until,
                     ceil(extract(epoch FROM l.expires_at - at.now) / 86400)::int AS days_left,
                     'LICENSE_EXPIRING:' || l.id || ':' || t.days || ':' || {_AT.format('l.expires_at')} AS dedupe_key
              FROM (SELECT coalesce($2::timestamptz, now()) AS now) at, licenses l
              CROSS JOIN LATERAL (SELECT min(d) AS days FROM unnest($1::int[]) d
                                  WHERE l.expires_at <= at.now + make_interval(days => d)) t
              WHERE l.expires_at > at.now AND t.days IS NOT NULL) due
            WHERE {_NOT_REPORTED} ORDER BY moment, subject_id""",
        list(thresholds), at)
    return [Due(kind="LICENSE_EXPIRING", **r) for r in rows]


async def licenses_expired(db: Executor, at: datetime | None = None) -> list[Due]:
    """Licenses that expired within the report window."""
    return await _licenses_past(db, "expires_at", "LICENSE_EXPIRED", at)


async def licenses_suspended(db: Executor, at: datetime | None = None) -> list[Due]:
    """Licenses whose payment grace ended within the report window (still unpaid: a payment clears it)."""
    return await _licenses_past(db, "grace_until", "LICENSE_SUSPENDED", at)


async def _licenses_past(db: Executor, column: str, kind: str, at: datetime | None) -> list[Due]:
    rows = await db.fetch(
        f"""SELECT * FROM (
              SELECT l.id AS subject_id, l.organization_id, l.{column} AS moment,
                     l.{column} + make_interval(days => $1) AS relevant_until,
                     '{kind}:' || l.id || ':' || {_AT.format(f'l.{column}')} AS dedupe_key
              FROM (SELECT coalesce($2::timestamptz, now()) AS now) at, licenses l
              WHERE l.{column} <= at.now AND l.{column} > at.now - make_interval(days => $1)) due
            WHERE {_NOT_REPORTED} ORDER BY moment, subject_id""",
        REPORT_WINDOW_DAYS, at)
    return [Due(kind=kind, **r) for r in rows]


async def invitations_expired(db: Executor, at: datetime | None = None) -> list[Due]:
    """Invitations neither accepted nor revoked whose time ran out within the report window."""
    rows = await db.fetch(
        f"""SELECT * FROM (
              SELECT i.id AS subject_id, i.organization_id, i.expires_at AS moment, i.email,
                     i.expires_at + make_interval(days => $1) AS relevant_until,
                     'INVITATION_EXPIRED:' || i.id || ':' || {_AT.format('i.expires_at')} AS dedupe_key
              FROM (SELECT coalesce($2::timestamptz, now()) AS now) at, invitations i
              WHERE i.accepted_at IS NULL AND i.revoked_at IS NULL
                AND i.expires_at <= at.now AND i.expires_at > at.now - make_interval(days => $1)) due
            WHERE {_NOT_REPORTED} ORDER BY moment, subject_id""",
        REPORT_WINDOW_DAYS, at)
    return [Due(kind="INVITATION_EXPIRED", **r) for r in rows]


async def claim(conn: asyncpg.Connection, due: Due) -> bool:
    """In the transaction that publishes the event: False when another scheduler reported it."""
    return await conn.fetchval(
        "INSERT INTO scheduler_reports (dedupe_key, relevant_until) VALUES ($1, $2)"
        " ON CONFLICT (dedupe_key) DO NOTHING RETURNING true", due.dedupe_key, due.relevant_until) or False


async def forget_reports(db: Executor) -> int:
    """Drops the keys that can no longer come up; returns how many."""
    status = await db.execute("DELETE FROM scheduler_reports WHERE relevant_until < now()")
    return int(status.split()[-1])


@dataclass(frozen=True)
class AlertState:
    organization_id: UUID
    threshold: int | None  # None: the alert was switched off
    warned: bool  # CREDIT_POOL_LOW was reported for the current crossing
    crossing: int


async def pool_alerts(db: Executor) -> list[AlertState]:
    """The pools with an alert, and those warned whose alert was since switched off."""
    rows = await db.fetch(
        "SELECT id AS organization_id, credit_low_threshold AS threshold, credit_low_warned AS warned,"
        " credit_low_crossing AS crossing FROM organizations"
        " WHERE credit_low_threshold IS NOT NULL OR credit_low_warned ORDER BY id")
    return [AlertState(**r) for r in rows]


async def mark_pool_low(conn: asyncpg.Connection, alert: AlertState) -> bool:
    """Records that the crossing `alert` saw is reported; False when it already was (another
    scheduler) or the alert changed since it was read."""
    return await conn.fetchval(
        "UPDATE organizations SET credit_low_warned = true WHERE id = $1 AND NOT credit_low_warned"
        " AND credit_low_crossing = $2 AND credit_low_threshold = $3 RETURNING true",
        alert.organization_id, alert.crossing, alert.threshold) or False


async def rearm_pool(conn: asyncpg.Connection, alert: AlertState) -> bool:
    """The balance is back above the threshold: the next crossing is reported again."""
    return await conn.fetchval(
        "UPDATE organizations SET credit_low_warned = false, credit_low_crossing = credit_low_crossing + 1"
        " WHERE id = $1 AND credit_low_warned AND credit_low_crossing = $2 RETURNING true",
        alert.organization_id, alert.crossing) or False


class Leadership:
    """The scheduler's session advisory lock, held on a connection of its own (not the pool's:
    a pooled connection is reset when returned, and the lock must live as long as the process
    runs the scheduler). PostgreSQL releases it when that connection ends, so when the holding
    process dies another process's next `try_take` succeeds."""

    def __init__(self, dsn: str, *, connect_timeout: float) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._conn: asyncpg.Connection | None = None
        self.held = False

    async def try_take(self) -> bool:
        """Whether this process holds the lock now (taking it if it is free)."""
        try:
            if self._conn is None or self._conn.is_closed():
                self.held = False
                self._conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
            if self.held:
                await self._conn.fetchval("SELECT 1")  # still connected, so still holding it
            else:
                self.held = await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", SCHEDULER_LOCK)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.release()
            raise DatabaseUnavailable(f"scheduler lock: {exc or type(exc).__name__}") from exc
        return self.held

    async def release(self) -> None:
        """Ends the connection, and with it the lock."""
        conn, self._conn, self.held = self._conn, None, False
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=2)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()

