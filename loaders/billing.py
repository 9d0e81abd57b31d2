"""Billing at the payment provider: one loader per provider list, keyed by customer id.

The provider has no batch endpoint, so each distinct customer costs one call per list
(`each_loader`); the loader's per-request cache is what makes every field that needs a
customer's invoices (the connection, the outstanding balance, `node`) share one fetch.
A failure is cached per key too, so a provider that is down costs one time-box per
request, not one per field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from loaders.dataloader import DataLoader

from datasources.errors import ProviderUnavailable
from datasources.payments.client import UNAVAILABLE, PaymentsClient
from loaders.base import each_loader

T = TypeVar("T")


@dataclass(frozen=True)
class BillingLoaders:
    customer: DataLoader  # customer id -> Customer | None (None: unknown to or deleted at the provider)
    invoices: DataLoader  # customer id -> list[Invoice], all of the customer's, in provider order
    payment_methods: DataLoader  # customer id -> list[PaymentMethod], in provider order


def create(payments: PaymentsClient | None) -> BillingLoaders:
    return BillingLoaders(
        customer=each_loader(_with(payments, lambda p: p.get_customer)),
        invoices=each_loader(_with(payments, lambda p: p.list_invoices)),
        payment_methods=each_loader(_with(payments, lambda p: p.list_payment_methods)),
    )


def _with(payments: PaymentsClient | None,
          method: Callable[[PaymentsClient], Callable[[str], Awaitable[T]]]) -> Callable[[str], Awaitable[T]]:
    """The client's method, or, with no provider configured, one that fails like a provider that is down."""
    if payments is not None:
        return method(payments)

    async def unavailable(_customer_id: str) -> T:
        raise ProviderUnavailable(UNAVAILABLE)

    return unavailable
