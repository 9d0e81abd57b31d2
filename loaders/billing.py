"""Billing from the payment provider, through its mirror in PostgreSQL: one loader per list.

Each list (a customer's details, invoices, payment methods) is read from the mirror
(datasources/postgres/billing_mirror.py) in the request's merged statement; only a miss asks
the provider, one call per distinct customer (it has no batch endpoint), and writes the
answer back for the next request. So a billing screen costs the provider nothing while the
mirror holds its lists, and an outage of the provider only shows where the mirror is empty.

Everything the mirror holds is an answer the provider gave. What keeps it current: a
verified webhook about the customer drops its lists (resolvers/provider_events.py), so does
every write of the gateway's own to the provider (resolvers/writes.provider_changed), and the
scheduler's reconcile pass (`reconcile`) fetches again those held longer than
BILLING_MIRROR_MAX_AGE_SECONDS, for the webhooks that never came.

The loader's per-request cache makes every field that needs a customer's invoices (the
connection, the outstanding balance, `node`) share one read. A failure is cached per key
too, so a provider that is down costs one time-box per request, not one per field.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from loaders.dataloader import DataLoader

from datasources.errors import ProviderUnavailable
from datasources.payments import stored
from datasources.payments.client import UNAVAILABLE, PaymentsClient
from datasources.postgres import billing_mirror as mirror
from datasources.postgres.database import Executor
from loaders.base import loader

log = logging.getLogger("gateway.payments")


@dataclass(frozen=True)
class _List:
    """One list the provider answers per customer, and how the mirror stores it."""

    fetch: Callable[[PaymentsClient], Callable[[str], Awaitable[Any]]]
    decode: Callable[[str], Any]


_LISTS: dict[str, _List] = {
    "customer": _List(lambda p: p.get_customer, stored.customer),  # Customer | None (unknown or deleted)
    "invoices": _List(lambda p: p.list_invoices, stored.invoices),  # all of the customer's, in provider order
    "payment_methods": _List(lambda p: p.list_payment_methods, stored.payment_methods),  # in provider order
}


@dataclass(frozen=True)
class BillingLoaders:
    customer: DataLoader  # customer id -> Customer | None (None: unknown to or deleted at the provider)
    invoices: DataLoader  # customer id -> list[Invoice], all of the customer's, in provider order
    payment_methods: DataLoader  # customer id -> list[PaymentMethod], in provider order


def create(db: Executor, payments: PaymentsClient | None) -> BillingLoaders:
    def mirrored(kind: str) -> DataLoader:
        async def batch(customer_ids: Sequence[str]) -> list[Any]:
            rows = await mirror.read(db, [(c, kind) for c in customer_ids])
            return list(await asyncio.gather(*(_value(db, payments, row) for row in rows), return_exceptions=True))
        return loader(batch)

    return BillingLoaders(customer=mirrored("customer"), invoices=mirrored("invoices"),
                          payment_methods=mirrored("payment_methods"))


async def _value(db: Executor, payments: PaymentsClient | None, row: mirror.Mirrored) -> Any:
    if row.body is not None:
        return _LISTS[row.kind].decode(row.body)
    return await fetch(db, payments, row)


async def fetch(db: Executor, payments: PaymentsClient | None, row: mirror.Mirrored) -> Any:
    """The provider's answer for the row's list, written back to the mirror unless the row was
    dropped since it was read (then the answer may predate the change that dropped it)."""
    if payments is None:
        raise ProviderUnavailable(UNAVAILABLE)
    answer = await _LISTS[row.kind].fetch(payments)(row.customer_id)
    await mirror.write_back(db, row.customer_id, row.kind, row.generation, stored.dumps(answer))
    return answer


async def refresh(db: Executor, payments: PaymentsClient | None, customer_ids: Sequence[str]) -> None:
    """Fetches every list of these customers into the mirror now (after a webhook dropped them,
    so the next screen need not wait for the provider). Best effort: a failure leaves the
    lists to the next read."""
    rows = await mirror.read(db, [(c, kind) for c in customer_ids for kind in _LISTS])
    for outcome in await asyncio.gather(*(fetch(db, payments, r) for r in rows if r.body is None),
                                        return_exceptions=True):
        if isinstance(outcome, ProviderUnavailable):
            log.info("billing mirror: refresh left to the next read (%s)", outcome.message)
        elif isinstance(outcome, BaseException):
            raise outcome


async def reconcile(db: Executor, payments: PaymentsClient | None, max_age_seconds: float,
                    limit: int = 100) -> int:
    """One pass for missed webhooks: fetches again (one after another, at most `limit`, to stay
    far below the provider's rate limit) the lists dropped and not fetched since, and those
    fetched more than `max_age_seconds` ago. Stops at the first provider failure. Returns how
    many it fetched."""
    if payments is None:
        return 0
    older_than = datetime.now(timezone.utc) - timedelta(seconds=max_age_seconds)
    fetched = 0
    for row in await mirror.due(db, older_than, limit):
        try:
            await fetch(db, payments, row)
        except ProviderUnavailable as exc:
            log.info("billing mirror: reconcile stopped after %d lists (%s)", fetched, exc.message)
            break
        fetched += 1
    return fetched
