"""The scheduler: time-based events (expiries, a low credit pool), the event log's pruning and
the billing mirror's reconcile pass (loaders/billing.reconcile) and putting at the payment
provider the subscriptions it does not hold yet (resolvers/subscription_sync.py), every
SCHEDULER_INTERVAL_SECONDS, on one gateway process at a time among all those on one database.

Every process runs this loop; the one holding PostgreSQL's session advisory lock (on a
connection of its own, datasources/postgres/schedule.Leadership) runs the passes, and the others
try to take the lock each interval. When the holder stops or dies its connection ends, the
lock with it, and another process takes over at its next try. What a pass reports is claimed in
the event's own transaction, so a takeover mid-pass, or a restart, reports nothing twice
(resolvers/schedule.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from datasources.errors import DatabaseUnavailable
from datasources.payments.client import PaymentsClient
from datasources.postgres.database import Database
from datasources.postgres.schedule import Leadership
from gateway.settings import Settings
from loaders import billing
from resolvers import subscription_sync
from resolvers.schedule import run_pass

log = logging.getLogger("gateway.scheduler")


class Scheduler:
    def __init__(self, db: Database, settings: Settings, payments: PaymentsClient | None = None) -> None:
        assert settings.database_url, "the scheduler needs a database_url"
        self.db = db
        self.payments = payments
        self.mirror_max_age = settings.billing_mirror_max_age_seconds
        self.interval = settings.scheduler_interval_seconds
        self.retention_days = settings.event_retention_days
        self.leadership = Leadership(settings.database_url, connect_timeout=settings.db_connect_timeout_seconds)
        self.passes = 0  # passes this process ran (as the leader)

    @property
    def leader(self) -> bool:
        """Whether this process holds the lock (as of its last try)."""
        return self.leadership.held

    async def run(self) -> None:
        """Until cancelled; the lock is given up on the way out, so another process takes over
        at its next try rather than when this connection times out."""
        try:
            while True:
                await self.tick()
                await asyncio.sleep(self.interval)
        finally:
            await asyncio.shield(self.leadership.release())

    async def tick(self) -> Counter[str] | None:
        """One interval's work: the lock tried, and a pass run if this process holds it. None
        when another process holds it or the database could not be reached."""
        try:
            was_leader = self.leader
            if not await self.leadership.try_take():
                return None
            if not was_leader:
                log.info("this process now runs the scheduler")
            reported = await run_pass(self.db, retention_days=self.retention_days)
            refetched = await billing.reconcile(self.db, self.payments, self.mirror_max_age)
            if self.payments is not None:
                await subscription_sync.sync_all(self.db, self.payments)
        except DatabaseUnavailable:  # one line, and try again next interval
            log.warning("the scheduler waits for the database")
            return None
        except Exception:
            log.exception("scheduler pass failed")
            return None
        self.passes += 1
        if reported:
            log.info("scheduler reported %s", dict(reported))
        if refetched:
            log.info("scheduler fetched %d billing lists again from the payment provider", refetched)
        return reported
