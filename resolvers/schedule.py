"""One pass of the scheduler: the time-based events that are due, each reported once, and the
event log pruned. gateway/scheduler.py runs it on one process at a time; it is safe to run on two
at once all the same (a restart mid-pass, a lock lost and taken over): each event is claimed in
the transaction that publishes it (datasources/postgres/schedule.py), and publish's dedupe key
makes a repeat a no-op.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from datasources.postgres import credits, events
from datasources.postgres import schedule as data
from datasources.postgres.database import Database
from resolvers import credits as resolve_credits
from resolvers.events import publish

# LICENSE_EXPIRING is reported this many days before the expiry, largest first.
EXPIRY_WARNINGS = (30, 7, 1)


def _event_data(due: data.Due) -> dict[str, object]:
    """The kind's `data` as resolvers/events.py lists it."""
    if due.kind == "LICENSE_EXPIRING":
        return {"license_id": str(due.subject_id), "days_left": due.days_left, "expires_at": due.moment.isoformat()}
    if due.kind == "LICENSE_EXPIRED":
        return {"license_id": str(due.subject_id), "expired_at": due.moment.isoformat()}
    if due.kind == "LICENSE_SUSPENDED":
        return {"license_id": str(due.subject_id), "suspended_at": due.moment.isoformat()}
    return {"invitation_id": str(due.subject_id), "email": due.email}


async def run_pass(db: Database, *, retention_days: float, at: datetime | None = None) -> Counter[str]:
    """Reports what is due; returns how many events of each kind this pass reported, and
    "PRUNED", the events dropped from the log. `at`: the moment the expiries are judged by, now
    unless given (a test's clock)."""
    reported: Counter[str] = Counter()
    due = [*await data.licenses_expiring(db, EXPIRY_WARNINGS, at), *await data.licenses_expired(db, at),
           *await data.licenses_suspended(db, at), *await data.invitations_expired(db, at)]
    for each in due:
        # One transaction per event: one that fails leaves the others reported.
        async with db.transaction() as conn:
            if await data.claim(conn, each):
                if await publish(conn, each.kind, organization_id=each.organization_id, data=_event_data(each),
                                 dedupe_key=each.dedupe_key):
                    reported[each.kind] += 1
    if low := await _credit_pools(db):
        reported["CREDIT_POOL_LOW"] = low
    await data.forget_reports(db)
    pruned = await events.prune(db, retention_days)
    if pruned:
        reported["PRUNED"] = pruned
    return reported


async def _credit_pools(db: Database) -> int:
    """CREDIT_POOL_LOW once per crossing: when the balance is at or under the threshold and was
    not reported since it was last above it (or since the threshold was set)."""
    alerts = await data.pool_alerts(db)
    if not alerts:
        return 0
    keys = [a.organization_id for a in alerts]
    grants, periods = await credits.grants_of_organizations(db, keys), await credits.usage_periods_of_organizations(db, keys)
    now = datetime.now(timezone.utc)
    reported = 0
    for alert in alerts:
        balance = resolve_credits.settle([g for g in grants if g.organization_id == alert.organization_id],
                                         [p for p in periods if p.organization_id == alert.organization_id],
                                         now).balance
        low = alert.threshold is not None and balance <= alert.threshold
        if low and not alert.warned:
            async with db.transaction() as conn:
                if await data.mark_pool_low(conn, alert):
                    if await publish(conn, "CREDIT_POOL_LOW", organization_id=alert.organization_id,
                                     data={"pool_id": str(alert.organization_id), "balance": balance,
                                           "threshold": alert.threshold},
                                     dedupe_key=f"CREDIT_POOL_LOW:{alert.organization_id}:{alert.crossing}"):
                        reported += 1
        elif not low and alert.warned:
            async with db.transaction() as conn:
                await data.rearm_pool(conn, alert)
    return reported
