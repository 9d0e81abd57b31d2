"""(being written)"""

from __future__ import annotations

from dataclasses import dataclass

from datasources.payments.client import PaymentsClient


@dataclass(frozen=True)
class BillingLoaders:
    pass


def create(payments: PaymentsClient | None) -> BillingLoaders:
    return BillingLoaders()
